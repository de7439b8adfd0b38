"""The local stack and ``payq demo``.

``supervisor`` runs the stack's processes and restarts any that dies (its own
process, ``python -m payq.stack``); ``launcher`` starts and stops it from
the demo's side; ``demo`` is the command; ``plan`` what it enqueues and the
faults it scripts; ``report`` what it shows while and after the jobs run.
"""
