"""The read side of accounts: is a mobile or email in use, whose credentials are these, has the
read side caught up with a change, and the masked profile and ticket buyers a user reads back.

Every personal value leaves here masked (``aggregates.identity_documents``), revealed only long
enough to mask it, under the owner's data key. A shredded user reveals nothing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Literal

import structlog
from redis.asyncio import Redis

from aggregates.errors import NotFound
from aggregates.identity_documents import mask_email, mask_id_number, mask_mobile, mask_name
from commands.sessions import Credentials
from commands.user import (
    EMAIL_FIELD,
    ID_NUMBER_FIELD,
    MOBILE_FIELD,
    NAME_FIELD,
    REAL_NAME_FIELD,
    ticket_buyer_field,
)
from events.user import Gender, IdType
from infra.background import cancel_and_wait
from infra.personal_data.vault import OpenUserKeys, PersonalDataVault
from infra.postgres.sharded import ShardedDatabase
from infra.redis_keys import user_state
from infra.settings import UserSettings
from queries.cache.bloom import Membership
from queries.cache.user_bloom import ensure_user_bloom, user_bloom
from queries.shapes import PublicShape
from queries.views.users import UserRow, UserStatus, load_user, ticket_buyers_of, user_id_by_email, user_id_by_mobile

log = structlog.get_logger(__name__)

ACTIVE = UserStatus.ACTIVE
Lookup = Callable[[ShardedDatabase, bytes], Awaitable[int | None]]
FIRST_POLL_S = 0.005
LONGEST_POLL_S = 0.05


class UserProfileOut(PublicShape):
    """A user's own profile; every personal value masked."""

    user_id: str
    mobile: str
    """``138****0000``"""
    email: str | None
    """``a***@example.com``"""
    name: str | None
    """``张*``"""
    gender: Gender | None
    real_name_verified: bool
    real_name: str | None
    id_type: IdType | None
    id_number: str | None
    """First 4 and last 4 characters: ``1101**********002X``"""
    created_at: datetime


class TicketBuyerOut(PublicShape):
    """A ticket buyer as its user sees it: masked."""

    id: str
    name: str
    """``张*``"""
    id_type: IdType
    id_number: str
    """First 4 and last 4 characters."""


def ticket_buyer_out(ticket_buyer_id: int, name: str, id_type: IdType, id_number: str) -> TicketBuyerOut:
    return TicketBuyerOut(
        id=str(ticket_buyer_id), name=mask_name(name), id_type=id_type, id_number=mask_id_number(id_number)
    )


class UserReads:
    """The account queries, and the read-side ports of the account and session handlers
    (``commands.user.UserDirectory``, ``commands.sessions.CredentialLookup``)."""

    def __init__(self, db: ShardedDatabase, redis: Redis, settings: UserSettings, vault: PersonalDataVault) -> None:
        self._db = db
        self._redis = redis
        self._settings = settings
        self._vault = vault
        self._bloom = user_bloom(redis, settings)
        self._building: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Build the registration Bloom filter in the background when there is none (a first start,
        a flushed Redis); until then every check asks the lookup table."""
        self._building = asyncio.create_task(self._ensure_bloom(), name="user-bloom-build")

    async def stop(self) -> None:
        if self._building is not None:
            await cancel_and_wait(self._building)

    async def _ensure_bloom(self) -> None:
        try:
            await ensure_user_bloom(self._redis, self._settings, self._db)
        except Exception as exc:  # noqa: BLE001 — without a filter, checks ask the lookup table
            log.warning("users.bloom_not_built", error=repr(exc))

    # -- registration --------------------------------------------------------------------------

    async def registered(self, kind: str, blind: bytes) -> bool:
        """The Bloom filter's "absent" is certain and costs no query; anything else asks the
        lookup table (a false positive, a filter not built yet), then the holder's row."""
        if await self._bloom.check(blind) is Membership.ABSENT:
            return False
        lookup = user_id_by_mobile if kind == "mobile" else user_id_by_email
        # A claim whose account never came (a crashed registration) is no account: the ownership
        # aggregate decides whether it is void yet.
        holder = await self._holder(lookup, blind)
        return holder is not None and holder.status == ACTIVE

    async def projected(self, user_id: int, version: int, timeout_s: float) -> bool:
        """Wait for the user projector to reach ``version`` of ``user-<id>`` (Redis only)."""
        key = user_state(self._settings.key_prefix, user_id)

        async def reached() -> bool:
            seen = await self._redis.hget(key, "version")
            return seen is not None and int(seen) >= version

        return await _until(reached, timeout_s)

    async def holds(self, kind: str, blind: bytes, user_id: int, timeout_s: float) -> bool:
        """Wait until the lookup table names ``user_id`` as the holder of this mobile (``kind``
        "mobile") or email: the ownership's claim is projected apart from the user's events."""
        lookup = user_id_by_mobile if kind == "mobile" else user_id_by_email

        async def named() -> bool:
            return await lookup(self._db, blind) == user_id

        return await _until(named, timeout_s)

    # -- login ---------------------------------------------------------------------------------

    async def by_mobile(self, blind: bytes) -> Credentials | None:
        return self._credentials(await self._holder(user_id_by_mobile, blind), "mobile", blind)

    async def by_email(self, blind: bytes) -> Credentials | None:
        return self._credentials(await self._holder(user_id_by_email, blind), "email", blind)

    async def _holder(self, lookup: Lookup, blind: bytes) -> UserRow | None:
        user_id = await lookup(self._db, blind)
        return None if user_id is None else await load_user(self._db, user_id)

    @staticmethod
    def _credentials(user: UserRow | None, kind: Literal["mobile", "email"], blind: bytes) -> Credentials | None:
        """Only an active account whose row still names this identifier: a lookup row a moment
        behind a change of mobile does not let the old one log in."""
        if user is None or user.status != ACTIVE:
            return None
        if (user.mobile_blind if kind == "mobile" else user.email_blind) != blind:
            return None
        return Credentials(user.id, user.password_hash)

    # -- the user's own data ---------------------------------------------------------------------

    async def profile(self, user_id: int) -> UserProfileOut:
        user = await load_user(self._db, user_id)
        if user is None or user.status != ACTIVE:
            raise NotFound(f"no user {user_id}", code="USER_NOT_FOUND")
        keys = await self._keys(user_id)
        mobile = keys.reveal(MOBILE_FIELD, user.mobile_cipher)
        email = keys.reveal(EMAIL_FIELD, user.email_cipher) if user.email_cipher else None
        name = keys.reveal(NAME_FIELD, user.name_cipher) if user.name_cipher else None
        real_name = keys.reveal(REAL_NAME_FIELD, user.real_name_cipher) if user.real_name_cipher else None
        id_number = keys.reveal(ID_NUMBER_FIELD, user.id_number_cipher) if user.id_number_cipher else None
        return UserProfileOut(
            user_id=str(user.id),
            mobile=mask_mobile(mobile),
            email=mask_email(email) if email is not None else None,
            name=mask_name(name) if name is not None else None,
            gender=Gender(user.gender) if user.gender else None,
            real_name_verified=user.real_name_verified,
            real_name=mask_name(real_name) if real_name is not None else None,
            id_type=IdType(user.id_type) if user.id_type else None,
            id_number=mask_id_number(id_number) if id_number is not None else None,
            created_at=user.created_at,
        )

    async def ticket_buyers(self, user_id: int) -> list[TicketBuyerOut]:
        buyers = await ticket_buyers_of(self._db, user_id)
        if not buyers:
            return []
        keys = await self._keys(user_id)
        return [
            ticket_buyer_out(
                b.id,
                keys.reveal(ticket_buyer_field(b.id, NAME_FIELD), b.name_cipher),
                IdType(b.id_type),
                keys.reveal(ticket_buyer_field(b.id, ID_NUMBER_FIELD), b.id_number_cipher),
            )
            for b in buyers
        ]

    async def _keys(self, user_id: int) -> OpenUserKeys:
        keys = await self._vault.readable_keys_of(user_id)
        if keys is None or keys.shredded:
            raise NotFound(f"no user {user_id}", code="USER_NOT_FOUND")
        return keys


async def _until(check: Callable[[], Awaitable[bool]], timeout_s: float) -> bool:
    """Ask ``check`` until it holds, backing off from 5 ms to 50 ms; False after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    pause = FIRST_POLL_S
    while not await check():
        if time.monotonic() + pause > deadline:
            return False
        await asyncio.sleep(pause)
        pause = min(pause * 2, LONGEST_POLL_S)
    return True
