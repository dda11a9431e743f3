"""Replaying the purchase path's log into an empty namespace (issue 11): a real purchase mix sold
in namespace A (holds, every kind of rejection the mix can meet, a cancel, an expiry, a payment),
its catalogue, ``order-requests`` and ``order`` topics copied unchanged into namespace B
(``projections/replay.py``), the log's decisions written into B's Redis (``damai rebuild
inventory``: a request is decided once, against the clock of its time — its deadline, its payment
deadline — so a replay takes the decisions from the log instead of deciding again), B's
processors run over the copy, and B's orders, order tickets, seat rows and Redis program state
hashed and compared with A's.

Left out of the comparison, being the time a row or key was written rather than anything the log
says: ``updated_at`` of order and seat rows (``now()`` when the projector writes them) and the TTL
of Redis decisions (rejected and ended decisions are kept ``DAMAI_ORDERS__VIEW_TTL_S`` from when
they were decided). Also left out: the command side's snapshot of each program
(``{p:<id>}:aggregate:<log>``), which the API writes when it decides a command and names after its
log's namespace; it is no projection of the log.

B uses a Redis database of its own: the program keys carry the program's id, not the namespace.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

import jwt
import orjson
import pytest
import pytest_asyncio
from redis.asyncio import Redis

from cli.provision import provision_namespace, remove_namespace
from events.envelope import EventEnvelope
from events.order import PaymentConfirmed
from infra.kafka import EventPublisher
from infra.postgres.pools import ShardPools
from infra.postgres.routing import shard_layout
from infra.postgres.sharded import ShardedDatabase
from infra.redis import create_redis
from infra.redis_keys import order_decision, order_expiries, program_keys_pattern
from infra.settings import Settings
from projections.rebuild_inventory import rebuild_program_inventory
from projections.replay import CATALOGUE_FAMILIES, ORDER_FAMILIES, copy_families
from queries.views import programs
from tests.conftest import isolated_copy
from tests.consumer_groups import caught_up
from tests.e2e.conftest import System, buyers_env
from tests.e2e.test_admin_programs import _published, program_body
from tests.e2e.test_allocation import automatic, chosen, on_sale, order
from tests.e2e.test_order_requests import Buyer, signed_in_buyer
from tests.processes import Child, eventually

pytestmark = pytest.mark.slow
PAYMENT_WINDOW_S = 2
DECISION_DEADLINE_S = 3
REBUILD_REDIS_DB = 2
SETTLED_S = 60
PROCESSING_TIME_COLUMNS = {"order": {"updated_at"}, "order_ticket": set[str](), "seat": {"updated_at"}}


@pytest.fixture(scope="module")
def api_env() -> dict[str, str]:
    return buyers_env(DAMAI_ORDERS__DECISION_DEADLINE_S=str(DECISION_DEADLINE_S))


@dataclass
class Sale:
    """What namespace A sold: its programs, each order's outcome, and the state it settled in."""

    program_ids: list[int]
    outcomes: dict[int, tuple[str, str | None]] = field(default_factory=dict)
    """order number → (status, reject reason) as the order tables will show it."""
    state: dict[str, Any] = field(default_factory=dict)


@pytest_asyncio.fixture(scope="module")
async def sale(system: System, catalogue: ShardedDatabase, tmp_path_factory) -> AsyncIterator[Sale]:
    logs = tmp_path_factory.mktemp("sale")
    short = {"DAMAI_ORDERS__PAYMENT_WINDOW_S": str(PAYMENT_WINDOW_S)}
    children = {
        "lifecycle": Child(["cli.main", "lifecycle"], system.settings, logs / "lifecycle.log"),
        "allocator": Child(["cli.main", "allocator"], system.settings, logs / "allocator-short.log", short),
    }
    publisher = EventPublisher(system.settings.kafka)
    await publisher.start()
    redis = create_redis(system.settings.redis)
    try:
        made = await _sell(system, catalogue, children, publisher, logs)
        await eventually(lambda: _projected(catalogue, made.outcomes), SETTLED_S, "A's orders in its order tables")
        made.state = await purchase_state(system.settings, redis, made.program_ids)
        yield made
    finally:
        for child in children.values():
            child.stop()
        await publisher.stop()
        await redis.aclose()


async def _sell(
    system: System, catalogue: ShardedDatabase, children: dict[str, Child], publisher: EventPublisher, logs: Path
) -> Sale:
    """Sell a seated program (2 rows of 5, chosen or automatic seats) and a general-admission one
    with real names (6 tickets): holds that expire, a request decided after its deadline, and then
    holds, a rejection of each kind, a cancel and a payment."""
    seated = await on_sale(system, catalogue, rows=2, columns=5, perAccountLimit=4, perOrderLimit=4)
    standing = await _standing_on_sale(system, catalogue, total=6)
    sale = Sale([seated["program"], standing["program"]])
    b1, b2, b3, b4 = [await signed_in_buyer(system) for _ in range(4)]
    r1, r2, r3 = [await signed_in_buyer(system, buyers=n) for n in (3, 4, 4)]

    # Holds with a payment window of seconds: they expire.
    expiring = [
        await order(system, b1, automatic(seated, 2)),
        await order(system, r1, automatic(standing, 2, ticketBuyerIds=r1.ticket_buyer_ids[::2])),
    ]
    for answer in expiring:
        assert answer.status_code == 201, answer.text
        sale.outcomes[int(answer.json()["orderNumber"])] = ("expired", None)
    for answer, buyer in zip(expiring, (b1, r1), strict=True):
        await eventually(partial(_status_is, system, buyer, answer, "expired"), 10, "the expiry")

    # A request that waits for an allocator longer than its decision deadline.
    children["allocator"].stop()
    late = await system.http.post("/api/v1/orders", json=automatic(seated, 1), headers=b2.auth)
    assert late.status_code == 202, late.text
    await asyncio.sleep(DECISION_DEADLINE_S + 0.5)
    children["allocator"] = Child(["cli.main", "allocator"], system.settings, logs / "allocator.log")
    await eventually(lambda: _status_is(system, b2, late, "rejected"), 30, "the late request's decision")
    sale.outcomes[int(late.json()["orderNumber"])] = ("rejected", "DEADLINE_PASSED")

    mix = [
        (b1, chosen(seated, (1, 3)), None),
        (b2, chosen(seated, (1, 3)), "SEAT_UNAVAILABLE"),
        (b2, chosen(seated, (1, 1), price="800.00"), "PRICE_CHANGED"),
        (b1, automatic(seated, 4), "PER_ACCOUNT_LIMIT"),
        (b2, automatic(seated, 2), None),
        (b3, chosen(seated, (2, 3)), None),
        (b4, automatic(seated, 3), "NO_ADJACENT_SEATS"),
        (r1, automatic(standing, 2, ticketBuyerIds=r1.ticket_buyer_ids[:2]), None),
        (r1, automatic(standing, 1, ticketBuyerIds=r1.ticket_buyer_ids[:1]), "TICKET_BUYER_HAS_TICKET"),
    ]
    for buyer, body, reason in mix:
        answer = await order(system, buyer, body)
        assert _outcome(answer) == ("unpaid" if reason is None else "rejected", reason), answer.text
        sale.outcomes[int(_order_number(answer))] = _outcome(answer)
    # Two buyers for the last 4 general-admission tickets at once: one holds them, the other is
    # turned away (by the allocator, or by the API's sold-out flag, which appends nothing).
    crowd = await asyncio.gather(
        *(order(system, r, automatic(standing, 4, ticketBuyerIds=r.ticket_buyer_ids)) for r in (r2, r3))
    )
    assert sorted(a.status_code for a in crowd) == [201, 409], [a.text for a in crowd]
    sale.outcomes |= {int(_order_number(a)): _outcome(a) for a in crowd if _order_number(a)}

    cancelled = await order(system, b3, automatic(seated, 2))
    ended = await system.http.post(f"/api/v1/orders/{_order_number(cancelled)}/cancel", headers=b3.auth)
    assert ended.status_code == 200, ended.text
    sale.outcomes[int(_order_number(cancelled))] = ("cancelled", None)

    paid = await order(system, b4, automatic(seated, 2))
    assert paid.status_code == 201, paid.text
    await _confirm_payment(publisher, seated["program"], paid.json(), b4)
    await eventually(lambda: _status_is(system, b4, paid, "paid"), 10, "the payment")
    sale.outcomes[int(_order_number(paid))] = ("paid", None)
    return sale


async def _standing_on_sale(system: System, catalogue: ShardedDatabase, total: int) -> dict[str, Any]:
    """A general-admission program (one category counted by ``total``) that requires real names."""
    body = program_body(seatSelectable=False, realNameRequired=True, perAccountLimit=6, perOrderLimit=4)
    body["showTimes"][0]["ticketCategories"] = [{"name": "站票", "price": "280.00", "total": total}]
    program_id = await _published(system, catalogue, body)
    [show_time] = await programs.show_times_of(catalogue, program_id)
    [category] = await programs.ticket_categories_of(catalogue, program_id)
    return {"program": program_id, "show": show_time.id, "category": category.id, "seats": {}}


def _order_number(answer: Any) -> str:
    """The answer's order number ("" for a refusal before the log)."""
    body = answer.json()
    number: str = body.get("orderNumber") or body.get("details", {}).get("orderNumber") or ""
    return number


def _outcome(answer: Any) -> tuple[str, str | None]:
    body = answer.json()
    return ("unpaid", None) if answer.status_code == 201 else ("rejected", body.get("code"))


async def _status_is(system: System, buyer: Buyer, placed: Any, status: str) -> bool:
    view = await system.http.get(f"/api/v1/orders/{_order_number(placed)}", headers=buyer.auth)
    return bool(view.json()["status"] == status)


async def _confirm_payment(publisher: EventPublisher, program_id: int, placed: dict[str, Any], buyer: Buyer) -> None:
    """What the payments issue's notification handler will append; appended here directly."""
    token = buyer.auth["Authorization"].split()[1]
    confirmed = PaymentConfirmed(
        order_number=int(placed["orderNumber"]),
        user_id=int(jwt.decode(token, options={"verify_signature": False})["sub"]),
        program_id=program_id,
        payment_id=f"pay-{placed['orderNumber']}",
        amount=Decimal(placed["totalAmount"]),
        paid_at=datetime.now(UTC),
    )
    await publisher.append([EventEnvelope.wrap(confirmed, aggregate_version=1)], 10)


async def _projected(db: ShardedDatabase, outcomes: dict[int, tuple[str, str | None]]) -> bool:
    found = {}
    for number in outcomes:
        row = await db.fetchrow(
            db.layout.order(number), "SELECT status, reject_reason FROM {table} WHERE order_number = $1", number
        )
        found[number] = (row["status"], row["reject_reason"]) if row else None
    return found == outcomes


# The state compared ---------------------------------------------------------------------------


async def purchase_state(settings: Settings, redis: Redis, program_ids: list[int]) -> dict[str, Any]:
    """The programs' orders, order tickets and seat rows from the namespace's shards, and their
    Redis keys, normalised (sorted, processing times left out, values as text)."""
    pools = ShardPools(settings.postgres)
    await pools.start()
    db = ShardedDatabase(pools, shard_layout(settings))
    try:
        orders = await _rows(db, "order", "program_id = ANY($1::bigint[])", program_ids)
        numbers = [o["order_number"] for o in orders]
        tickets = await _rows(db, "order_ticket", "order_number = ANY($1::bigint[])", numbers)
        seats = await _rows(db, "seat", "program_id = ANY($1::bigint[])", program_ids)
    finally:
        await pools.stop()
    return {
        "orders": sorted(orders, key=lambda r: r["order_number"]),
        "order tickets": sorted(tickets, key=lambda r: (r["order_number"], r["ticket_index"])),
        "seats": sorted(seats, key=lambda r: r["id"]),
        "redis": {str(p): await program_keys(redis, p) for p in program_ids},
    }


async def _rows(db: ShardedDatabase, family: str, where: str, arg: list[int]) -> list[dict[str, Any]]:
    """Every row of the family's physical tables that matches (a full route: a test's check)."""
    found = []
    for shard in db.layout.physical_tables(family):
        for record in await db.fetch(shard, f"SELECT * FROM {{table}} WHERE {where}", arg):
            found.append({k: _text(v) for k, v in dict(record).items() if k not in PROCESSING_TIME_COLUMNS[family]})
    return found


def _text(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


async def program_keys(redis: Redis, program_id: int) -> dict[str, Any]:
    """Every key of the program's purchase state with its contents (decisions parsed: their JSON's
    key order is the encoder's), but the command side's snapshot."""
    found: dict[str, Any] = {}
    decisions = order_decision(program_id, 0)[:-1].encode()
    async for key in redis.scan_iter(match=program_keys_pattern(program_id)):
        if b":aggregate:" in key:
            continue
        kind = await redis.type(key)
        value: Any
        if key.startswith(decisions):
            value = json.loads(_decoded(await redis.get(key)))
        elif kind == b"hash":
            value = sorted((_decoded(k), _decoded(v)) for k, v in (await redis.hgetall(key)).items())
        elif kind == b"zset":
            scored: list[Any] = await redis.zrange(key, 0, -1, withscores=True)
            value = [(_decoded(m), score) for m, score in scored]
        elif kind == b"set":
            value = sorted(_decoded(m) for m in await redis.smembers(key))
        else:
            value = _decoded(await redis.get(key))
        found[_decoded(key)] = value
    return dict(sorted(found.items()))


def _decoded(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def digest(part: Any) -> str:
    return hashlib.sha256(orjson.dumps(part, option=orjson.OPT_SORT_KEYS)).hexdigest()


def assert_same_state(replayed: dict[str, Any], original: dict[str, Any]) -> None:
    """Each part's hash equal; where one differs, the first differences in the message."""
    assert original.get("orders", original.get("seats")), "nothing was sold"
    differing = {part: _differences(replayed[part], original[part]) for part in original}
    differing = {part: found for part, found in differing.items() if digest(replayed[part]) != digest(original[part])}
    assert not differing, f"the replay differs from the original: {differing}"


def _differences(replayed: Any, original: Any, shown: int = 5) -> list[str]:
    if isinstance(original, dict):
        keys = sorted(set(original) | set(replayed))
        pairs: Iterable[tuple[Any, Any, Any]] = ((k, replayed.get(k), original.get(k)) for k in keys)
    else:
        pairs = ((i, replayed[i] if i < len(replayed) else None, o) for i, o in enumerate(original))
        if len(replayed) > len(original):
            pairs = [*pairs, ("extra", replayed[len(original) :], None)]
    return [f"{k}: replayed {r!r}, original {o!r}" for k, r, o in pairs if r != o][:shown]


# The replay -----------------------------------------------------------------------------------


@dataclass
class Replay:
    """Namespace B: empty, on a Redis database of its own, its processors started by the test."""

    settings: Settings
    redis: Redis
    logs: Path
    children: list[Child] = field(default_factory=list)

    def start(self, command: str) -> None:
        env = {"DAMAI_REDIS__DB": str(self.settings.redis.db)}
        self.children.append(Child(["cli.main", command], self.settings, self.logs / f"{command}.log", env))


@asynccontextmanager
async def empty_namespace(settings: Settings, sale: Sale, redis_db: int, logs: Path) -> AsyncIterator[Replay]:
    """Namespace B on Redis database ``redis_db``, without a key of A's programs; removed after."""
    iso = isolated_copy(settings)
    iso = iso.model_copy(update={"redis": iso.redis.model_copy(update={"db": redis_db})})
    await provision_namespace(iso)
    redis = create_redis(iso.redis)
    b = Replay(iso, redis, logs)
    try:
        for program_id in sale.program_ids:
            assert not await program_keys(redis, program_id), "namespace B's Redis is not empty"
        yield b
    finally:
        for child in b.children:
            child.stop()
        for program_id in sale.program_ids:
            keys = [k async for k in redis.scan_iter(match=program_keys_pattern(program_id))]
            if keys:
                await redis.unlink(*keys)
        await redis.aclose()
        await remove_namespace(iso)


async def copy_catalogue(system: System, b: Replay) -> None:
    """The catalogue, copied and projected in B before any order: the allocator decides against it."""
    copied = await copy_families(system.settings.kafka, b.settings.kafka, CATALOGUE_FAMILIES)
    assert copied["program"], copied
    b.start("worker")
    for family in CATALOGUE_FAMILIES:
        await eventually(partial(_caught_up, b.settings, b.settings.worker.projector_group, family), 60, family)


async def settled(b: Replay) -> bool:
    """Every request decided, every event applied, no hold past its deadline left to end."""
    s = b.settings
    now_ms = time.time() * 1000
    for partition in range(s.kafka.topics["order"].partitions):
        if await b.redis.zcount(order_expiries(s.orders.key_prefix, partition), "-inf", now_ms):
            return False
    return (
        await _caught_up(s, s.worker.allocator_group, "order-requests")
        and await _caught_up(s, s.worker.lifecycle_group, "order")
        and await _caught_up(s, s.worker.projector_group, "order")
    )


async def _caught_up(settings: Settings, group: str, family: str) -> bool:
    return await caught_up(settings, group, settings.kafka.topic(family), settings.kafka.topics[family].partitions)


@pytest_asyncio.fixture(scope="module")
async def rebuilt(system: System, settings: Settings, sale: Sale, tmp_path_factory) -> AsyncIterator[dict[str, Any]]:
    """Namespace B's state after a replay that writes the log's decisions into Redis first
    (`damai rebuild inventory`): every request the allocator then reads is decided already, and it
    answers that decision again; the lifecycle ends nothing the log did not."""
    async with empty_namespace(settings, sale, REBUILD_REDIS_DB, tmp_path_factory.mktemp("rebuilt")) as b:
        await copy_catalogue(system, b)
        await copy_families(system.settings.kafka, b.settings.kafka, ORDER_FAMILIES)
        for program_id in sale.program_ids:
            await rebuild_program_inventory(b.settings, b.redis, program_id)
        b.start("allocator")
        b.start("lifecycle")
        await eventually(lambda: settled(b), SETTLED_S, "the replay to settle")
        yield await purchase_state(b.settings, b.redis, sale.program_ids)


async def test_a_replay_that_rebuilds_the_decisions_first_makes_the_same_orders_and_redis_state(
    sale: Sale, rebuilt: dict[str, Any]
):
    parts = ("orders", "order tickets", "redis")
    assert_same_state({p: rebuilt[p] for p in parts}, {p: sale.state[p] for p in parts})


async def test_a_replay_that_rebuilds_the_decisions_first_makes_the_same_seat_rows(sale: Sale, rebuilt: dict[str, Any]):
    # Each seat row follows the hold sequence, not the order the projector applies the orders'
    # partitions in (projections/order_projector.py).
    assert_same_state({"seats": rebuilt["seats"]}, {"seats": sale.state["seats"]})
