"""The ``DataKeyStore`` on Postgres: one row per user in ``user_data_key_<slot>``, routed with the user.

The row holds the user's wrapped data keys (``[{"keyId", "token"}, ...]``, the last one current) or,
once shredded, an empty list and ``shredded = true``: the tombstone that tells "deleted" from
"never had a key". ``replace`` locks the row and refuses to drop a key id it holds, so a rewrap made
from a stale load (say, before another process added a new current key) cannot lose a key: it gets
``DataKeysChanged`` and reloads. Postgres keeps a dead row version until VACUUM, and its WAL and
backups keep it until they age out: a shred is final once those have rotated (docs/personal-data.md).
"""

from __future__ import annotations

from typing import Any

from infra.personal_data.data_keys import StoredDataKeys, WrappedDataKey
from infra.personal_data.errors import PersonalDataShredded
from infra.postgres.sharded import ShardedDatabase

SHRED_DATA_KEYS = (
    "INSERT INTO {table} AS k (user_id, wrapped_keys, shredded, shredded_at)"
    " VALUES ($1, '[]'::jsonb, true, now())"
    " ON CONFLICT (user_id) DO UPDATE SET wrapped_keys = '[]'::jsonb, shredded = true,"
    " shredded_at = coalesce(k.shredded_at, now()), updated_at = now()"
)
"""Destroy a user's wrapped data keys for good, leaving a tombstone (idempotent). The user projector
runs it too, in the transaction that marks the user deleted, so a ``UserDeleted`` in the log always
ends in a shredded key, even when the handler that appended it died before shredding."""


class DataKeysChanged(Exception):
    """The user's stored keys changed since they were loaded: the replacement would drop a key.
    Load again, redo the change, and retry."""


class NoDataKeys(LookupError):
    """The user has no stored data keys to replace."""


class PostgresDataKeyStore:
    """Wrapped per-user data keys in Postgres, routed by user id like the user rows."""

    def __init__(self, db: ShardedDatabase) -> None:
        self._db = db

    async def create(self, user_id: int, wrapped: WrappedDataKey) -> bool:
        """Store a user's first data key; False (and nothing changed) if the user has or had one."""
        inserted = await self._db.fetchval(
            self._db.layout.user_data_keys(user_id),
            "INSERT INTO {table} (user_id, wrapped_keys) VALUES ($1, $2)"
            " ON CONFLICT (user_id) DO NOTHING RETURNING true",
            user_id,
            _as_json((wrapped,)),
        )
        return inserted is True

    async def load(self, user_id: int) -> StoredDataKeys | None:
        """The user's wrapped keys or tombstone; None for a user who never had a key."""
        record = await self._db.fetchrow(
            self._db.layout.user_data_keys(user_id),
            "SELECT wrapped_keys, shredded FROM {table} WHERE user_id = $1",
            user_id,
        )
        if record is None:
            return None
        wrapped = tuple(WrappedDataKey(k["keyId"], k["token"]) for k in record["wrapped_keys"])
        return StoredDataKeys(user_id, wrapped, shredded=record["shredded"])

    async def replace(self, stored: StoredDataKeys) -> None:
        """Store rewrapped keys (master key rotation) or a new current key.

        Never revives a tombstone (``PersonalDataShredded``) and never drops a key the row holds
        (``DataKeysChanged``: another process changed the keys since ``stored`` was loaded).
        """
        key_ids = [k.key_id for k in stored.wrapped]
        if stored.shredded or not key_ids or len(set(key_ids)) != len(key_ids):
            raise ValueError("a replacement holds one or more distinct keys and no tombstone (use shred)")
        shard = self._db.layout.user_data_keys(stored.user_id)
        async with self._db.pools[shard.database].acquire() as conn, conn.transaction():
            record = await conn.fetchrow(
                f"SELECT wrapped_keys, shredded FROM {shard.table} WHERE user_id = $1 FOR UPDATE", stored.user_id
            )
            if record is None:
                raise NoDataKeys(f"user {stored.user_id} has no data keys")
            if record["shredded"]:
                raise PersonalDataShredded(f"user {stored.user_id}'s data key was destroyed")
            if {k["keyId"] for k in record["wrapped_keys"]} - set(key_ids):
                raise DataKeysChanged(f"user {stored.user_id}'s data keys changed since they were loaded")
            await conn.execute(
                f"UPDATE {shard.table} SET wrapped_keys = $2, updated_at = now() WHERE user_id = $1",
                stored.user_id,
                _as_json(stored.wrapped),
            )

    async def shred(self, user_id: int) -> None:
        """Overwrite the user's wrapped keys with nothing and mark the row destroyed (a tombstone,
        also for a user who never had a key). Idempotent: a second shred keeps the first time."""
        await self._db.fetchval(self._db.layout.user_data_keys(user_id), SHRED_DATA_KEYS, user_id)


def _as_json(wrapped: tuple[WrappedDataKey, ...]) -> list[dict[str, Any]]:
    return [{"keyId": k.key_id, "token": k.token} for k in wrapped]
