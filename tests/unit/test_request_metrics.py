"""The API's request metrics (``damai_http_*``) and the setting that turns them off to measure them
(``observability.request_metrics``), through the app's own middleware."""

from __future__ import annotations

from fastapi import FastAPI
from prometheus_client import REGISTRY

from api.app import create_app
from infra.settings import ObservabilitySettings, Settings
from tests.asgi_calls import asgi_call

HEALTHZ = {"method": "GET", "route": "/healthz", "status": "200"}


def _app(request_metrics: bool) -> FastAPI:
    return create_app(Settings(observability=ObservabilitySettings(request_metrics=request_metrics)))


def _answered() -> float:
    return REGISTRY.get_sample_value("damai_http_requests_total", HEALTHZ) or 0.0


async def test_a_request_is_counted_when_request_metrics_are_on():
    app = _app(request_metrics=True)
    before = _answered()

    sent = await asgi_call(app, "GET", "/healthz")

    assert sent[0]["status"] == 200
    assert _answered() == before + 1


async def test_a_request_is_not_counted_when_request_metrics_are_off():
    app = _app(request_metrics=False)
    before = _answered()

    sent = await asgi_call(app, "GET", "/healthz")

    assert sent[0]["status"] == 200
    assert _answered() == before
