"""The captcha gate through the API: the check, the image, their bounds and their rate limits."""

from __future__ import annotations

import base64
import itertools
import secrets
from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio
from redis.asyncio import Redis

from commands.captcha import count_registration, new_captcha_id, verify_captcha
from infra.captcha import RedisCaptchaStore
from infra.redis import LuaScripts, create_redis
from infra.redis_keys import captcha_answer, registration_window
from tests.e2e.conftest import System

THRESHOLD_PER_SECOND = 1
WINDOW_S = 60
IMAGE_LIMIT = 3
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Loopback is a whole /8: each address is a client of its own, with rate-limit windows of its own.
_addresses = (f"127.0.1.{n}" for n in itertools.count(1))


@pytest.fixture(scope="module")
def api_env() -> dict[str, str]:
    return {
        "DAMAI_CAPTCHA__THRESHOLD_PER_SECOND": str(THRESHOLD_PER_SECOND),
        "DAMAI_CAPTCHA__WINDOW_MS": str(WINDOW_S * 1000),
        "DAMAI_RATE_LIMITS__CAPTCHA_LIMIT": str(IMAGE_LIMIT),
        "DAMAI_RATE_LIMITS__CAPTCHA_WINDOW_MS": str(WINDOW_S * 1000),
    }


@pytest_asyncio.fixture
async def store(system: System) -> AsyncIterator[RedisCaptchaStore]:
    """The API's captcha store (same Redis, same namespace), with an empty registration window."""
    redis: Redis = create_redis(system.settings.redis)
    await redis.delete(registration_window(system.settings.captcha.key_prefix))
    yield RedisCaptchaStore(redis, LuaScripts(redis), system.settings.captcha)
    await redis.delete(registration_window(system.settings.captcha.key_prefix))
    await redis.aclose()


def _client(system: System) -> httpx.AsyncClient:
    """A client from an address of its own (within the image limit of its window)."""
    transport = httpx.AsyncHTTPTransport(local_address=next(_addresses))
    return httpx.AsyncClient(base_url=system.base_url, transport=transport, timeout=10)


async def _checked(http: httpx.AsyncClient) -> dict[str, object]:
    response = await http.post("/api/v1/captcha/check")
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


async def test_no_captcha_is_required_when_registrations_stay_under_the_threshold(
    system: System, store: RedisCaptchaStore
):
    for _ in range(THRESHOLD_PER_SECOND * WINDOW_S):
        await count_registration(store)

    body = await _checked(system.http)

    assert body["required"] is False
    assert set(body) == {"captchaId", "required"}


async def test_a_captcha_is_required_when_registrations_pass_the_threshold(system: System, store: RedisCaptchaStore):
    for _ in range(THRESHOLD_PER_SECOND * WINDOW_S + 1):
        await count_registration(store)

    body = await _checked(system.http)

    assert body["required"] is True


async def test_each_check_hands_out_a_new_captcha_id_when_asked_twice(system: System):
    first, second = await _checked(system.http), await _checked(system.http)

    assert first["captchaId"] != second["captchaId"]


async def test_an_image_is_a_base64_png_whose_answer_passes_once_when_asked_for_a_checked_id(
    system: System, store: RedisCaptchaStore
):
    async with _client(system) as http:
        captcha_id = (await _checked(http))["captchaId"]
        response = await http.post("/api/v1/captcha", json={"captchaId": captcha_id})
    answer = await _kept_answer(system, str(captcha_id))

    assert response.status_code == 201, response.text
    assert response.json()["captchaId"] == captcha_id
    assert base64.b64decode(response.json()["imagePng"]).startswith(PNG_SIGNATURE)
    assert await verify_captcha(str(captcha_id), answer, store) is True
    assert await verify_captcha(str(captcha_id), answer, store) is False


async def test_an_image_is_refused_when_no_check_handed_out_the_id(system: System):
    async with _client(system) as http:
        response = await http.post("/api/v1/captcha", json={"captchaId": new_captcha_id()})

    assert response.status_code == 404
    assert response.json()["code"] == "CAPTCHA_NOT_FOUND"


@pytest.mark.parametrize("captcha_id", ["short", "x" * 23, "not/url+safe=========="])
async def test_an_image_is_refused_when_the_id_is_malformed(system: System, captcha_id: str):
    async with _client(system) as http:
        response = await http.post("/api/v1/captcha", json={"captchaId": captcha_id})

    assert response.status_code == 422
    assert response.json()["code"] == "VALIDATION_FAILED"


async def test_images_are_refused_with_retry_after_when_one_address_asks_for_too_many(system: System):
    async with _client(system) as http:
        captcha_id = (await _checked(http))["captchaId"]
        statuses = [
            (await http.post("/api/v1/captcha", json={"captchaId": captcha_id})).status_code
            for _ in range(IMAGE_LIMIT + 1)
        ]
        refused = await http.post("/api/v1/captcha", json={"captchaId": captcha_id})

    assert statuses == [201] * IMAGE_LIMIT + [429]
    assert refused.json()["code"] == "RATE_LIMITED"
    assert 1 <= int(refused.headers["Retry-After"]) <= WINDOW_S


async def _kept_answer(system: System, captcha_id: str) -> str:
    """The answer the API kept for the id, read without taking it."""
    redis = create_redis(system.settings.redis)
    try:
        kept = await redis.get(captcha_answer(system.settings.captcha.key_prefix, captcha_id))
    finally:
        await redis.aclose()
    assert isinstance(kept, bytes)
    return kept.decode()


async def test_registration_needs_the_captcha_only_above_the_threshold_and_its_answer_once(
    system: System, store: RedisCaptchaStore
):
    async with _client(system) as http:
        quiet = await http.post("/api/v1/users", json=_registration())
        for _ in range(THRESHOLD_PER_SECOND * WINDOW_S + 1):
            await count_registration(store)
        captcha_id = str((await _checked(http))["captchaId"])
        without = await http.post("/api/v1/users", json=_registration(captchaId=captcha_id))
        unchecked = await http.post("/api/v1/users", json=_registration())
        await http.post("/api/v1/captcha", json={"captchaId": captcha_id})
        wrong = await http.post("/api/v1/users", json=_registration(captchaId=captcha_id, captchaAnswer="WRONG"))
        await http.post("/api/v1/captcha", json={"captchaId": captcha_id})
        answer = await _kept_answer(system, captcha_id)
        right = await http.post("/api/v1/users", json=_registration(captchaId=captcha_id, captchaAnswer=answer.lower()))
        reused = await http.post("/api/v1/users", json=_registration(captchaId=captcha_id, captchaAnswer=answer))

    assert quiet.status_code == 201, quiet.text
    assert [(r.status_code, r.json()["code"]) for r in (without, unchecked, wrong)] == [
        (422, "CAPTCHA_REQUIRED"),
        (422, "CAPTCHA_REQUIRED"),
        (422, "CAPTCHA_WRONG"),
    ]
    assert right.status_code == 201, right.text
    assert (reused.status_code, reused.json()["code"]) == (422, "CAPTCHA_WRONG")


def _registration(**extra: str) -> dict[str, str]:
    mobile = f"139{secrets.randbelow(10**8):08d}"
    return {"mobile": mobile, "password": "right-horse-42", "confirmPassword": "right-horse-42", **extra}
