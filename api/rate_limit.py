"""Rate limits per client IP address, checked by the edge (``api/edge.py``) before anything else.

Each route group has a limit and a window in ``RateLimitSettings``; a request is counted in its
address's current fixed window in Redis (``lua/fixed_window_limit.lua``), and one over the limit
is refused with 429 ``RATE_LIMITED`` and ``Retry-After`` (seconds until the window ends) before
its credential is checked or its body read, so it changes nothing. When Redis cannot count,
requests go through: the limits protect the stores, they are not a reason to refuse every command.
"""

from __future__ import annotations

import math

import structlog

from api.errors import ApiError
from api.resources import Resources
from infra.metrics import RATE_LIMITED
from infra.redis import REDIS_ERRORS
from infra.redis_keys import rate_limit_window

log = structlog.get_logger(__name__)

UNKNOWN_CLIENT = "unknown"
ADMIN = "admin"
CAPTCHA_PATHS = frozenset({"/api/v1/captcha", "/api/v1/captcha/check"})

RATE_LIMITED_RESPONSE: dict[int | str, dict[str, object]] = {
    429: {
        "description": "RATE_LIMITED: too many requests from this address in the current window",
        "headers": {"Retry-After": {"description": "seconds until the window ends", "schema": {"type": "integer"}}},
    }
}
"""What a limited route may answer, for the OpenAPI document."""


async def limit_admin_commands(res: Resources, client: str | None) -> None:
    """At most ``admin_limit`` requests per ``admin_window_ms`` from one address to the admin routes."""
    limits = res.settings.rate_limits
    await _count(res, client or UNKNOWN_CLIENT, ADMIN, limits.admin_limit, limits.admin_window_ms)


async def limit_captcha(res: Resources, client: str | None, path: str) -> None:
    """Captcha images (``captcha_limit`` per ``captcha_window_ms``) or checks (``captcha_check_limit``
    per ``captcha_check_window_ms``, ``path`` ending in ``/check``) from one address."""
    limits = res.settings.rate_limits
    if path.endswith("/check"):
        group, limit, window_ms = "captcha-check", limits.captcha_check_limit, limits.captcha_check_window_ms
    else:
        group, limit, window_ms = "captcha", limits.captcha_limit, limits.captcha_window_ms
    await _count(res, client or UNKNOWN_CLIENT, group, limit, window_ms)


async def _count(res: Resources, client: str, group: str, limit: int, window_ms: int) -> None:
    key = rate_limit_window(res.settings.rate_limits.key_prefix, client, group)
    try:
        allowed, _, retry_after_ms = await res.adapters.scripts["fixed_window_limit"](
            keys=[key], args=[limit, window_ms]
        )
    except REDIS_ERRORS as exc:
        log.warning("rate_limit.not_counted", group=group, error=repr(exc))
        return
    if not allowed:
        RATE_LIMITED.labels(group).inc()
        raise ApiError(
            429,
            "RATE_LIMITED",
            f"more than {limit} requests in {window_ms} ms from this address; retry later",
            {"limit": limit, "windowMs": window_ms},
            headers={"Retry-After": str(max(1, math.ceil(int(retry_after_ms) / 1000)))},
        )
