"""The captcha gate on the real Redis: when a captcha is required, and one-time answers."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from redis.asyncio import Redis

from aggregates.errors import NotFound
from commands.captcha import (
    CaptchaRequest,
    captcha_required_for,
    check_captcha_need,
    count_registration,
    issue_captcha,
    new_captcha_id,
    verify_captcha,
)
from infra.captcha import LibraryCaptchaImages, RedisCaptchaStore, captcha_rule
from infra.redis import LuaScripts
from infra.settings import CaptchaSettings, Settings

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class RecordedImages:
    """The library's images, with the answers they were drawn for kept for the test."""

    def __init__(self, settings: CaptchaSettings):
        self.drawn = LibraryCaptchaImages.of(settings)
        self.answers: list[str] = []
        self.pngs: list[bytes] = []

    async def draw(self, answer: str) -> bytes:
        png = await self.drawn.draw(answer)
        self.answers.append(answer)
        self.pngs.append(png)
        return png


def gate_settings(settings: Settings, **changes: object) -> CaptchaSettings:
    """The captcha settings under a key prefix of the test's own (a window no other test counts in)."""
    return settings.captcha.model_copy(update={"key_prefix": f"t{uuid.uuid4().hex[:10]}", **changes})


def store_for(redis: Redis, captcha: CaptchaSettings) -> RedisCaptchaStore:
    return RedisCaptchaStore(redis, LuaScripts(redis), captcha)


async def issued(redis: Redis, captcha: CaptchaSettings) -> tuple[RedisCaptchaStore, str, str]:
    """A store, and a checked captcha id with the answer of the image drawn for it."""
    store = store_for(redis, captcha)
    images = RecordedImages(captcha)
    need = await check_captcha_need(store, captcha_rule(captcha))
    await issue_captcha(CaptchaRequest(captcha_id=need.captcha_id), store, images, captcha_rule(captcha))
    return store, need.captcha_id, images.answers[-1]


async def test_a_captcha_is_required_when_registrations_pass_the_threshold_within_the_window(
    redis: Redis, settings: Settings
):
    captcha = gate_settings(settings, threshold_per_second=5.0, window_ms=1_000)
    store = store_for(redis, captcha)
    for _ in range(6):
        await count_registration(store)

    need = await check_captcha_need(store, captcha_rule(captcha))

    assert need.required is True


async def test_no_captcha_is_required_when_registrations_stay_at_the_threshold(redis: Redis, settings: Settings):
    captcha = gate_settings(settings, threshold_per_second=5.0, window_ms=1_000)
    store = store_for(redis, captcha)
    for _ in range(5):
        await count_registration(store)

    need = await check_captcha_need(store, captcha_rule(captcha))

    assert need.required is False


async def test_the_threshold_is_per_second_when_the_window_is_longer(redis: Redis, settings: Settings):
    captcha = gate_settings(settings, threshold_per_second=2.0, window_ms=5_000)
    store = store_for(redis, captcha)
    for _ in range(10):
        await count_registration(store)
    at_threshold = await check_captcha_need(store, captcha_rule(captcha))
    await count_registration(store)

    over = await check_captcha_need(store, captcha_rule(captcha))

    assert (at_threshold.required, over.required) == (False, True)


async def test_no_captcha_is_required_when_the_window_has_passed(redis: Redis, settings: Settings):
    captcha = gate_settings(settings, threshold_per_second=5.0, window_ms=200)
    store = store_for(redis, captcha)
    for _ in range(6):
        await count_registration(store)
    await asyncio.sleep(0.3)

    need = await check_captcha_need(store, captcha_rule(captcha))

    assert need.required is False


async def test_a_captcha_is_required_when_the_always_switch_is_on(redis: Redis, settings: Settings):
    captcha = gate_settings(settings, always=True)

    need = await check_captcha_need(store_for(redis, captcha), captcha_rule(captcha))

    assert need.required is True


async def test_registration_finds_the_checks_decision_when_it_names_the_checked_id(redis: Redis, settings: Settings):
    captcha = gate_settings(settings, always=True)
    store = store_for(redis, captcha)
    need = await check_captcha_need(store, captcha_rule(captcha))

    assert await captcha_required_for(need.captcha_id, store) is True
    assert await captcha_required_for(new_captcha_id(), store) is None


async def test_an_image_is_a_png_when_issued_for_a_checked_id(redis: Redis, settings: Settings):
    captcha = gate_settings(settings)
    store = store_for(redis, captcha)
    images = RecordedImages(captcha)
    need = await check_captcha_need(store, captcha_rule(captcha))

    image = await issue_captcha(CaptchaRequest(captcha_id=need.captcha_id), store, images, captcha_rule(captcha))

    assert image.captcha_id == need.captcha_id
    assert image.png.startswith(PNG_SIGNATURE)
    assert len(images.answers[0]) == captcha.answer_length


async def test_no_image_is_issued_when_no_check_handed_out_the_id(redis: Redis, settings: Settings):
    captcha = gate_settings(settings)
    store = store_for(redis, captcha)

    with pytest.raises(NotFound) as refused:
        await issue_captcha(
            CaptchaRequest(captcha_id=new_captcha_id()), store, RecordedImages(captcha), captcha_rule(captcha)
        )

    assert refused.value.code == "CAPTCHA_NOT_FOUND"


async def test_the_right_answer_passes_once_when_given_twice(redis: Redis, settings: Settings):
    store, captcha_id, answer = await issued(redis, gate_settings(settings))

    assert await verify_captcha(captcha_id, answer, store) is True
    assert await verify_captcha(captcha_id, answer, store) is False


async def test_the_answer_passes_when_given_in_lower_case(redis: Redis, settings: Settings):
    store, captcha_id, answer = await issued(redis, gate_settings(settings))

    assert await verify_captcha(captcha_id, answer.lower(), store) is True


async def test_a_wrong_answer_fails_and_uses_the_captcha_up_when_given(redis: Redis, settings: Settings):
    store, captcha_id, answer = await issued(redis, gate_settings(settings))

    assert await verify_captcha(captcha_id, answer + "X", store) is False
    assert await verify_captcha(captcha_id, answer, store) is False


async def test_the_right_answer_fails_when_it_has_expired(redis: Redis, settings: Settings):
    store, captcha_id, answer = await issued(redis, gate_settings(settings, answer_ttl_s=1))
    await asyncio.sleep(1.2)

    assert await verify_captcha(captcha_id, answer, store) is False


async def test_an_earlier_images_answer_fails_when_a_new_image_was_drawn(redis: Redis, settings: Settings):
    captcha = gate_settings(settings)
    store = store_for(redis, captcha)
    images = RecordedImages(captcha)
    need = await check_captcha_need(store, captcha_rule(captcha))
    for _ in range(2):
        await issue_captcha(CaptchaRequest(captcha_id=need.captcha_id), store, images, captcha_rule(captcha))
    first, latest = images.answers
    assert first != latest  # two draws agree once in 32^5

    assert await verify_captcha(need.captcha_id, first, store) is False


async def test_the_latest_images_answer_passes_when_a_new_image_was_drawn(redis: Redis, settings: Settings):
    captcha = gate_settings(settings)
    store = store_for(redis, captcha)
    images = RecordedImages(captcha)
    need = await check_captcha_need(store, captcha_rule(captcha))
    for _ in range(2):
        await issue_captcha(CaptchaRequest(captcha_id=need.captcha_id), store, images, captcha_rule(captcha))

    assert await verify_captcha(need.captcha_id, images.answers[-1], store) is True
