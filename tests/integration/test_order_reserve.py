"""The allocator's scripts (lua/order_reserve.lua, lua/order_release.lua) on the real Redis,
through projections/seat_allocation.py, with the seat-matching rule held equal to its Python twin
(aggregates/seating.py). Every test lays out a program of its own, read back with the key names
of infra/redis_keys.py."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson
import pytest
import pytest_asyncio
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from redis import Redis
from redis.exceptions import ResponseError

from aggregates.seating import choose_adjacent
from events.order import ChosenSeat, OrderRequested, OrderRules, RejectionReason, TicketBuyerDocument
from infra.redis import LuaScripts, lua_source
from infra.redis_keys import (
    SEAT_ROW_STRIDE,
    account_tickets,
    available_seats,
    category_columns,
    category_show_times,
    hold_sequence,
    order_decision,
    program_keys_pattern,
    program_tag,
    remaining_counts,
    seat_categories,
    seat_facts,
    show_documents,
    ticket_category_prices,
)
from infra.settings import Settings
from projections.seat_allocation import (
    Decision,
    DecisionStatus,
    Ending,
    epoch_ms,
    request_json,
    reserve,
)
from projections.seat_allocation import (
    finish as end_order,
)

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
NOW_MS = epoch_ms(NOW)
REJECTED_TTL_S = 600
SHOW, OTHER_SHOW = 71, 72
INNER, STAND, ELSEWHERE = 701, 702, 703  # ticket categories; ELSEWHERE is of OTHER_SHOW
STANDING = 704  # a category of SHOW counted by its total (general admission): no seats
USER, OTHER_USER = 5001, 5002


def new_program_id() -> int:
    return 9_300_000_000 + uuid.uuid4().int % 1_000_000_000


def seat_id(category: int, row: int, column: int) -> int:
    return category * 10_000_000 + row * 1_000 + column


def lay_out(pipe: Any, program_id: int, show_time_id: int, category: int, rows: Mapping[int, Sequence[int]], **kw: Any):
    """Queue a ticket category's inventory as the inventory projector writes it: ``rows`` maps a
    row to its available columns; ``width`` (default: the widest column) sets the centre line."""
    seats = {(row, column): seat_id(category, row, column) for row, columns in rows.items() for column in columns}
    p, tc = program_id, str(category)
    pipe.hset(remaining_counts(p), tc, kw.get("remaining", len(seats)))
    pipe.hset(ticket_category_prices(p), tc, kw.get("price", "80.00"))
    pipe.hset(category_show_times(p), tc, str(show_time_id))
    width = kw.get("width", max((c for (_, c) in seats), default=1))
    pipe.hset(category_columns(p), mapping={f"{tc}:min": 1, f"{tc}:max": width})
    if seats:
        pipe.zadd(available_seats(p, category), {str(s): r * SEAT_ROW_STRIDE + c for (r, c), s in seats.items()})
        pipe.hset(seat_facts(p, category), mapping={str(s): f"{r}:{c}" for (r, c), s in seats.items()})
        pipe.hset(seat_categories(p), mapping={str(s): tc for s in seats.values()})
    return seats


def count_out(pipe: Any, program_id: int, show_time_id: int, category: int, total: int, price: str = "80.00") -> None:
    """Queue a category counted by its total as the inventory projector writes it: a count, a price
    and a show time, and no seats or column bounds."""
    p, tc = program_id, str(category)
    pipe.hset(remaining_counts(p), tc, total)
    pipe.hset(ticket_category_prices(p), tc, price)
    pipe.hset(category_show_times(p), tc, str(show_time_id))


def request(program_id: int, order_number: int, **changes: Any) -> OrderRequested:
    body: dict[str, Any] = {
        "order_number": order_number,
        "user_id": USER,
        "program_id": program_id,
        "show_time_id": SHOW,
        "rules": OrderRules(per_account_limit=6, real_name_required=False, payment_minutes=15, seat_selectable=True),
        "deadline": NOW + timedelta(seconds=5),
    }
    if "seats" not in changes:
        body |= {"ticket_category_id": INNER, "count": 2}
    body |= changes
    if body.get("ticket_category_id") == STANDING:
        # The fixture keeps both kinds in one program; a request says which kind its program is.
        body["rules"] = body["rules"].model_copy(update={"seat_selectable": False})
    return OrderRequested(**body)


def chosen(*seats: int, price: str = "80.00") -> tuple[ChosenSeat, ...]:
    return tuple(ChosenSeat(seat_id=s, price=Decimal(price)) for s in seats)


def buyers(*names: str) -> tuple[TicketBuyerDocument, ...]:
    return tuple(
        TicketBuyerDocument(ticket_buyer_id=900 + i, id_number_blind=hashlib.sha256(n.encode()).hexdigest())
        for i, n in enumerate(names)
    )


REAL_NAMES = OrderRules(per_account_limit=6, real_name_required=True, payment_minutes=15, seat_selectable=True)


# -- the rule, held equal to aggregates/seating.py --------------------------------------------------


@pytest.fixture(scope="module")
def sync_redis(settings: Settings) -> Iterator[Redis]:
    client = Redis(host=settings.redis.host, port=settings.redis.port, db=settings.redis.db)
    yield client
    client.close()


@st.composite
def categories(draw: st.DrawFn) -> tuple[int, dict[int, list[int]]]:
    """A category's width and its rows' available columns: empty to full, fragmented, nearly full."""
    width = draw(st.integers(1, 41))
    taken_share = draw(st.sampled_from([0.0, 0.2, 0.5, 0.8, 0.95]))
    row_numbers = draw(st.lists(st.integers(1, 40), unique=True, max_size=12))
    rows = {}
    for row in row_numbers:
        draws = draw(st.lists(st.floats(0, 1), min_size=width, max_size=width))
        rows[row] = [c for c, x in enumerate(draws, 1) if x >= taken_share]
    return width, {r: cs for r, cs in rows.items() if cs}


@hypothesis_settings(max_examples=40, deadline=None)
@given(category=categories(), count=st.integers(1, 6))
def test_automatic_seats_are_the_seats_the_rule_chooses_when_laid_out_anyhow(sync_redis, category, count):
    width, rows = category
    program_id = new_program_id()
    pipe = sync_redis.pipeline(transaction=False)
    seats = lay_out(pipe, program_id, SHOW, INNER, rows, width=width)
    pipe.execute()
    script = sync_redis.register_script(lua_source("order_reserve"))
    try:
        body = orjson.dumps(request_json(request(program_id, 1, count=count), NOW_MS))
        reply = script(
            keys=[remaining_counts(program_id)],
            args=[program_tag(program_id), NOW_MS, SEAT_ROW_STRIDE, REJECTED_TTL_S, body],
        )
        (decision,) = orjson.loads(reply)
        expected = choose_adjacent(rows, count, 1 + width)

        if expected is None:
            reason = "SOLD_OUT" if len(seats) < count else "NO_ADJACENT_SEATS"
            assert (decision["status"], decision["r"]) == ("rejected", reason)
        else:
            assert [(t[2], t[3]) for t in decision["t"]] == expected
            assert [int(t[0]) for t in decision["t"]] == [seats[p] for p in expected]
            assert sync_redis.zcard(available_seats(program_id, INNER)) == len(seats) - count
    finally:
        sync_redis.delete(*sync_redis.scan_iter(match=program_keys_pattern(program_id)))


# -- decisions ----------------------------------------------------------------------------------------


@pytest_asyncio.fixture
async def program(redis) -> AsyncIterator[int]:
    """A program with three categories of SHOW (INNER: rows 1-3 of 10 seats; STAND: row 20 of 4
    seats, 120.00; STANDING: 5 tickets counted by their total, 60.00) and one of OTHER_SHOW
    (ELSEWHERE: row 1 of 10); its keys removed after."""
    program_id = new_program_id()
    async with redis.pipeline(transaction=False) as pipe:
        lay_out(pipe, program_id, SHOW, INNER, {r: range(1, 11) for r in (1, 2, 3)})
        lay_out(pipe, program_id, SHOW, STAND, {20: range(1, 5)}, price="120.00")
        count_out(pipe, program_id, SHOW, STANDING, 5, price="60.00")
        lay_out(pipe, program_id, OTHER_SHOW, ELSEWHERE, {1: range(1, 11)})
        await pipe.execute()
    yield program_id
    keys = [k async for k in redis.scan_iter(match=program_keys_pattern(program_id))]
    if keys:
        await redis.delete(*keys)


@pytest.fixture(scope="session")
def scripts(redis) -> LuaScripts:
    return LuaScripts(redis)


async def decide(scripts: LuaScripts, program_id: int, *requests: OrderRequested) -> list[Decision]:
    return await reserve(scripts, program_id, requests, NOW_MS, SEAT_ROW_STRIDE, REJECTED_TTL_S)


async def finish(scripts: LuaScripts, program_id: int, order_number: int, ending: Ending) -> bool:
    ended = await end_order(scripts, program_id, order_number, ending, SEAT_ROW_STRIDE, REJECTED_TTL_S)
    return ended.changed


async def snapshot(redis, program_id: int) -> dict[bytes, Any]:
    """Every key of the program but the order decisions and the hold sequence (a count of holds
    that never goes back), with its contents."""
    found: dict[bytes, Any] = {}
    async for key in redis.scan_iter(match=program_keys_pattern(program_id)):
        if key.startswith(order_decision(program_id, 0)[:-1].encode()) or key == hold_sequence(program_id).encode():
            continue
        kind = await redis.type(key)
        if kind == b"hash":
            found[key] = await redis.hgetall(key)
        elif kind == b"zset":
            found[key] = await redis.zrange(key, 0, -1, withscores=True)
        else:
            found[key] = await redis.get(key)
    return found


def reasons(decisions: Sequence[Decision]) -> list[RejectionReason | None]:
    return [d.reason for d in decisions]


async def test_automatic_seats_are_held_in_the_front_row_middle_with_their_price_and_deadline(redis, scripts, program):
    (decision,) = await decide(scripts, program, request(program, 1, count=2))

    assert decision.status is DecisionStatus.HELD and not decision.again
    assert [(t.row, t.column, t.seat_id) for t in decision.tickets] == [
        (1, 5, seat_id(INNER, 1, 5)),
        (1, 6, seat_id(INNER, 1, 6)),
    ]
    assert {(t.ticket_category_id, t.price, t.ticket_buyer_id) for t in decision.tickets} == {
        (INNER, Decimal("80.00"), None)
    }
    assert decision.total == Decimal("160.00")
    assert decision.pay_deadline == NOW + timedelta(minutes=15)
    assert int(await redis.hget(remaining_counts(program), str(INNER))) == 28
    assert int(await redis.get(account_tickets(program, USER))) == 2
    assert await redis.zscore(available_seats(program, INNER), str(seat_id(INNER, 1, 5))) is None


async def test_chosen_seats_are_held_across_categories_with_each_category_s_price(redis, scripts, program):
    seats = (*chosen(seat_id(INNER, 2, 1)), *chosen(seat_id(STAND, 20, 4), price="120"))

    (decision,) = await decide(scripts, program, request(program, 1, seats=seats))

    assert [(t.seat_id, t.ticket_category_id, t.row, t.column, t.price) for t in decision.tickets] == [
        (seat_id(INNER, 2, 1), INNER, 2, 1, Decimal("80.00")),
        (seat_id(STAND, 20, 4), STAND, 20, 4, Decimal("120.00")),
    ]
    assert decision.total == Decimal("200.00")
    assert [int(v) for v in await redis.hmget(remaining_counts(program), str(INNER), str(STAND))] == [29, 3]


@pytest.mark.parametrize(("stored", "asked"), [("80", "80.00"), ("80.00", "80"), ("80.5", "80.50"), ("0.10", ".1")])
async def test_a_price_is_the_same_price_when_written_with_fewer_or_more_decimals(redis, scripts, stored, asked):
    program_id = new_program_id()
    async with redis.pipeline(transaction=False) as pipe:
        lay_out(pipe, program_id, SHOW, INNER, {1: [1]}, price=stored)
        await pipe.execute()
    body = request_json(request(program_id, 1, seats=chosen(seat_id(INNER, 1, 1))), NOW_MS) | {
        "s": [[str(seat_id(INNER, 1, 1)), asked]]
    }
    call = scripts["order_reserve"](
        keys=[remaining_counts(program_id)],
        args=[program_tag(program_id), NOW_MS, SEAT_ROW_STRIDE, REJECTED_TTL_S, orjson.dumps(body)],
    )
    try:
        if asked.startswith("."):  # not a price as the API writes one
            with pytest.raises(ResponseError, match="ERR_BAD_ARGUMENT"):
                await call
        else:
            (decision,) = orjson.loads(await call)
            assert decision["status"] == "held"
            assert Decimal(decision["t"][0][4]) == Decimal(stored)
    finally:
        await redis.delete(*[k async for k in redis.scan_iter(match=program_keys_pattern(program_id))])


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"seats": chosen(123)}, RejectionReason.SEAT_NOT_FOUND),
        ({"seats": chosen(seat_id(ELSEWHERE, 1, 1))}, RejectionReason.SEAT_NOT_FOUND),
        ({"ticket_category_id": ELSEWHERE}, RejectionReason.SEAT_NOT_FOUND),
        ({"seats": chosen(seat_id(INNER, 1, 1), seat_id(INNER, 1, 1))}, RejectionReason.SEAT_UNAVAILABLE),
        ({"seats": chosen(seat_id(INNER, 1, 1), price="70.00")}, RejectionReason.PRICE_CHANGED),
        ({"ticket_category_id": STAND, "count": 5}, RejectionReason.SOLD_OUT),
        ({"ticket_category_id": STANDING, "count": 6}, RejectionReason.SOLD_OUT),
        ({"ticket_category_id": STANDING, "count": 7}, RejectionReason.PER_ACCOUNT_LIMIT),
        ({"deadline": NOW - timedelta(milliseconds=1)}, RejectionReason.DEADLINE_PASSED),
        ({"count": 7}, RejectionReason.PER_ACCOUNT_LIMIT),
        ({"rules": REAL_NAMES, "ticket_buyers": buyers("甲", "甲")}, RejectionReason.TICKET_BUYER_HAS_TICKET),
    ],
)
async def test_a_request_that_cannot_be_held_is_rejected_with_its_reason_and_reserves_nothing(
    redis, scripts, program, changes, reason
):
    before = await snapshot(redis, program)

    (decision,) = await decide(scripts, program, request(program, 1, **changes))

    assert (decision.status, decision.reason, decision.tickets) == (DecisionStatus.REJECTED, reason, ())
    assert await snapshot(redis, program) == before
    assert 0 < await redis.ttl(order_decision(program, 1)) <= REJECTED_TTL_S


async def test_a_seat_held_by_an_earlier_order_is_unavailable(scripts, program):
    seat = seat_id(INNER, 3, 3)

    decisions = await decide(
        scripts, program, request(program, 1, seats=chosen(seat)), request(program, 2, seats=chosen(seat))
    )

    assert reasons(decisions) == [None, RejectionReason.SEAT_UNAVAILABLE]


async def test_no_adjacent_seats_when_only_scattered_seats_are_left(redis, scripts, program):
    await redis.zrem(available_seats(program, STAND), str(seat_id(STAND, 20, 2)), str(seat_id(STAND, 20, 4)))

    (decision,) = await decide(scripts, program, request(program, 1, ticket_category_id=STAND, count=2))

    assert decision.reason is RejectionReason.NO_ADJACENT_SEATS


async def test_an_order_decided_again_gets_the_same_decision_and_changes_nothing(redis, scripts, program):
    first, again_in_batch = await decide(scripts, program, request(program, 1), request(program, 1, count=3))
    after_first = await snapshot(redis, program)

    (again_later,) = await decide(scripts, program, request(program, 1))

    assert not first.again and again_in_batch.again and again_later.again
    assert again_in_batch.tickets == again_later.tickets == first.tickets and len(first.tickets) == 2
    assert again_in_batch.hold_sequence == again_later.hold_sequence == first.hold_sequence
    assert await snapshot(redis, program) == after_first


async def test_each_hold_takes_the_programs_next_hold_sequence_and_a_rejection_none(redis, scripts, program):
    held = await decide(scripts, program, request(program, 1), request(program, 2, count=20), request(program, 3))
    (later,) = await decide(scripts, program, request(program, 4))

    assert [d.hold_sequence for d in (*held, later)] == [1, None, 2, 3]
    assert int(await redis.get(hold_sequence(program))) == 3


async def test_a_rejection_decided_again_stays_a_rejection_when_seats_are_free_since(scripts, program):
    (first,) = await decide(scripts, program, request(program, 1, ticket_category_id=STAND, count=5))

    (again,) = await decide(scripts, program, request(program, 1, ticket_category_id=STAND, count=1))

    assert (first.reason, again.reason, again.again) == (RejectionReason.SOLD_OUT, RejectionReason.SOLD_OUT, True)


async def test_the_per_account_limit_counts_a_user_s_orders_in_one_batch_and_across_batches(scripts, program):
    rules = OrderRules(per_account_limit=4, real_name_required=False, payment_minutes=15, seat_selectable=True)

    in_one = await decide(
        scripts,
        program,
        request(program, 1, count=3, rules=rules),
        request(program, 2, count=2, rules=rules),
        request(program, 3, count=2, rules=rules, user_id=OTHER_USER),
    )
    across = await decide(
        scripts, program, request(program, 4, count=2, rules=rules), request(program, 5, count=1, rules=rules)
    )

    assert reasons(in_one) == [None, RejectionReason.PER_ACCOUNT_LIMIT, None]
    assert reasons(across) == [RejectionReason.PER_ACCOUNT_LIMIT, None]


async def test_a_document_holds_one_ticket_per_show_time_and_may_hold_one_at_another(redis, scripts, program):
    first = request(program, 1, count=2, rules=REAL_NAMES, ticket_buyers=buyers("甲", "乙"))
    same_show = request(program, 2, count=1, rules=REAL_NAMES, ticket_buyers=buyers("乙"), user_id=OTHER_USER)
    other_show = request(
        program,
        3,
        count=1,
        rules=REAL_NAMES,
        ticket_buyers=buyers("乙"),
        show_time_id=OTHER_SHOW,
        ticket_category_id=ELSEWHERE,
    )

    decisions = await decide(scripts, program, first, same_show, other_show)

    assert reasons(decisions) == [None, RejectionReason.TICKET_BUYER_HAS_TICKET, None]
    assert [t.ticket_buyer_id for t in decisions[0].tickets] == [900, 901]
    assert await redis.hget(show_documents(program, SHOW), buyers("乙")[0].id_number_blind) == b"1"


async def test_a_batch_sells_out_in_request_order_and_rejects_the_rest(redis, scripts, program):
    requests = [request(program, n, ticket_category_id=STAND, count=1, user_id=6000 + n) for n in range(1, 9)]

    decisions = await decide(scripts, program, *requests)

    assert [d.status for d in decisions] == [DecisionStatus.HELD] * 4 + [DecisionStatus.REJECTED] * 4
    assert set(reasons(decisions[4:])) == {RejectionReason.SOLD_OUT}
    assert len({t.seat_id for d in decisions for t in d.tickets}) == 4
    assert int(await redis.hget(remaining_counts(program), str(STAND))) == 0


async def test_general_admission_tickets_are_held_off_the_count_without_seats_when_enough_remain(
    redis, scripts, program
):
    (decision,) = await decide(scripts, program, request(program, 1, ticket_category_id=STANDING, count=2))

    assert decision.status is DecisionStatus.HELD
    assert [(t.seat_id, t.row, t.column, t.ticket_category_id, t.price) for t in decision.tickets] == [
        (None, None, None, STANDING, Decimal("60.00"))
    ] * 2
    assert decision.total == Decimal("120.00")
    assert int(await redis.hget(remaining_counts(program), str(STANDING))) == 3
    assert int(await redis.get(account_tickets(program, USER))) == 2
    assert await redis.exists(available_seats(program, STANDING)) == 0
    stored = orjson.loads(await redis.get(order_decision(program, 1)))
    assert [t[:4] for t in stored["t"]] == [["", str(STANDING), 0, 0]] * 2


async def test_general_admission_sells_out_to_the_last_ticket_when_requests_take_the_count(redis, scripts, program):
    requests = [request(program, n, ticket_category_id=STANDING, count=2, user_id=6000 + n) for n in range(1, 4)]

    decisions = await decide(scripts, program, *requests)

    assert reasons(decisions) == [None, None, RejectionReason.SOLD_OUT]
    assert int(await redis.hget(remaining_counts(program), str(STANDING))) == 1
    (last,) = await decide(scripts, program, request(program, 4, ticket_category_id=STANDING, count=1))
    assert last.status is DecisionStatus.HELD
    assert int(await redis.hget(remaining_counts(program), str(STANDING))) == 0


async def test_the_per_account_limit_counts_general_admission_and_seats_alike(scripts, program):
    rules = OrderRules(per_account_limit=4, real_name_required=False, payment_minutes=15, seat_selectable=True)

    decisions = await decide(
        scripts,
        program,
        request(program, 1, ticket_category_id=STANDING, count=3, rules=rules),
        request(program, 2, count=2, rules=rules),
        request(program, 3, ticket_category_id=STANDING, count=1, rules=rules),
    )

    assert reasons(decisions) == [None, RejectionReason.PER_ACCOUNT_LIMIT, None]


async def test_a_general_admission_order_decided_again_gets_the_same_tickets_and_changes_nothing(
    redis, scripts, program
):
    (first,) = await decide(scripts, program, request(program, 1, ticket_category_id=STANDING, count=2))
    after_first = await snapshot(redis, program)

    (again,) = await decide(scripts, program, request(program, 1, ticket_category_id=STANDING, count=2))

    assert again.again and (again.status, again.tickets, again.total) == (first.status, first.tickets, first.total)
    assert await snapshot(redis, program) == after_first


async def test_a_malformed_request_fails_the_whole_batch_before_any_write(redis, scripts, program):
    before = await snapshot(redis, program)
    good = orjson.dumps(request_json(request(program, 1), NOW_MS))

    with pytest.raises(ResponseError, match="ERR_BAD_ARGUMENT"):
        await scripts["order_reserve"](
            keys=[remaining_counts(program)],
            args=[program_tag(program), NOW_MS, SEAT_ROW_STRIDE, REJECTED_TTL_S, good, b'{"o": 2}'],
        )

    assert await snapshot(redis, program) == before
    assert await redis.exists(order_decision(program, 1)) == 0


async def test_a_key_of_another_program_is_refused(scripts, program):
    with pytest.raises(ResponseError, match="ERR_BAD_ARGUMENT"):
        await scripts["order_reserve"](
            keys=[remaining_counts(program + 1)], args=[program_tag(program), NOW_MS, SEAT_ROW_STRIDE, REJECTED_TTL_S]
        )


# -- release and sale --------------------------------------------------------------------------------


async def test_a_release_restores_seats_counts_account_and_documents_exactly_once(redis, scripts, program):
    before = await snapshot(redis, program)
    seats = (*chosen(seat_id(INNER, 1, 1)), *chosen(seat_id(STAND, 20, 1), price="120.00"))
    await decide(scripts, program, request(program, 1, seats=seats, rules=REAL_NAMES, ticket_buyers=buyers("甲", "乙")))

    first = await finish(scripts, program, 1, Ending.CANCELLED)
    second = await finish(scripts, program, 1, Ending.CANCELLED)

    assert (first, second) == (True, False)
    assert await snapshot(redis, program) == before
    assert orjson.loads(await redis.get(order_decision(program, 1)))["status"] == "cancelled"
    assert 0 < await redis.ttl(order_decision(program, 1)) <= REJECTED_TTL_S


async def test_a_general_admission_release_puts_the_count_back_exactly_once(redis, scripts, program):
    before = await snapshot(redis, program)
    await decide(
        scripts,
        program,
        request(program, 1, ticket_category_id=STANDING, count=2, rules=REAL_NAMES, ticket_buyers=buyers("甲", "乙")),
    )
    await decide(scripts, program, request(program, 2, ticket_category_id=STANDING, count=1, user_id=OTHER_USER))

    first = await finish(scripts, program, 1, Ending.CANCELLED)
    second = await finish(scripts, program, 1, Ending.CANCELLED)
    await finish(scripts, program, 2, Ending.CANCELLED)

    assert (first, second) == (True, False)
    assert await snapshot(redis, program) == before
    assert int(await redis.hget(remaining_counts(program), str(STANDING))) == 5


async def test_a_release_frees_only_the_documents_its_order_holds(redis, scripts, program):
    held = request(program, 1, count=1, rules=REAL_NAMES, ticket_buyers=buyers("甲"))
    await decide(scripts, program, held)
    blind = buyers("甲")[0].id_number_blind
    await redis.hset(show_documents(program, SHOW), blind, "2")  # since given to another order

    await finish(scripts, program, 1, Ending.CANCELLED)

    assert await redis.hget(show_documents(program, SHOW), blind) == b"2"


async def test_a_sold_order_keeps_its_seats_when_cancelled_after(redis, scripts, program):
    (held,) = await decide(scripts, program, request(program, 1))
    after_hold = await snapshot(redis, program)

    sold = await finish(scripts, program, 1, Ending.SOLD)
    cancelled = await finish(scripts, program, 1, Ending.CANCELLED)

    assert (sold, cancelled) == (True, False)
    assert await snapshot(redis, program) == after_hold
    stored = orjson.loads(await redis.get(order_decision(program, 1)))
    assert stored["status"] == "sold" and await redis.ttl(order_decision(program, 1)) == -1
    (again,) = await decide(scripts, program, request(program, 1))
    assert (again.status, again.tickets, again.again) == (DecisionStatus.SOLD, held.tickets, True)


async def test_a_refund_of_a_sold_order_gives_its_seats_back_once(redis, scripts, program):
    before = await snapshot(redis, program)
    await decide(scripts, program, request(program, 1, rules=REAL_NAMES, ticket_buyers=buyers("甲", "乙")))
    await finish(scripts, program, 1, Ending.SOLD)

    first = await end_order(scripts, program, 1, Ending.REFUNDED, SEAT_ROW_STRIDE, REJECTED_TTL_S, DecisionStatus.SOLD)
    second = await end_order(scripts, program, 1, Ending.REFUNDED, SEAT_ROW_STRIDE, REJECTED_TTL_S, DecisionStatus.SOLD)

    assert (first.changed, second.changed) == (True, False)
    assert await snapshot(redis, program) == before
    assert orjson.loads(await redis.get(order_decision(program, 1)))["status"] == "refunded"
    assert 0 < await redis.ttl(order_decision(program, 1)) <= REJECTED_TTL_S


async def test_a_late_payment_given_back_relabels_a_cancelled_order_and_touches_no_seat(redis, scripts, program):
    await decide(scripts, program, request(program, 1))
    await finish(scripts, program, 1, Ending.CANCELLED)
    after_cancel = await snapshot(redis, program)
    ttl = await redis.ttl(order_decision(program, 1))

    relabelled = await end_order(
        scripts, program, 1, Ending.REFUNDED, SEAT_ROW_STRIDE, REJECTED_TTL_S, DecisionStatus.CANCELLED
    )

    assert relabelled.changed and relabelled.status is DecisionStatus.REFUNDED
    assert await snapshot(redis, program) == after_cancel
    assert 0 < await redis.ttl(order_decision(program, 1)) <= ttl
    with pytest.raises(ResponseError, match="ERR_BAD_ARGUMENT"):  # a held order is never refunded
        await finish(scripts, program, 1, Ending.REFUNDED)


async def test_an_unknown_or_rejected_order_is_not_ended(scripts, program):
    await decide(scripts, program, request(program, 1, count=7))

    assert [await finish(scripts, program, n, Ending.CANCELLED) for n in (1, 2)] == [False, False]


async def test_the_first_ending_asked_for_wins_and_every_later_one_learns_it(scripts, program):
    await decide(scripts, program, request(program, 1))

    endings = [
        await end_order(scripts, program, 1, ending, SEAT_ROW_STRIDE, REJECTED_TTL_S)
        for ending in (Ending.EXPIRED, Ending.CANCELLED, Ending.SOLD)
    ]
    never = await end_order(scripts, program, 99, Ending.CANCELLED, SEAT_ROW_STRIDE, REJECTED_TTL_S)

    assert [(e.changed, e.status) for e in endings] == [(True, DecisionStatus.EXPIRED)] + [
        (False, DecisionStatus.EXPIRED)
    ] * 2
    assert (never.changed, never.status) == (False, None)
