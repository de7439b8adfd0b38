"""Tier 1: pure tests of the payment API's models, wire format, outcomes, errors and settings (no network, no Redis)."""
