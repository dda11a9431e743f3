"""Logging in and out: a signed access token for a mobile or email and its password; revoking it.

Login reads the read side (the lookup table of the identifier, then the user's row), never a
full route. Failures are counted per identifier (its blind index), whether or not an account
has it: the fifth in a window locks the identifier for the window, and a locked identifier is
refused before its password is checked, with the same answer for every identifier.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

import structlog
from pydantic import Field, SecretStr, model_validator

from aggregates.errors import InvalidCommand, Unauthenticated
from commands.program import Command
from commands.user import (
    EMAIL_MAX_LENGTH,
    PASSWORD_MAX_LENGTH,
    RAW_MOBILE_MAX_LENGTH,
    BlindIndexes,
    valid_email,
    valid_mobile,
)

log = structlog.get_logger(__name__)


class LogIn(Command):
    mobile: str | None = Field(default=None, min_length=1, max_length=RAW_MOBILE_MAX_LENGTH)
    email: str | None = Field(default=None, min_length=1, max_length=EMAIL_MAX_LENGTH)
    password: SecretStr = Field(min_length=1, max_length=PASSWORD_MAX_LENGTH * 4)

    @model_validator(mode="after")
    def _one_identifier(self) -> LogIn:
        if (self.mobile is None) == (self.email is None):
            raise ValueError("give exactly one of mobile and email")
        return self


@dataclass(frozen=True)
class Credentials:
    user_id: int
    password_hash: str


class CredentialLookup(Protocol):
    """The read side's answer to "whose is this identifier, and what is their password hash"."""

    async def by_mobile(self, blind: bytes) -> Credentials | None: ...

    async def by_email(self, blind: bytes) -> Credentials | None: ...


class FailedLogins(Protocol):
    async def retry_after_ms(self, identifier_blind: str) -> int | None: ...

    async def record_failure(self, identifier_blind: str) -> int | None: ...


class PasswordCheck(Protocol):
    async def verify(self, stored_hash: str, password: SecretStr) -> bool: ...

    def needs_rehash(self, stored_hash: str) -> bool: ...


@dataclass(frozen=True)
class Session:
    access_token: str
    expires_in_s: int
    user_id: int


class TokenIssuer(Protocol):
    def issue_for(self, user_id: int) -> Session: ...


class Revocations(Protocol):
    async def revoke(self, jti: str, exp: int) -> None: ...


@dataclass(frozen=True)
class Sessions:
    """What the session handlers work with (built by ``bootstrap.py``)."""

    blind: BlindIndexes
    credentials: CredentialLookup
    failures: FailedLogins
    passwords: PasswordCheck
    tokens: TokenIssuer
    revocations: Revocations
    dummy_hash: str
    """A hash of no one's password, verified when no account matches, so both take as long."""
    rehash: Callable[[int, SecretStr], Awaitable[None]]
    """Store the password under the current argon2 parameters (``commands.user.rehash_password``)."""


class LoginLocked(Exception):
    """Too many failures for this identifier in the window: 429 ``LOGIN_LOCKED``."""

    def __init__(self, retry_after_ms: int) -> None:
        super().__init__("too many failed logins for this identifier; retry later")
        self.retry_after_s = max(1, math.ceil(retry_after_ms / 1000))


def invalid_credentials() -> Unauthenticated:
    return Unauthenticated("the mobile or email and password do not match an account", code="INVALID_CREDENTIALS")


async def log_in(cmd: LogIn, sessions: Sessions) -> Session:
    """A new access token, or ``INVALID_CREDENTIALS`` (401), or ``LoginLocked``."""
    try:
        if cmd.mobile is not None:
            blind, lookup = sessions.blind.mobile(valid_mobile(cmd.mobile)), sessions.credentials.by_mobile
        else:
            assert cmd.email is not None
            blind, lookup = sessions.blind.email(valid_email(cmd.email)), sessions.credentials.by_email
    except InvalidCommand:
        raise invalid_credentials() from None
    identifier = blind.hex()
    locked_ms = await sessions.failures.retry_after_ms(identifier)
    if locked_ms is not None:
        raise LoginLocked(locked_ms)
    found = await lookup(blind)
    stored_hash = found.password_hash if found is not None else sessions.dummy_hash
    if not await sessions.passwords.verify(stored_hash, cmd.password) or found is None:
        await sessions.failures.record_failure(identifier)
        raise invalid_credentials()
    if sessions.passwords.needs_rehash(found.password_hash):
        try:
            await sessions.rehash(found.user_id, cmd.password)
        except Exception as exc:  # noqa: BLE001 — the login stands; the next one tries again
            log.warning("sessions.rehash_failed", user_id=found.user_id, error=repr(exc))
    return sessions.tokens.issue_for(found.user_id)


async def log_out(jti: str, expires_at: int, sessions: Sessions) -> None:
    """Revoke the token: every API process refuses it within about a second."""
    await sessions.revocations.revoke(jti, expires_at)
