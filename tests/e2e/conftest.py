"""End-to-end fixtures: the API and a projector worker as real processes on isolated topics."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

from cli.provision import provision_namespace, remove_namespace
from infra.postgres.pools import ShardPools
from infra.postgres.routing import shard_layout
from infra.postgres.sharded import ShardedDatabase
from infra.settings import Settings
from tests.conftest import isolated_copy
from tests.processes import eventually, free_port, start_api, start_worker


@dataclass
class System:
    settings: Settings
    base_url: str
    http: httpx.AsyncClient
    api_log: Path
    """What the API process wrote to stdout and stderr."""

    def admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.settings.api.admin_token}"}


def buyers_env(**settings: str) -> dict[str, str]:
    """An API for a module of buyers (its ``api_env``): the captcha gate and the per-address sign-in
    limits out of the way (a module registers and signs in many buyers from one address), the
    per-user order limit too; then ``settings`` (environment names to values)."""
    return {
        "DAMAI_CAPTCHA__THRESHOLD_PER_SECOND": "100000",
        "DAMAI_RATE_LIMITS__REGISTRATION_LIMIT": "100000",
        "DAMAI_RATE_LIMITS__LOGIN_LIMIT": "100000",
        "DAMAI_RATE_LIMITS__ORDER_LIMIT": "100000",
    } | settings


@pytest.fixture(scope="module")
def api_env() -> dict[str, str]:
    """DAMAI_* settings the API process of a test module runs with (override in the module)."""
    return {}


@pytest_asyncio.fixture(scope="module")
async def system(settings: Settings, api_env: dict[str, str], tmp_path_factory) -> AsyncIterator[System]:
    iso = isolated_copy(settings)
    iso = iso.model_copy(update={"api": iso.api.model_copy(update={"port": free_port()})})
    await provision_namespace(iso)
    logs = tmp_path_factory.mktemp("system")
    worker = start_worker(iso, logs / "worker.log")
    api, base_url = start_api(iso, logs / "api.log", api_env)
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as http:
        try:
            yield System(iso, base_url, http, api.log_path)
        finally:
            api.stop()
            worker.stop()
            await remove_namespace(iso)


CATALOGUE_READY_S = 60
AREA, PARENT, CHILD = 330100, 1, 101


@pytest_asyncio.fixture(scope="module")
async def catalogue(system: System) -> AsyncIterator[ShardedDatabase]:
    """The namespace's shards, with the area and categories a program needs already projected."""
    admin = system.admin()
    await system.http.post("/api/v1/admin/areas", json={"areaId": AREA, "name": "杭州", "level": "city"}, headers=admin)
    await system.http.post("/api/v1/admin/categories", json={"categoryId": PARENT, "name": "演唱会"}, headers=admin)
    await eventually(lambda: is_ok(system, f"/api/v1/areas/{AREA}"), CATALOGUE_READY_S, "the area")
    await eventually(lambda: _has_category(system, PARENT), CATALOGUE_READY_S, "the parent category")
    await system.http.post(
        "/api/v1/admin/categories", json={"categoryId": CHILD, "name": "流行", "parentId": PARENT}, headers=admin
    )
    await eventually(lambda: _has_category(system, PARENT, CHILD), CATALOGUE_READY_S, "the child category")
    pools = ShardPools(system.settings.postgres)
    await pools.start()
    yield ShardedDatabase(pools, shard_layout(system.settings))
    await pools.stop()


async def is_ok(system: System, path: str) -> bool:
    return (await system.http.get(path)).status_code == 200


async def _has_category(system: System, parent: int, child: int | None = None) -> bool:
    for category in (await system.http.get("/api/v1/categories")).json():
        if category["id"] == parent:
            return child is None or any(c["id"] == child for c in category["children"])
    return False
