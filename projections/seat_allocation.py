"""The allocator's and the lifecycle's calls into Redis: decide a batch of a program's order
requests, and save an order's aggregate with the seats' part of its ending (cancelled, expired
or sold).

The decisions are ``lua/order_reserve.lua``'s, atomic per batch in the program's hash slot; the
endings are decided by the Order aggregate (``aggregates/order.py``) and saved by
``lua/order_release.lua``, which compares before it writes. The scripts' headers state every check
and key. This module only turns ``OrderRequested`` into the script's request JSON (ids and prices
as strings, times in epoch ms), replies into ``Decision``s and ``Ended``, and reads the order's
snapshot back.
"""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any, cast

import orjson
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from aggregates.order import Order, OrderStatus
from events.order import HeldTicket, OrderRequested, RejectionReason
from infra.redis import LuaScripts
from infra.redis_keys import order_snapshot, program_tag, remaining_counts

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class DecisionStatus(StrEnum):
    """Where a decided order stands in the allocator's memory."""

    HELD = "held"
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    SOLD = "sold"
    REFUNDED = "refunded"


class Ending(StrEnum):
    """How a held order ends: its seats back on sale (cancelled, expired) or sold; and how a sold
    (or cancelled, expired) one ends refunded."""

    CANCELLED = "cancelled"
    EXPIRED = "expired"
    SOLD = "sold"
    REFUNDED = "refunded"


ENDING_OF = {
    OrderStatus.PAID: Ending.SOLD,
    OrderStatus.CANCELLED: Ending.CANCELLED,
    OrderStatus.EXPIRED: Ending.EXPIRED,
    OrderStatus.REFUNDED: Ending.REFUNDED,
}
"""What each ending of the aggregate does to the seats (a refund: lua/order_release.lua)."""
DECISION_OF = {
    OrderStatus.UNPAID: DecisionStatus.HELD,
    OrderStatus.PAID: DecisionStatus.SOLD,
    OrderStatus.CANCELLED: DecisionStatus.CANCELLED,
    OrderStatus.EXPIRED: DecisionStatus.EXPIRED,
}
"""The allocator's word for each status an order can end (or be refunded) from."""


@dataclass(frozen=True)
class Ended:
    changed: bool
    """True when this call saved (ended the order); False when the order had moved on before:
    another ending was saved first, or it was never held."""
    status: DecisionStatus | None
    """How the order stands now (None: never decided): the first ending saved wins."""


@dataclass(frozen=True)
class Decision:
    order_number: int
    status: DecisionStatus
    reason: RejectionReason | None
    tickets: tuple[HeldTicket, ...]
    total: Decimal | None
    pay_deadline: datetime | None
    hold_sequence: int | None
    """The program's count of holds with this one (held decisions)."""
    again: bool
    """True when the order was decided before: this is that decision, and nothing changed."""


async def reserve(
    scripts: LuaScripts,
    program_id: int,
    requests: Sequence[OrderRequested],
    now_ms: int,
    row_stride: int,
    rejected_ttl_s: int,
    payment_window_ms: int | None = None,
) -> list[Decision]:
    """Decide ``requests`` (all of ``program_id``) in order, in one atomic script call; the
    payment deadline of a hold runs from ``now_ms``, for the program's payment minutes (or
    ``payment_window_ms`` when given: drills and tests)."""
    if not requests:
        return []
    if any(r.program_id != program_id for r in requests):
        raise ValueError(f"every request must be of program {program_id}")
    reply = await scripts["order_reserve"](
        keys=[remaining_counts(program_id)],
        args=[
            program_tag(program_id),
            now_ms,
            row_stride,
            rejected_ttl_s,
            *(orjson.dumps(request_json(r, now_ms, payment_window_ms)) for r in requests),
        ],
    )
    return [decision_of(d) for d in orjson.loads(reply)]


async def load_order(redis: Redis, program_id: int, order_number: int) -> Order | None:
    """The order as its snapshot has it; None when there is none (or it is of an older shape)."""
    state = cast(bytes | None, await redis.hget(order_snapshot(program_id, order_number), "state"))
    return Order.from_snapshot(state) if state is not None else None


@dataclass(frozen=True)
class Loaded:
    """An order as it was loaded, before it decided: what its save compares with."""

    version: int
    status: OrderStatus

    @classmethod
    def of(cls, order: Order) -> Loaded:
        return cls(order.version, order.status)


async def save_order(
    scripts: LuaScripts, order: Order, loaded: Loaded | None, row_stride: int, ended_ttl_s: int
) -> Ended:
    """Save what ``order`` decided since it was ``loaded`` (None: the snapshot of its first event),
    with the seats' part of the ending it decided, if it did; only while the snapshot is still at
    the loaded version and the decision still has the status the aggregate had
    (``lua/order_release.lua``). Not saved (``changed`` False): another save came first; reload."""
    ending = ENDING_OF.get(order.status) if loaded is not None and loaded.status is not order.status else None
    expected = DECISION_OF[loaded.status] if loaded is not None and ending is not None else None
    return await _release(
        scripts,
        order.program_id,
        order.order_number,
        ending,
        expected,
        row_stride,
        ended_ttl_s,
        (loaded.version if loaded is not None else 0, order.version, order.snapshot()),
    )


def queue_first_snapshot(
    pipe: Pipeline, scripts: LuaScripts, order: Order, row_stride: int, ended_ttl_s: int
) -> Awaitable[Any]:
    """``save_order(order, None)`` queued on a pipeline (the lifecycle saves a fetch's new orders
    in one round trip); the pipeline's reply for it reads with ``ended_of``."""
    number, saving = order.order_number, (0, order.version, order.snapshot())
    return _release_call(scripts, order.program_id, number, None, None, row_stride, ended_ttl_s, saving, pipe)


async def finish(
    scripts: LuaScripts,
    program_id: int,
    order_number: int,
    ending: Ending,
    row_stride: int,
    ended_ttl_s: int,
    from_status: DecisionStatus = DecisionStatus.HELD,
) -> Ended:
    """The seats' part of an ending alone, with no aggregate: what ``lua/order_release.lua`` does
    to an order of ``from_status`` (held; sold, cancelled or expired for a refund), for the
    script's own tests (the lifecycle saves through ``save_order``)."""
    return await _release(scripts, program_id, order_number, ending, from_status, row_stride, ended_ttl_s, None)


async def _release(
    scripts: LuaScripts,
    program_id: int,
    order_number: int,
    ending: Ending | None,
    expected: DecisionStatus | None,
    row_stride: int,
    ended_ttl_s: int,
    saving: tuple[int, int, bytes] | None,
) -> Ended:
    return ended_of(
        await _release_call(scripts, program_id, order_number, ending, expected, row_stride, ended_ttl_s, saving)
    )


def _release_call(
    scripts: LuaScripts,
    program_id: int,
    order_number: int,
    ending: Ending | None,
    expected: DecisionStatus | None,
    row_stride: int,
    ended_ttl_s: int,
    saving: tuple[int, int, bytes] | None,
    client: Pipeline | None = None,
) -> Awaitable[Any]:
    """``lua/order_release.lua`` called (or, with a pipeline, queued on it)."""
    return scripts["order_release"](
        keys=[remaining_counts(program_id)],
        args=[
            program_tag(program_id),
            order_number,
            ending.value if ending is not None else "",
            row_stride,
            ended_ttl_s,
            expected.value if expected is not None else "",
            *(saving or ()),
        ],
        client=client,
    )


def ended_of(reply: Sequence[Any]) -> Ended:
    """``lua/order_release.lua``'s reply."""
    changed, status = reply
    text = status.decode() if isinstance(status, bytes) else str(status)
    return Ended(bool(changed), DecisionStatus(text) if text else None)


def request_json(request: OrderRequested, now_ms: int, payment_window_ms: int | None = None) -> dict[str, Any]:
    """The request as ``lua/order_reserve.lua`` reads it."""
    body: dict[str, Any] = {
        "o": str(request.order_number),
        "u": str(request.user_id),
        "st": str(request.show_time_id),
        "b": [[str(b.ticket_buyer_id), b.id_number_blind] for b in request.ticket_buyers],
        "lim": request.rules.per_account_limit,
        "real": int(request.rules.real_name_required),
        "seated": int(request.rules.seat_selectable),
        "dl": epoch_ms(request.deadline),
        "pay": now_ms
        + (payment_window_ms or timedelta(minutes=request.rules.payment_minutes) // timedelta(milliseconds=1)),
    }
    if request.ticket_category_id is not None:
        body |= {"tc": str(request.ticket_category_id), "n": request.count}
    else:
        body["s"] = [[str(s.seat_id), f"{s.price:.2f}"] for s in request.seats]
    return body


def decision_of(raw: dict[str, Any]) -> Decision:
    """The script's decision as a ``Decision``; a ticket whose seat is "" is a general-admission
    ticket (no seat, row or column)."""
    tickets = tuple(
        HeldTicket(
            seat_id=int(seat) if seat else None,
            ticket_category_id=int(category),
            row=row if seat else None,
            column=column if seat else None,
            price=Decimal(price),
            ticket_buyer_id=int(buyer) if buyer else None,
        )
        for seat, category, row, column, price, buyer in raw.get("t", ())
    )
    return Decision(
        order_number=int(raw["o"]),
        status=DecisionStatus(raw["status"]),
        reason=RejectionReason(raw["r"]) if "r" in raw else None,
        tickets=tickets,
        total=Decimal(raw["total"]) if "total" in raw else None,
        pay_deadline=datetime.fromtimestamp(raw["pay"] / 1000, UTC) if "pay" in raw else None,
        hold_sequence=int(raw["hs"]) if "hs" in raw else None,
        again=raw.get("again") == 1,
    )


def epoch_ms(moment: datetime) -> int:
    return (moment - EPOCH) // timedelta(milliseconds=1)
