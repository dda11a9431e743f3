"""/readyz against real dependencies: stop a service, see 503 naming it; start it, see 200."""

from __future__ import annotations

import asyncio

import pytest

from infra import stack
from tests.e2e.conftest import System
from tests.processes import eventually

pytestmark = pytest.mark.slow
RECOVERY_S = 60


async def test_ready_when_every_dependency_answers(system: System):
    response = await system.http.get("/readyz")

    assert response.status_code == 200, response.text
    checks = response.json()["checks"]
    assert {"kafka", "redis", "elasticsearch"} <= set(checks)
    assert {f"postgres:{db}" for db in system.settings.postgres.databases} <= set(checks)


@pytest.mark.parametrize("service", ["redis", "postgres", "elasticsearch", "kafka"])
async def test_not_ready_names_the_stopped_service_until_it_is_back(system: System, service: str):
    await asyncio.to_thread(stack.down, system.settings, [service])
    try:
        down = await system.http.get("/readyz")
    finally:
        await asyncio.to_thread(stack.up, system.settings, [service])

    assert down.status_code == 503, down.text
    assert down.json()["code"] == "NOT_READY"
    assert any(name.split(":")[0] == service for name in down.json()["details"]["down"])

    async def ready() -> bool:
        return (await system.http.get("/readyz")).status_code == 200

    await eventually(ready, RECOVERY_S, f"/readyz to recover after {service} restarted")
