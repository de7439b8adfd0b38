"""/openapi.json describes the intake: its paths, bodies, answers, problems and the bearer scheme."""

from __future__ import annotations

from tests.support.serve import ServeProcess


def test_the_openapi_document_describes_every_intake_route(serve: ServeProcess) -> None:
    doc = serve.request("GET", "/openapi.json").json()
    paths = doc["paths"]

    assert {"/v1/jobs", "/v1/jobs/batch", "/v1/jobs/{jobId}", "/v1/trips/{storeId}/{shoppingTripId}"} <= set(paths)
    assert doc["components"]["securitySchemes"]["storeToken"] == {
        "type": "http", "scheme": "bearer", "description": doc["components"]["securitySchemes"]["storeToken"]["description"]}
    one = paths["/v1/jobs"]["post"]
    job_schema = one["requestBody"]["content"]["application/json"]["schema"]
    assert sorted(variant["properties"]["operation"]["const"] for variant in job_schema["oneOf"]) == ["cancel", "capture", "feedback", "refund"]
    assert "$ref" not in str(job_schema), "a request body's schema is inlined"
    refund = next(v for v in job_schema["oneOf"] if v["properties"]["operation"]["const"] == "refund")
    assert "refundRequestId" in refund["required"]
    assert {"200", "202", "400", "401", "403", "409", "413", "422", "503"} <= set(one["responses"])
    assert "application/problem+json" in one["responses"]["409"]["content"]
    batch = paths["/v1/jobs/batch"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert batch["properties"]["jobs"]["maxItems"] == 1000
    for path in ("/v1/jobs/{jobId}", "/v1/trips/{storeId}/{shoppingTripId}"):
        assert {"200", "401", "403", "404", "503"} <= set(paths[path]["get"]["responses"])
    assert all(operation.get("security") == [{"storeToken": []}] for path in paths for operation in paths[path].values()
               if path.startswith("/v1/"))
