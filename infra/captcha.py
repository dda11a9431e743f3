"""The captcha gate's adapters: its store on Redis and its images drawn by the ``captcha`` library.

Registrations are counted with ``lua/fixed_window_limit.lua``, the rate limits' script: a fixed
window that starts at the first registration counted and lasts ``window_ms``. The script's limit is
not used here (the check compares the count with the threshold, ``commands/captcha.py``), so it
is given one no count reaches.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable
from typing import TypeVar

from captcha.image import ImageCaptcha
from redis.asyncio import Redis

from commands.captcha import CaptchaRule, CaptchaStoreUnavailable
from infra.redis import REDIS_ERRORS, LuaScripts
from infra.redis_keys import captcha_answer, captcha_need, registration_window
from infra.settings import CaptchaSettings

T = TypeVar("T")
COUNT_ONLY_LIMIT = 2**62
"""The window script's limit when only its count is wanted."""


def captcha_rule(settings: CaptchaSettings) -> CaptchaRule:
    return CaptchaRule(settings.threshold_per_second, settings.window_ms, settings.always, settings.answer_length)


class RedisCaptchaStore:
    """``commands.captcha.CaptchaStore`` on Redis; a Redis error is ``CaptchaStoreUnavailable``."""

    def __init__(self, redis: Redis, scripts: LuaScripts, settings: CaptchaSettings):
        self._redis, self._scripts, self._settings = redis, scripts, settings
        self._window = registration_window(settings.key_prefix)

    async def count_registration(self) -> int:
        _, count, _ = await _answered(
            self._scripts["fixed_window_limit"](keys=[self._window], args=[COUNT_ONLY_LIMIT, self._settings.window_ms])
        )
        return int(count)

    async def registrations_in_window(self) -> int:
        count = await _answered(self._redis.get(self._window))
        return int(count or 0)

    async def remember_need(self, captcha_id: str, required: bool) -> None:
        key = captcha_need(self._settings.key_prefix, captcha_id)
        await _answered(self._redis.set(key, b"1" if required else b"0", ex=self._settings.id_ttl_s))

    async def need_of(self, captcha_id: str) -> bool | None:
        need = await _answered(self._redis.get(captcha_need(self._settings.key_prefix, captcha_id)))
        return None if need is None else need == b"1"

    async def keep_answer(self, captcha_id: str, answer: str) -> None:
        key = captcha_answer(self._settings.key_prefix, captcha_id)
        await _answered(self._redis.set(key, answer.encode(), ex=self._settings.answer_ttl_s))

    async def take_answer(self, captcha_id: str) -> str | None:
        answer = await _answered(self._redis.getdel(captcha_answer(self._settings.key_prefix, captcha_id)))
        return answer.decode() if isinstance(answer, bytes) else answer


async def _answered(call: Awaitable[T]) -> T:
    try:
        return await call
    except REDIS_ERRORS as exc:
        raise CaptchaStoreUnavailable(repr(exc)) from exc


class LibraryCaptchaImages:
    """``commands.captcha.CaptchaImages`` drawn by the ``captcha`` library (lepture/captcha, on Pillow).

    Drawing one image is 4-5 ms of CPU (docs/users.md), so it runs in the default thread pool, off
    the event loop. Each thread draws with an ``ImageCaptcha`` of its own: the library keeps its
    fonts in the instance, and FreeType faces are not to be shared between threads.
    """

    def __init__(self, width: int, height: int):
        self._width, self._height = width, height
        self._local = threading.local()

    @classmethod
    def of(cls, settings: CaptchaSettings) -> LibraryCaptchaImages:
        return cls(settings.image_width, settings.image_height)

    async def draw(self, answer: str) -> bytes:
        return await asyncio.to_thread(self.draw_now, answer)

    def draw_now(self, answer: str) -> bytes:
        """The PNG, drawn in the calling thread."""
        image: ImageCaptcha | None = getattr(self._local, "image", None)
        if image is None:
            image = self._local.image = ImageCaptcha(width=self._width, height=self._height)
        return image.generate(answer, format="png").getvalue()
