"""/openapi.json describes the contract: its paths, the raw upload body and the error body."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.registry.conftest import RunningRegistry

CONTRACT = {
    "/v1/plugins": {"get", "post"},
    "/v1/plugins/{name}": {"get"},
    "/v1/plugins/{name}/versions": {"get"},
    "/v1/plugins/{name}/versions/{version}/download": {"get"},
}


@pytest.fixture
def openapi(registry: RunningRegistry, http: httpx.Client) -> dict[str, Any]:
    response = http.get(f"{registry.url}/openapi.json")
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


def test_lists_the_five_contract_endpoints(openapi: dict[str, Any]) -> None:
    for path, methods in CONTRACT.items():
        assert methods <= set(openapi["paths"][path]), path
    assert openapi["info"]["title"] and openapi["info"]["version"]


def test_publish_takes_a_raw_octet_stream_and_a_bearer_token(openapi: dict[str, Any]) -> None:
    operation = openapi["paths"]["/v1/plugins"]["post"]
    body = operation["requestBody"]
    assert body["required"] is True
    assert body["content"]["application/octet-stream"]["schema"]["format"] == "binary"
    assert {"201", "401", "403", "409", "413", "422"} <= set(operation["responses"])
    schemes = openapi["components"]["securitySchemes"]
    assert any(scheme.get("scheme", "").lower() == "bearer" for scheme in schemes.values())


def test_errors_are_described_with_the_error_body(openapi: dict[str, Any]) -> None:
    not_found = openapi["paths"]["/v1/plugins/{name}"]["get"]["responses"]["404"]
    reference = not_found["content"]["application/json"]["schema"]["$ref"]
    assert reference.endswith("/ErrorBody")
    assert "error" in openapi["components"]["schemas"]["ErrorBody"]["properties"]


def test_responses_have_models(openapi: dict[str, Any]) -> None:
    schemas = openapi["components"]["schemas"]
    for name in ("PluginList", "PluginDetails", "VersionList", "PublishResult"):
        assert name in schemas
    assert set(schemas["PluginSummary"]["properties"]) == {
        "name",
        "latest_version",
        "description",
        "author",
        "languages",
        "updated_at",
    }
