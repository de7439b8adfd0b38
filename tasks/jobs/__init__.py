"""A job's rules, as pure functions and values: the decisions, the backoff, a trip's books, a deferral, its Celery message."""
