"""A stand-in for the payment API: the four endpoints over real HTTP, a trip ledger, scripted faults, rate limits and ``/admin/*``.

Modules: ``ledger`` (the rules, pure), ``operations`` (request → ledger → reply, pure),
``faults`` (fault scripts, pure), ``ratelimit`` (limits per endpoint, pure), ``requestlog``, ``state``, ``basehandler`` and
``admin`` (tornado handlers), ``server`` (``make_app``, ``run``), ``cli`` (``python -m sandbox``).
"""
