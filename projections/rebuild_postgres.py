"""Rebuild a Postgres read model from the log while the system runs: shadow tables, then a swap.

A projection here is the set of tables some projectors write together (``PROJECTIONS``): the order
projector writes the seat rows the program projector made, so the catalogue and the orders are one.
For one projection, in every shard database:

1. **Shadow.** A schema ``<schema>__rebuild_<name>`` holds empty twins of its tables (columns,
   constraints and indexes under the same names) and a ``projector_offset`` of its own.
2. **Replay.** The projectors' Postgres parts (``ProgramRows``, ``UserRows``, …: no Redis, no
   search index) apply the log to the shadow, under the live projectors' names, in batches. The
   shadow follows the live projectors and never passes them: it replays up to the offsets they
   have applied, again and again until it is at most ``rebuild.caught_up_within`` events behind.
3. **Freeze.** The live projectors' offset rows are locked (``SELECT … FOR UPDATE``) database by
   database in shard order, as the projectors take them; a live projector then waits at its next
   batch, while every reader goes on. The shadow replays the last events up to exactly those
   offsets, so both hold the same log prefix, and a repeatable-read snapshot is taken of each
   database for the comparison.
4. **Swap** (a rebuild; a verify stops at 3). The live tables move to ``<schema>__replaced_<name>_
   <stamp>`` and the shadow's into the live schema, under the lock, then each database commits. The
   live projectors resume on the new tables from the offsets they had, which the new tables hold.

Then each table is hashed in the snapshot: the replaced (or live) rows against the rebuilt ones.
A row's hash leaves out ``updated_at`` (when it was projected, not what it says); the table's is a
sum of its rows', so no sort is needed. A rebuild that finds differences still swaps: a repair
replaces a read model because it is wrong. ``damai verify postgres`` is the same run without the
swap, which proves the live tables equal what the log makes of them now.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Protocol

import asyncpg
import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition

from events.envelope import EventEnvelope
from events.serialization import UndecodableEvent, decode
from infra.postgres.pools import ShardPools
from infra.postgres.routing import REFERENCE_TABLES, ShardLayout, shard_layout
from infra.settings import Settings
from projections.batch import NO_OFFSET, Delivered, Positioned
from projections.offsets import applied_offsets, lowest_applied_offsets
from projections.order_projector import OrderProjector
from projections.payment_projector import PaymentProjector
from projections.program_projector import ProgramRows
from projections.projector import Batch, retry_store_outages
from projections.reference_projector import ReferenceProjector
from projections.user_projector import UserRows

log = structlog.get_logger(__name__)

OFFSETS_TABLE = "projector_offset"
FETCH_MS = 500
READ_AHEAD = 2
FREEZE_RETRY_S = 0.05
IGNORED_COLUMNS = ("updated_at",)
DIFFERENCES_SHOWN = 20

Offsets = dict[tuple[str, int], int]
"""(topic, partition) → the last offset applied."""


class RowsProjector(Protocol):
    """The Postgres part of a projector (``projections/projector.py``'s ``Projector``)."""

    name: str

    async def apply(self, batch: Batch) -> None: ...

    async def skip(self, positions: Sequence[Delivered]) -> None: ...


@dataclass(frozen=True)
class PostgresProjection:
    """Tables some projectors write together, and the topics they read, in the order they replay."""

    name: str
    families: tuple[str, ...]
    """Sharded table families (``infra/postgres/routing.py``) swapped with the projection."""
    projectors: tuple[tuple[str, str], ...]
    """(projector, the topic family it reads), the catalogue before what refers to it."""
    reference_tables: tuple[str, ...] = ()
    scratch_families: tuple[str, ...] = ()
    """Tables a projector also writes that are not the projection's (a user's deletion shreds its
    data keys, the command side's): empty twins in the shadow, never swapped."""

    def tables_in(self, layout: ShardLayout, database: str) -> list[str]:
        return [*self.reference_tables, *(t for f in self.families for t in layout.tables_in(database, f))]

    def scratch_tables_in(self, layout: ShardLayout, database: str) -> list[str]:
        return [t for f in self.scratch_families for t in layout.tables_in(database, f)]


PROJECTIONS: dict[str, PostgresProjection] = {
    p.name: p
    for p in (
        PostgresProjection("reference", (), (("reference", "reference"),), reference_tables=REFERENCE_TABLES),
        PostgresProjection(
            "user",
            ("user", "user_mobile", "user_email", "ticket_buyer"),
            (("user", "user"),),
            scratch_families=("user_data_key",),
        ),
        PostgresProjection(
            "program",
            ("program", "show_time", "ticket_category", "seat", "order", "order_ticket"),
            (("program", "program"), ("order", "order")),
        ),
        PostgresProjection("payment", ("pay_bill", "refund_bill"), (("payment", "payment"),)),
    )
}
"""Every Postgres projection; ``order`` is part of ``program`` (the orders change its seat rows)."""
ALIASES = {"order": "program"}


def projection_named(name: str) -> PostgresProjection:
    """The projection called ``name`` (or whose tables an alias names); KeyError when none is."""
    return PROJECTIONS[ALIASES.get(name, name)]


def rows_projector(kind: str, name: str, pools: ShardPools, layout: ShardLayout) -> RowsProjector:
    """The Postgres part of the live projector ``kind``, under the live projector's ``name``."""
    match kind:
        case "reference":
            return ReferenceProjector(name, pools)
        case "user":
            return UserRows(name, pools, layout)
        case "program":
            return ProgramRows(name, pools, layout)
        case "order":
            return OrderProjector(name, pools, layout)
        case "payment":
            return PaymentProjector(name, pools, layout)
    raise KeyError(kind)


@dataclass
class TableComparison:
    database: str
    table: str
    rows: tuple[int, int]
    """(before, rebuilt)."""
    hashes: tuple[str, str]
    differences: list[str] = field(default_factory=list)

    @property
    def equal(self) -> bool:
        return self.rows[0] == self.rows[1] and self.hashes[0] == self.hashes[1]


@dataclass
class PostgresRebuilt:
    projection: str
    swapped: bool
    events: int = 0
    skipped: int = 0
    replay_s: float = 0.0
    frozen_ms: float = 0.0
    freeze_attempts: int = 0
    replaced_schema: str | None = None
    tables: list[TableComparison] = field(default_factory=list)

    @property
    def equal(self) -> bool:
        return all(t.equal for t in self.tables)

    @property
    def events_per_s(self) -> float:
        return self.events / self.replay_s if self.replay_s else 0.0


class RebuildFailed(Exception):
    """The rebuild could not freeze the live projectors (a table lock held too long, offsets that
    kept moving apart); nothing was swapped."""


async def rebuild_postgres(
    settings: Settings, name: str, *, swap: bool, say: Callable[[str], None] = lambda _: None
) -> PostgresRebuilt:
    """Rebuild projection ``name`` in a shadow and, with ``swap``, put it in place; compare it with
    the tables it replaced (or, without, with the live ones). See the module."""
    projection = projection_named(name)
    layout = shard_layout(settings)
    live_schema = settings.postgres.schema_name
    shadow_schema = f"{live_schema}__rebuild_{projection.name}"
    live = ShardPools(settings.postgres)
    shadow = ShardPools(settings.postgres.model_copy(update={"schema_name": shadow_schema}))
    await live.start()
    report = PostgresRebuilt(projection.name, swapped=False)
    try:
        await _create_shadow(live, layout, projection, shadow_schema)
        await shadow.start()
        group = settings.worker.projector_group
        projectors = [
            (rows_projector(kind, f"{group}.{kind}", shadow, layout), settings.kafka.topic(family))
            for kind, family in projection.projectors
        ]
        replay = _Replay(settings, projectors, report)
        await replay.start()
        try:
            began = time.perf_counter()
            await _catch_up(live, replay, settings.rebuild.caught_up_within, say)
            report.replay_s = time.perf_counter() - began
            rate = f"{report.events_per_s:,.0f}/s"
            say(f"{projection.name}: {report.events:,} events replayed into {shadow_schema} ({rate})")
            snapshots = await _freeze_and_swap(settings, live, shadow, layout, projection, replay, swap, report)
        finally:
            await replay.stop()
        try:
            before = report.replaced_schema if swap else live_schema
            after = live_schema if swap else shadow_schema
            assert before is not None
            report.tables = await _compare(snapshots, layout, projection, before, after)
        finally:
            for _, conn in snapshots:
                await conn.execute("ROLLBACK")
                await conn.close()
    finally:
        await shadow.stop()
        await _drop_schema(live, shadow_schema)
        if report.replaced_schema is not None and not settings.rebuild.keep_replaced:
            await _drop_schema(live, report.replaced_schema)
            report.replaced_schema = None
        await live.stop()
    return report


async def _create_shadow(pools: ShardPools, layout: ShardLayout, projection: PostgresProjection, shadow: str) -> None:
    """An empty twin of each table (and of the offsets) in ``shadow``, which starts afresh."""
    await _drop_schema(pools, shadow)
    for database, pool in pools:
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute(f'CREATE SCHEMA "{shadow}"')
            tables = [*projection.tables_in(layout, database), *projection.scratch_tables_in(layout, database)]
            for table in [*tables, OFFSETS_TABLE]:
                await _twin(conn, pools.schema_name, shadow, table)


async def _twin(conn: asyncpg.Connection, schema: str, shadow: str, table: str) -> None:
    """``shadow.table`` with ``schema.table``'s columns, constraints and indexes, each under its own
    name, so the swapped-in table is the one the migrations made."""
    source, target = f'"{schema}"."{table}"', f'"{shadow}"."{table}"'
    await conn.execute(f"CREATE TABLE {target} (LIKE {source} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)")
    relation = await conn.fetchval("SELECT $1::regclass::oid", source)
    constraints = await conn.fetch(
        "SELECT conname, pg_get_constraintdef(oid) AS definition, conindid FROM pg_constraint"
        " WHERE conrelid = $1 AND contype IN ('p', 'u', 'x')",
        relation,
    )
    for c in constraints:
        await conn.execute(f'ALTER TABLE {target} ADD CONSTRAINT "{c["conname"]}" {c["definition"]}')
    backing = [c["conindid"] for c in constraints]
    indexes = await conn.fetch(
        "SELECT c.relname, pg_get_indexdef(i.indexrelid) AS definition FROM pg_index i"
        " JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = $1 AND NOT (i.indexrelid = ANY($2::oid[]))",
        relation,
        backing,
    )
    qualified = await conn.fetchval("SELECT format('%I.%I', $1::text, $2::text)", schema, table)
    for index in indexes:
        definition: str = index["definition"]  # CREATE [UNIQUE] INDEX name ON schema.table USING …
        if f" ON {qualified} " not in definition:
            raise RuntimeError(f"cannot read the definition of index {index['relname']}: {definition}")
        await conn.execute(definition.replace(f" ON {qualified} ", f" ON {target} ", 1))


async def _drop_schema(pools: ShardPools, schema: str) -> None:
    for _, pool in pools:
        await pool.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


class _Replay:
    """Reads the projection's topics and applies them to the shadow, up to given offsets."""

    def __init__(self, settings: Settings, projectors: list[tuple[RowsProjector, str]], report: PostgresRebuilt):
        self._settings = settings
        self._projectors = projectors
        self._report = report
        self._consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka.bootstrap, enable_auto_commit=False)
        self.applied: dict[str, Offsets] = {p.name: {} for p, _ in projectors}
        """Per projector, what the shadow holds (kept here; the shadow's offset rows say the same)."""

    @property
    def names(self) -> list[str]:
        return [p.name for p, _ in self._projectors]

    async def start(self) -> None:
        await self._consumer.start()

    async def stop(self) -> None:
        await self._consumer.stop()

    def behind(self, targets: dict[str, Offsets]) -> int:
        return sum(
            max(0, target - self.applied[name].get(tp, NO_OFFSET))
            for name, offsets in targets.items()
            for tp, target in offsets.items()
        )

    async def to(self, targets: dict[str, Offsets]) -> None:
        """Apply every event up to ``targets`` (per projector, inclusive), one topic after another."""
        for projector, topic in self._projectors:
            wanted = {tp: end for tp, end in targets[projector.name].items() if tp[0] == topic}
            await self._topic(projector, wanted)

    async def _topic(self, projector: RowsProjector, wanted: Offsets) -> None:
        """Read and decode the next batch while the last one is applied (Postgres works on it
        meanwhile, on the other core)."""
        applied = self.applied[projector.name]
        left = {TopicPartition(t, p): end for (t, p), end in wanted.items() if end > applied.get((t, p), NO_OFFSET)}
        if not left:
            return
        self._consumer.assign(list(left))
        for tp in left:
            self._consumer.seek(tp, applied.get((tp.topic, tp.partition), NO_OFFSET) + 1)
        read: asyncio.Queue[_Read | None] = asyncio.Queue(maxsize=READ_AHEAD)
        reader = asyncio.create_task(self._read(left, read))
        try:
            while (batch := await read.get()) is not None:
                await self._apply(projector, batch)
                applied.update(batch.ends)
            await reader
        finally:
            reader.cancel()
            self._consumer.unsubscribe()

    async def _read(self, left: dict[TopicPartition, int], read: asyncio.Queue[_Read | None]) -> None:
        batch_size = self._settings.rebuild.batch_size
        while left:
            fetched = await self._consumer.getmany(*left, timeout_ms=FETCH_MS, max_records=batch_size)
            batch = _Read()
            for tp, records in fetched.items():
                for r in records:
                    if r.offset > left[tp]:
                        break
                    position = Delivered(tp.topic, tp.partition, r.offset)
                    try:
                        batch.events.append(Positioned(position, decode(r.value)))
                    except UndecodableEvent:
                        batch.undecodable.append(position)
            for tp in list(left):
                if await self._consumer.position(tp) > left[tp]:
                    batch.ends[(tp.topic, tp.partition)] = left.pop(tp)
            await read.put(batch)
        await read.put(None)

    async def _apply(self, projector: RowsProjector, batch: _Read) -> None:
        """Apply a batch as the live path would: an event the stores refuse, or no event at all,
        is skipped in its place (the live projector dead-lettered it)."""
        worker = self._settings.worker
        skipped = list(batch.undecodable)
        try:
            await retry_store_outages(projector.name, partial(projector.apply, batch.events), worker)
        except Exception:  # noqa: BLE001 — outages are waited out: this is about the data; find the event
            for one in batch.events:
                try:
                    await retry_store_outages(projector.name, partial(projector.apply, [one]), worker)
                except Exception as refused:  # noqa: BLE001
                    log.warning("rebuild.event_skipped", projector=projector.name, at=one.position, error=repr(refused))
                    skipped.append(one.position)
        if skipped:
            await retry_store_outages(projector.name, partial(projector.skip, skipped), worker)
        self._report.events += len(batch.events) + len(batch.undecodable)
        self._report.skipped += len(skipped)
        held = self.applied[projector.name]
        for position in [*(e.position for e in batch.events), *batch.undecodable]:
            held[(position.topic, position.partition)] = max(
                held.get((position.topic, position.partition), NO_OFFSET), position.offset
            )


@dataclass
class _Read:
    """A batch read and decoded: its events, the positions that held no event, and the partitions
    it finished (with their last offset wanted)."""

    events: list[Positioned[EventEnvelope]] = field(default_factory=list)
    undecodable: list[Delivered] = field(default_factory=list)
    ends: Offsets = field(default_factory=dict)


async def _live_offsets(live: ShardPools, names: list[str]) -> dict[str, Offsets]:
    return {name: await lowest_applied_offsets([pool for _, pool in live], name) for name in names}


async def _catch_up(live: ShardPools, replay: _Replay, within: int, say: Callable[[str], None]) -> None:
    """Replay up to the live projectors' offsets (once at least: what is left is replayed while
    they wait) until the shadow is at most ``within`` behind them."""
    rounds = 0
    while True:
        targets = await _live_offsets(live, replay.names)
        behind = replay.behind(targets)
        if behind == 0 or (behind <= within and rounds > 0):
            return
        say(f"replaying {behind:,} events")
        await replay.to(targets)
        rounds += 1


async def _freeze_and_swap(
    settings: Settings,
    live: ShardPools,
    shadow: ShardPools,
    layout: ShardLayout,
    projection: PostgresProjection,
    replay: _Replay,
    swap: bool,
    report: PostgresRebuilt,
) -> list[tuple[str, asyncpg.Connection]]:
    """Freeze the live projectors, bring the shadow to exactly their offsets, snapshot every
    database, and (with ``swap``) move the tables; returns the snapshots, one per database."""
    rebuild = settings.rebuild
    for attempt in range(1, rebuild.swap_attempts + 1):
        report.freeze_attempts = attempt
        held: list[tuple[str, asyncpg.Connection]] = []
        snapshots: list[tuple[str, asyncpg.Connection]] = []
        began = time.perf_counter()
        try:
            frozen = [await _freeze(database, pool, settings, replay.names, held) for database, pool in live]
            if any(f != frozen[0] for f in frozen):
                raise _Unsettled("the databases' offsets differ (a batch between two of them)")
            await replay.to(frozen[0])
            await _shadow_at(shadow, frozen[0])
            snapshots = [(database, await _snapshot(settings, database)) for database, _ in live]
            if swap:
                replaced = f"{live.schema_name}__replaced_{projection.name}_{datetime.now(UTC):%Y%m%d%H%M%S}"
                for database, conn in held:
                    await _swap(
                        conn, projection.tables_in(layout, database), live.schema_name, shadow.schema_name, replaced
                    )
                report.replaced_schema = replaced
            for _, conn in held:
                await conn.execute("COMMIT")
            report.swapped = swap
            report.frozen_ms = (time.perf_counter() - began) * 1000
            return snapshots
        except BaseException as exc:
            for _, conn in snapshots:
                await conn.close()
            if not isinstance(exc, _Unsettled | asyncpg.LockNotAvailableError):
                raise
            log.warning("rebuild.freeze_retried", projection=projection.name, attempt=attempt, reason=str(exc))
            await asyncio.sleep(FREEZE_RETRY_S * attempt)
        finally:
            for _, conn in held:
                if conn.is_in_transaction():
                    await conn.execute("ROLLBACK")
                await conn.close()
    raise RebuildFailed(f"{projection.name}: the live projectors could not be frozen in {rebuild.swap_attempts} tries")


class _Unsettled(Exception):
    pass


async def _freeze(
    database: str, pool: asyncpg.Pool, settings: Settings, names: list[str], held: list[tuple[str, asyncpg.Connection]]
) -> dict[str, Offsets]:
    """Lock the projectors' offset rows of one database (every partition of their topics, made
    if missing) in a transaction left open; their offsets, as locked."""
    conn = await _connect(settings, database)
    held.append((database, conn))
    await conn.execute("BEGIN")
    await conn.execute(f"SET LOCAL lock_timeout = {settings.rebuild.lock_timeout_ms}")
    partitions = [
        (name, settings.kafka.topic(family), p)
        for name, family in _families(names)
        for p in range(settings.kafka.topics[family].partitions)
    ]
    await conn.execute(
        f"INSERT INTO {OFFSETS_TABLE} (projector, topic, partition, last_offset)"
        " SELECT n, t, p, $4 FROM unnest($1::text[], $2::text[], $3::int[]) AS x(n, t, p) ON CONFLICT DO NOTHING",
        [n for n, _, _ in partitions],
        [t for _, t, _ in partitions],
        [p for _, _, p in partitions],
        NO_OFFSET,
    )
    rows = await conn.fetch(
        f"SELECT projector, topic, partition, last_offset FROM {OFFSETS_TABLE}"
        " WHERE projector = ANY($1::text[]) ORDER BY projector, topic, partition FOR UPDATE",
        names,
    )
    frozen: dict[str, Offsets] = {name: {} for name in names}
    for r in rows:
        if r["last_offset"] != NO_OFFSET:
            frozen[r["projector"]][(r["topic"], r["partition"])] = r["last_offset"]
    return frozen


def _families(names: list[str]) -> list[tuple[str, str]]:
    """(projector name, topic family) for projectors named ``<group>.<kind>``."""
    by_kind = {kind: family for p in PROJECTIONS.values() for kind, family in p.projectors}
    return [(name, by_kind[name.rsplit(".", 1)[1]]) for name in names]


async def _shadow_at(shadow: ShardPools, frozen: dict[str, Offsets]) -> None:
    """Every shadow database holds exactly the frozen offsets (or the swap would lose or repeat)."""
    for database, pool in shadow:
        async with pool.acquire() as conn:
            for name, offsets in frozen.items():
                held = {tp: o for tp, o in (await applied_offsets(conn, name)).items() if o != NO_OFFSET}
                if held != offsets:
                    raise _Unsettled(f"{database}: the shadow of {name} holds {held}, the live one {offsets}")


async def _snapshot(settings: Settings, database: str) -> asyncpg.Connection:
    """A connection in a repeatable-read transaction whose snapshot is taken now."""
    conn = await _connect(settings, database)
    await conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
    await conn.fetchval("SELECT 1")
    return conn


async def _connect(settings: Settings, database: str) -> asyncpg.Connection:
    pg = settings.postgres
    return await asyncpg.connect(
        pg.dsn(database), timeout=pg.connect_timeout_s, server_settings={"search_path": pg.schema_name}
    )


async def _swap(conn: asyncpg.Connection, tables: list[str], live: str, shadow: str, replaced: str) -> None:
    await conn.execute(f'CREATE SCHEMA "{replaced}"')
    for table in tables:
        await conn.execute(f'ALTER TABLE "{live}"."{table}" SET SCHEMA "{replaced}"')
        await conn.execute(f'ALTER TABLE "{shadow}"."{table}" SET SCHEMA "{live}"')


async def _compare(
    snapshots: list[tuple[str, asyncpg.Connection]],
    layout: ShardLayout,
    projection: PostgresProjection,
    before: str,
    after: str,
) -> list[TableComparison]:
    compared = []
    for database, conn in snapshots:
        for table in projection.tables_in(layout, database):
            rows_before, hash_before = await _table_hash(conn, before, table)
            rows_after, hash_after = await _table_hash(conn, after, table)
            comparison = TableComparison(database, table, (rows_before, rows_after), (hash_before, hash_after))
            if not comparison.equal:
                comparison.differences = await _differences(conn, before, after, table)
            compared.append(comparison)
    return compared


def _row_digest(alias: str) -> str:
    ignored = " - ".join(f"'{c}'" for c in IGNORED_COLUMNS)
    return f"md5((to_jsonb({alias}) - {ignored})::text)"


async def _table_hash(conn: asyncpg.Connection, schema: str, table: str) -> tuple[int, str]:
    """(rows, the sum of the rows' digests): equal tables, equal sums, whatever the rows' order."""
    row = await conn.fetchrow(
        f"SELECT count(*) AS rows, coalesce(sum(('x' || substr({_row_digest('t')}, 1, 15))::bit(60)::bigint), 0)"
        f' AS digest FROM "{schema}"."{table}" t'
    )
    assert row is not None
    return int(row["rows"]), format(int(row["digest"]), "x")


async def _differences(conn: asyncpg.Connection, before: str, after: str, table: str) -> list[str]:
    """The first rows (by primary key) that differ between the two tables."""
    key_columns = await conn.fetch(
        "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)"
        " WHERE i.indrelid = $1::regclass AND i.indisprimary ORDER BY array_position(i.indkey, a.attnum)",
        f'"{after}"."{table}"',
    )
    key = "jsonb_build_array(" + ", ".join(f't."{c["attname"]}"' for c in key_columns) + ")::text"
    rows = await conn.fetch(
        f"SELECT coalesce(b.k, a.k) AS k, b.d IS NULL AS added, a.d IS NULL AS missing"
        f' FROM (SELECT {key} AS k, {_row_digest("t")} AS d FROM "{before}"."{table}" t) b'
        f' FULL JOIN (SELECT {key} AS k, {_row_digest("t")} AS d FROM "{after}"."{table}" t) a ON a.k = b.k'
        f" WHERE a.d IS DISTINCT FROM b.d ORDER BY 1 LIMIT {DIFFERENCES_SHOWN}"
    )
    return [f"{r['k']}: {'only rebuilt' if r['added'] else 'only before' if r['missing'] else 'differs'}" for r in rows]
