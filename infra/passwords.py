"""Password hashing: argon2id through ``argon2-cffi``, parameters from ``PasswordSettings``.

A stored hash is the PHC string (``$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>``): it carries its
own salt and parameters, so verifying never needs the settings and raising them only changes new
hashes; ``needs_rehash`` tells a login to store a fresh hash. Hashing costs tens of milliseconds of
CPU by design, so the async forms run it in the default thread pool, off the event loop (argon2
releases the GIL while it works). Measured costs: docs/users.md.
"""

from __future__ import annotations

import asyncio

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError
from pydantic import SecretStr

from infra.personal_data.secret import Secret
from infra.settings import PasswordSettings


class Passwords:
    """Hashes and verifies passwords with one set of argon2id parameters."""

    def __init__(self, settings: PasswordSettings) -> None:
        self._hasher = PasswordHasher(
            time_cost=settings.time_cost,
            memory_cost=settings.memory_cost_kib,
            parallelism=settings.parallelism,
            type=Type.ID,
        )

    def hash_password(self, password: Secret) -> str:
        """A new argon2id hash of ``password`` under a fresh random salt."""
        return self._hasher.hash(password.reveal())

    def verify_password(self, stored_hash: str, password: Secret) -> bool:
        """Whether ``password`` matches ``stored_hash``: False for a wrong password or a hash that is
        not argon2 (never raises for either). The comparison is constant-time (libargon2)."""
        try:
            return self._hasher.verify(stored_hash, password.reveal())
        except (VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, stored_hash: str) -> bool:
        """Whether ``stored_hash`` was made with other parameters than the current settings."""
        try:
            return self._hasher.check_needs_rehash(stored_hash)
        except InvalidHashError:
            return True

    async def hash_password_async(self, password: Secret) -> str:
        """``hash_password`` in the default thread pool, so the event loop keeps serving."""
        return await asyncio.to_thread(self.hash_password, password)

    async def verify_password_async(self, stored_hash: str, password: Secret) -> bool:
        """``verify_password`` in the default thread pool, so the event loop keeps serving."""
        return await asyncio.to_thread(self.verify_password, stored_hash, password)

    # -- the port of the account handlers (commands/user.py: PasswordHasher) ---------------------

    async def hash(self, password: SecretStr) -> str:
        return await self.hash_password_async(Secret(password.get_secret_value()))

    async def verify(self, stored_hash: str, password: SecretStr) -> bool:
        return await self.verify_password_async(stored_hash, Secret(password.get_secret_value()))
