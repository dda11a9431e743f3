"""Plain SQL migrations applied to every physical table of every shard database.

A migration is a ``.sql`` file in ``migrations/``. Where it names a table family in braces
(``{order}``, ``{order_ticket}``), it is a template: it runs once for each physical table of that
family's shard group in the database (``order_0`` … ``order_3`` in the first shard database),
all families in one file belonging to one group. Without braces it runs once per database
(reference tables, the offset table). Each run is recorded in ``schema_migration`` by
(migration, target) in the same transaction, so re-running is a no-op and growing the layout
creates only the new tables.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import structlog

from infra.postgres.pools import ShardPools
from infra.postgres.routing import GROUP_OF_FAMILY, ShardLayout

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# Serialises concurrent `damai db migrate` runs against one database.
MIGRATION_LOCK_KEY = 0x6D6967726174
# What a database-wide (non-template) migration records as its target.
WHOLE_DATABASE = ""
PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")
CREATED_TABLE = re.compile(r"CREATE TABLE IF NOT EXISTS\s+([a-z_0-9]+)", re.I)

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Migration:
    name: str
    sql: str

    @property
    def families(self) -> list[str]:
        return sorted(set(PLACEHOLDER.findall(self.sql)))

    @property
    def shard_group(self) -> str | None:
        groups = {GROUP_OF_FAMILY[f] for f in self.families}
        if len(groups) > 1:
            raise ValueError(f"migration {self.name} mixes shard groups {sorted(groups)}")
        return groups.pop() if groups else None

    def targets(self, layout: ShardLayout, database: str) -> dict[str, str]:
        """Target (slot suffix, or WHOLE_DATABASE) → the SQL to run for it in ``database``."""
        if self.shard_group is None:
            return {WHOLE_DATABASE: self.sql}
        anchor = self.families[0]
        slots = [table.rsplit("_", 1)[1] for table in layout.tables_in(database, anchor)]
        return {slot: PLACEHOLDER.sub(rf"\1_{slot}", self.sql) for slot in slots}


def load_migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    migrations = [Migration(p.stem, p.read_text(encoding="utf-8")) for p in sorted(directory.glob("*.sql"))]
    for m in migrations:
        unknown = set(m.families) - set(GROUP_OF_FAMILY)
        if unknown:
            raise ValueError(f"migration {m.name} names unknown table families {sorted(unknown)}")
        m.shard_group  # noqa: B018 — validates that one file keeps to one shard group
    return migrations


async def migrate_database(
    conn: asyncpg.Connection, migrations: list[Migration], layout: ShardLayout, database: str, schema: str
) -> list[str]:
    """Apply what this database has not seen; return ``migration[target]`` for each run."""
    applied: list[str] = []
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK_KEY)
        # The schema name is a validated identifier (settings pattern); quoted all the same.
        await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        await conn.execute(f'SET LOCAL search_path TO "{schema}"')
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migration ("
            " name text NOT NULL, target text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(),"
            " PRIMARY KEY (name, target))"
        )
        done = {(r["name"], r["target"]) for r in await conn.fetch("SELECT name, target FROM schema_migration")}
        for migration in migrations:
            for target, sql in migration.targets(layout, database).items():
                if (migration.name, target) in done:
                    continue
                await conn.execute(sql)
                await conn.execute(
                    "INSERT INTO schema_migration (name, target) VALUES ($1, $2)", migration.name, target
                )
                applied.append(f"{migration.name}[{target}]" if target else migration.name)
    return applied


async def migrate_all(pools: ShardPools, layout: ShardLayout) -> dict[str, list[str]]:
    migrations = load_migrations()
    result: dict[str, list[str]] = {}
    for database, pool in pools:
        async with pool.acquire() as conn:
            result[database] = await migrate_database(conn, migrations, layout, database, pools.schema_name)
        log.info("postgres.migrated", database=database, applied=len(result[database]))
    return result


@dataclass(frozen=True)
class VerifyReport:
    missing_tables: list[str]
    unapplied: list[str]

    @property
    def ok(self) -> bool:
        return not self.missing_tables and not self.unapplied


async def verify_all(pools: ShardPools, layout: ShardLayout) -> VerifyReport:
    """Every expected physical table exists, and every migration is recorded for every target."""
    migrations = load_migrations()
    missing: list[str] = []
    unapplied: list[str] = []
    for database, pool in pools:
        async with pool.acquire() as conn:
            tables = {
                r["tablename"]
                for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = $1", pools.schema_name)
            }
            recorded: set[tuple[str, str]] = set()
            if "schema_migration" in tables:
                records = await conn.fetch("SELECT name, target FROM schema_migration")
                recorded = {(r["name"], r["target"]) for r in records}
        for migration in migrations:
            for target, sql in migration.targets(layout, database).items():
                if (migration.name, target) not in recorded:
                    unapplied.append(f"{database}: {migration.name}[{target}]")
                missing += [f"{database}.{t}" for t in CREATED_TABLE.findall(sql) if t not in tables]
    return VerifyReport(sorted(missing), unapplied)
