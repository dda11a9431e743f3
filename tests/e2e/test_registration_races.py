"""One account per mobile under a crowd on two API processes, a crashed claim that does not block a
mobile for ever, and a logout seen by the other process within a second."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import httpx
import pytest
import pytest_asyncio

from aggregates.ownership import MobileOwnership
from bootstrap import Adapters
from infra.aggregate_store import AggregateStore
from infra.kafka import EventPublisher
from infra.personal_data import BlindIndex
from queries.views.users import user_id_by_mobile
from tests.e2e.conftest import System
from tests.e2e.test_users import PASSWORD, log_in, new_mobile, register
from tests.processes import free_port, start_api

RACERS = 200
# A claim is void once older than the command deadline: ack timeout + twice the producer's request
# timeout (ADR 0007). Short here, so the test can wait it out.
ACK_TIMEOUT_S = 1.0
REQUEST_TIMEOUT_MS = 2_500
VOID_AFTER_S = ACK_TIMEOUT_S + 2 * REQUEST_TIMEOUT_MS / 1000


@pytest.fixture(scope="module")
def api_env() -> dict[str, str]:
    return {
        "DAMAI_CAPTCHA__THRESHOLD_PER_SECOND": "100000",
        "DAMAI_RATE_LIMITS__REGISTRATION_LIMIT": "100000",
        "DAMAI_RATE_LIMITS__LOGIN_LIMIT": "100000",
        "DAMAI_API__COMMAND_ACK_TIMEOUT_S": str(ACK_TIMEOUT_S),
        "DAMAI_KAFKA__REQUEST_TIMEOUT_MS": str(REQUEST_TIMEOUT_MS),
    }


@pytest_asyncio.fixture(scope="module")
async def second_api(system: System, api_env: dict[str, str], tmp_path_factory) -> AsyncIterator[httpx.AsyncClient]:
    """Another API process on the same namespace."""
    settings = system.settings.model_copy(update={"api": system.settings.api.model_copy(update={"port": free_port()})})
    api, base_url = start_api(settings, tmp_path_factory.mktemp("second") / "api.log", api_env)
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as http:
        try:
            yield http
        finally:
            api.stop()


async def test_two_hundred_registrations_of_one_mobile_on_two_processes_make_one_user(
    system: System, second_api: httpx.AsyncClient
):
    mobile = new_mobile()
    body = {"mobile": mobile, "password": PASSWORD, "confirmPassword": PASSWORD}
    async with httpx.AsyncClient(base_url=system.base_url, timeout=60) as first_api:
        clients = [first_api, second_api]
        answers = await asyncio.gather(*(clients[i % 2].post("/api/v1/users", json=body) for i in range(RACERS)))

    outcomes = Counter((a.status_code, a.json().get("code")) for a in answers)
    assert outcomes == {(201, None): 1, (409, "MOBILE_TAKEN"): RACERS - 1}, outcomes
    (winner,) = [a.json()["userId"] for a in answers if a.status_code == 201]
    session = await log_in(system, mobile=mobile)
    assert session.status_code == 201 and session.json()["userId"] == winner
    blind = BlindIndex.from_settings(system.settings.security).mobile(mobile)
    async with _adapters(system) as adapters:
        assert await user_id_by_mobile(adapters.db, blind) == int(winner)


async def test_a_claim_whose_user_never_registered_frees_the_mobile_after_the_deadline(system: System):
    mobile = new_mobile()
    blind = BlindIndex.from_settings(system.settings.security).mobile(mobile).hex()
    async with _adapters(system) as adapters, AsyncExitStack() as stack:
        publisher = EventPublisher(system.settings.kafka)
        await publisher.start()
        stack.push_async_callback(publisher.stop)
        store = AggregateStore(system.settings, adapters.redis, adapters.scripts, publisher)
        # A registration that crashed after its claim reached the log, before UserRegistered did.
        await store.save(MobileOwnership.first_claim(blind, 4_000_000_000_001), None)
        claimed_at = time.monotonic()

        blocked = await system.http.post(
            "/api/v1/users", json={"mobile": mobile, "password": PASSWORD, "confirmPassword": PASSWORD}
        )
        assert (blocked.status_code, blocked.json()["code"]) == (409, "MOBILE_TAKEN")
        await asyncio.sleep(max(0.0, VOID_AFTER_S - (time.monotonic() - claimed_at)) + 0.5)

        user_id = await register(system, mobile)

        assert (await log_in(system, mobile=mobile)).json()["userId"] == user_id
        ownership = await store.load(MobileOwnership, MobileOwnership.create_id(blind))
        assert ownership is not None and ownership.holder == int(user_id)


async def test_a_token_revoked_on_one_process_is_refused_by_the_other_within_a_second(
    system: System, second_api: httpx.AsyncClient
):
    mobile = new_mobile()
    await register(system, mobile)
    session = await log_in(system, mobile=mobile)
    auth = {"Authorization": f"Bearer {session.json()['accessToken']}"}
    assert (await second_api.get("/api/v1/users/me", headers=auth)).status_code == 200

    assert (await system.http.delete("/api/v1/sessions/current", headers=auth)).status_code == 204
    revoked_at = time.monotonic()
    while (refused := await second_api.get("/api/v1/users/me", headers=auth)).status_code == 200:
        assert time.monotonic() - revoked_at < 1.0, "the second process still accepts the revoked token"
        await asyncio.sleep(0.01)

    assert (refused.status_code, refused.json()["code"]) == (401, "TOKEN_REVOKED")


@asynccontextmanager
async def _adapters(system: System) -> AsyncIterator[Adapters]:
    adapters = await Adapters.open(system.settings, index_templates=False)
    try:
        yield adapters
    finally:
        await adapters.close()
