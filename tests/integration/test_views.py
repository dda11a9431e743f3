"""Each access path reads exactly one shard table; full routes are named and visit them all."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest_asyncio

from infra.ids.layout import GENE_BITS
from infra.postgres.pools import ShardPools
from infra.postgres.routing import Shard, shard_layout
from infra.postgres.views import bills, orders, programs, users
from infra.postgres.views.sharded import ShardedDatabase

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


class QueryLog:
    def __init__(self) -> None:
        self.queries: list[tuple[str, str]] = []

    def __call__(self, database: str, query: str) -> None:
        self.queries.append((database, query))

    def shards_touched(self) -> set[tuple[str, str]]:
        """(database, physical table) of every logged query."""
        touched = set()
        for database, query in self.queries:
            words = query.replace("(", " ").split()
            touched.add((database, words[words.index("FROM") + 1] if "FROM" in words else words[2]))
        return touched


@pytest_asyncio.fixture
async def db(isolated) -> AsyncIterator[tuple[ShardedDatabase, QueryLog]]:
    log = QueryLog()
    pools = ShardPools(isolated.postgres, observer=log)
    await pools.start()
    yield ShardedDatabase(pools, shard_layout(isolated)), log
    await pools.stop()


async def _insert(db: ShardedDatabase, shard: Shard, sql: str, *args: object) -> None:
    await db.pools[shard.database].execute(sql.format(table=shard.table), *args)


def _mobile(user_id: int) -> str:
    return f"139{user_id % 10**8:08d}"


async def _a_user_with_orders(db: ShardedDatabase, user_id: int, count: int) -> list[int]:
    layout = db.layout
    blind = layout.mobile_blind(_mobile(user_id))
    await _insert(
        db,
        layout.user(user_id),
        "INSERT INTO {table} (id, mobile_cipher, mobile_blind, password_hash, aggregate_version, created_at)"
        " VALUES ($1, $2, $3, 'argon2id$x', 1, $4)",
        user_id,
        b"cipher",
        blind,
        NOW,
    )
    await _insert(
        db,
        layout.user_mobile(blind),
        "INSERT INTO {table} (mobile_blind, user_id, aggregate_version, created_at) VALUES ($1, $2, 1, $3)",
        blind,
        user_id,
        NOW,
    )
    await _insert(
        db,
        layout.ticket_buyers(user_id),
        "INSERT INTO {table} (id, user_id, name_cipher, id_type, id_number_cipher, id_number_blind,"
        " aggregate_version, created_at) VALUES ($1, $2, 'n', 1, 'c', 'b', 1, $3)",
        user_id + 1,
        user_id,
        NOW,
    )
    numbers = []
    for i in range(count):
        number = ((1000 + i) << GENE_BITS) | layout.gene_of_user(user_id)
        numbers.append(number)
        await _insert(
            db,
            layout.order(number),
            "INSERT INTO {table} (order_number, user_id, program_id, show_time_id, program_title, venue,"
            " show_starts_at, ticket_count, total_amount, status, aggregate_version, created_at)"
            " VALUES ($1, $2, 5, 6, '演唱会', '体育馆', $3, 2, 960.00, 'unpaid', 1, $4)",
            number,
            user_id,
            NOW,
            NOW + timedelta(minutes=i),
        )
        await _insert(
            db,
            layout.order_tickets(number),
            "INSERT INTO {table} (id, order_number, user_id, ticket_category_id, price, aggregate_version,"
            " created_at) VALUES ($1, $2, $3, 9, 480.00, 1, $4)",
            number + 1,
            number,
            user_id,
            NOW,
        )
        await _insert(
            db,
            layout.pay_bill(number),
            "INSERT INTO {table} (id, order_number, channel, amount, status, aggregate_version, created_at)"
            " VALUES ($1, $2, 'sandbox', 960.00, 'created', 1, $3)",
            number,
            number,
            NOW,
        )
    return numbers


async def test_orders_of_a_user_and_an_order_by_number_read_the_same_single_table(db):
    sharded, log = db
    user_id = 4_400_000_123
    numbers = await _a_user_with_orders(sharded, user_id, 3)
    log.queries.clear()

    page = await orders.orders_of_user(sharded, user_id, limit=2)
    by_list = log.shards_touched()
    log.queries.clear()
    one = await orders.get_order(sharded, numbers[0])
    by_number = log.shards_touched()

    assert [o.order_number for o in page] == [numbers[2], numbers[1]]
    assert one is not None and one.total_amount == Decimal("960.00")
    assert by_list == by_number
    assert len(by_list) == 1


async def test_next_page_of_orders_continues_before_the_last_one(db):
    sharded, _ = db
    user_id = 4_400_000_124
    numbers = await _a_user_with_orders(sharded, user_id, 3)
    first = await orders.orders_of_user(sharded, user_id, limit=2)

    rest = await orders.orders_of_user(sharded, user_id, limit=2, before=first[-1].created_at)

    assert [o.order_number for o in rest] == [numbers[0]]


async def test_every_access_path_touches_exactly_one_shard_table(db):
    sharded, log = db
    user_id = 4_400_000_125
    [number] = await _a_user_with_orders(sharded, user_id, 1)
    program_id = 7_700_000_001
    paths: dict[str, Callable[[], Awaitable[object]]] = {
        "user": lambda: users.get_user(sharded, user_id),
        "user id by mobile": lambda: users.user_id_by_mobile(sharded, _mobile(user_id)),
        "user id by email": lambda: users.user_id_by_email(sharded, "fan@example.com"),
        "ticket buyers": lambda: users.ticket_buyers_of(sharded, user_id),
        "order": lambda: orders.get_order(sharded, number),
        "orders of user": lambda: orders.orders_of_user(sharded, user_id, limit=10),
        "tickets of order": lambda: orders.tickets_of_order(sharded, number),
        "program": lambda: programs.get_program(sharded, program_id),
        "show times": lambda: programs.show_times_of(sharded, program_id),
        "ticket categories": lambda: programs.ticket_categories_of(sharded, program_id),
        "seats": lambda: programs.seats_of(sharded, program_id),
        "pay bill": lambda: bills.pay_bill_of(sharded, number),
        "refund bills": lambda: bills.refund_bills_of(sharded, number),
    }
    touched = {}
    for name, path in paths.items():
        log.queries.clear()
        await path()
        touched[name] = (len(log.queries), log.shards_touched())

    assert {name: count for name, (count, _) in touched.items()} == dict.fromkeys(paths, 1)
    assert all(len(shards) == 1 for _, shards in touched.values())


async def test_login_by_mobile_is_two_single_shard_reads(db):
    sharded, log = db
    user_id = 4_400_000_126
    await _a_user_with_orders(sharded, user_id, 0)
    log.queries.clear()

    mobile = _mobile(user_id)
    user = await users.get_user_by_mobile(sharded, f"{mobile[:3]} {mobile[3:7]} {mobile[7:]}")

    assert user is not None and user.id == user_id
    assert len(log.queries) == 2
    assert {table.rsplit("_", 1)[0] for _, table in log.shards_touched()} == {"user_mobile", "user"}


async def test_full_route_is_named_and_visits_every_order_table(db):
    sharded, log = db
    await _a_user_with_orders(sharded, 4_400_000_127, 2)
    await _a_user_with_orders(sharded, 4_400_000_128, 1)
    log.queries.clear()

    found = await orders.full_route_orders_of_program(sharded, 5)

    assert len(found) == 3
    assert {table for _, table in log.shards_touched()} == {s.table for s in sharded.layout.physical_tables("order")}
