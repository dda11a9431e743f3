"""Paying and refunding (``commands/payment.py``): start paying an order, hear from the provider,
ask the provider, ask for a refund; and, for support staff, refund whatever the policy and read an
order's whole history from the log.

The provider's notification route has no credential: the notification's signature is one, checked
by the channel's adapter. It answers the provider as Alipay expects, ``success`` in plain text once
the payment is in the log (or was before), anything else to be asked again; a refused one is
counted (``damai_payment_notifications_total``) and changes nothing.
"""

from __future__ import annotations

import uuid
from typing import Annotated
from urllib.parse import parse_qsl

from fastapi import APIRouter, Depends, Path, Request, Response
from fastapi.responses import PlainTextResponse
from pydantic import Field

from aggregates.errors import NotFound
from api.auth import CurrentUserDep, require_admin
from api.commands import CorrelationDep, handled
from api.errors import error_response
from api.models import CamelModel
from api.rate_limit import limit_orders
from api.resources import Resources, ResourcesDep
from commands import payment as handlers
from commands.ports import PaymentRefused
from events.payment import Channel
from events.program import EntityId
from infra.metrics import PAYMENT_NOTIFICATIONS
from queries.order_history import OrderHistoryOut, order_history
from queries.orders import OrderOut
from queries.views.orders import load_order

router = APIRouter(tags=["payments"])
admin_router = APIRouter(tags=["admin"], dependencies=[Depends(require_admin)])
JSON = "application/json"
NOTIFY_PATH_PREFIX = "/api/v1/payments/"
NOTIFY_FIELDS_MAX = 100


class PaymentStart(CamelModel):
    channel: Channel = "alipay"
    """The payment channel (``payments.channels``)."""


class PaymentStarted(CamelModel):
    pay_bill_id: str
    channel: str
    amount: str
    """The order's total, in yuan with two places: what the provider asks the buyer for."""
    pay_url: str
    """What the client opens to pay (the provider's page)."""


class RefundAsk(CamelModel):
    reason: Annotated[str, Field(max_length=200)] = ""
    """Why, for the record."""


@router.post(
    "/api/v1/orders/{order_number}/payment",
    status_code=201,
    response_model=PaymentStarted,
    response_model_by_alias=True,
    responses={
        404: {"description": "ORDER_NOT_FOUND: no order of yours has this number"},
        409: {"description": "ORDER_NOT_PAYABLE (not unpaid; details.status), PAYMENT_CHANNEL_MISMATCH"},
        422: {"description": "PAYMENT_CHANNEL_UNKNOWN or VALIDATION_FAILED"},
        503: {"description": "A store or the log did not answer"},
    },
)
async def post_payment(
    order_number: Annotated[EntityId, Path()],
    body: PaymentStart,
    user: CurrentUserDep,
    res: ResourcesDep,
    correlation_id: CorrelationDep,
) -> PaymentStarted:
    """Start paying one of your unpaid orders: its bill (the same one on every call) for the order's
    amount, and the provider's page to pay it."""
    await limit_orders(res, user.user_id)
    started = await handled(
        handlers.start_payment(user.user_id, order_number, body.channel, res.commands.payments, correlation_id)
    )
    return PaymentStarted(
        pay_bill_id=str(started.pay_bill_id),
        channel=started.channel,
        amount=f"{started.amount:.2f}",
        pay_url=started.pay_url,
    )


@router.post(
    "/api/v1/orders/{order_number}/payment/check",
    response_model=OrderOut,
    response_model_by_alias=True,
    responses={
        404: {"description": "ORDER_NOT_FOUND, or PAY_BILL_NOT_FOUND: the order has no bill"},
        503: {"description": "PAYMENT_PROVIDER_UNAVAILABLE, or a store or the log did not answer"},
    },
)
async def post_payment_check(
    order_number: Annotated[EntityId, Path()], user: CurrentUserDep, res: ResourcesDep, correlation_id: CorrelationDep
) -> OrderOut:
    """Ask the provider whether the order is paid (a notification may be late or lost); a payment it
    reports is recorded and the order, as it then is, answered."""
    await limit_orders(res, user.user_id)
    trade = await handled(handlers.check_payment(user.user_id, order_number, res.commands.payments, correlation_id))
    if not trade.status.paid:
        return await res.reads.orders.order(user.user_id, order_number)
    wait_s = res.settings.orders.cancel_wait_s
    return await res.reads.orders.until(user.user_id, order_number, wait_s, lambda o: o.status != "unpaid")


@router.post(
    "/api/v1/orders/{order_number}/refund",
    response_model=OrderOut,
    response_model_by_alias=True,
    responses={
        202: {"description": "The refund is asked for but not decided yet: the order as it is", "model": OrderOut},
        404: {"description": "ORDER_NOT_FOUND: no order of yours has this number"},
        409: {"description": "ORDER_NOT_REFUNDABLE (not paid; details.status), REFUND_NOT_ALLOWED (the policy)"},
    },
)
async def post_refund(
    order_number: Annotated[EntityId, Path()],
    user: CurrentUserDep,
    res: ResourcesDep,
    correlation_id: CorrelationDep,
    body: RefundAsk | None = None,
) -> Response:
    """Ask for a paid order's money back while the program's refund policy allows it: its seats go
    back on sale at once and the money through the provider (``refunds`` in the order shows it)."""
    await limit_orders(res, user.user_id)
    placed = await res.reads.orders.order(user.user_id, order_number)
    owner = (user.user_id, int(placed.program_id), int(placed.show_time_id))
    return await _refund(res, order_number, owner, correlation_id, body, by_admin=False)


@router.post(
    NOTIFY_PATH_PREFIX + "{channel}/notify",
    response_class=PlainTextResponse,
    responses={
        400: {"description": "failure: refused (signature, app id, seller, unknown trade, amount, malformed)"},
        404: {"description": "failure: no such channel"},
        415: {"description": "UNSUPPORTED_MEDIA_TYPE: not a form"},
        503: {"description": "The log did not answer: the provider will notify again"},
    },
)
async def post_notify(
    channel: Annotated[str, Path(max_length=16)], request: Request, res: ResourcesDep, correlation_id: CorrelationDep
) -> Response:
    """The provider's asynchronous notification (form-encoded, signed): ``success`` once recorded."""
    fields = parse_qsl((await request.body()).decode("utf-8", "replace"), keep_blank_values=True)
    form = dict(fields[:NOTIFY_FIELDS_MAX])
    if channel not in res.commands.payments.providers:
        PAYMENT_NOTIFICATIONS.labels(channel="unknown", outcome="channel").inc()
        return PlainTextResponse("failure", status_code=404)
    try:
        outcome = await handled(handlers.accept_notification(channel, form, res.commands.payments, correlation_id))
    except PaymentRefused as refused:
        PAYMENT_NOTIFICATIONS.labels(channel=channel, outcome=refused.reason).inc()
        return PlainTextResponse("failure", status_code=400)
    PAYMENT_NOTIFICATIONS.labels(channel=channel, outcome=outcome).inc()
    return PlainTextResponse("success")


@admin_router.post(
    "/api/v1/admin/orders/{order_number}/refund",
    response_model=OrderOut,
    response_model_by_alias=True,
    responses={
        202: {"description": "The refund is asked for but not decided yet: the order as it is", "model": OrderOut},
        404: {"description": "ORDER_NOT_FOUND"},
        409: {"description": "ORDER_NOT_REFUNDABLE: the order is not paid (details.status)"},
    },
)
async def post_admin_refund(
    order_number: Annotated[EntityId, Path()],
    res: ResourcesDep,
    correlation_id: CorrelationDep,
    body: RefundAsk | None = None,
) -> Response:
    """Refund a paid order whatever its program's policy (a cancelled show): seats back on sale,
    money back through the provider."""
    stored = await load_order(res.db, order_number)
    if stored is None:
        raise NotFound(f"no order {order_number}", code="ORDER_NOT_FOUND", details={"orderNumber": str(order_number)})
    owner = (stored.user_id, stored.program_id, stored.show_time_id)
    return await _refund(res, order_number, owner, correlation_id, body, by_admin=True)


@admin_router.get(
    "/api/v1/admin/orders/{order_number}",
    response_model=OrderHistoryOut,
    response_model_by_alias=True,
    responses={404: {"description": "ORDER_NOT_FOUND: the log holds no event of this order"}},
)
async def get_admin_order(order_number: Annotated[EntityId, Path()], res: ResourcesDep) -> OrderHistoryOut:
    """Every event of an order and of its pay bill, as the log holds them, oldest first."""
    history = await handled(order_history(res.settings.kafka, res.commands.publisher, order_number))
    if not history.events:
        raise NotFound(f"no order {order_number}", code="ORDER_NOT_FOUND", details={"orderNumber": str(order_number)})
    return history


async def _refund(
    res: Resources,
    order_number: int,
    owner: tuple[int, int, int],
    correlation_id: uuid.UUID | None,
    body: RefundAsk | None,
    *,
    by_admin: bool,
) -> Response:
    """Ask for the refund of the order of ``owner`` (user, program, show time), then answer: 200
    with the order once refunded; 202 with it as it is if the lifecycle has not decided within
    ``orders.cancel_wait_s``; 409 if it decided otherwise (its status says what it is)."""
    user_id, program_id, show_time_id = owner
    payments, reason = res.commands.payments, body.reason if body is not None else ""
    await handled(
        handlers.request_refund(
            order_number, user_id, program_id, show_time_id, payments, correlation_id, by_admin=by_admin, reason=reason
        )
    )
    wait_s = res.settings.orders.cancel_wait_s
    order = await res.reads.orders.until(user_id, order_number, wait_s, lambda o: o.status != "paid")
    if order.status == "paid":
        return Response(order.model_dump_json(by_alias=True), status_code=202, media_type=JSON)
    if order.status != "refunded":
        return error_response(
            409,
            "ORDER_NOT_REFUNDABLE",
            f"the order is {order.status}",
            {"orderNumber": order.order_number, "status": order.status},
        )
    return Response(order.model_dump_json(by_alias=True), status_code=200, media_type=JSON)
