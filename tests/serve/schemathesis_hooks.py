"""Schemathesis hooks for tests/serve/test_schemathesis.py (``SCHEMATHESIS_HOOKS``): a schema-valid case sent as a store backend sends it.

Two of the intake's rules are not the body's shape, so JSON Schema cannot say
them (each is in its field's description and in docs/store-backends.md): a
job's store must be one the token may use, and a report's two amounts share
one currency. A positive case is kept within them before it is sent; a
negative case (one that breaks the schema) goes as generated.
"""

from __future__ import annotations

from typing import Any

import schemathesis
from schemathesis import Case, HookContext

from tests.serve.helpers import STORE_A, STORE_B

STORES = (STORE_A, STORE_B)  # the stores of the token the run sends (TOKEN_AB)


@schemathesis.hook
def before_call(context: HookContext, case: Case, kwargs: dict[str, Any]) -> None:
    """Keep a positive case within the rules its schema cannot say."""
    if case.meta is None or not case.meta.generation.mode.is_positive:
        return
    if case.path_parameters and "storeId" in case.path_parameters:
        case.path_parameters["storeId"] = _store_for(case.path_parameters["storeId"])
    body = case.body
    jobs = body.get("jobs") if isinstance(body, dict) else None
    for job in jobs if isinstance(jobs, list) else [body]:
        if isinstance(job, dict):
            _as_sent(job)


def _store_for(generated: Any) -> str:
    # one of the token's two, picked by the generated value: both are used, and the same value always gets the same store
    return STORES[len(str(generated)) % len(STORES)]


def _as_sent(job: dict[str, Any]) -> None:
    if "storeId" in job:
        job["storeId"] = _store_for(job["storeId"])
    total, settled = job.get("totalAmount"), job.get("settledAmount")
    if isinstance(total, dict) and isinstance(settled, dict) and "code" in total:
        settled["code"] = total["code"]
