"""The captcha gate in front of registration: when a captcha is required, and one-time answers.

A client asks ``check_captcha_need`` before registering and gets a fresh captcha id with the
decision, which is remembered under that id: registration later asks ``captcha_required_for``
(never the client) whether this id must come with an answer. A captcha is required when the
registrations counted in the current window (``count_registration``, called by the registration
handler for each registration) pass the threshold, or always when the ``always`` switch is on.
``issue_captcha`` draws an image for an id that a check handed out; ``verify_captcha`` takes the
answer away whether it was right or wrong, so each image can be tried once.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from typing import Annotated, Protocol

from pydantic import Field

from aggregates.errors import NotFound
from commands.ports import Unavailable
from commands.program import Command

CAPTCHA_ID_BYTES = 16
"""A captcha id is 128 random bits, URL-safe base64 without padding (22 characters)."""
CaptchaId = Annotated[
    str,
    Field(
        min_length=22,
        max_length=22,
        pattern=r"^[A-Za-z0-9_-]{22}$",
        description="the opaque id a captcha check handed out (22 URL-safe characters)",
    ),
]
ANSWER_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
"""What an answer is drawn from: no 0/O, 1/I; upper case, since answers compare case-insensitively."""
MAX_ANSWER_LENGTH = 64
"""Longest answer a client may send; every answer drawn is far shorter."""


class CaptchaStoreUnavailable(Unavailable):
    """The store holding windows and answers did not answer; the client may retry."""

    code = "CAPTCHA_UNAVAILABLE"
    message = "the captcha store cannot answer now; retry"


class CaptchaStore(Protocol):
    """Where the registration window, each captcha id's decision and each answer live."""

    async def count_registration(self) -> int:
        """Count one registration in the current window; return the window's count."""
        ...

    async def registrations_in_window(self) -> int: ...

    async def remember_need(self, captcha_id: str, required: bool) -> None:
        """Keep the check's decision under its id for as long as a registration may name it."""
        ...

    async def need_of(self, captcha_id: str) -> bool | None:
        """The decision a check took for this id; None when no check handed it out (or it expired)."""
        ...

    async def keep_answer(self, captcha_id: str, answer: str) -> None:
        """Keep the answer of the image just drawn for this id (replacing an earlier one), for a while."""
        ...

    async def take_answer(self, captcha_id: str) -> str | None:
        """The answer kept for this id, removed in the same step; None when there is none."""
        ...


class CaptchaImages(Protocol):
    async def draw(self, answer: str) -> bytes:
        """A PNG image showing ``answer``."""
        ...


@dataclass(frozen=True)
class CaptchaRule:
    """When registration needs a captcha (settings: ``DAMAI_CAPTCHA__*``)."""

    threshold_per_second: float
    window_ms: int
    always: bool
    answer_length: int

    def required(self, registrations_in_window: int) -> bool:
        """More registrations per second in the window than the threshold allows."""
        return registrations_in_window * 1000 > self.threshold_per_second * self.window_ms


@dataclass(frozen=True)
class CaptchaGate:
    """What the captcha handlers work with (built by ``bootstrap.py``)."""

    store: CaptchaStore
    images: CaptchaImages
    rule: CaptchaRule


class CaptchaRequest(Command):
    """Ask for a captcha image for an id that a check handed out."""

    captcha_id: CaptchaId


@dataclass(frozen=True)
class CaptchaNeed:
    captcha_id: str
    required: bool


@dataclass(frozen=True)
class CaptchaImage:
    captcha_id: str
    png: bytes


def captcha_not_found(captcha_id: str) -> NotFound:
    return NotFound(
        "no captcha check handed out this id, or it has expired; check again",
        code="CAPTCHA_NOT_FOUND",
        details={"captchaId": captcha_id},
    )


def new_captcha_id() -> str:
    return secrets.token_urlsafe(CAPTCHA_ID_BYTES)


def new_answer(length: int) -> str:
    return "".join(secrets.choice(ANSWER_ALPHABET) for _ in range(length))


async def count_registration(store: CaptchaStore) -> int:
    """Count one registration in the window that decides whether captchas are required.

    For the registration handler, once per registration it accepts; returns the window's count.
    Raises ``CaptchaStoreUnavailable`` when the store cannot count.
    """
    return await store.count_registration()


async def check_captcha_need(store: CaptchaStore, rule: CaptchaRule) -> CaptchaNeed:
    """A fresh captcha id and whether registering with it needs a captcha, remembered under the id."""
    captcha_id = new_captcha_id()
    required = rule.always or rule.required(await store.registrations_in_window())
    await store.remember_need(captcha_id, required)
    return CaptchaNeed(captcha_id, required)


async def captcha_required_for(captcha_id: str, store: CaptchaStore) -> bool | None:
    """For registration: whether the check that handed out this id asked for a captcha; None when
    no check handed it out or it has expired (the client must check again)."""
    return await store.need_of(captcha_id)


async def issue_captcha(
    cmd: CaptchaRequest, store: CaptchaStore, images: CaptchaImages, rule: CaptchaRule
) -> CaptchaImage:
    """A new image for the id, whose answer replaces any earlier one of that id.

    Raises ``NotFound`` (``CAPTCHA_NOT_FOUND``) for an id no check handed out, or one expired.
    """
    if await store.need_of(cmd.captcha_id) is None:
        raise captcha_not_found(cmd.captcha_id)
    answer = new_answer(rule.answer_length)
    png = await images.draw(answer)
    await store.keep_answer(cmd.captcha_id, answer)
    return CaptchaImage(cmd.captcha_id, png)


async def verify_captcha(captcha_id: str, answer: str, store: CaptchaStore) -> bool:
    """True when ``answer`` is the one kept for the id, case aside. The kept answer is used up
    either way: a second try, right or wrong, is False; so is one after the answer expired."""
    kept = await store.take_answer(captcha_id)
    if kept is None or len(answer) > MAX_ANSWER_LENGTH:
        return False
    return hmac.compare_digest(kept.casefold().encode(), answer.strip().casefold().encode())
