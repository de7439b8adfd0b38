"""payq's jobs, by concern. Each sub-package imports only those below it (``lint-imports`` holds the lines):

- :mod:`tasks.producer`, :mod:`tasks.stores`, :mod:`tasks.stats`: the door, the stores wired once, the figures;
- :mod:`tasks.store`: a job's records in Redis and the atomic steps that move it (its scripts in ``store/lua/``);
- :mod:`tasks.pacing`: each endpoint's pace and pause; :mod:`tasks.notify`: outcome notifications and their outbox;
- :mod:`tasks.jobs`: a job's rules, pure functions; :mod:`tasks.redis`: connections, replicas, keys, the script loader;
- :mod:`tasks.states`: the names a job's life is told in.

The Celery tasks themselves, and what runs one delivery, are the worker's (:mod:`workers.payments`, :mod:`workers.execution`).
"""
