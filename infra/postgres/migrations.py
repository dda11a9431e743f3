"""Plain SQL migrations applied to every shard database, recorded per database.

Each file in ``migrations/`` runs once per database, in name order, inside a
transaction together with its record in ``schema_migration``; re-running is a no-op.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import asyncpg
import structlog

from infra.postgres.pools import ShardPools

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# Serialises concurrent `damai db migrate` runs against one database.
MIGRATION_LOCK_KEY = 0x6D6967726174

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Migration:
    name: str
    sql: str


def load_migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    return [Migration(p.stem, p.read_text(encoding="utf-8")) for p in sorted(directory.glob("*.sql"))]


async def migrate_database(conn: asyncpg.Connection, migrations: list[Migration], schema: str) -> list[str]:
    """Apply what this database has not seen; return the names applied."""
    applied: list[str] = []
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK_KEY)
        # The schema name is a validated identifier (settings pattern); quoted all the same.
        await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        await conn.execute(f'SET LOCAL search_path TO "{schema}"')
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migration ("
            " name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r["name"] for r in await conn.fetch("SELECT name FROM schema_migration")}
        for migration in migrations:
            if migration.name in done:
                continue
            await conn.execute(migration.sql)
            await conn.execute("INSERT INTO schema_migration (name) VALUES ($1)", migration.name)
            applied.append(migration.name)
    return applied


async def migrate_all(pools: ShardPools) -> dict[str, list[str]]:
    migrations = load_migrations()
    result: dict[str, list[str]] = {}
    for database, pool in pools:
        async with pool.acquire() as conn:
            result[database] = await migrate_database(conn, migrations, pools.schema_name)
        log.info("postgres.migrated", database=database, applied=result[database])
    return result
