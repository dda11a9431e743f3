"""Orders: place one (``commands/order.py``; the allocator decides it), and follow it.

``POST /api/v1/orders`` answers 202 with the order number once the request is in the log. With
``Prefer: wait=N`` it waits up to N seconds for the decision (Redis only): 201 with the order when
seats are held, 409 with the rejection's code, or still 202.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, NamedTuple

import orjson
from fastapi import APIRouter, Header, Path, Query, Response
from pydantic import ValidationError

from aggregates.errors import DomainError
from api.auth import CurrentUserDep, user_of
from api.commands import CorrelationDep, handled
from api.errors import ApiError, domain_error_response, error_response
from api.models import CamelModel
from api.rate_limit import limit_orders
from api.resources import Resources, ResourcesDep
from commands import order as handlers
from commands.order import IDEMPOTENCY_KEY_MAX_LENGTH, PlaceOrder, SoldOut
from commands.ports import Unavailable
from events.program import EntityId
from queries.orders import PENDING, OrderOut, OrderPageOut
from queries.views.orders import OrderStatus

router = APIRouter(tags=["orders"])
JSON = "application/json"
ORDERS_PATH = "/api/v1/orders"

PREFER_WAIT = re.compile(r"(?:^|[;,\s])wait\s*=\s*(\d{1,6})(?:$|[;,\s])", re.IGNORECASE)
IDEMPOTENCY_KEY = re.compile(rf"^[\x21-\x7e]{{1,{IDEMPOTENCY_KEY_MAX_LENGTH}}}$")


class OrderAccepted(CamelModel):
    order_number: str
    status: str = PENDING


def order_location(order_number: int) -> str:
    return f"/api/v1/orders/{order_number}"


@router.post(
    ORDERS_PATH,
    status_code=202,
    response_model=OrderAccepted,
    response_model_by_alias=True,
    responses={
        201: {"description": "Prefer: wait=N, and the seats are held: the order", "model": OrderOut},
        404: {"description": "PROGRAM_NOT_FOUND, SHOW_TIME_NOT_FOUND or TICKET_CATEGORY_NOT_FOUND"},
        409: {
            "description": "PROGRAM_NOT_ON_SALE, SHOW_TIME_PAST, SOLD_OUT; with Prefer: wait, the allocator's "
            "reason (NO_ADJACENT_SEATS, SEAT_UNAVAILABLE, PRICE_CHANGED, PER_ACCOUNT_LIMIT, "
            "TICKET_BUYER_HAS_TICKET, DEADLINE_PASSED, SOLD_OUT) with details.orderNumber"
        },
        422: {
            "description": "SEAT_CHOICE_NOT_ALLOWED, PER_ORDER_LIMIT, SEAT_REPEATED, TICKET_BUYERS_REPEATED, "
            "TICKET_BUYERS_REQUIRED, TICKET_BUYERS_TOO_MANY, TICKET_BUYER_NOT_FOUND, IDEMPOTENCY_KEY_REUSED, "
            "BAD_IDEMPOTENCY_KEY or VALIDATION_FAILED"
        },
    },
)
async def post_order(
    cmd: PlaceOrder,
    user: CurrentUserDep,
    res: ResourcesDep,
    correlation_id: CorrelationDep,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
    prefer: Annotated[str | None, Header()] = None,
) -> Response:
    """Ask for seats: ``ticketCategoryId`` and ``count`` (the allocator picks adjacent seats), or
    ``seats`` (those seats, at the prices shown). The buyer is the token's user."""
    if idempotency_key is not None and not IDEMPOTENCY_KEY.fullmatch(idempotency_key):
        raise ApiError(
            422, "BAD_IDEMPOTENCY_KEY", f"an Idempotency-Key is 1 to {IDEMPOTENCY_KEY_MAX_LENGTH} visible characters"
        )
    wait_s = _wait_s(prefer, res.settings.orders.wait_max_s)
    placed = await handled(
        handlers.place_order(user.user_id, cmd, res.commands.orders, correlation_id, idempotency_key)
    )
    headers = {"Location": order_location(placed.order_number)}
    if wait_s is None:
        return _accepted(placed.order_number, headers)
    headers["Preference-Applied"] = f"wait={wait_s}"
    order = await res.reads.orders.decided(user.user_id, placed.order_number, wait_s)
    if order.status == PENDING:
        return _accepted(placed.order_number, headers)
    if order.status == "rejected":
        return error_response(
            409,
            order.reason or "ORDER_REJECTED",
            "the order was not accepted",
            {"orderNumber": order.order_number},
            headers,
        )
    return Response(order.model_dump_json(by_alias=True), status_code=201, headers=headers, media_type=JSON)


PAGE_SIZE_MAX = 50
PAGE_MAX = 1_000


@router.get(ORDERS_PATH, response_model=OrderPageOut, response_model_by_alias=True)
async def get_orders(
    user: CurrentUserDep,
    res: ResourcesDep,
    page: Annotated[int, Query(ge=1, le=PAGE_MAX)] = 1,
    size: Annotated[int, Query(ge=1, le=PAGE_SIZE_MAX)] = 20,
    status: Annotated[OrderStatus | None, Query()] = None,
) -> OrderPageOut:
    """Your orders, newest first (from your one order table), optionally of one status. An order
    shows here once the order projector has it, a moment after its decision."""
    return await handled(res.reads.orders.page(user.user_id, status.value if status else None, page, size))


@router.get(
    "/api/v1/orders/{order_number}",
    response_model=OrderOut,
    response_model_by_alias=True,
    responses={404: {"description": "ORDER_NOT_FOUND: no order of yours has this number"}},
)
async def get_order(order_number: Annotated[EntityId, Path()], user: CurrentUserDep, res: ResourcesDep) -> OrderOut:
    """One of the signed-in user's orders: pending until the allocator decides, then unpaid (with
    its seats and payment deadline) or rejected (with the reason)."""
    return await handled(res.reads.orders.order(user.user_id, order_number))


@router.post(
    "/api/v1/orders/{order_number}/cancel",
    response_model=OrderOut,
    response_model_by_alias=True,
    responses={
        202: {"description": "The cancel is recorded but not decided yet: the order as it is", "model": OrderOut},
        404: {"description": "ORDER_NOT_FOUND: no order of yours has this number"},
        409: {"description": "ORDER_NOT_CANCELLABLE: the order is not unpaid (details.status says what it is)"},
    },
)
async def post_cancel(
    order_number: Annotated[EntityId, Path()], user: CurrentUserDep, res: ResourcesDep, correlation_id: CorrelationDep
) -> Response:
    """Cancel one of your unpaid orders: its seats go back on sale. A payment or the payment deadline
    that came first wins (409 with the order's status)."""
    await limit_orders(res, user.user_id)
    await handled(handlers.cancel_order(user.user_id, order_number, res.commands.orders, correlation_id))
    order = await res.reads.orders.ended(user.user_id, order_number, res.settings.orders.cancel_wait_s)
    if order.status == "unpaid":
        return Response(order.model_dump_json(by_alias=True), status_code=202, media_type=JSON)
    if order.status != "cancelled":
        return error_response(
            409,
            "ORDER_NOT_CANCELLABLE",
            f"the order was {order.status} first",
            {"orderNumber": order.order_number, "status": order.status},
        )
    return Response(order.model_dump_json(by_alias=True), status_code=200, media_type=JSON)


def _accepted(order_number: int, headers: dict[str, str]) -> Response:
    body = OrderAccepted(order_number=str(order_number)).model_dump_json(by_alias=True)
    return Response(body, status_code=202, headers=headers, media_type=JSON)


def _wait_s(prefer: str | None, wait_max_s: int) -> int | None:
    """``Prefer: wait=N`` (RFC 7240), at most ``wait_max_s``; None when not asked."""
    if prefer is None:
        return None
    found = PREFER_WAIT.search(prefer)
    return None if found is None else min(int(found.group(1)), wait_max_s)


class EdgeRoute(NamedTuple):
    """What the access log and the metrics name a request the edge answered itself by."""

    path: str


SOLD_OUT_ROUTE = EdgeRoute(ORDERS_PATH)


async def sold_out_answer(res: Resources, headers: Mapping[bytes, bytes], body: bytes) -> Response | None:
    """The 409 ``SOLD_OUT`` of ``POST /api/v1/orders`` for a category this process saw sold out,
    answered by the edge (``api/edge.py``) before FastAPI routes the request; None for every other
    request, which the route then answers.

    When a hot show sells out, nearly every request asks for what is gone: this answers them for
    little more than a bare endpoint's cost. The answer is the route's own — the body is the same
    ``PlaceOrder``, the token is checked the same way, the same checks run up to the flag
    (``commands/order.py:check_order``) — and anything else (a bad body or token, another refusal,
    an ``Idempotency-Key``, which may be the retry of an order accepted before the sell-out) is
    left to the route, which answers it as it always does.
    """
    if b"idempotency-key" in headers:
        return None
    try:
        peek = orjson.loads(body)
        program_id, category_id = int(peek["programId"]), int(peek["ticketCategoryId"])
        count = int(peek.get("count") or 1)
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None
    remaining = await res.commands.orders.availability.get(program_id)
    if remaining is None or remaining.get(category_id, count) >= count:
        return None
    try:
        cmd = PlaceOrder.model_validate_json(body)
        user_of(headers.get(b"authorization"), res)
        await handlers.check_order(cmd, res.commands.orders)
    except SoldOut as refusal:
        return domain_error_response(refusal)
    except (ValidationError, ApiError, DomainError, Unavailable):
        return None
    return None
