"""Outcome notifications: the events, the outbox stream they wait in, the retry schedule, and the signed POST."""
