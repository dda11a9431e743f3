"""The captcha gate's routes: is a captcha required to register now, and a captcha image. Each
parses, calls its handler in ``commands/captcha.py`` and shapes the answer; the edge limits both
per address before they run (``api/rate_limit.py``)."""

from __future__ import annotations

import base64
from typing import Annotated

from fastapi import APIRouter, Depends, Request

from api.commands import handled
from api.models import CamelModel
from api.resources import resources_of
from commands import captcha as handlers
from commands.captcha import CaptchaGate, CaptchaRequest

router = APIRouter(tags=["users"])


async def captcha_gate(request: Request) -> CaptchaGate:
    gate: CaptchaGate = resources_of(request).commands.captcha
    return gate


CaptchaGateDep = Annotated[CaptchaGate, Depends(captcha_gate)]


class CaptchaNeedOut(CamelModel):
    captcha_id: str
    """Name it when asking for an image and when registering."""
    required: bool
    """Whether registering with this id needs a captcha answer."""


class CaptchaImageOut(CamelModel):
    captcha_id: str
    image_png: str
    """The image, a PNG in base64; its answer can be given once, within DAMAI_CAPTCHA__ANSWER_TTL_S."""


@router.post("/api/v1/captcha/check", status_code=200, response_model=CaptchaNeedOut, response_model_by_alias=True)
async def post_captcha_check(gate: CaptchaGateDep) -> CaptchaNeedOut:
    """Whether registering now needs a captcha, under a fresh captcha id to register with."""
    need = await handled(handlers.check_captcha_need(gate.store, gate.rule))
    return CaptchaNeedOut(captcha_id=need.captcha_id, required=need.required)


@router.post(
    "/api/v1/captcha",
    status_code=201,
    response_model=CaptchaImageOut,
    response_model_by_alias=True,
    responses={404: {"description": "CAPTCHA_NOT_FOUND: no check handed out this id, or it expired"}},
)
async def post_captcha(cmd: CaptchaRequest, gate: CaptchaGateDep) -> CaptchaImageOut:
    """A new captcha image for the id; its answer replaces any earlier one of that id."""
    image = await handled(handlers.issue_captcha(cmd, gate.store, gate.images, gate.rule))
    return CaptchaImageOut(captcha_id=image.captcha_id, image_png=base64.b64encode(image.png).decode())

