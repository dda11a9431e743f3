"""The bearer dependency of signed-in users: 401 with a code that says what to do, no I/O."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import httpx
import pytest
from fastapi import FastAPI

from api.auth import CurrentUserDep
from api.errors import install_error_handlers
from infra.settings import TokenSettings
from infra.tokens import AccessTokens

TOKENS = AccessTokens(TokenSettings(access_token_ttl_s=600, leeway_s=5))
USER_ID = 7_312_345_678_901_234_567


class Revoked:
    """The revoked token ids a process knows (``infra/revocations.py:RevokedTokens``), held in memory."""

    def __init__(self, *jtis: str) -> None:
        self.jtis = set(jtis)

    def is_revoked(self, jti: str) -> bool:
        return jti in self.jtis


def app_with(revoked: Revoked) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    app.state.resources = SimpleNamespace(commands=SimpleNamespace(tokens=TOKENS, revoked=revoked))

    @app.get("/me")
    async def me(user: CurrentUserDep) -> dict[str, object]:
        return {"userId": str(user.user_id), "jti": user.jti, "expiresAt": user.expires_at}

    return app


async def get_me(headers: Mapping[str, str] | Mapping[bytes, bytes], revoked: Revoked | None = None) -> httpx.Response:
    transport = httpx.ASGITransport(app=app_with(revoked or Revoked()))
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:
        return await http.get("/me", headers=headers)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_a_valid_token_admits_its_user_with_its_token_id_and_expiry():
    issued = TOKENS.issue(USER_ID)

    response = await get_me(bearer(issued.token))

    assert response.status_code == 200
    assert response.json() == {
        "userId": str(USER_ID),
        "jti": issued.claims.token_id,
        "expiresAt": int(issued.claims.expires_at.timestamp()),
    }


async def test_the_scheme_is_case_insensitive():
    response = await get_me({"Authorization": f"bearer {TOKENS.issue(USER_ID).token}"})

    assert response.status_code == 200


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer"}, {"Authorization": "Basic dXNlcjpwYXNz"}],
    ids=["no header", "no token", "another scheme"],
)
async def test_a_request_without_a_bearer_token_is_unauthenticated(headers: dict[str, str]):
    response = await get_me(headers)

    assert response.status_code == 401
    assert response.json()["code"] == "UNAUTHENTICATED"
    assert set(response.json()) == {"code", "message", "details"}
    assert response.headers["WWW-Authenticate"] == "Bearer"


@pytest.mark.parametrize(
    "token",
    ["garbage", "a.b.c", TOKENS.issue(USER_ID).token[:-4] + "AAAA", "ü.ü.ü"],
    ids=["not a jwt", "three bad parts", "forged signature", "not ascii"],
)
async def test_a_token_that_is_not_ours_is_unauthenticated(token: str):
    response = await get_me({b"Authorization": f"Bearer {token}".encode("latin-1")})

    assert response.status_code == 401
    assert response.json()["code"] == "UNAUTHENTICATED"
    assert response.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'


async def test_an_expired_token_is_refused_with_token_expired():
    expired = TOKENS.issue(USER_ID, now=datetime.now(UTC) - timedelta(seconds=600 + 6)).token

    response = await get_me(bearer(expired))

    assert response.status_code == 401
    assert response.json()["code"] == "TOKEN_EXPIRED"
    assert response.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'


async def test_a_revoked_token_is_refused_with_token_revoked():
    issued = TOKENS.issue(USER_ID)

    response = await get_me(bearer(issued.token), Revoked(issued.claims.token_id))

    assert response.status_code == 401
    assert response.json()["code"] == "TOKEN_REVOKED"


async def test_another_token_of_the_same_user_is_not_revoked_with_it():
    revoked, other = TOKENS.issue(USER_ID), TOKENS.issue(USER_ID)

    response = await get_me(bearer(other.token), Revoked(revoked.claims.token_id))

    assert response.status_code == 200
