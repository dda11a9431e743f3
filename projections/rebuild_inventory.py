"""Rebuild one program's Redis purchase state from the log, or compare the two, while the system runs.

What the program's keys hold is a function of the log (``projections/inventory_log.py``). The
rebuild replaces them in one MULTI/EXEC: a reader or a decision sees the old state or the new,
never a mix. The command side's snapshots (``{p:<id>}:aggregate:*``) are not the inventory's and are
left alone (``projections/redis_hashes.py:purchase_state_keys``).

Decisions made while the log is read are not lost. Redis is written before the log (ADR 0008), so
each attempt:

1. WATCHes the remaining counts and the applied catalogue events (every hold, release and
   catalogue change writes one of them), then every decision key there is;
2. reads the log and computes the state, and from it the keys it describes;
3. compares the status of each decision in Redis with the log's: a decision the log does not show
   yet (appended a moment after Redis) means the log is behind, so it reads again;
4. WATCHes every key it is to write as well, then reads the contents of every key it deletes or
   writes: the "before";
5. writes them; a watched key changed meanwhile aborts the write, and it starts again.

Each attempt reads the log on from where the previous one ended (``ProgramLogs``); over every
program (``damai rebuild redis``), one reader serves them all, so the order topic is read once.

The proof of a rebuild is the hash of those keys before and after (``projections/redis_hashes.py``).
The before is read under WATCH, so an attempt that writes replaced exactly what it read. The after
is the contents the transaction writes, not a read after EXEC: by then a live decision may have
changed a key, and the difference would not be the rebuild's. ``tests/e2e/test_rebuild_inventory.py``
holds the two equal on a program with nothing to repair, and the after equal to a read-back.

``compare_program_state`` (``damai verify redis``) runs the same attempt and writes nothing: its
EXEC is empty and fails, like the write, when a watched key changed after the read. A difference
can still be a moment's: a catalogue event the inventory projector has not applied yet (the log is
ahead of Redis there), a rejected decision at the end of its TTL. So it reads again after a
difference, and reports one that stays the same across two attempts, or the last attempt's.

After ``attempts`` tries either refuses (``RebuildRefused``): a program selling fast enough to
change its state during every read must be paused first (taken off sale). A rejection decided
after the program's keys were listed and not in the log yet is neither watched nor overwritten; it
survives as it is. The one case a rebuild cannot see: the keys were already lost (deleted, a Redis
without its data) while a decision made before the loss had not reached the log; that decision is
missing from the rebuilt state until its event lands and the rebuild runs again (``damai verify
orders`` reports it).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import WatchError

from infra.redis_keys import (
    SEAT_ROW_STRIDE,
    account_tickets,
    available_seats,
    category_columns,
    category_show_times,
    hold_sequence,
    inventory_applied,
    order_decision,
    remaining_counts,
    seat_categories,
    seat_facts,
    show_documents,
    ticket_category_price_versions,
    ticket_category_prices,
)
from infra.settings import Settings
from projections.inventory_log import LIVE, InventoryState, ProgramLogs, TicketCategory
from projections.redis_hashes import (
    Contents,
    HashKey,
    KeyDifference,
    KeyHashes,
    ListKey,
    SetKey,
    SortedSetKey,
    StringKey,
    differences,
    purchase_state_keys,
    read_contents,
)

REBUILD_ATTEMPTS = 5
"""Reads of the log before the rebuild gives up on a program whose state keeps changing."""
RETRY_PAUSE_S = 0.5
"""Time for the log to catch up with Redis between two attempts."""


class RebuildRefused(Exception):
    """The program's state changed during every attempt; pause its sale and run again."""


@dataclass(frozen=True)
class Rebuilt:
    program_id: int
    catalogue_events: int
    decisions: int
    live_orders: int
    attempts: int
    before: KeyHashes
    """The keys the rebuild deleted or wrote, as they were just before its write."""
    after: KeyHashes
    """The same keys as it wrote them."""
    differences: tuple[KeyDifference, ...]
    """Each key whose contents the rebuild changed, and how ("in Redis" is before, "from the log" after)."""

    @property
    def unchanged(self) -> bool:
        return self.before.digest == self.after.digest


@dataclass(frozen=True)
class Compared:
    """The program's keys in Redis beside the keys its log describes, read at one moment."""

    program_id: int
    redis: KeyHashes
    log: KeyHashes
    differences: tuple[KeyDifference, ...]
    attempts: int

    @property
    def ok(self) -> bool:
        return self.redis.digest == self.log.digest

    def same_as(self, other: Compared | None) -> bool:
        return other is not None and (other.redis.digest, other.log.digest) == (self.redis.digest, self.log.digest)


@dataclass(frozen=True)
class _Reading:
    """One attempt's reading, under WATCH: the keys as Redis holds them and as the log describes them."""

    state: InventoryState
    footprint: list[bytes]
    """The keys listed in Redis and those the log describes: the ones a rebuild deletes or writes."""
    redis: dict[bytes, Contents]
    log: dict[bytes, Contents]
    ttls: dict[bytes, int]
    """The TTL of each key of ``log`` that has one (rejected and ended decisions)."""

    def hashes(self) -> tuple[KeyHashes, KeyHashes, tuple[KeyDifference, ...]]:
        """The hashes of the keys in Redis and from the log, and how the differing ones differ."""
        redis, log = KeyHashes.of(self.redis), KeyHashes.of(self.log)
        return redis, log, tuple(differences(self.redis, self.log, redis.differing(log)))


async def rebuild_program_inventory(
    settings: Settings,
    redis: Redis,
    program_id: int,
    *,
    attempts: int = REBUILD_ATTEMPTS,
    logs: ProgramLogs | None = None,
) -> Rebuilt:
    """Replace the program's Redis purchase state with the one its log describes, and say what
    changed. ``logs``: a reader of the log shared by several programs' rebuilds (else one of its own)."""
    async with _reading(settings, program_id, logs) as reader:
        return await _rebuild(settings, redis, program_id, attempts, reader)


async def _rebuild(settings: Settings, redis: Redis, program_id: int, attempts: int, logs: ProgramLogs) -> Rebuilt:
    behind: list[int] = []
    for attempt in range(1, attempts + 1):
        async with redis.pipeline(transaction=True) as pipe:
            reading = await _read_watched(settings, redis, pipe, program_id, logs)
            if isinstance(reading, _Reading):
                pipe.multi()  # type: ignore[no-untyped-call]
                _write(pipe, reading)
                try:
                    await pipe.execute()
                except WatchError:
                    pass
                else:
                    state = reading.state
                    before, after, changed = reading.hashes()
                    return Rebuilt(
                        program_id,
                        len(state.applied),
                        len(state.orders),
                        state.live_orders,
                        attempt,
                        before,
                        after,
                        changed,
                    )
            else:
                behind = reading
        await asyncio.sleep(RETRY_PAUSE_S)
    raise RebuildRefused(_refusal(program_id, attempts, behind))


async def compare_program_state(
    settings: Settings,
    redis: Redis,
    program_id: int,
    *,
    attempts: int = REBUILD_ATTEMPTS,
    logs: ProgramLogs | None = None,
) -> Compared:
    """The program's purchase state in Redis compared with the one its log describes; writes nothing."""
    async with _reading(settings, program_id, logs) as reader:
        return await _compare(settings, redis, program_id, attempts, reader)


async def _compare(settings: Settings, redis: Redis, program_id: int, attempts: int, logs: ProgramLogs) -> Compared:
    behind: list[int] = []
    previous: Compared | None = None
    for attempt in range(1, attempts + 1):
        async with redis.pipeline(transaction=True) as pipe:
            reading = await _read_watched(settings, redis, pipe, program_id, logs)
            if isinstance(reading, _Reading):
                pipe.multi()  # type: ignore[no-untyped-call]
                try:
                    await pipe.execute()  # empty: it only says whether a watched key changed since the read
                except WatchError:
                    pass
                else:
                    compared = Compared(program_id, *reading.hashes(), attempts=attempt)
                    if compared.ok or compared.same_as(previous) or attempt == attempts:
                        return compared
                    previous = compared
            else:
                behind = reading
        await asyncio.sleep(RETRY_PAUSE_S)
    raise RebuildRefused(_refusal(program_id, attempts, behind))


def _refusal(program_id: int, attempts: int, behind: list[int]) -> str:
    return (
        f"program {program_id} changed during each of {attempts} attempts"
        + (f" (Redis ahead of the log for orders {', '.join(map(str, behind[:5]))})" if behind else "")
        + "; take it off sale and run again"
    )


@asynccontextmanager
async def _reading(settings: Settings, program_id: int, logs: ProgramLogs | None) -> AsyncIterator[ProgramLogs]:
    """``logs``, or a reader of the program's log of its own (each attempt reads on from the last)."""
    if logs is not None:
        yield logs
        return
    async with ProgramLogs(settings, [program_id]) as own:
        yield own


async def _read_watched(
    settings: Settings, redis: Redis, pipe: Pipeline, program_id: int, logs: ProgramLogs
) -> _Reading | list[int]:
    """Steps 1 to 4 of an attempt (the module's docstring) on ``pipe``, left WATCHing for the EXEC;
    or the orders whose decision in Redis the log does not show yet."""
    p = program_id
    await pipe.watch(remaining_counts(p), inventory_applied(p))
    listed = await purchase_state_keys(redis, p)
    decision_prefix = order_decision(p, 0)[:-1].encode()
    decision_keys = [k for k in listed if k.startswith(decision_prefix)]
    if decision_keys:
        await pipe.watch(*decision_keys)
    state = await logs.state(p)
    if behind := await _decisions_ahead_of_log(pipe, decision_keys, state):
        return behind
    log, ttls = _keys_of(p, state, settings.orders.view_ttl_s, datetime.now(UTC))
    footprint = sorted(set(listed) | log.keys())
    if footprint:
        await pipe.watch(*footprint)
    # Read on another connection: the WATCH above already covers the keys, so a change after it
    # fails the EXEC, and a successful EXEC means these are the contents it replaced.
    return _Reading(state, footprint, await read_contents(redis, footprint), log, ttls)


async def _decisions_ahead_of_log(pipe: Pipeline, decision_keys: list[bytes], state: InventoryState) -> list[int]:
    """Orders whose decision in Redis says something the log does not (yet)."""
    if not decision_keys:
        return []
    ahead = []
    for raw in await pipe.mget(decision_keys):
        if raw is None:
            continue
        try:
            decision = json.loads(raw)
            number, status = int(decision["o"]), decision["status"]
        except (ValueError, KeyError, TypeError):
            continue  # unreadable: the rebuild replaces it
        known = state.orders.get(number)
        if known is None or known.decision["status"] != status:
            ahead.append(number)
    return ahead


# -- the keys the log describes -----------------------------------------------------------------


def _keys_of(
    p: int, state: InventoryState, ttl_s: int, now: datetime
) -> tuple[dict[bytes, Contents], dict[bytes, int]]:
    """The program's keys as the state describes them (what the scripts would have left), and the
    TTL of those that have one: rejected and ended decisions get what is left of ``ttl_s`` from
    their last change, and are left out once it is spent."""
    hashes: dict[str, dict[str, str]] = {}
    strings: dict[str, str] = {}
    ttls: dict[str, int] = {}
    taken: dict[int, int] = {}
    held_seats: set[str] = set()
    accounts: dict[str, int] = {}
    for d in (o.decision for o in state.orders.values() if o.status in LIVE):
        for seat, tc, *_ in d["t"]:
            taken[int(tc)] = taken.get(int(tc), 0) + 1
            held_seats.add(seat)
        accounts[d["u"]] = accounts.get(d["u"], 0) + len(d["t"])
        for blind in d.get("d", ()):
            hashes.setdefault(show_documents(p, int(d["st"])), {})[blind] = d["o"]
    zsets: dict[str, dict[str, float]] = {}
    for tc, c in state.categories.items():
        if c.total is not None or tc in taken:
            hashes.setdefault(remaining_counts(p), {})[str(tc)] = str((c.total or 0) - taken.get(tc, 0))
        if c.show_time_id is not None:
            hashes.setdefault(category_show_times(p), {})[str(tc)] = str(c.show_time_id)
        if c.price is not None:
            hashes.setdefault(ticket_category_prices(p), {})[str(tc)] = c.price
            hashes.setdefault(ticket_category_price_versions(p), {})[str(tc)] = str(c.price_version)
        if c.seats:
            _seat_keys(p, tc, c, held_seats, hashes, zsets)
    if state.hold_sequence:
        strings[hold_sequence(p)] = str(state.hold_sequence)
    for user, tickets in accounts.items():
        strings[account_tickets(p, int(user))] = str(tickets)
    for number, order in state.orders.items():
        key = order_decision(p, number)
        if order.status in LIVE:
            strings[key] = json.dumps(order.decision, separators=(",", ":"))
        elif (left := ttl_s - int((now - order.changed_at).total_seconds())) > 0:
            strings[key], ttls[key] = json.dumps(order.decision, separators=(",", ":")), left
    keys: dict[bytes, Contents] = {}
    if state.applied:
        keys[inventory_applied(p).encode()] = SetKey(frozenset(e.encode() for e in state.applied))
    for key, fields in hashes.items():
        keys[key.encode()] = HashKey({f.encode(): v.encode() for f, v in fields.items()})
    for key, scores in zsets.items():
        keys[key.encode()] = SortedSetKey({m.encode(): s for m, s in scores.items()})
    for key, value in strings.items():
        keys[key.encode()] = StringKey(value.encode())
    return keys, {k.encode(): ttl for k, ttl in ttls.items()}


def _seat_keys(
    p: int,
    tc: int,
    category: TicketCategory,
    held_seats: set[str],
    hashes: dict[str, dict[str, str]],
    zsets: dict[str, dict[str, float]],
) -> None:
    """A seated category's keys: its seat facts, the seats' category, its columns, its available seats."""
    seats = category.seats
    hashes[seat_facts(p, tc)] = {str(s): f"{row}:{column}" for s, (row, column) in seats.items()}
    hashes.setdefault(seat_categories(p), {}).update({str(s): str(tc) for s in seats})
    columns = [column for _, column in seats.values()]
    hashes.setdefault(category_columns(p), {}).update({f"{tc}:min": str(min(columns)), f"{tc}:max": str(max(columns))})
    available = {
        str(s): float(row * SEAT_ROW_STRIDE + column) for s, (row, column) in seats.items() if str(s) not in held_seats
    }
    if available:
        zsets[available_seats(p, tc)] = available


def _write(pipe: Pipeline, reading: _Reading) -> None:
    """Queue the replacement of the footprint's keys by the log's (inside MULTI)."""
    if reading.footprint:
        pipe.delete(*reading.footprint)
    for key, contents in reading.log.items():
        match contents:
            case StringKey(value):
                pipe.set(key, value, ex=reading.ttls.get(key))
            case HashKey(fields):
                pipe.hset(key, mapping=dict(fields))  # type: ignore[arg-type]
            case SetKey(members):
                pipe.sadd(key, *members)
            case SortedSetKey(scores):
                pipe.zadd(key, dict(scores))
            case ListKey(items):
                pipe.rpush(key, *items)
