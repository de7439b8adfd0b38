"""Outcome notifications: the events, the outbox stream they wait in, the retry schedule, and the signed POST.

One word per thing, here, in :mod:`workers.delivery` and in docs/store-backends.md:
an *event* is one outcome told to a store backend (its ``id`` is the ``webhook-id``),
the *receiver* is the store backend's webhook at ``PAYQ_NOTIFY_URL``, a *delivery* is
one signed POST of an event to it (a *failed* delivery counts against
``PAYQ_NOTIFY_MAX_ATTEMPTS``; a request for time does not), the *outbox* holds the
events not yet delivered (a stream and its retry set), and an *entry* is an event as
the outbox holds it. The feature as a whole is *notifications* (``notify`` in
settings, the ``notify-failed`` dead-letter reason and the package's name).
"""
