"""What command handlers need from the outside world, as protocols; ``bootstrap.py`` plugs in the
adapters (``infra/``). Handlers import these, never an adapter."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Protocol, TypeVar

from aggregates.base import Aggregate
from aggregates.errors import Conflict

A = TypeVar("A", bound=Aggregate)


class ConcurrentChange(Conflict):
    """Another command changed the aggregate between this one's load and its save."""

    code = "CONCURRENT_CHANGE"


class Unavailable(Exception):
    """A store or the log a handler needs did not answer in time; the client may retry.

    ``code`` and ``message`` are what the API answers with (503, ``Retry-After``)."""

    code: str = "DEPENDENCY_UNAVAILABLE"
    message: str = "a dependency did not answer in time; retry"


class LogUnavailable(Unavailable):
    """The event log did not acknowledge an append in time; the command may or may not be in it."""

    code = "EVENT_LOG_UNAVAILABLE"
    message = "the event log did not acknowledge the command; retry"


class AggregateStore(Protocol):
    """Aggregates as the log has them: every event appended for one is seen by the next load."""

    async def load(self, cls: type[A], aggregate_id: str) -> A | None:
        """The aggregate with all its events applied; None if it has none."""
        ...

    async def save(self, aggregate: Aggregate, correlation_id: uuid.UUID | None) -> list[uuid.UUID]:
        """Append the events the aggregate has just decided; return their event ids.

        Raises ``ConcurrentChange`` when another save got there first (nothing is appended),
        ``LogUnavailable`` when Kafka did not acknowledge the events in time.
        """
        ...


class IdSource(Protocol):
    def next_entity_id(self) -> int: ...


Clock = Callable[[], datetime]

# A command that lost a race reloads and decides again, this many times before answering 409.
CHANGE_ATTEMPTS = 5


async def change(
    store: AggregateStore,
    cls: type[A],
    aggregate_id: str,
    decide: Callable[[A | None], A],
    correlation_id: uuid.UUID | None,
) -> tuple[A, list[uuid.UUID]]:
    """Load → decide → append, again from the load when another command got there first.

    Returns the aggregate and the ids of the events appended (none when it decided nothing)."""
    for attempt in range(CHANGE_ATTEMPTS):
        aggregate = decide(await store.load(cls, aggregate_id))
        try:
            return aggregate, await store.save(aggregate, correlation_id)
        except ConcurrentChange:
            if attempt == CHANGE_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")



# -- payment providers (issue 12) -----------------------------------------------------------------


class TradeStatus(StrEnum):
    """A trade as the provider has it (Alipay's ``trade_status``, named after its states)."""

    WAITING = "WAIT_BUYER_PAY"
    """Created, not paid yet."""
    PAID = "TRADE_SUCCESS"
    """Paid; still refundable."""
    FINISHED = "TRADE_FINISHED"
    """Paid, and past the provider's refund window."""
    CLOSED = "TRADE_CLOSED"
    """Closed unpaid, or paid and then refunded in full."""
    UNKNOWN = "UNKNOWN"
    """The provider has no trade of that number (nobody opened the payment page yet)."""

    @property
    def paid(self) -> bool:
        return self in (TradeStatus.PAID, TradeStatus.FINISHED)


@dataclass(frozen=True)
class TradeRequest:
    """What the buyer is asked to pay: the trade is the order (``out_trade_no`` is its number)."""

    out_trade_no: str
    amount: Decimal
    subject: str
    timeout_at: datetime
    """The order's payment deadline: the provider closes the trade unpaid after it."""


@dataclass(frozen=True)
class Trade:
    """A trade as the provider reports it, in a notification or an answer to a query."""

    out_trade_no: str
    trade_no: str
    """The provider's own number of the trade: the payment id here (empty while it has none)."""
    status: TradeStatus
    amount: Decimal
    paid_at: datetime | None


@dataclass(frozen=True)
class RefundResult:
    out_trade_no: str
    out_request_no: str
    """This refund's number, ours: asking again with it never refunds twice."""
    refunded: bool
    amount: Decimal
    refunded_at: datetime | None


class PaymentRefused(Exception):
    """A notification the provider did not sign, or that names another app or seller: nothing
    is recorded. ``reason`` is a stable word for the metric (``signature``, ``app_id``, ...)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class ProviderUnavailable(Unavailable):
    """The payment provider did not answer, or answered with an error: retry later."""

    code = "PAYMENT_PROVIDER_UNAVAILABLE"
    message = "the payment provider did not answer; retry"


class PaymentProvider(Protocol):
    """One payment channel (``channel``: the path segment of its notify route).

    Every call that goes out raises ``ProviderUnavailable`` on a timeout, a transport error or an
    error answer; ``verify_notification`` touches nothing outside the process."""

    channel: str

    def pay_url(self, trade: TradeRequest) -> str:
        """What the client opens to pay (a signed request to the provider's page; no call made)."""
        ...

    def verify_notification(self, form: Mapping[str, str]) -> Trade:
        """The trade an asynchronous notification reports, once its signature, app id and fields
        are checked; ``PaymentRefused`` otherwise."""
        ...

    async def query_trade(self, out_trade_no: str) -> Trade:
        """The trade as the provider has it now (``TradeStatus.UNKNOWN`` when it has none)."""
        ...

    async def refund(self, out_trade_no: str, out_request_no: str, amount: Decimal, reason: str) -> RefundResult:
        """Give ``amount`` back; asking again with the same ``out_request_no`` refunds once."""
        ...

    async def query_refund(self, out_trade_no: str, out_request_no: str) -> RefundResult:
        """Whether that refund went through (``refunded`` False when the provider has none)."""
        ...

    async def aclose(self) -> None:
        """Close what the adapter holds open (its HTTP connections)."""
        ...
