"""End-to-end fixtures: the API and a projector worker as real processes on isolated topics."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest_asyncio

from infra.provision import provision_namespace, remove_namespace
from infra.settings import Settings
from tests.conftest import isolated_copy
from tests.processes import free_port, start_api, start_worker


@dataclass
class System:
    settings: Settings
    base_url: str
    http: httpx.AsyncClient

    def admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.settings.api.admin_token}"}


@pytest_asyncio.fixture(scope="module")
async def system(settings: Settings, tmp_path_factory) -> AsyncIterator[System]:
    iso = isolated_copy(settings)
    iso = iso.model_copy(update={"api": iso.api.model_copy(update={"port": free_port()})})
    await provision_namespace(iso)
    logs = tmp_path_factory.mktemp("system")
    worker = start_worker(iso, logs / "worker.log")
    api, base_url = start_api(iso, logs / "api.log")
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as http:
        try:
            yield System(iso, base_url, http)
        finally:
            api.stop()
            worker.stop()
            await remove_namespace(iso)
