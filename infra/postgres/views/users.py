"""Users and their ticket buyers. Login by mobile or email is two one-shard reads, never a fan-out."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from infra.postgres.views.sharded import ShardedDatabase, row, rows


@dataclass(frozen=True)
class UserRow:
    id: int
    nickname: str | None
    mobile_cipher: bytes
    mobile_blind: bytes
    email_cipher: bytes | None
    email_blind: bytes | None
    password_hash: str
    real_name_cipher: bytes | None
    id_number_cipher: bytes | None
    id_number_blind: bytes | None
    real_name_verified: bool
    gender: int | None
    status: str
    aggregate_version: int
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class TicketBuyerRow:
    id: int
    user_id: int
    name_cipher: bytes
    id_type: int
    id_number_cipher: bytes
    id_number_blind: bytes
    deleted: bool
    aggregate_version: int
    created_at: datetime
    updated_at: datetime


async def get_user(db: ShardedDatabase, user_id: int) -> UserRow | None:
    return row(UserRow, await db.fetchrow(db.layout.user(user_id), "SELECT * FROM {table} WHERE id = $1", user_id))


async def user_id_by_mobile(db: ShardedDatabase, mobile: str) -> int | None:
    blind = db.layout.mobile_blind(mobile)
    found: int | None = await db.fetchval(
        db.layout.user_mobile(blind), "SELECT user_id FROM {table} WHERE mobile_blind = $1", blind
    )
    return found


async def user_id_by_email(db: ShardedDatabase, email: str) -> int | None:
    blind = db.layout.email_blind(email)
    found: int | None = await db.fetchval(
        db.layout.user_email(blind), "SELECT user_id FROM {table} WHERE email_blind = $1", blind
    )
    return found


async def get_user_by_mobile(db: ShardedDatabase, mobile: str) -> UserRow | None:
    user_id = await user_id_by_mobile(db, mobile)
    return await get_user(db, user_id) if user_id is not None else None


async def get_user_by_email(db: ShardedDatabase, email: str) -> UserRow | None:
    user_id = await user_id_by_email(db, email)
    return await get_user(db, user_id) if user_id is not None else None


async def ticket_buyers_of(db: ShardedDatabase, user_id: int) -> list[TicketBuyerRow]:
    return rows(
        TicketBuyerRow,
        await db.fetch(
            db.layout.ticket_buyers(user_id),
            "SELECT * FROM {table} WHERE user_id = $1 AND NOT deleted ORDER BY created_at, id",
            user_id,
        ),
    )
