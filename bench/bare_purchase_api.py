"""The baseline of bench/purchase.py: what accepting an order costs with nothing of the API around it.

A bare FastAPI app (uvicorn, one process, started by the bench):

- ``POST /api/v1/orders`` validates the body as ``commands.order.PlaceOrder``, wraps one
  ``OrderRequested`` for it and appends it with ``infra.kafka.EventPublisher`` (acks=all), then
  answers 202 with an order number. No token, no checks against the program, no Redis. The topic
  is the namespace's ``order-requests`` family under a prefix of its own
  (``BENCH_BARE_TOPIC_PREFIX``), which no allocator reads, so the baseline sells no seat.
- ``POST /api/v1/orders/sold-out`` validates the same body and answers 409 ``SOLD_OUT``, no Kafka.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import orjson
from fastapi import FastAPI, Response

from commands.order import PlaceOrder
from events.envelope import EventEnvelope
from events.order import OrderRequested, OrderRules
from infra.kafka import EventPublisher
from infra.settings import get_settings

TOPIC_PREFIX_ENV = "BENCH_BARE_TOPIC_PREFIX"
USER_ID = 1  # no token is read: every request is this buyer's
FIRST_ORDER_NUMBER = 1
RULES = OrderRules(per_account_limit=6, real_name_required=False, payment_minutes=15, seat_selectable=True)
JSON = "application/json"


def bare_app() -> FastAPI:
    settings = get_settings()
    kafka = settings.kafka.model_copy(update={"topic_prefix": os.environ[TOPIC_PREFIX_ENV]})
    publisher = EventPublisher(kafka)
    numbers = itertools.count(FIRST_ORDER_NUMBER)
    deadline = timedelta(seconds=settings.orders.decision_deadline_s)
    ack_timeout_s = settings.api.command_ack_timeout_s

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await publisher.start()
        yield
        await publisher.stop()

    app = FastAPI(lifespan=lifespan)

    @app.post("/api/v1/orders", status_code=202)
    async def place(cmd: PlaceOrder) -> Response:
        now = datetime.now(UTC)
        number = next(numbers)
        requested = OrderRequested(
            order_number=number,
            user_id=USER_ID,
            program_id=cmd.program_id,
            show_time_id=cmd.show_time_id,
            ticket_category_id=cmd.ticket_category_id,
            count=cmd.count,
            rules=RULES,
            deadline=now + deadline,
        )
        envelope = EventEnvelope.wrap(requested, aggregate_version=1, occurred_at=now)
        await publisher.append([envelope], ack_timeout_s)
        body = orjson.dumps({"orderNumber": str(number), "status": "pending"})
        return Response(body, status_code=202, media_type=JSON)

    @app.post("/api/v1/orders/sold-out", status_code=409)
    async def sold_out(cmd: PlaceOrder) -> Response:
        details = {"ticketCategoryId": str(cmd.ticket_category_id)}
        body = orjson.dumps({"code": "SOLD_OUT", "message": "no tickets of this category are left", "details": details})
        return Response(body, status_code=409, media_type=JSON)

    return app
