"""A job's records in Redis and the atomic steps that move it: records, dead letters, leases; each step one script in ``lua/``."""
