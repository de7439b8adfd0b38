"""Schemathesis against a real ``payq serve`` on a real Redis: ``/openapi.json`` says exactly what the intake takes.

``schemathesis run`` (its command, in a process of its own: its pytest plugin
does not run under this pytest) on every operation of the document, from a
fixed seed, in positive and negative mode, through its examples, coverage,
fuzzing and stateful phases, with all of its checks: no 5xx; negative data
(breaking the schema) refused with a 4xx; positive data (matching it)
accepted, or refused only for a reason that is not the request's shape (403
a store the token may not use, 404 no such job or trip, 409 a trip's rules);
status codes, content types, headers and response bodies as documented; an
undeclared method 405. Positive cases keep the two rules JSON Schema cannot
say (tests/serve/schemathesis_hooks.py).

CI runs a few examples an operation (about ten seconds); more with
``PAYQ_TEST_FUZZ_EXAMPLES``, e.g. ``PAYQ_TEST_FUZZ_EXAMPLES=1000 .venv/bin/pytest tests/serve/test_schemathesis.py``
(a few minutes).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.serve.helpers import TOKEN_AB
from tests.support.serve import ServeProcess

REPO = Path(__file__).resolve().parents[2]
SEED = 34  # fixed: a failure is the same failure on the next run
EXAMPLES = int(os.environ.get("PAYQ_TEST_FUZZ_EXAMPLES", "10"))
# not 401 (the token is good), 429 or 5xx (never): the statuses a schema-valid request may get for a state or a store, not its shape
CONFIG = """
[checks.positive_data_acceptance]
expected-statuses = ["2xx", "403", "404", "409"]
"""


def test_the_intake_does_exactly_what_its_openapi_document_says(serve: ServeProcess, tmp_path: Path) -> None:
    (tmp_path / "schemathesis.toml").write_text(CONFIG)
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "tests.serve.schemathesis_hooks", "PYTHONPATH": str(REPO)}

    run = subprocess.run(
        [str(Path(sys.executable).parent / "schemathesis"), "--no-color", "--config-file", "schemathesis.toml", "run",
         f"{serve.url}/openapi.json", "--header", f"Authorization: Bearer {TOKEN_AB}", "--seed", str(SEED),
         "--max-examples", str(EXAMPLES), "--mode", "all", "--checks", "all", "--phases", "examples,coverage,fuzzing,stateful",
         "--generation-database", "none", "--request-timeout", "30"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1800, check=False,
    )

    assert run.returncode == 0, run.stdout[-20000:] + run.stderr[-3000:]
    assert "Operations:       6 selected / 6 total" in run.stdout and "No issues found" in run.stdout, run.stdout[-5000:]
