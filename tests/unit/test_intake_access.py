"""The intake's access rules as tables: a token's stores, and the store a job id names."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import pytest

from payq.serve.access import digest, new_token, store_named_by, stores_of


@pytest.mark.parametrize(("job_id", "store"), [
    ("capture:s1:t1", "s1"),
    ("cancel:store-a:trip_9", "store-a"),
    ("feedback:s1:t1:1700000000", "s1"),
    ("refund:5e0c7d2a-1b3f-4a6e-8d9c-0f1e2d3c4b5a", None),   # a refund's id names no store
    ("capture:s1", None),                                      # too few parts: not an id payq makes
    ("capture:s1:t1:extra", None),
    ("feedback:s1:t1", None),
    ("charge:s1:t1", None),
    ("", None),
    ("capture", None),
])
def test_the_store_a_job_id_names(job_id: str, store: str | None) -> None:
    assert store_named_by(job_id) == store


def test_a_token_is_known_by_its_sha256_and_gets_its_stores() -> None:
    table = {digest("alpha"): ["s1"], digest("beta"): ["s2", "s3"]}

    assert digest("abc") == hashlib.sha256(b"abc").hexdigest()
    assert stores_of("alpha", table) == frozenset({"s1"})
    assert stores_of("beta", table) == frozenset({"s2", "s3"})
    assert stores_of("gamma", table) is None
    assert stores_of(digest("alpha"), table) is None, "the digest itself is not a token"
    assert stores_of("alpha", {}) is None


def test_new_tokens_are_long_url_safe_and_never_repeat() -> None:
    tokens = {new_token() for _ in range(100)}

    assert len(tokens) == 100
    assert all(len(t) == 43 and t.replace("-", "").replace("_", "").isalnum() for t in tokens)


def test_the_payq_command_does_not_load_the_web_stack() -> None:
    # every payq command pays for what payq.cli imports; only `payq serve` needs FastAPI and uvicorn
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, payq.cli; print(sorted(m for m in sys.modules if m.split('.')[0] in ('fastapi', 'starlette', 'uvicorn')))"],
        capture_output=True, text=True, timeout=60, check=True,
    )

    assert loaded.stdout.strip() == "[]"
