"""The sandbox's asynchronous notifications, and the faults a test can set on them and on calls.

Delivery is Alipay's: a form POST to the trade's ``notify_url``, retried until the answer's body
is exactly ``success`` (Alipay retries over a day; here the waits are short and set with the
faults, ``retry_delays_s``). The faults are per sandbox process and simple on purpose: counters
that run down (``drop``, ``fail_refund``, ``fail_query``) and settings that stay until reset
(``duplicate``, ``delay_s``, ``reorder``); ``trades`` narrows them to some trade numbers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Mapping
from datetime import UTC, datetime
from typing import Any

import httpx
import structlog
from pydantic import BaseModel, Field

from infra.payments.sandbox_trades import Delivery, SandboxTrade

log = structlog.get_logger(__name__)

ACCEPTED = "success"
"""The only answer body that stops Alipay's retries."""
DEFAULT_RETRY_DELAYS_S = [0.2, 0.5, 1.0, 2.0]
DELIVERY_TIMEOUT_S = 5.0
"""Longest one delivery attempt waits for the receiver's answer."""


class Faults(BaseModel):
    """What goes wrong on purpose (``POST /sandbox/faults`` sets the fields it names)."""

    drop: int = Field(default=0, ge=0, description="The next N notifications are never sent.")
    duplicate: int = Field(default=1, ge=1, le=100, description="Each notification is sent this many times at once.")
    delay_s: float = Field(default=0.0, ge=0, le=600, description="Each notification waits this long first.")
    reorder: bool = Field(
        default=False, description="Hold notifications; send them newest first on release (or after reorder_hold_s)."
    )
    reorder_hold_s: float = Field(default=0.0, ge=0, le=600, description="Release held ones after this; 0: on demand.")
    fail_refund: int = Field(
        default=0, ge=0, description="The next N refunds answer ACQ.SYSTEM_ERROR, refunding nothing."
    )
    fail_query: int = Field(default=0, ge=0, description="The next N trade or refund queries answer a system error.")
    trades: list[str] = Field(default_factory=list, description="Only these out_trade_no; empty: every trade.")
    retry_delays_s: list[float] = Field(
        default_factory=lambda: list(DEFAULT_RETRY_DELAYS_S),
        max_length=20,
        description="Waits between the attempts of one notification whose answer is not `success`.",
    )

    def applies_to(self, out_trade_no: str) -> bool:
        return not self.trades or out_trade_no in self.trades

    def take(self, counter: str, out_trade_no: str) -> bool:
        """Whether the counter fault hits this trade's call now (running it down by one if so)."""
        left: int = getattr(self, counter)
        if left <= 0 or not self.applies_to(out_trade_no):
            return False
        setattr(self, counter, left - 1)
        return True


class Notifier:
    """Sends notifications as ``faults`` say, recording each attempt on its ``Delivery``."""

    def __init__(self, client: httpx.AsyncClient, faults: Faults) -> None:
        self.faults = faults
        self._client = client
        self._tasks: set[asyncio.Task[None]] = set()
        self._held: list[tuple[Delivery, str, dict[str, str], int]] = []
        self._release_timer: asyncio.TimerHandle | None = None

    def notify(self, trade: SandboxTrade, form: dict[str, str], faulty: bool = True) -> Delivery:
        """Send ``form`` to the trade's notify_url in the background (faults apply when ``faulty``)."""
        delivery = Delivery(notify_id=form["notify_id"], trade_status=form["trade_status"])
        trade.notifications.append(delivery)
        applies = faulty and self.faults.applies_to(trade.out_trade_no)
        if applies and self.faults.take("drop", trade.out_trade_no):
            delivery.fate = "dropped"
            log.info("sandbox_notification_dropped", out_trade_no=trade.out_trade_no, notify_id=delivery.notify_id)
            return delivery
        copies = self.faults.duplicate if applies else 1
        if applies and self.faults.reorder:
            delivery.fate = "held"
            self._held.append((delivery, trade.notify_url, form, copies))
            self._arm_release()
            return delivery
        delay = self.faults.delay_s if applies else 0.0
        self._spawn(self._deliver(delivery, trade.notify_url, form, copies, delay))
        return delivery

    def release(self) -> int:
        """Send the held notifications, newest first; how many there were."""
        held, self._held = self._held, []
        if self._release_timer is not None:
            self._release_timer.cancel()
            self._release_timer = None
        for delivery, *_ in held:
            delivery.fate = "pending"
        self._spawn(self._deliver_in_turn(list(reversed(held))))
        return len(held)

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _arm_release(self) -> None:
        if self._release_timer is None and self.faults.reorder_hold_s > 0:
            self._release_timer = asyncio.get_running_loop().call_later(self.faults.reorder_hold_s, self.release)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver_in_turn(self, queue: list[tuple[Delivery, str, dict[str, str], int]]) -> None:
        """One after the other, each answered (or given up) before the next is sent."""
        for delivery, url, form, copies in queue:
            await self._deliver(delivery, url, form, copies, 0.0)

    async def _deliver(self, delivery: Delivery, url: str, form: Mapping[str, str], copies: int, delay: float) -> None:
        if delay:
            await asyncio.sleep(delay)
        await asyncio.gather(*(self._deliver_once(delivery, url, form) for _ in range(copies)))

    async def _deliver_once(self, delivery: Delivery, url: str, form: Mapping[str, str]) -> None:
        """One copy: attempts until the answer is ``success`` or the retry waits run out."""
        waits = [*self.faults.retry_delays_s, None]
        for attempt, wait in enumerate(waits, start=1):
            answer = await self._attempt(url, form)
            delivery.answers.append({"attempt": attempt, **answer})
            log.info("sandbox_notification_sent", notify_id=delivery.notify_id, url=url, attempt=attempt, **answer)
            if answer.get("body") == ACCEPTED:
                delivery.fate = "delivered"
                return
            if wait is None:
                break
            await asyncio.sleep(wait)
        if delivery.fate != "delivered":
            delivery.fate = "given_up"

    async def _attempt(self, url: str, form: Mapping[str, str]) -> dict[str, Any]:
        at = datetime.now(UTC).isoformat()
        try:
            response = await self._client.post(url, data=dict(form), timeout=DELIVERY_TIMEOUT_S)
        except httpx.HTTPError as exc:
            return {"at": at, "status": None, "body": None, "error": repr(exc)}
        return {"at": at, "status": response.status_code, "body": response.text}
