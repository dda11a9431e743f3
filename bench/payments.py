"""Payments under load (issue 12): notifications, notification to seats sold, reconciliation.

In a namespace of its own: the API (``python -m cli.main serve``), a projector worker, an
allocator, an order lifecycle, a payment processor and the payment sandbox (``sandbox-pay``), each
its own process; the per-user order rate limit raised out of the way and ``orders.cancel_wait_s``
0 (a cancel is answered once it is in the log, as a notification is). Every order is real: placed
through the API (one seat, automatic, each by its own synthetic user with a signed token), decided
by the allocator, held; every bill too: started through ``POST /api/v1/orders/{n}/payment``.

1. Notifications processed per second: N held orders with started bills; N notifications, signed
   here with the sandbox's gateway key as Alipay signs them (``tests/e2e/test_payments.py``
   ``_notice``), posted to ``POST /api/v1/payments/alipay/notify`` at a fixed concurrency, each
   once. Beside it, the same number of ``GET /healthz`` at the same concurrency just before. Then
   the end-to-end rate: N / (first notification sent → last decision seen "sold" in Redis).
2. Notification to seats sold: K orders paid one notification at a time, paced (open loop); per
   order, from the notification's ``success`` to its decision "sold" in Redis (the pending
   decisions read with one MGET every 5 ms). Baseline: K other held orders cancelled the same way
   (``POST /cancel`` answered → decision "cancelled"): the same lifecycle path, without the hop
   through the payment processor.
3. Reconciliation: R held orders with started bills are paid at the sandbox (the trade opened
   through the bill's ``payUrl``, then ``POST /sandbox/trades/{n}/pay``) with their notifications
   dropped (``POST /sandbox/faults {"drop": R}``). Baseline: R ``query_trade`` calls made here with
   ``AlipayProvider`` at the reconciler's concurrency. Then a payment processor is started with
   the reconciler's settings small and timed until every order is "sold". The processor of parts
   1 and 2 (defaults) is stopped first, and the API restarted with ``reconcile_after_s`` small, so
   nothing asks the provider before the clock starts.

Orders are placed and bills started through a second API of its own processes (``--setup-api-
processes``, 3), so the measured API (``--api-processes``, 1) is idle until measured; starting a
bill is slow (ADR 0007's tail read of the ``payment`` log for each new aggregate, about 85/s here),
and the ``payment`` log is given snapshot coverage at the start as provisioning gives the store's
other logs (``--no-payment-coverage``: as provisioning leaves it, each new bill read from the log).

The load client is a minimal HTTP/1.1 keep-alive client on asyncio (uvloop), so the answer time of
each request is known; its CPU is reported beside the processes'. ``--profile`` samples the
reconciling processor with py-spy. Logs go to bench/results/payments/.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import statistics
import subprocess
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import cast
from urllib.parse import urlencode, urlsplit

import httpx
import orjson
import uvloop
from cryptography.hazmat.primitives.asymmetric import rsa
from redis.asyncio import Redis

from bench.program_detail import Server, start
from bench.purchase import PROFILE_S, CpuMeter, Show, create_references, create_show, profile, top_frames
from cli.provision import provision_namespace, remove_namespace
from infra.aggregate_store import cover_empty_partitions
from infra.payments.alipay import AlipayProvider
from infra.payments.alipay_wire import alipay_time
from infra.payments.sandbox_keys import alipay_private_key_path
from infra.payments.signing import NOTIFICATION_UNSIGNED, load_private_key, sign_params
from infra.redis import LuaScripts, create_redis
from infra.redis_keys import order_decision, snapshot_coverage
from infra.settings import REPO_ROOT, Settings, get_settings
from infra.tokens import AccessTokens
from tests.processes import Child, eventually, free_port

MEASURED, SETUP = "API", "setup API"
LOGS = REPO_ROOT / "bench" / "results" / "payments"
USERS = 5 * 10**12  # synthetic user ids, apart from any real one and from bench/purchase.py's
OUT_OF_THE_WAY = "100000000"
NOTIFY_PATH = "/api/v1/payments/alipay/notify"
FORM = "application/x-www-form-urlencoded"
SETUP_CONCURRENCY = 48
READY_S, SETTLED_S = 120.0, 300.0
SETUP_POLL_S, FLOOD_POLL_S, PACED_POLL_S, RECONCILE_POLL_S = 0.1, 0.02, 0.005, 0.05
MGET_CHUNK = 1_000
PACED_CONNECTIONS = 16
SEAT_COLUMNS = 100
REJECTED = b'"status":"rejected"'
CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:[ \t]*(\d+)", re.IGNORECASE)


# -- a small HTTP/1.1 client: each exchange's send and answer times ---------------------------------


@dataclass(frozen=True)
class Exchange:
    sent: float
    """time.monotonic() when the request was written."""
    answered: float
    """... and when its whole answer had been read."""
    status: int
    body: bytes

    @property
    def latency_ms(self) -> float:
        return (self.answered - self.sent) * 1000


def http_request(method: str, target: str, headers: dict[str, str] | None = None, body: bytes = b"") -> bytes:
    lines = [f"{method} {target} HTTP/1.1", "Host: bench", *(f"{k}: {v}" for k, v in (headers or {}).items())]
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class Connection:
    """One keep-alive connection; reopened once when the server closed it."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self._host, self._port = parts.hostname or "127.0.0.1", parts.port or 80
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def open(self) -> Connection:
        self._reader, self._writer = await asyncio.open_connection(self._host, self._port)
        return self

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()

    async def exchange(self, request: bytes) -> Exchange:
        try:
            return await self._exchange(request)
        except (asyncio.IncompleteReadError, ConnectionError):
            self.close()
            await self.open()
            return await self._exchange(request)

    async def _exchange(self, request: bytes) -> Exchange:
        assert self._reader is not None and self._writer is not None
        sent = time.monotonic()
        self._writer.write(request)
        head = await self._reader.readuntil(b"\r\n\r\n")
        length = CONTENT_LENGTH.search(head)
        body = await self._reader.readexactly(int(length.group(1))) if length else b""
        return Exchange(sent, time.monotonic(), int(head[9:12]), body)


async def flood(
    url: str, requests: Sequence[bytes], concurrency: int, answered: Callable[[int], None] = lambda _: None
) -> list[Exchange]:
    """Every request once over ``concurrency`` connections, each sending its next as soon as its
    last is answered (closed loop); ``answered`` is told the index of each one answered."""
    connections = [await Connection(url).open() for _ in range(min(concurrency, len(requests)))]
    answers: list[Exchange | None] = [None] * len(requests)
    turns = iter(range(len(requests)))

    async def drive(connection: Connection) -> None:
        for i in turns:
            answers[i] = await connection.exchange(requests[i])
            answered(i)

    try:
        await asyncio.gather(*(drive(c) for c in connections))
    finally:
        for connection in connections:
            connection.close()
    return [a for a in answers if a is not None]


async def paced(
    url: str, requests: Sequence[bytes], interval_s: float, answered: Callable[[int], None] = lambda _: None
) -> list[Exchange]:
    """Request i sent at i × ``interval_s`` (open loop) over a small pool of connections."""
    pool: asyncio.Queue[Connection] = asyncio.Queue()
    for _ in range(PACED_CONNECTIONS):
        pool.put_nowait(await Connection(url).open())
    answers: list[Exchange | None] = [None] * len(requests)
    start_at = time.monotonic()

    async def one(i: int) -> None:
        await asyncio.sleep(max(0.0, start_at + i * interval_s - time.monotonic()))
        connection = await pool.get()
        try:
            answers[i] = await connection.exchange(requests[i])
            answered(i)
        finally:
            pool.put_nowait(connection)

    try:
        await asyncio.gather(*(one(i) for i in range(len(requests))))
    finally:
        while not pool.empty():
            pool.get_nowait().close()
    return [a for a in answers if a is not None]


def expect(answers: list[Exchange], statuses: set[int], what: str, body: bytes | None = None) -> None:
    wrong = [a for a in answers if a.status not in statuses or (body is not None and a.body != body)]
    if wrong:
        raise AssertionError(f"{what}: {len(wrong)} of {len(answers)} answered otherwise, e.g. {wrong[0]}")


# -- orders, bills and their decisions --------------------------------------------------------------


@dataclass(frozen=True)
class Order:
    number: int
    user_id: int
    token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


class Decisions:
    """The allocator's decisions of one program's orders in Redis, read in batches (MGET)."""

    def __init__(self, redis: Redis, program_id: int) -> None:
        self._redis, self._program_id = redis, program_id

    async def raw(self, numbers: Sequence[int]) -> list[bytes | None]:
        found: list[bytes | None] = []
        for first in range(0, len(numbers), MGET_CHUNK):
            chunk = numbers[first : first + MGET_CHUNK]
            found += cast(
                list[bytes | None], await self._redis.mget([order_decision(self._program_id, n) for n in chunk])
            )
        return found

    async def first_seen(
        self,
        numbers: Sequence[int],
        status: str,
        poll_s: float,
        timeout_s: float = SETTLED_S,
        ready: set[int] | None = None,
    ) -> dict[int, float]:
        """When (time.monotonic) each order's decision was first read with ``status``; with
        ``ready``, only the orders in it so far are read (those whose request was answered), so
        a poll costs Redis and the bench little while thousands wait to be sent."""
        marker = f'"status":"{status}"'.encode()  # cjson writes it so; checked in full by confirm()
        pending, seen = list(numbers), {}
        deadline = time.monotonic() + timeout_s
        while pending:
            asked = pending if ready is None else [n for n in pending if n in ready]
            values = await self.raw(asked)
            now = time.monotonic()
            for number, value in zip(asked, values, strict=True):
                if value is not None and marker in value:
                    seen[number] = now
                elif value is not None and REJECTED in value:
                    raise AssertionError(f"order {number} was rejected: {value!r}")
            pending = [n for n in pending if n not in seen]
            if pending and now > deadline:
                statuses = await self.statuses(pending[:5])
                raise AssertionError(f"{len(pending)} orders not {status} after {timeout_s}s, e.g. {statuses}")
            if pending:
                await asyncio.sleep(poll_s)
        await self.confirm(numbers, status)
        return seen

    async def statuses(self, numbers: Sequence[int]) -> list[str | None]:
        return [None if v is None else str(orjson.loads(v)["status"]) for v in await self.raw(numbers)]

    async def confirm(self, numbers: Sequence[int], status: str) -> None:
        wrong = [s for s in await self.statuses(numbers) if s != status]
        if wrong:
            raise AssertionError(f"{len(wrong)} decisions are not {status}: {wrong[:5]}")


@dataclass
class Stage:
    """What the bench drives: the API, the sandbox, one show, and the orders' users."""

    settings: Settings
    api_url: str
    """The measured API."""
    setup_url: str
    """The API that places the orders and starts the bills (processes of its own)."""
    sandbox_url: str
    show: Show
    redis: Redis
    tokens: AccessTokens
    next_user: int = USERS

    @property
    def decisions(self) -> Decisions:
        return Decisions(self.redis, self.show.program_id)

    async def held_orders(self, count: int) -> list[Order]:
        """``count`` orders of one seat placed through the API, each by a user of its own, held."""
        users = range(self.next_user, self.next_user + count)
        self.next_user += count
        tokens = [self.tokens.issue(u).token for u in users]
        body = self.show.body(1)
        requests = [
            http_request(
                "POST", "/api/v1/orders", {"Authorization": f"Bearer {t}", "Content-Type": "application/json"}, body
            )
            for t in tokens
        ]
        answers = await flood(self.setup_url, requests, SETUP_CONCURRENCY)
        expect(answers, {202}, "placing orders")
        orders = [
            Order(int(orjson.loads(a.body)["orderNumber"]), u, t)
            for a, u, t in zip(answers, users, tokens, strict=True)
        ]
        await self.decisions.first_seen([o.number for o in orders], "held", SETUP_POLL_S)
        return orders

    async def start_bills(self, orders: Sequence[Order]) -> list[dict[str, str]]:
        """Each order's bill, started through the payment route: its answer (``amount``, ``payUrl``)."""
        body = orjson.dumps({"channel": "alipay"})
        requests = [
            http_request(
                "POST", f"/api/v1/orders/{o.number}/payment", {**o.auth, "Content-Type": "application/json"}, body
            )
            for o in orders
        ]
        answers = await flood(self.setup_url, requests, SETUP_CONCURRENCY)
        expect(answers, {201}, "starting bills")
        return [orjson.loads(a.body) for a in answers]


def notice(settings: Settings, key: rsa.RSAPrivateKey, number: int, amount: str, serial: int) -> bytes:
    """A notification of a paid trade as Alipay sends it (form-encoded, signed with the gateway key)."""
    now = alipay_time(datetime.now(UTC))
    form = {
        "notify_time": now,
        "notify_type": "trade_status_sync",
        "notify_id": uuid.uuid4().hex,
        "app_id": settings.payments.alipay.app_id,
        "charset": "utf-8",
        "version": "1.0",
        "sign_type": "RSA2",
        "trade_no": f"{datetime.now(UTC):%Y%m%d}2200{serial:016d}",
        "out_trade_no": str(number),
        "trade_status": "TRADE_SUCCESS",
        "total_amount": amount,
        "gmt_payment": now,
    }
    form["sign"] = sign_params(form, key, NOTIFICATION_UNSIGNED)
    return http_request("POST", NOTIFY_PATH, {"Content-Type": FORM}, urlencode(form).encode())


async def notices(stage: Stage, count: int) -> tuple[list[Order], list[bytes]]:
    """``count`` held orders with started bills, and the notification that pays each."""
    orders = await stage.held_orders(count)
    bills = await stage.start_bills(orders)
    key = load_private_key(alipay_private_key_path(stage.settings.state_dir))
    serial = stage.next_user
    forms = [
        notice(stage.settings, key, o.number, b["amount"], serial + i)
        for i, (o, b) in enumerate(zip(orders, bills, strict=True))
    ]
    return orders, forms


# -- measures ---------------------------------------------------------------------------------------


def quantile_ms(values_s: Sequence[float], q: int) -> float:
    """The ``q``-th percentile, in ms."""
    ordered = sorted(values_s)
    if len(ordered) == 1:
        return ordered[0] * 1000
    return statistics.quantiles(ordered, n=100, method="inclusive")[q - 1] * 1000


@dataclass(frozen=True)
class Flood:
    answers_per_s: float
    p50_ms: float
    p99_ms: float
    client_cpu: float
    """The bench process's CPU during the run, in cores."""
    span_s: float

    @classmethod
    def of(cls, answers: list[Exchange], cpu_s: float) -> Flood:
        span = max(a.answered for a in answers) - min(a.sent for a in answers)
        latencies = [a.latency_ms / 1000 for a in answers]
        return cls(len(answers) / span, quantile_ms(latencies, 50), quantile_ms(latencies, 99), cpu_s / span, span)


@dataclass(frozen=True)
class Round1:
    healthz: Flood
    notify: Flood
    paid_per_s: float
    sold_p50_ms: float
    sold_p99_ms: float
    cpu: dict[str, float]


def own_cpu_s() -> float:
    times = os.times()
    return times.user + times.system


async def timed_flood(
    url: str, requests: Sequence[bytes], concurrency: int, answered: Callable[[int], None] = lambda _: None
) -> tuple[list[Exchange], float]:
    before = own_cpu_s()
    answers = await flood(url, requests, concurrency, answered)
    return answers, own_cpu_s() - before


async def notifications_round(stage: Stage, count: int, concurrency: int, meter: CpuMeter) -> Round1:
    orders, forms = await notices(stage, count)
    numbers = [o.number for o in orders]
    health, health_cpu = await timed_flood(stage.api_url, [http_request("GET", "/healthz")] * count, concurrency)
    expect(health, {200}, "healthz")
    ready: set[int] = set()
    watch = asyncio.create_task(stage.decisions.first_seen(numbers, "sold", FLOOD_POLL_S, ready=ready))
    before = meter.read()
    answers, notify_cpu = await timed_flood(stage.api_url, forms, concurrency, lambda i: ready.add(numbers[i]))
    after = meter.read()
    sold = await watch
    expect(answers, {200}, "notifications", b"success")
    answered = {o.number: a.answered for o, a in zip(orders, answers, strict=True)}
    latencies = [sold[n] - answered[n] for n in numbers]
    first_sent = min(a.sent for a in answers)
    return Round1(
        Flood.of(health, health_cpu),
        Flood.of(answers, notify_cpu),
        count / (max(sold.values()) - first_sent),
        quantile_ms(latencies, 50),
        quantile_ms(latencies, 99),
        CpuMeter.spent(before, after),
    )


@dataclass(frozen=True)
class Settled:
    """Per order: answered → decided, and sent → decided (seconds)."""

    after_answer: list[float]
    after_send: list[float]


async def settle_paced(
    stage: Stage, numbers: list[int], requests: list[bytes], status: str, interval_s: float, body: bytes | None
) -> Settled:
    ready: set[int] = set()
    watch = asyncio.create_task(stage.decisions.first_seen(numbers, status, PACED_POLL_S, ready=ready))
    answers = await paced(stage.api_url, requests, interval_s, lambda i: ready.add(numbers[i]))
    decided = await watch
    expect(answers, {200} if body is not None else {200, 202}, f"paced requests ({status})", body)
    return Settled(
        [decided[n] - a.answered for n, a in zip(numbers, answers, strict=True)],
        [decided[n] - a.sent for n, a in zip(numbers, answers, strict=True)],
    )


async def latency_round(stage: Stage, count: int, interval_s: float, cancel_first: bool) -> tuple[Settled, Settled]:
    """(paid, cancelled) for ``count`` orders each."""
    paying, forms = await notices(stage, count)
    cancelling = await stage.held_orders(count)
    cancels = [http_request("POST", f"/api/v1/orders/{o.number}/cancel", o.auth) for o in cancelling]

    async def pay() -> Settled:
        return await settle_paced(stage, [o.number for o in paying], forms, "sold", interval_s, b"success")

    async def cancel() -> Settled:
        return await settle_paced(stage, [o.number for o in cancelling], cancels, "cancelled", interval_s, None)

    if cancel_first:
        cancelled = await cancel()
        return await pay(), cancelled
    paid = await pay()
    return paid, await cancel()


@dataclass(frozen=True)
class Reconciled:
    bills: int
    setup_s: float
    query_s: float
    """The baseline: ``bills`` query_trade calls at the reconciler's concurrency."""
    until_all_s: float
    """From the payment processor's start to the last order seen sold."""
    first_sold_s: float
    """From its start to the first order seen sold."""
    cpu: dict[str, float]


async def pay_at_sandbox_unnotified(stage: Stage, bills: list[dict[str, str]], numbers: list[int]) -> None:
    """Open each bill's trade at the sandbox through its payUrl, then pay it; every notification dropped."""
    opened = await flood(
        stage.sandbox_url, [http_request("GET", _target(b["payUrl"])) for b in bills], SETUP_CONCURRENCY
    )
    expect(opened, {200}, "opening the trades at the sandbox")
    async with httpx.AsyncClient(base_url=stage.sandbox_url, timeout=30) as sandbox:
        (await sandbox.post("/sandbox/faults", json={"drop": len(numbers)})).raise_for_status()
        paying = [http_request("POST", f"/sandbox/trades/{n}/pay") for n in numbers]
        paid = await flood(stage.sandbox_url, paying, SETUP_CONCURRENCY)
        expect(paid, {200}, "paying at the sandbox")
        left = (await sandbox.get("/sandbox/faults")).json()["drop"]
        if left:
            raise AssertionError(f"{left} of the dropped notifications were not used: something else paid")


def _target(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


async def query_baseline(stage: Stage, numbers: list[int], concurrency: int) -> float:
    """Seconds for one query_trade of each trade, ``concurrency`` at a time, by the project's adapter."""
    alipay = stage.settings.payments.alipay.model_copy(update={"gateway": f"{stage.sandbox_url}/gateway.do"})
    provider = AlipayProvider(alipay, stage.settings.state_dir)
    limit = asyncio.Semaphore(concurrency)

    async def one(number: int) -> bool:
        async with limit:
            return (await provider.query_trade(str(number))).status.paid

    try:
        await provider.query_trade(str(numbers[0]))  # keys loaded, connection open: as in a running processor
        started = time.monotonic()
        paid = await asyncio.gather(*(one(n) for n in numbers))
        spent = time.monotonic() - started
    finally:
        await provider.aclose()
    if not all(paid):
        raise AssertionError(f"{paid.count(False)} trades are not paid at the sandbox")
    return spent


# -- the run ----------------------------------------------------------------------------------------


def payment_env(settings: Settings, sandbox_port: int) -> dict[str, str]:
    return {
        "DAMAI_PAYMENTS__SANDBOX_PORT": str(sandbox_port),
        "DAMAI_PAYMENTS__ALIPAY__GATEWAY": f"http://127.0.0.1:{sandbox_port}/gateway.do",
    }


def reconciler_env(args: argparse.Namespace) -> dict[str, str]:
    return {
        "DAMAI_PAYMENTS__RECONCILE_AFTER_S": str(args.reconcile_after_s),
        "DAMAI_PAYMENTS__RECONCILE_TICK_S": str(args.reconcile_tick_s),
        "DAMAI_PAYMENTS__RECONCILE_BATCH": str(args.reconcile_batch),
        "DAMAI_PAYMENTS__RECONCILE_CONCURRENCY": str(args.reconcile_concurrency),
    }


def start_api(settings: Settings, env: dict[str, str], log_level: str, name: str, processes: int = 1) -> Server:
    """The API; one that is not the measured one (``processes`` > 1) listens on a port of its own and
    still names the measured API's in its notify URL."""
    port = settings.api.port if name == MEASURED else free_port()
    env = {
        **settings.namespace_env(),
        **env,
        "DAMAI_RATE_LIMITS__ORDER_LIMIT": OUT_OF_THE_WAY,
        "DAMAI_ORDERS__CANCEL_WAIT_S": "0",
        "DAMAI_LOG_LEVEL": log_level,
    }
    args = ["cli.main", "serve", "--port", str(port), "--workers", str(processes)]
    return start(name, args, env, port, LOGS)


class Processes:
    """The bench's children by name, stopped together at the end."""

    def __init__(self, settings: Settings, env: dict[str, str]) -> None:
        self.settings, self.env = settings, env
        self.children: dict[str, Child] = {}
        self.servers: dict[str, Server] = {}

    def child(self, name: str, command: str, extra: dict[str, str] | None = None) -> Child:
        self.children[name] = Child(
            ["cli.main", command], self.settings, LOGS / f"{name}.log", self.env | (extra or {})
        )
        return self.children[name]

    def stop(self, name: str) -> None:
        if name in self.children:
            self.children.pop(name).stop(signal.SIGTERM)
        if name in self.servers:
            self.servers.pop(name).stop()

    def pids(self) -> dict[str, int]:
        found = {name: c.proc.pid for name, c in self.children.items()}
        return found | {name: s.proc.pid for name, s in self.servers.items()}

    def stop_all(self) -> None:
        for name in [*self.servers, *self.children]:
            self.stop(name)


async def make_shows(api_url: str, settings: Settings, seats: list[int]) -> list[Show]:
    async with httpx.AsyncClient(base_url=api_url, timeout=30) as http:
        await create_references(http, settings)
        rows = [-(-n // SEAT_COLUMNS) for n in seats]
        return [await create_show(http, settings, r, SEAT_COLUMNS, f"payments {i + 1}") for i, r in enumerate(rows)]


async def wait_up(url: str) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=2) as http:

        async def up() -> bool:
            try:
                return (await http.get("/healthz")).status_code == 200
            except httpx.TransportError:
                return False

        await eventually(up, READY_S, url)


async def run(settings: Settings, args: argparse.Namespace) -> None:
    sandbox_port = free_port()
    env = payment_env(settings, sandbox_port)
    procs = Processes(settings, env)
    redis = create_redis(settings.redis)
    try:
        procs.servers[MEASURED] = start_api(settings, env, args.log_level, MEASURED, args.api_processes)
        procs.servers[SETUP] = start_api(settings, env, args.log_level, SETUP, args.setup_api_processes)
        procs.child("sandbox", "sandbox-pay")
        for name in ("worker", "allocator", "lifecycle"):
            procs.child(name, name)
        procs.child("payments", "payments")
        await wait_up(f"http://127.0.0.1:{sandbox_port}")
        api_url, setup_url = procs.servers[MEASURED].url, procs.servers[SETUP].url
        need = [args.rounds * args.notifications, args.rounds * 2 * args.paced, args.bills]
        shows = await make_shows(api_url, settings, [n + SEAT_COLUMNS for n in need])
        tokens = AccessTokens(settings.tokens)
        sandbox_url = f"http://127.0.0.1:{sandbox_port}"
        print(f"namespace {settings.kafka.topic_prefix} ready; shows {[s.program_id for s in shows]}", flush=True)

        meter = CpuMeter(procs.pids())
        stage = Stage(settings, api_url, setup_url, sandbox_url, shows[0], redis, tokens)
        floods = []
        for r in range(args.rounds):
            floods.append(await notifications_round(stage, args.notifications, args.concurrency, meter))
            print_round1(r + 1, floods[-1], flush=True)
        stage = Stage(settings, api_url, setup_url, sandbox_url, shows[1], redis, tokens, stage.next_user)
        settled = []
        for r in range(args.rounds):
            settled.append(await latency_round(stage, args.paced, args.interval_ms / 1000, cancel_first=r % 2 == 1))
            print_round2(r + 1, *settled[-1])

        procs.stop("payments")
        procs.stop(SETUP)
        again = start_api(settings, env | reconciler_env(args), args.log_level, SETUP, args.setup_api_processes)
        procs.servers[SETUP] = again
        stage = Stage(settings, api_url, again.url, sandbox_url, shows[2], redis, tokens, stage.next_user)
        reconciled = await reconcile(stage, procs, args)
        report(floods, settled, reconciled, args)
    finally:
        procs.stop_all()
        await _forget_keys(redis, settings.orders.key_prefix, settings.kafka.topic("payment"))
        await redis.aclose()


async def reconcile(stage: Stage, procs: Processes, args: argparse.Namespace) -> Reconciled:
    began = time.monotonic()
    orders = await stage.held_orders(args.bills)
    placed = time.monotonic()
    bills = await stage.start_bills(orders)
    started = time.monotonic()
    numbers = [o.number for o in orders]
    await pay_at_sandbox_unnotified(stage, bills, numbers)
    setup_s = time.monotonic() - began
    print(
        f"3. {len(numbers):,} orders placed and held in {placed - began:.0f}s, their bills started in "
        f"{started - placed:.0f}s ({len(numbers) / (started - placed):,.0f}/s), paid at the sandbox with the "
        f"notifications dropped: {setup_s:.0f}s in all",
        flush=True,
    )
    query_s = await query_baseline(stage, numbers, args.reconcile_concurrency)
    meter = CpuMeter(procs.pids())
    before = meter.read()
    started = time.monotonic()
    processor = procs.child("payments-reconcile", "payments", reconciler_env(args))
    meter = CpuMeter(procs.pids() | {"payments-reconcile": processor.proc.pid})
    spy = asyncio.create_task(_profiled(processor.proc.pid, args.profile_after_s)) if args.profile else None
    sold = await stage.decisions.first_seen(numbers, "sold", RECONCILE_POLL_S)
    after = meter.read()
    if spy is not None:
        (await spy).wait()
        print_profile("payments-reconcile")
    return Reconciled(
        len(numbers),
        setup_s,
        query_s,
        max(sold.values()) - started,
        min(sold.values()) - started,
        CpuMeter.spent(before, after),
    )


async def _profiled(pid: int, after_s: float) -> subprocess.Popen[bytes]:
    """py-spy on the reconciling processor for PROFILE_S, from ``after_s`` after its start."""
    await asyncio.sleep(after_s)
    return profile(pid, "payments-reconcile", False)


def print_profile(name: str) -> None:
    samples, own, total = top_frames(name)
    print(f"py-spy, {name}: {samples} samples in {PROFILE_S}s at 100/s ({samples / PROFILE_S:.0f}% of a core)")
    print("  self:")
    for frame, n in own:
        print(f"    {n / samples:6.1%}  {frame}")
    print("  total:")
    for frame, n in total:
        print(f"    {n / samples:6.1%}  {frame}")


async def cover_payment_log(settings: Settings) -> None:
    """Snapshot coverage of the empty ``payment`` topic, as provisioning records it for the other
    logs of the aggregate store (``cli/provision.py:SNAPSHOTTED``, which lacks ``PayBill``):
    without it every new bill is loaded by reading its partition of the log (see bench/README.md)."""
    redis = create_redis(settings.redis)
    try:
        await cover_empty_partitions(settings, redis, LuaScripts(redis), "payment")
    finally:
        await redis.aclose()


async def _forget_keys(redis: Redis, prefix: str, payment_topic: str) -> None:
    """The namespace's keys outside the programs (user order indexes, schedules, rate limits):
    ``remove_namespace`` leaves them."""
    keys = [key async for key in redis.scan_iter(match=f"{prefix}:*", count=1_000)]
    keys.append(snapshot_coverage(payment_topic).encode())
    for first in range(0, len(keys), MGET_CHUNK):
        await redis.unlink(*keys[first : first + MGET_CHUNK])


# -- the report -------------------------------------------------------------------------------------


def print_round1(number: int, r: Round1, flush: bool = False) -> None:
    print(
        f"1. round {number}: healthz {r.healthz.answers_per_s:,.0f}/s (p50 {r.healthz.p50_ms:.1f} p99 "
        f"{r.healthz.p99_ms:.1f} ms), notify {r.notify.answers_per_s:,.0f}/s (p50 {r.notify.p50_ms:.1f} p99 "
        f"{r.notify.p99_ms:.1f} ms), paid end to end {r.paid_per_s:,.0f}/s; answered → sold p50 "
        f"{r.sold_p50_ms:,.0f} p99 {r.sold_p99_ms:,.0f} ms; client CPU {r.notify.client_cpu:.0%}",
        flush=flush,
    )
    cpu = r.cpu | {"bench": r.notify.client_cpu * r.notify.span_s}
    spent = sorted(((s, n) for n, s in cpu.items() if s >= 0.05), reverse=True)
    total = sum(cpu.values())
    print(
        f"   CPU during the notify run ({r.notify.span_s:.1f}s): {total / r.notify.span_s:.2f} cores; s: "
        + ", ".join(f"{n} {s:.1f}" for s, n in spent),
        flush=flush,
    )


def print_round2(number: int, paid: Settled, cancelled: Settled) -> None:
    print(
        f"2. round {number}: answered → sold p50 {quantile_ms(paid.after_answer, 50):.0f} p99 "
        f"{quantile_ms(paid.after_answer, 99):.0f} ms; answered → cancelled p50 "
        f"{quantile_ms(cancelled.after_answer, 50):.0f} p99 {quantile_ms(cancelled.after_answer, 99):.0f} ms",
        flush=True,
    )


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def report(
    floods: list[Round1], settled: list[tuple[Settled, Settled]], rec: Reconciled, args: argparse.Namespace
) -> None:
    def of(pick: Callable[[Round1], float]) -> float:
        return median([pick(r) for r in floods])

    def settled_ms(pick: Callable[[tuple[Settled, Settled]], list[float]], q: int) -> float:
        return median([quantile_ms(pick(s), q) for s in settled])

    rows: list[tuple[str, str, str, str]] = []

    def row(figure: str, value: float, base: float, unit: str, fmt: str = ",.0f") -> None:
        rows.append((figure, f"{value:{fmt}}{unit}", f"{base:{fmt}}{unit}", f"{value / base:.2f}"))

    c = args.concurrency
    notify, health = of(lambda r: r.notify.answers_per_s), of(lambda r: r.healthz.answers_per_s)
    row(f"1. notify answers/s, c={c} (vs GET /healthz)", notify, health, "/s")
    row("1. notify p50 (vs /healthz p50)", of(lambda r: r.notify.p50_ms), of(lambda r: r.healthz.p50_ms), " ms", ".1f")
    row("1. notify p99 (vs /healthz p99)", of(lambda r: r.notify.p99_ms), of(lambda r: r.healthz.p99_ms), " ms", ".1f")
    row("1. orders paid/s end to end (vs notify answers/s)", of(lambda r: r.paid_per_s), notify, "/s")
    for q in (50, 99):
        row(
            f"2. answered → sold p{q} (vs cancel answered → cancelled)",
            settled_ms(lambda s: s[0].after_answer, q),
            settled_ms(lambda s: s[1].after_answer, q),
            " ms",
        )
    for q in (50, 99):
        row(
            f"2. sent → sold p{q} (vs cancel sent → cancelled)",
            settled_ms(lambda s: s[0].after_send, q),
            settled_ms(lambda s: s[1].after_send, q),
            " ms",
        )
    row(
        f"3. reconciled {rec.bills:,} bills: s until all sold (vs query_trade × {rec.bills:,})",
        rec.until_all_s,
        rec.query_s,
        " s",
        ".1f",
    )
    span = rec.until_all_s - rec.first_sold_s
    row("3. bills paid/s, first sold → last (vs query_trade/s)", rec.bills / span, rec.bills / rec.query_s, "/s")

    print(
        f"\n{args.rounds} round(s) of {args.notifications:,} notifications and of {args.paced:,} paced payments and "
        f"cancels ({args.interval_ms:g} ms apart); {rec.bills:,} bills reconciled (batch {args.reconcile_batch}, "
        f"concurrency {args.reconcile_concurrency}, tick {args.reconcile_tick_s:g}s, after {args.reconcile_after_s:g}s)"
    )
    print(
        f"3. setup {rec.setup_s:.0f}s; the processor's first sold order {rec.first_sold_s:.1f}s after its start; "
        "CPU s while reconciling: "
        + ", ".join(f"{n} {s:.1f}" for s, n in sorted(((s, n) for n, s in rec.cpu.items() if s >= 0.05), reverse=True))
    )
    width = max(len(r[0]) for r in rows)
    print(f"\n{'figure':<{width}}  {'measured':>12}  {'baseline':>12}  {'ratio':>6}")
    for figure, value, base, ratio in rows:
        print(f"{figure:<{width}}  {value:>12}  {base:>12}  {ratio:>6}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a smoke run: small sizes, one round")
    parser.add_argument("--rounds", type=int, help="rounds of parts 1 and 2 (3; quick 1)")
    parser.add_argument("--notifications", type=int, help="notifications per round of part 1 (2000; quick 300)")
    parser.add_argument("--concurrency", type=int, default=64, help="connections sending notifications (part 1)")
    parser.add_argument("--paced", type=int, help="payments and cancels per round of part 2 (200; quick 50)")
    parser.add_argument("--interval-ms", type=float, default=20.0, help="between two paced requests (part 2)")
    parser.add_argument("--bills", type=int, help="open bills to reconcile (10000; quick 1000)")
    parser.add_argument("--reconcile-after-s", type=float, default=1.0)
    parser.add_argument("--reconcile-tick-s", type=float, default=0.2)
    parser.add_argument("--reconcile-batch", type=int, default=500)
    parser.add_argument("--reconcile-concurrency", type=int, default=32)
    parser.add_argument("--api-processes", type=int, default=1, help="of the measured API")
    parser.add_argument(
        "--setup-api-processes", type=int, default=3, help="of the API that places the orders and starts the bills"
    )
    parser.add_argument("--log-level", default="INFO", help="the API's log level (INFO writes an access line)")
    parser.add_argument(
        "--no-payment-coverage",
        action="store_true",
        help="leave the payment log without snapshot coverage, as provisioning does now (every new bill "
        "read from the log: part 3's setup takes minutes)",
    )
    parser.add_argument("--profile", action="store_true", help="py-spy the reconciling payment processor")
    parser.add_argument("--profile-after-s", type=float, default=8.0, help="from the processor's start")
    args = parser.parse_args()
    for name, full, quick in (
        ("rounds", 3, 1),
        ("notifications", 2000, 300),
        ("paced", 200, 50),
        ("bills", 10_000, 1_000),
    ):
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    base = get_settings().namespaced(f"bench{uuid.uuid4().hex[:8]}")
    settings = base.model_copy(update={"api": base.api.model_copy(update={"port": free_port()})})
    LOGS.mkdir(parents=True, exist_ok=True)
    asyncio.run(provision_namespace(settings))
    if not args.no_payment_coverage:
        asyncio.run(cover_payment_log(settings))
    try:
        uvloop.run(run(settings, args))
    finally:
        asyncio.run(remove_namespace(settings))


if __name__ == "__main__":
    main()
