"""Rate limits on the command routes: per client address, counted in the real Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio
from aiokafka import AIOKafkaConsumer, TopicPartition

from tests.e2e.conftest import System

LIMIT = 3
WINDOW_S = 60
# Loopback is a whole /8: each of these addresses is a client of its own to the API.
BUSY_ADDRESS, OTHER_ADDRESS = "127.0.0.2", "127.0.0.3"


@pytest.fixture(scope="module")
def api_env() -> dict[str, str]:
    return {
        "DAMAI_RATE_LIMITS__ADMIN_LIMIT": str(LIMIT),
        "DAMAI_RATE_LIMITS__ADMIN_WINDOW_MS": str(WINDOW_S * 1000),
    }


def _client(system: System, address: str) -> httpx.AsyncClient:
    transport = httpx.AsyncHTTPTransport(local_address=address)
    return httpx.AsyncClient(base_url=system.base_url, transport=transport, timeout=10)


@pytest_asyncio.fixture(scope="module")
async def busy(system: System) -> AsyncIterator[httpx.AsyncClient]:
    """A client whose address has used up its window on the admin routes (with requests that
    change nothing: they lack a credential, and are counted all the same)."""
    async with _client(system, BUSY_ADDRESS) as http:
        for _ in range(LIMIT):
            refused = await http.post("/api/v1/admin/areas", json={"areaId": 320500, "name": "苏州", "level": "city"})
            assert refused.status_code == 401
        yield http


async def test_a_command_over_the_limit_is_refused_with_retry_after_and_appends_nothing(
    system: System, busy: httpx.AsyncClient, area_code: int
):
    before = await _log_end(system)

    response = await busy.post(
        "/api/v1/admin/areas", json={"areaId": area_code, "name": "苏州", "level": "city"}, headers=system.admin()
    )

    assert response.status_code == 429
    assert response.json()["code"] == "RATE_LIMITED"
    assert set(response.json()) == {"code", "message", "details"}
    assert 1 <= int(response.headers["Retry-After"]) <= WINDOW_S
    assert await _log_end(system) == before


async def test_a_command_over_the_limit_is_refused_before_its_credential_is_checked(busy: httpx.AsyncClient):
    response = await busy.post("/api/v1/admin/programs/1/publish")

    assert response.status_code == 429


async def test_another_address_has_a_window_of_its_own(system: System, busy: httpx.AsyncClient, area_code: int):
    async with _client(system, OTHER_ADDRESS) as other:
        response = await other.post(
            "/api/v1/admin/areas", json={"areaId": area_code, "name": "苏州", "level": "city"}, headers=system.admin()
        )

    assert response.status_code == 202, response.text


async def test_queries_are_not_limited(busy: httpx.AsyncClient):
    response = await busy.get("/api/v1/categories")

    assert response.status_code == 200


async def _log_end(system: System) -> dict[int, int]:
    topic = system.settings.kafka.topic("reference")
    consumer = AIOKafkaConsumer(bootstrap_servers=system.settings.kafka.bootstrap)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(system.settings.kafka.topics["reference"].partitions)]
        return {tp.partition: offset for tp, offset in (await consumer.end_offsets(partitions)).items()}
    finally:
        await consumer.stop()
