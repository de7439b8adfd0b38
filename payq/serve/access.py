"""Who may use which store: the intake's bearer tokens, and the store a job id names.

``PAYQ_INTAKE_TOKENS`` maps the SHA-256 hex of each token to the storeIds it
may use; payq never keeps a token itself. A token is checked against every
entry with :func:`hmac.compare_digest` and no early exit, so how long the
check takes says nothing about which entry (or how much of one) matched.
Nothing here imports the web stack: ``payq token new`` uses it too.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping, Sequence

from payapi.operations import OPERATIONS, Operation

TOKEN_BYTES = 32  # 256 bits of randomness: secrets.token_urlsafe(32), 43 characters


def new_token() -> str:
    """A fresh random token for a store backend (URL-safe base64, 43 characters)."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def digest(token: str) -> str:
    """The SHA-256 hex of ``token``: its key in ``PAYQ_INTAKE_TOKENS``."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def stores_of(token: str, table: Mapping[str, Sequence[str]]) -> frozenset[str] | None:
    """The storeIds ``token`` may use, or None if it is not in ``table`` (digest -> storeIds)."""
    presented = digest(token).encode("ascii")
    found: Sequence[str] | None = None
    for key, stores in table.items():
        # every entry is compared, match or not: the time taken does not depend on where the match is
        if hmac.compare_digest(presented, key.encode("ascii")):
            found = stores
    return frozenset(found) if found is not None else None


def store_named_by(job_id: str) -> str | None:
    """The storeId a job id carries in itself (``capture:S:T``, ``cancel:S:T``, ``feedback:S:T:time``), else None.

    A refund's id is ``refund:<refundRequestId>``: its store is known only
    from its record. Read from the table of operations (the job-id rule), so
    it cannot drift from how ids are made; no key field can hold a ``:``.
    """
    operation, _, rest = job_id.partition(":")
    try:
        spec = OPERATIONS[Operation(operation)]
    except ValueError:
        return None
    parts = rest.split(":")
    if "storeId" not in spec.key_fields or len(parts) != len(spec.key_fields):
        return None
    return parts[spec.key_fields.index("storeId")]
