"""/openapi.json describes the intake: its paths, named bodies, answers, problems, headers and the bearer scheme, and lints clean."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from openapi_spec_validator import validate

from config.settings import Settings
from payapi.models import STORE_ID_PATTERN, TRIP_ID_PATTERN, amount_pattern
from payq.serve.app import create_app
from payq.serve.schemas import job_id_pattern
from tests.support.serve import ServeProcess

REDOCLY = "@redocly/cli@2.77.0"


@pytest.fixture(scope="module")
def doc(serve_process: ServeProcess) -> dict[str, Any]:
    document: dict[str, Any] = serve_process.request("GET", "/openapi.json").json()
    return document


def walk(node: Any, path: str = "") -> list[tuple[str, Any]]:
    """Every (path, value) under ``node``."""
    found = [(path, node)]
    if isinstance(node, dict):
        for key, value in node.items():
            found += walk(value, f"{path}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found += walk(value, f"{path}/{i}")
    return found


def test_the_openapi_document_describes_every_intake_route(doc: dict[str, Any]) -> None:
    paths = doc["paths"]

    assert {"/v1/jobs", "/v1/jobs/batch", "/v1/jobs/{jobId}", "/v1/trips/{storeId}/{shoppingTripId}", "/healthz", "/readyz"} == set(paths)
    assert doc["components"]["securitySchemes"]["storeToken"] == {
        "type": "http", "scheme": "bearer", "description": doc["components"]["securitySchemes"]["storeToken"]["description"]}
    one = paths["/v1/jobs"]["post"]
    assert one["requestBody"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/JobRequest"}
    schemas = doc["components"]["schemas"]
    variants = [schemas[v["$ref"].rsplit("/", 1)[1]] for v in schemas["JobRequest"]["oneOf"]]
    assert sorted(v["properties"]["operation"]["const"] for v in variants) == ["cancel", "capture", "feedback", "refund"]
    assert "refundRequestId" in schemas["RefundJob"]["required"]
    assert {"200", "202", "400", "401", "403", "409", "413", "422", "503"} <= set(one["responses"])
    assert one["responses"]["409"]["content"]["application/problem+json"]["schema"] == {"$ref": "#/components/schemas/ProblemDetails"}
    assert schemas["JobBatch"]["properties"]["jobs"]["maxItems"] == 1000
    for path in ("/v1/jobs/{jobId}", "/v1/trips/{storeId}/{shoppingTripId}"):
        assert {"200", "401", "403", "404", "503"} <= set(paths[path]["get"]["responses"])
    assert all(operation.get("security") == [{"storeToken": []}] for path in paths for operation in paths[path].values()
               if path.startswith("/v1/"))
    assert paths["/readyz"]["get"]["security"] == [] and "503" in paths["/readyz"]["get"]["responses"]


def test_jobs_trips_and_problems_are_named_schemas_a_generated_client_can_type(doc: dict[str, Any]) -> None:
    schemas = doc["components"]["schemas"]

    assert {"JobRequest", "CaptureJob", "CancelJob", "RefundJob", "FeedbackJob", "JobBatch", "Amount", "PositiveAmount", "Accepted",
            "BatchAccepted", "JobView", "TripView", "TripJob", "TripDeadLetter", "ProblemDetails", "ProblemItem"} <= set(schemas)
    assert doc["paths"]["/v1/jobs/{jobId}"]["get"]["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/JobView"}
    titled = [p for p, node in walk(schemas) if isinstance(node, dict) and "/properties/" in p and p.endswith(tuple(
        f"/properties/{name}" for name in ("storeId", "shoppingTripId", "amount", "paymentStatusTime"))) and "title" in node]
    assert titled == [], "no titles made from field names, such as Storeid"


def test_operation_ids_are_stable_names(doc: dict[str, Any]) -> None:
    ids = {op["operationId"] for item in doc["paths"].values() for op in item.values()}

    assert ids == {"enqueueJob", "enqueueJobBatch", "getJob", "getTrip", "getLiveness", "getReadiness"}


def test_rules_are_json_schema_keywords_not_pydantics(doc: dict[str, Any]) -> None:
    feedback = doc["components"]["schemas"]["FeedbackJob"]["properties"]["paymentStatusTime"]

    assert (feedback["minimum"], feedback["maximum"]) == (0, 253402300799)
    leftovers = [p for p, node in walk(doc) if isinstance(node, dict) and {"ge", "le", "gt", "lt"} & set(node) and "/properties" in p]
    assert leftovers == []

def test_amounts_say_their_sign_places_and_maximum_as_numbers_and_as_strings(doc: dict[str, Any]) -> None:
    schemas = doc["components"]["schemas"]
    positive, any_amount = (schemas[name]["properties"]["amount"]["oneOf"] for name in ("PositiveAmount", "Amount"))

    assert positive[0] == {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1000000000000, "multipleOf": 0.01}
    assert any_amount[0] == {"type": "number", "minimum": 0, "exclusiveMaximum": 1000000000000, "multipleOf": 0.01}
    # the strings' patterns are tested against the models themselves in tests/unit/test_strict_json.py
    assert (positive[1]["pattern"], any_amount[1]["pattern"]) == (amount_pattern(positive=True), amount_pattern(positive=False))


def test_rules_json_schema_cannot_say_are_in_the_fields_descriptions(doc: dict[str, Any]) -> None:
    report = doc["components"]["schemas"]["FeedbackJob"]["properties"]

    assert all("same currency" in report[name]["description"] for name in ("totalAmount", "settledAmount"))
    assert "exponent" in doc["components"]["schemas"]["Amount"]["properties"]["amount"]["description"]


def test_path_parameters_carry_the_fields_rules(doc: dict[str, Any]) -> None:
    trip = {p["name"]: p["schema"] for p in doc["paths"]["/v1/trips/{storeId}/{shoppingTripId}"]["get"]["parameters"]}
    job = {p["name"]: p["schema"] for p in doc["paths"]["/v1/jobs/{jobId}"]["get"]["parameters"]}

    assert (trip["storeId"]["pattern"], trip["storeId"]["maxLength"]) == (STORE_ID_PATTERN, 255)
    assert trip["shoppingTripId"]["pattern"] == TRIP_ID_PATTERN
    assert job["jobId"]["pattern"] == job_id_pattern()
    assert doc["components"]["schemas"]["JobBatch"]["additionalProperties"] is False


def test_headers_are_documented(doc: dict[str, Any]) -> None:
    post = doc["paths"]["/v1/jobs"]["post"]["responses"]

    assert "Location" in post["202"]["headers"]
    assert "WWW-Authenticate" in post["401"]["headers"]
    for path, method in (("/v1/jobs", "post"), ("/v1/jobs/batch", "post"), ("/v1/jobs/{jobId}", "get"), ("/readyz", "get")):
        assert "Retry-After" in doc["paths"][path][method]["responses"]["503"]["headers"], path


def test_the_server_is_the_public_url_or_relative_to_the_document(doc: dict[str, Any], serve_process: ServeProcess) -> None:
    assert doc["servers"][0]["url"] == "/", "unset: wherever the document was read (behind a proxy, in a container)"

    public = create_app(Settings(_env_file=None, serve_public_url="https://payq.example.com/")).openapi()  # type: ignore[call-arg]
    assert public["servers"][0]["url"] == "https://payq.example.com"


def test_the_document_is_valid_openapi(doc: dict[str, Any]) -> None:
    validate(doc)  # type: ignore[arg-type]


@pytest.mark.skipif(shutil.which("npx") is None, reason="node (npx) is not installed: redocly runs on node")
def test_redocly_lint_finds_no_errors(doc: dict[str, Any], tmp_path: Path) -> None:
    (tmp_path / "openapi.json").write_text(json.dumps(doc))

    linted = subprocess.run(["npx", "--yes", REDOCLY, "lint", "--format", "json", "openapi.json"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=240, check=False)

    report = json.loads(linted.stdout[linted.stdout.index("{"):])
    errors = [p for p in report["problems"] if p["severity"] == "error"]
    assert errors == [], json.dumps(errors, indent=1)[:3000]


CLIENT_TS = """
import type { components, paths } from "./api";

type Job = components["schemas"]["JobRequest"];
type View = paths["/v1/jobs/{jobId}"]["get"]["responses"]["200"]["content"]["application/json"];
type Trip = components["schemas"]["TripView"];
type Problem = components["schemas"]["ProblemDetails"];

export const capture: Job = { operation: "capture", storeId: "s1", shoppingTripId: "t1", amount: { amount: "19.99", code: "USD" } };
export const state = (v: View): string => v.state + (v.reportJobId ?? "") + (v.deferredUntil ?? "");
export const refundable = (t: Trip): string | null => t.refundable ?? t.deadLetters[0]?.deadAt ?? null;
export const fields = (p: Problem): string[] => (p.errors ?? []).map((e) => e.field);
// @ts-expect-error an amount is a number or a string of digits, never a boolean
export const bad: Job = { operation: "capture", storeId: "s", shoppingTripId: "t", amount: { amount: true, code: "USD" } };
"""


@pytest.mark.skipif(shutil.which("npx") is None, reason="node (npx) is not installed: the TypeScript tools run on node")
def test_a_typescript_client_generated_from_the_document_compiles(doc: dict[str, Any], tmp_path: Path) -> None:
    # what a Node.js store backend does: generate the types with openapi-typescript, and use them under tsc --strict
    (tmp_path / "openapi.json").write_text(json.dumps(doc))
    (tmp_path / "client.ts").write_text(CLIENT_TS)

    def npx(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["npx", "--yes", *args], cwd=tmp_path, capture_output=True, text=True, timeout=240, check=False)

    generated = npx("openapi-typescript@7.13.0", "openapi.json", "-o", "api.d.ts")
    assert generated.returncode == 0, generated.stderr[-2000:]
    compiled = npx("-p", "typescript@5.9.3", "tsc", "--noEmit", "--strict", "--module", "nodenext", "--moduleResolution", "nodenext", "client.ts")
    assert compiled.returncode == 0, compiled.stdout[-3000:] + compiled.stderr[-1000:]
