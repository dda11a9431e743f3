"""Access tokens: JWTs signed with HMAC-SHA256 (PyJWT), key, life and leeway from ``TokenSettings``.

Claims: ``sub`` (the user id as a string, as ids are everywhere in the API), ``jti`` (a random id,
what a later revocation names), ``iat`` and ``exp``. Verification accepts HS256 only, whatever the
token's header says, so a token signed ``none`` or with another algorithm is refused; every claim
above is required. Revocation is checked beside verification, by ``api/auth.py:require_user`` against
``infra/revocations.py``'s local set.

A token that verified is remembered (``verified_cache_entries``, oldest forgotten first) until its
``exp``: HMAC is deterministic, so the same string verifies the same way again, and a buyer
refreshing an order or retrying a purchase skips the signature check (about 40 µs of the 45 µs a
verification costs). Only genuine tokens are remembered; an expired one is forgotten on sight.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt

from commands.sessions import Session
from infra.settings import TokenSettings

ALGORITHM = "HS256"
REQUIRED_CLAIMS = ("sub", "jti", "iat", "exp")
JTI_BYTES = 16  # 128 random bits: a token id never repeats


class InvalidAccessToken(Exception):
    """The token cannot be trusted: malformed, badly signed, of another algorithm, or lacking a claim."""


class ExpiredAccessToken(InvalidAccessToken):
    """The token was genuine but its ``exp`` (plus the leeway) has passed."""


@dataclass(frozen=True)
class AccessToken:
    """A verified token's claims."""

    user_id: int
    token_id: str
    issued_at: datetime
    expires_at: datetime


@dataclass(frozen=True)
class IssuedToken:
    token: str
    claims: AccessToken

    @property
    def expires_in_s(self) -> int:
        return int((self.claims.expires_at - self.claims.issued_at).total_seconds())


class AccessTokens:
    """Issues and verifies the access tokens of one signing key."""

    def __init__(self, settings: TokenSettings) -> None:
        self._key = settings.signing_key_bytes()
        self._ttl = timedelta(seconds=settings.access_token_ttl_s)
        self._leeway = timedelta(seconds=settings.leeway_s)
        self._verified: dict[str, tuple[AccessToken, float]] = {}
        self._verified_max = settings.verified_cache_entries

    def __repr__(self) -> str:
        return f"AccessTokens(key=***, ttl={self._ttl}, leeway={self._leeway})"

    def issue(self, user_id: int, now: datetime | None = None) -> IssuedToken:
        """A new signed token for ``user_id``, valid from ``now`` (default: the clock) for the settings' life."""
        issued_at = (now or datetime.now(UTC)).replace(microsecond=0)
        claims = AccessToken(user_id, secrets.token_urlsafe(JTI_BYTES), issued_at, issued_at + self._ttl)
        payload = {"sub": str(user_id), "jti": claims.token_id, "iat": issued_at, "exp": claims.expires_at}
        return IssuedToken(jwt.encode(payload, self._key, algorithm=ALGORITHM), claims)

    def issue_for(self, user_id: int) -> Session:
        """A new token as the session handlers answer it (commands/sessions.py: TokenIssuer)."""
        issued = self.issue(user_id)
        return Session(issued.token, issued.expires_in_s, user_id)

    def verify(self, token: str) -> AccessToken:
        """The claims of a genuine, unexpired token; ``ExpiredAccessToken`` or ``InvalidAccessToken`` otherwise."""
        known = self._verified.get(token)
        if known is not None:
            claims, valid_until = known
            if time.time() <= valid_until:
                return claims
            del self._verified[token]
        claims = self._decode(token)
        if self._verified_max:
            if len(self._verified) >= self._verified_max:
                del self._verified[next(iter(self._verified))]
            self._verified[token] = (claims, claims.expires_at.timestamp() + self._leeway.total_seconds())
        return claims

    def _decode(self, token: str) -> AccessToken:
        try:
            payload = jwt.decode(
                token,
                self._key,
                algorithms=[ALGORITHM],
                leeway=self._leeway,
                options={"require": list(REQUIRED_CLAIMS)},
            )
        except jwt.ExpiredSignatureError as error:
            raise ExpiredAccessToken("the access token has expired") from error
        except jwt.PyJWTError as error:
            raise InvalidAccessToken(f"the access token is not valid: {type(error).__name__}") from error
        return _claims(payload)


def _claims(payload: dict[str, object]) -> AccessToken:
    subject, token_id, issued, expires = (payload[c] for c in REQUIRED_CLAIMS)
    if not (isinstance(subject, str) and subject.isdigit() and isinstance(token_id, str) and token_id):
        raise InvalidAccessToken("the access token's sub or jti is malformed")
    if not (isinstance(issued, int) and isinstance(expires, int)):
        raise InvalidAccessToken("the access token's iat or exp is not a number of seconds")
    return AccessToken(
        int(subject), token_id, datetime.fromtimestamp(issued, UTC), datetime.fromtimestamp(expires, UTC)
    )
