from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from infra.ids.generator import IdGenerator
from infra.ids.layout import EPOCH_MS, GENE_BITS, ORDER_NUMBER, WORKER_COUNT
from infra.personal_data import BlindIndex
from infra.postgres.routing import SHARD_GROUPS, ShardLayout
from infra.settings import PostgresSettings

KEY = BlindIndex(b"routing-test-key-0123456789-abcdef")
user_ids = st.integers(min_value=1, max_value=(1 << 63) - 1)
high_bits = st.integers(min_value=0, max_value=(1 << (63 - GENE_BITS)) - 1)


def layout(databases: int = 2, order_tables: int = 4, **tables: int) -> ShardLayout:
    per_database = {group: 2 for group in SHARD_GROUPS} | {"order": order_tables} | tables
    return ShardLayout(
        PostgresSettings(databases=[f"db{i}" for i in range(databases)], tables_per_database=per_database), KEY
    )


def order_number_for(high: int, gene: int) -> int:
    """What infra.ids builds: anything in the high bits, the gene in the low ones."""
    return (high << GENE_BITS) | gene


@given(user_id=user_ids, high=high_bits)
def test_an_order_routes_with_its_buyers_orders_when_the_number_carries_the_gene(user_id, high):
    default = layout()
    number = order_number_for(high, default.gene_of_user(user_id))

    assert default.order(number) == default.orders_of_user(user_id)
    assert default.order_tickets(number) == default.order_tickets_of_user(user_id)
    another_order = order_number_for(high // 2, default.gene_of_user(user_id))
    assert default.pay_bill(number) == default.pay_bill(another_order)


@given(
    user_id=user_ids,
    clock_ms=st.integers(min_value=EPOCH_MS, max_value=EPOCH_MS + (1 << 40)),
    worker_id=st.integers(min_value=0, max_value=WORKER_COUNT - 1),
    orders=st.integers(min_value=1, max_value=70),
)
def test_generated_order_numbers_route_with_their_buyers_orders(user_id, clock_ms, worker_id, orders):
    default = layout()
    generator = IdGenerator(
        ORDER_NUMBER,
        worker_id,
        max_step_back_ms=5,
        issued_after_ms=clock_ms - 1,
        clock=lambda: clock_ms,
        sleep=lambda _: None,
    )
    gene = default.gene_of_user(user_id)

    # More orders than one millisecond's sequence holds: the fake clock must move on.
    numbers = []
    for i in range(orders):
        if i and i % (ORDER_NUMBER.max_sequence + 1) == 0:
            clock_ms += 1
        numbers.append(generator.next(gene))

    assert len(set(numbers)) == orders
    assert {default.order(n) for n in numbers} == {default.orders_of_user(user_id)}


@given(user_id=user_ids, high=high_bits, databases=st.sampled_from([1, 2, 4]), tables=st.sampled_from([1, 2, 4, 8]))
def test_the_gene_names_the_table_in_any_power_of_two_layout(user_id, high, databases, tables):
    chosen = layout(databases=databases, order_tables=tables)
    number = order_number_for(high, chosen.gene_of_user(user_id))

    assert chosen.order(number) == chosen.orders_of_user(user_id)


def test_sequential_ids_spread_over_every_slot():
    default = layout()
    # Snowflake-like ids of one millisecond and worker: only the low sequence bits differ.
    ids = [(1234567 << 22) | sequence for sequence in range(4000)]

    per_table = Counter(default.user(i).table for i in ids)

    assert len(per_table) == default.slots("user")
    assert min(per_table.values()) > 0.8 * len(ids) / default.slots("user")


def test_program_rows_of_one_program_share_a_slot():
    default = layout()

    slots = {default.program_family(f, 987654321).table.rsplit("_", 1)[1] for f in SHARD_GROUPS["program"]}

    assert len(slots) == 1


def test_mobile_and_email_route_by_a_keyed_hash_of_the_normalised_value():
    default, other_key = layout(), ShardLayout(PostgresSettings(), BlindIndex(b"another-key-0123456789-abcdefghijk"))

    assert default.mobile_blind("138 0013 8000") == default.mobile_blind("13800138000")
    assert default.email_blind(" Fan@Example.COM ") == default.email_blind("fan@example.com")
    assert default.mobile_blind("13800138000") != other_key.mobile_blind("13800138000")
    assert default.mobile_blind("13800138000") != default.email_blind("13800138000")


@pytest.mark.parametrize("order_tables", [3, 6, 256])
def test_order_layout_must_be_a_power_of_two_within_the_gene(order_tables):
    with pytest.raises(ValueError, match="power of two"):
        layout(order_tables=order_tables)


def test_layout_without_a_shard_group_is_refused():
    with pytest.raises(ValueError, match="lacks shard groups"):
        ShardLayout(PostgresSettings(tables_per_database={"order": 4}), KEY)


def test_program_family_refuses_a_family_routed_otherwise():
    with pytest.raises(ValueError):
        layout().program_family("order", 1)
