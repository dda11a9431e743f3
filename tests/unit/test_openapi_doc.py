"""The published OpenAPI document: current in docs/, and true about errors for every operation."""

from __future__ import annotations

from typing import Any

from api.app import create_app
from api.openapi import ENVELOPE, openapi_text
from infra.settings import REPO_ROOT, Settings

OPENAPI_DOC = REPO_ROOT / "docs" / "openapi.json"


def document() -> dict[str, Any]:
    return create_app(Settings()).openapi()


def operations() -> list[tuple[str, str, dict[str, Any]]]:
    return [(path, method, op) for path, ops in document()["paths"].items() for method, op in ops.items()]


def test_docs_openapi_json_is_the_published_document():
    # Regenerate with `damai openapi --write-doc` when a route changes.
    assert OPENAPI_DOC.read_text(encoding="utf-8") == openapi_text(create_app(Settings()))


def test_every_error_of_every_operation_is_the_envelope():
    errors = [
        (path, method, status, response.get("content"))
        for path, method, op in operations()
        for status, response in op["responses"].items()
        if int(status) >= 400
    ]

    envelope = {"application/json": {"schema": {"$ref": ENVELOPE}}}
    provider_words = {"text/plain": {"schema": {"type": "string", "example": "failure"}}}
    assert errors, "no operation documents an error"
    # A provider's notification refused is answered as the provider expects (docs/payments.md).
    assert [
        (path, status) for path, _, status, content in errors if content != envelope and content == provider_words
    ] == [("/api/v1/payments/{channel}/notify", "400"), ("/api/v1/payments/{channel}/notify", "404")]
    assert all(content in (envelope, provider_words) for *_, content in errors)
    assert "HTTPValidationError" not in document()["components"]["schemas"]


def test_every_operation_documents_an_internal_error_and_admin_ones_their_credentials():
    missing = [
        (path, method)
        for path, method, op in operations()
        if "500" not in op["responses"]
        or (path.startswith("/api/v1/admin/") and not {"401", "429"} <= op["responses"].keys())
    ]

    assert missing == []


def test_every_request_body_has_an_example():
    bodies = [
        (path, op["requestBody"]["content"]["application/json"])
        for path, _, op in operations()
        if "requestBody" in op
    ]

    assert bodies and [path for path, content in bodies if "example" not in content] == []


def test_metrics_are_documented_as_plain_text():
    [metrics] = [op for path, _, op in operations() if path == "/metrics"]

    assert list(metrics["responses"]["200"]["content"]) == ["text/plain"]
