"""Rate limits per client IP address, checked by the edge (``api/edge.py``) before anything else,
and per signed-in user, checked by the routes that change an account (``limit_user_commands``).

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
from infra.order_store import ORDERS_LIMIT_GROUP as ORDERS
from infra.redis import REDIS_ERRORS
from infra.redis_keys import rate_limit_window, user_rate_limit_window

log = structlog.get_logger(__name__)

UNKNOWN_CLIENT = "unknown"
ADMIN = "admin"
USER = "user"
CAPTCHA_PATHS = frozenset({"/api/v1/captcha", "/api/v1/captcha/check"})
REGISTRATION_PATH = "/api/v1/users"
SESSIONS_PATH = "/api/v1/sessions"
SIGN_IN_PATHS = frozenset({REGISTRATION_PATH, SESSIONS_PATH})
"""Registration and login: limited per address on ``POST`` only (each costs an argon2id hash)."""

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
    await _count_address(res, client, ADMIN, limits.admin_limit, limits.admin_window_ms)


async def limit_captcha(res: Resources, client: str | None, path: str) -> None:
    """Captcha images (``captcha_limit`` per ``captcha_window_ms``) or checks (``captcha_check_limit``
    per ``captcha_check_window_ms``, ``path`` ending in ``/check``) from one address."""
    limits = res.settings.rate_limits
    if path.endswith("/check"):
        group, limit, window_ms = "captcha-check", limits.captcha_check_limit, limits.captcha_check_window_ms
    else:
        group, limit, window_ms = "captcha", limits.captcha_limit, limits.captcha_window_ms
    await _count_address(res, client, group, limit, window_ms)


async def limit_sign_in(res: Resources, client: str | None, path: str) -> None:
    """Registrations (``registration_limit`` per ``registration_window_ms``, ``path`` is
    ``REGISTRATION_PATH``) or logins (``login_limit`` per ``login_window_ms``) from one address."""
    limits = res.settings.rate_limits
    if path == REGISTRATION_PATH:
        group, limit, window_ms = "registration", limits.registration_limit, limits.registration_window_ms
    else:
        group, limit, window_ms = "login", limits.login_limit, limits.login_window_ms
    await _count_address(res, client, group, limit, window_ms)


async def limit_user_commands(res: Resources, user_id: int) -> None:
    """At most ``user_command_limit`` account changes per ``user_command_window_ms`` by one signed-in
    user, whatever the address; a route calls it once the user is known (``api/auth.py:require_user``)."""
    limits = res.settings.rate_limits
    key = user_rate_limit_window(limits.key_prefix, user_id, USER)
    await _count(res, key, USER, limits.user_command_limit, limits.user_command_window_ms, "this user")


async def limit_orders(res: Resources, user_id: int) -> None:
    """At most ``order_limit`` order requests per ``order_window_ms`` by one signed-in user."""
    limits = res.settings.rate_limits
    key = user_rate_limit_window(limits.key_prefix, user_id, ORDERS)
    await _count(res, key, ORDERS, limits.order_limit, limits.order_window_ms, "this user")


async def _count_address(res: Resources, client: str | None, group: str, limit: int, window_ms: int) -> None:
    key = rate_limit_window(res.settings.rate_limits.key_prefix, client or UNKNOWN_CLIENT, group)
    await _count(res, key, group, limit, window_ms, "this address")


async def _count(res: Resources, key: str, group: str, limit: int, window_ms: int, counted: str) -> None:
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
            f"more than {limit} requests in {window_ms} ms from {counted}; retry later",
            {"limit": limit, "windowMs": window_ms},
            headers={"Retry-After": str(max(1, math.ceil(int(retry_after_ms) / 1000)))},
        )
