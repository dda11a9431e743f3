"""Users, their ticket buyers and who holds each mobile and email: every read names its key and
touches one table (docs/sharding.md), except the full route that says so in its name.

Personal values come back sealed (``*_cipher``, pd1 tokens); blind indexes as their 32 bytes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from infra.postgres.sharded import ShardedDatabase, row, rows


class UserStatus(StrEnum):
    """A user row's ``status``, and the ``status`` of the user's Redis state (lua/user_state_apply.lua)."""

    ACTIVE = "active"
    DELETED = "deleted"


@dataclass(frozen=True)
class UserRow:
    id: int
    mobile_cipher: str
    mobile_blind: bytes
    email_cipher: str | None
    email_blind: bytes | None
    name_cipher: str | None
    gender: str | None
    password_hash: str
    real_name_verified: bool
    real_name_cipher: str | None
    id_type: str | None
    id_number_cipher: str | None
    status: str  # "active" | "deleted"
    aggregate_version: int
    created_at: datetime


@dataclass(frozen=True)
class TicketBuyerRow:
    id: int
    user_id: int
    name_cipher: str
    id_type: str
    id_number_cipher: str
    created_at: datetime


_USER_COLUMNS = (
    "id, mobile_cipher, mobile_blind, email_cipher, email_blind, name_cipher, gender, password_hash,"
    " real_name_verified, real_name_cipher, id_type, id_number_cipher, status, aggregate_version, created_at"
)
_TICKET_BUYER_COLUMNS = "id, user_id, name_cipher, id_type, id_number_cipher, created_at"


async def user_id_by_mobile(db: ShardedDatabase, mobile_blind: bytes) -> int | None:
    """The user holding this mobile now; None when nobody does (never claimed, or released)."""
    shard = db.layout.user_mobile(mobile_blind)
    user_id: int | None = await db.fetchval(shard, "SELECT user_id FROM {table} WHERE mobile_blind = $1", mobile_blind)
    return user_id


async def user_id_by_email(db: ShardedDatabase, email_blind: bytes) -> int | None:
    """The user holding this email now; None when nobody does (never claimed, or released)."""
    shard = db.layout.user_email(email_blind)
    user_id: int | None = await db.fetchval(shard, "SELECT user_id FROM {table} WHERE email_blind = $1", email_blind)
    return user_id


async def load_user(db: ShardedDatabase, user_id: int) -> UserRow | None:
    """The user's row, deleted or not (``status`` tells)."""
    shard = db.layout.user(user_id)
    return row(UserRow, await db.fetchrow(shard, f"SELECT {_USER_COLUMNS} FROM {{table}} WHERE id = $1", user_id))


async def ticket_buyers_of(db: ShardedDatabase, user_id: int) -> list[TicketBuyerRow]:
    """The user's ticket buyers not removed, oldest first."""
    shard = db.layout.ticket_buyers(user_id)
    sql = f"SELECT {_TICKET_BUYER_COLUMNS} FROM {{table}} WHERE user_id = $1 AND NOT deleted ORDER BY created_at, id"
    return rows(TicketBuyerRow, await db.fetch(shard, sql, user_id))


async def full_route_identifier_blinds(db: ShardedDatabase) -> AsyncIterator[list[bytes]]:
    """Full route, on purpose: the blind index of every mobile and email held now, one physical
    table at a time. For rebuilding the registration Bloom filter; never on a request path."""
    for family, column in (("user_mobile", "mobile_blind"), ("user_email", "email_blind")):
        sql = f"SELECT {column} FROM {{table}} WHERE user_id IS NOT NULL"
        for shard in db.layout.physical_tables(family):
            yield [r[column] for r in await db.fetch(shard, sql)]
