"""The purchase path under load: POST /api/v1/orders through the allocator, beside bare baselines (issue 11).

In a namespace of its own: the API (``--api-processes``), a projector worker, one allocator and
an order lifecycle, with the per-user order rate limit raised out of the way. Four programs are
created through the admin API, each with one show time and one seated category (per-order limit
2, per-account limit 6): the sale (``--rows`` × ``--columns``, 50,000 seats), a small show to
sell out (10 × 10), the allocator's backlog show and the script baseline's show (both 50,000).
``--tokens`` access tokens are signed for synthetic user ids (an order needs only the token's
user); the wrk script (Debian's ``wrk``, one thread) sends each token in turn an automatic order
of 1 or 2 seats of the show's category.

1. Purchase requests end to end: wrk on the sale for ``--duration`` s, between two runs of the
   same script against ``bench/bare_purchase_api.py`` (validate, append to Kafka with acks=all,
   202). Then every decision is read back from the namespace's ``order`` topic: decision latency
   = the envelope's ``occurred_at`` − the payload's ``requested_at``; decided/s = decisions
   made within the run's window per second.
2. Sold-out rejections: the small show is sold out through the API, then wrk sends the same
   requests, which the API refuses from its per-process remaining counts (409 SOLD_OUT, no
   Kafka), beside the bare app's sold-out route (validate, 409), ``--rounds`` rounds each.
3. The allocator alone: the allocator is stopped, ``--backlog`` OrderRequested (1 seat, distinct
   users, a deadline an hour away) are appended for the backlog show; the baseline calls
   ``lua/order_reserve.lua`` back to back from Python (EVALSHA, one connection, as the allocator)
   with the same requests for the baseline show, ``--script-batch`` a call; then the allocator is
   started and timed until its consumer group's lag is 0.
4. With ``--profile``: a further wrk run on the sale with py-spy sampling the API and the
   allocator; the frames that take the most samples are printed.

wrk's own CPU time is measured for each run (the load client must not be the bottleneck).
Logs, scripts and profiles go to bench/results/purchase/; the namespace is removed afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from bench.bare_purchase_api import TOPIC_PREFIX_ENV
from bench.program_detail import Server, start
from cli.provision import provision_namespace, remove_namespace
from events.envelope import EventEnvelope
from events.order import OrderRequested, OrderRules
from events.serialization import decode
from infra.ids import IdService
from infra.kafka import EventPublisher, ensure_topics
from infra.order_store import GeneOrderNumbers
from infra.postgres.routing import shard_layout
from infra.redis import LUA_DIR, LuaScripts, create_redis
from infra.redis_keys import SEAT_ROW_STRIDE, available_seats, program_tag, remaining_counts
from infra.settings import REPO_ROOT, Settings, get_settings
from infra.tokens import AccessTokens
from projections.seat_allocation import request_json
from tests.processes import Child, eventually, free_port

AREA, PARENT, CHILD = 330100, 1, 101
PER_ORDER_LIMIT, PER_ACCOUNT_LIMIT, PAYMENT_MINUTES = 2, 6, 15
RULES = OrderRules(
    per_account_limit=PER_ACCOUNT_LIMIT, real_name_required=False, payment_minutes=PAYMENT_MINUTES, seat_selectable=True
)
SMALL_ROWS = SMALL_COLUMNS = 10
TOKEN_USERS, BACKLOG_USERS, SCRIPT_USERS = 10**12, 2 * 10**12, 3 * 10**12  # synthetic user ids, apart from any real one
OUT_OF_THE_WAY = "100000000"
READY_S, DRAIN_S, HTTP_TIMEOUT_S = 300.0, 300.0, 30.0
SELL_OUT_S, SELL_OUT_TRIES, FLAG_AGE_S = 3, 10, 1.5
PUBLISH_CHUNK, POLL_S, PROFILE_S = 2_000, 0.1, 6
# Frames under every sample of a process (the CLI, the event loop, uvicorn): left out of the totals.
PLUMBING = tuple(
    f"{module})"
    for module in (
        "click/core.py",
        "typer/core.py",
        "typer/main.py",
        "cli/main.py",
        "<frozen runpy>",
        "asyncio/runners.py",
        "asyncio/base_events.py",
        "asyncio/events.py",
        "uvicorn/server.py",
        "uvicorn/_compat.py",
    )
)
DECISIONS = ("SeatsReserved", "OrderRejected")
ORDERS_PATH, SOLD_OUT_PATH = "/api/v1/orders", "/api/v1/orders/sold-out"
SCRIPT_ORDERS = 10**15  # the script baseline's order numbers: never a real one's
LOGS = REPO_ROOT / "bench" / "results" / "purchase"
PY_SPY = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))  # the venv's, off PATH

WRK_SCRIPT = """\
-- Written by bench/purchase.py: POST {path}, each token in turn, automatic seats (1 or 2).
-- wrk ... -- <first token>: runs continue where the previous one stopped.
local tokens = {{
{tokens}
}}
local bodies = {{ [==[{one}]==], [==[{two}]==] }}
local requests = {{}}
local next_request = 0
s202, s409, sother = 0, 0, 0

function init(args)
  for i, t in ipairs(tokens) do
    local headers = {{["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. t}}
    requests[i] = wrk.format("POST", "{path}", headers, bodies[i % 2 + 1])
  end
  next_request = tonumber(args[1] or "0") % #requests
end

function request()
  next_request = next_request % #requests + 1
  return requests[next_request]
end

function response(status, headers, body)
  if status == 202 then s202 = s202 + 1 elseif status == 409 then s409 = s409 + 1 else sother = sother + 1 end
end

local threads = {{}}
function setup(thread) table.insert(threads, thread) end

function done(summary, latency, requests)
  local a, b, c = 0, 0, 0
  for _, t in ipairs(threads) do a = a + t:get("s202"); b = b + t:get("s409"); c = c + t:get("sother") end
  io.write(string.format("STATUS 202=%d 409=%d other=%d\\n", a, b, c))
end
"""


@dataclass(frozen=True)
class Show:
    program_id: int
    show_time_id: int
    category_id: int
    seats: int

    def body(self, count: int) -> bytes:
        return orjson.dumps(
            {
                "programId": str(self.program_id),
                "showTimeId": str(self.show_time_id),
                "ticketCategoryId": str(self.category_id),
                "count": count,
            }
        )


@dataclass
class Run:
    """One wrk run: its window, throughput, latency, statuses and wrk's own CPU."""

    started: datetime
    ended: datetime
    requests: int
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    statuses: dict[str, int]
    errors: str
    wrk_cpu_s: float

    @property
    def seconds(self) -> float:
        return (self.ended - self.started).total_seconds()

    def per_s(self, status: str) -> float:
        return self.statuses[status] / self.seconds


@dataclass
class Load:
    """wrk against one server, each run continuing through the tokens where the last stopped."""

    connections: int
    sent: int = 0
    runs: list[Run] = field(default_factory=list)

    def run(self, url: str, script: Path, seconds: int) -> Run:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = datetime.now(UTC)
        command = ["wrk", "-t1", f"-c{self.connections}", f"-d{seconds}s", "--latency", "-s", str(script), url]
        out = subprocess.run([*command, "--", str(self.sent)], capture_output=True, text=True, check=True).stdout
        ended = datetime.now(UTC)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
        self.sent += requests
        statuses = dict(re.findall(r"(202|409|other)=(\d+)", out))
        errors = re.search(r"Socket errors:.*", out)
        run = Run(
            started,
            ended,
            requests,
            float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
            _percentile_ms(out, "50%"),
            _percentile_ms(out, "99%"),
            {k: int(v) for k, v in statuses.items()},
            errors.group(0) if errors else "",
            (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime),
        )
        self.runs.append(run)
        return run


def _percentile_ms(out: str, label: str) -> float:
    value, unit = re.search(rf"{label}\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1000.0}[unit]


def write_script(path: Path, url_path: str, show: Show, tokens: list[str]) -> Path:
    lines = ",\n".join(f'  "{t}"' for t in tokens)
    text = WRK_SCRIPT.format(path=url_path, tokens=lines, one=show.body(1).decode(), two=show.body(2).decode())
    path.write_text(text)
    return path


# -- the namespace's stack and programs ------------------------------------------------------------


async def create_show(http: httpx.AsyncClient, settings: Settings, rows: int, columns: int, title: str) -> Show:
    """A published program of one show time and one seated category, its inventory in Redis."""
    admin = {"Authorization": f"Bearer {settings.api.admin_token}"}
    body = {
        "title": title,
        "actor": "bench",
        "venue": "bench arena",
        "areaId": AREA,
        "parentCategoryId": PARENT,
        "categoryId": CHILD,
        "seatSelectable": True,
        "perOrderLimit": PER_ORDER_LIMIT,
        "perAccountLimit": PER_ACCOUNT_LIMIT,
        "paymentMinutes": PAYMENT_MINUTES,
        "showTimes": [
            {
                "startsAt": (datetime.now(UTC) + timedelta(days=20)).isoformat(),
                "ticketCategories": [
                    {"name": "内场", "price": "880.00", "seatGrid": {"rows": rows, "columns": columns}}
                ],
            }
        ],
    }
    accepted = await http.post("/api/v1/admin/programs", json=body, headers=admin)
    assert accepted.status_code == 202, accepted.text
    program_id = int(accepted.json()["programId"])
    redis = create_redis(settings.redis)
    try:

        async def laid_out() -> bool:
            counts = list((await redis.hgetall(remaining_counts(program_id))).items())
            if len(counts) != 1 or int(counts[0][1]) != rows * columns:
                return False
            return int(await redis.zcard(available_seats(program_id, int(counts[0][0])))) == rows * columns

        await eventually(laid_out, READY_S, f"{rows * columns} seats of program {program_id} in Redis")
    finally:
        await redis.aclose()
    await http.post(f"/api/v1/admin/programs/{program_id}/publish", headers=admin)

    async def on_sale() -> bool:
        detail = await http.get(f"/api/v1/programs/{program_id}")
        return detail.status_code == 200 and detail.json()["status"] == "on_sale"

    await eventually(on_sale, READY_S, f"program {program_id} on sale")
    [show_time] = (await http.get(f"/api/v1/programs/{program_id}")).json()["showTimes"]
    [category] = show_time["ticketCategories"]
    return Show(program_id, int(show_time["id"]), int(category["id"]), rows * columns)


async def create_references(http: httpx.AsyncClient, settings: Settings) -> None:
    admin = {"Authorization": f"Bearer {settings.api.admin_token}"}
    await http.post("/api/v1/admin/areas", json={"areaId": AREA, "name": "杭州", "level": "city"}, headers=admin)
    await http.post("/api/v1/admin/categories", json={"categoryId": PARENT, "name": "演唱会"}, headers=admin)

    async def has(path: str, text: str) -> bool:
        response = await http.get(path)
        return response.status_code == 200 and text in response.text

    await eventually(lambda: has(f"/api/v1/areas/{AREA}", "杭州"), READY_S, "the area")
    await eventually(lambda: has("/api/v1/categories", "演唱会"), READY_S, "the parent category")
    child = {"categoryId": CHILD, "name": "流行", "parentId": PARENT}
    await http.post("/api/v1/admin/categories", json=child, headers=admin)
    await eventually(lambda: has("/api/v1/categories", "流行"), READY_S, "the child category")


async def create_shows(url: str, settings: Settings, rows: int, columns: int) -> list[Show]:
    """The sale, the small show, the backlog's show and the script baseline's show."""
    async with httpx.AsyncClient(base_url=url, timeout=HTTP_TIMEOUT_S) as http:
        await create_references(http, settings)
        return [
            await create_show(http, settings, rows, columns, "the sale"),
            await create_show(http, settings, SMALL_ROWS, SMALL_COLUMNS, "the small show"),
            await create_show(http, settings, rows, columns, "the backlog"),
            await create_show(http, settings, rows, columns, "the script baseline"),
        ]


def start_api(settings: Settings, processes: int, log_level: str) -> Server:
    env = {k: v for k, v in settings.namespace_env().items() if k != "DAMAI_API__PORT"}
    env |= {"DAMAI_RATE_LIMITS__ORDER_LIMIT": OUT_OF_THE_WAY, "DAMAI_LOG_LEVEL": log_level}
    port = free_port()
    args = ["cli.main", "serve", "--port", str(port), "--workers", str(processes)]
    return start("API", args, env, port, LOGS)


def start_bare(settings: Settings) -> Server:
    port = free_port()
    env = {**settings.namespace_env(), TOPIC_PREFIX_ENV: bare_prefix(settings)}
    args = ["uvicorn", "bench.bare_purchase_api:bare_app", "--factory", "--port", str(port)]
    return start("bare", [*args, "--no-access-log", "--log-level", "warning"], env, port, LOGS)


def bare_prefix(settings: Settings) -> str:
    return f"{settings.kafka.topic_prefix}bare."  # under the namespace's prefix: removed with it


# -- reading the log -----------------------------------------------------------------------------


async def allocator_lag(settings: Settings) -> int:
    """Order requests in the log that the allocator's group has not committed."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka.bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka.bootstrap)
    await admin.start()
    await consumer.start()
    try:
        topic = settings.kafka.topic("order-requests")
        parts = [TopicPartition(topic, p) for p in range(settings.kafka.topics["order-requests"].partitions)]
        ends = await consumer.end_offsets(parts)
        committed = await admin.list_consumer_group_offsets(settings.worker.allocator_group)
        return sum(end - (committed[tp].offset if tp in committed else 0) for tp, end in ends.items())
    finally:
        await consumer.stop()
        await admin.close()


async def wait_drained(settings: Settings, timeout_s: float = DRAIN_S) -> list[tuple[float, int]]:
    """Poll the allocator's lag until 0; the (monotonic time, lag) of each poll."""
    polls: list[tuple[float, int]] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        lag = await allocator_lag(settings)
        polls.append((time.monotonic(), lag))
        if lag == 0:
            return polls
        await asyncio.sleep(POLL_S)
    raise AssertionError(f"the allocator still had {polls[-1][1]} requests to decide after {timeout_s}s")


@dataclass(frozen=True)
class Decided:
    program_id: int
    outcome: str
    requested_at: datetime
    decided_at: datetime

    @property
    def latency_s(self) -> float:
        return (self.decided_at - self.requested_at).total_seconds()


async def decisions(settings: Settings) -> list[Decided]:
    """Every SeatsReserved and OrderRejected in the namespace's ``order`` topic, from the start."""
    topic = settings.kafka.topic("order")
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka.bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        parts = [TopicPartition(topic, p) for p in range(settings.kafka.topics["order"].partitions)]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        ends = await consumer.end_offsets(parts)
        found: list[Decided] = []
        while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
            for records in (await consumer.getmany(timeout_ms=1000, max_records=10_000)).values():
                for record in records:
                    envelope = decode(record.value)
                    if envelope.type in DECISIONS:
                        found.append(_decided(envelope))
        return found
    finally:
        await consumer.stop()


def _decided(envelope: EventEnvelope) -> Decided:
    payload = envelope.payload
    outcome = "held" if envelope.type == "SeatsReserved" else payload["reason"]
    requested_at = datetime.fromisoformat(payload["requestedAt"])
    return Decided(int(payload["programId"]), outcome, requested_at, envelope.occurred_at)


async def seats_left(settings: Settings, show: Show) -> int:
    redis = create_redis(settings.redis)
    try:
        return int(await redis.hget(remaining_counts(show.program_id), str(show.category_id)) or 0)
    finally:
        await redis.aclose()


# -- part 1 and 2: through the API -----------------------------------------------------------------


@dataclass
class Sale:
    api: Run
    bare: list[Run]
    decided: list[Decided]
    decided_per_s: float
    api_cpu: dict[str, float]
    """CPU seconds each part of the system used during the API run."""
    bare_cpu: dict[str, float]
    """... and during the first bare run."""


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
STACK_PARTS = {
    "redis": "redis-server",
    "kafka": "kafka.Kafka",
    "postgres": "postgres",
    "elasticsearch": "elasticsearch",
}
"""Stack services by a word of their command line (every process of one service counts to it)."""


class CpuMeter:
    """CPU seconds (user + system, from /proc) of each part of the system: the API (and its
    uvicorn children), the bare app, the worker, the lifecycle, the allocator, and the stack's
    services; read before and after a run, the difference is where the run's CPU went."""

    def __init__(self, pids: dict[str, int]) -> None:
        self._pids = pids

    def read(self) -> dict[str, float]:
        spent: dict[str, float] = dict.fromkeys([*self._pids, *STACK_PARTS], 0.0)
        for name, pid in self._pids.items():
            for each in [pid, *_descendants(pid)]:
                spent[name] += _cpu_s(each)
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                except OSError:
                    continue
                for name, word in STACK_PARTS.items():
                    if word in command and "python" not in command:
                        spent[name] += _cpu_s(int(entry.name))
                        break
        return spent

    @staticmethod
    def spent(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
        return {name: after[name] - before.get(name, 0.0) for name in after}


def _cpu_s(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime: fields 14, 15 of stat


def _descendants(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children = [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
        for child in children:
            found += [child, *_descendants(child)]
    return found


def measure_sale(
    settings: Settings,
    api: Server,
    bare: Server,
    show: Show,
    tokens: list[str],
    args: argparse.Namespace,
    meter: CpuMeter,
) -> Sale:
    api_load, bare_load = Load(args.connections), Load(args.connections)
    api_script = write_script(LOGS / "api-orders.lua", ORDERS_PATH, show, tokens)
    bare_script = write_script(LOGS / "bare-orders.lua", ORDERS_PATH, show, tokens)
    before = meter.read()
    bare_load.run(bare.url, bare_script, args.duration)
    between = meter.read()
    api_run = api_load.run(api.url, api_script, args.duration)
    after = meter.read()
    bare_load.run(bare.url, bare_script, args.duration)
    asyncio.run(wait_drained(settings))
    every = asyncio.run(decisions(settings))
    ours = [d for d in every if d.program_id == show.program_id and api_run.started <= d.requested_at <= api_run.ended]
    in_window = [d for d in every if api_run.started <= d.decided_at <= api_run.ended]
    return Sale(
        api_run,
        bare_load.runs,
        ours,
        len(in_window) / api_run.seconds,
        CpuMeter.spent(between, after),
        CpuMeter.spent(before, between),
    )


def sell_out(api: Server, settings: Settings, show: Show, tokens: list[str], connections: int) -> None:
    """Sell every seat of ``show`` through the API; then wait until the API's flag can have seen it."""
    script = write_script(LOGS / "api-small.lua", ORDERS_PATH, show, tokens)
    load = Load(connections)
    for _ in range(SELL_OUT_TRIES):
        load.run(api.url, script, SELL_OUT_S)
        asyncio.run(wait_drained(settings))
        left = asyncio.run(seats_left(settings, show))
        if left == 0:
            break
    else:
        raise AssertionError(f"the small show still has {left} seats")
    time.sleep(FLAG_AGE_S)
    answer = httpx.post(
        api.url + ORDERS_PATH,
        content=show.body(1),
        headers={"Authorization": f"Bearer {tokens[0]}", "Content-Type": "application/json"},
    )
    assert answer.status_code == 409 and answer.json()["code"] == "SOLD_OUT", answer.text


def measure_sold_out(
    api: Server, bare: Server, show: Show, tokens: list[str], args: argparse.Namespace
) -> dict[str, list[Run]]:
    targets = [
        ("API", api.url, write_script(LOGS / "api-sold-out.lua", ORDERS_PATH, show, tokens)),
        ("bare", bare.url, write_script(LOGS / "bare-sold-out.lua", SOLD_OUT_PATH, show, tokens)),
    ]
    loads = {name: Load(args.connections) for name, _, _ in targets}
    for round_number in range(args.rounds):
        shift = round_number % len(targets)  # each round starts with the other server
        for name, url, script in targets[shift:] + targets[:shift]:
            loads[name].run(url, script, args.sold_out_seconds)
    return {name: load.runs for name, load in loads.items()}


# -- part 3: the allocator alone -------------------------------------------------------------------


def backlog_requests(show: Show, numbers: list[int], first_user: int, deadline: datetime) -> list[OrderRequested]:
    return [
        OrderRequested(
            order_number=number,
            user_id=first_user + i,
            program_id=show.program_id,
            show_time_id=show.show_time_id,
            ticket_category_id=show.category_id,
            count=1,
            rules=RULES,
            deadline=deadline,
        )
        for i, number in enumerate(numbers)
    ]


async def append_backlog(settings: Settings, show: Show, count: int) -> float:
    """``count`` one-seat requests for ``show`` appended to order-requests; returns the seconds taken."""
    redis = create_redis(settings.redis)
    publisher = EventPublisher(settings.kafka)
    await publisher.start()
    try:
        async with IdService.start(redis, LuaScripts(redis), settings.ids) as ids:
            order_numbers = GeneOrderNumbers(ids, shard_layout(settings))
            users = range(BACKLOG_USERS, BACKLOG_USERS + count)
            numbers = [order_numbers.next_for(u) for u in users]
        now = datetime.now(UTC)
        started = time.perf_counter()
        for first in range(0, count, PUBLISH_CHUNK):
            chunk = backlog_requests(
                show, numbers[first : first + PUBLISH_CHUNK], BACKLOG_USERS + first, now + timedelta(hours=1)
            )
            envelopes = [EventEnvelope.wrap(r, aggregate_version=1, occurred_at=now) for r in chunk]
            await publisher.publish_many(envelopes)
        return time.perf_counter() - started
    finally:
        await publisher.stop()
        await redis.aclose()


def script_baseline(settings: Settings, show: Show, requests: int, batch: int) -> float:
    """Decisions/s of ``lua/order_reserve.lua`` called back to back (EVALSHA, one connection) on
    ``show``, ``batch`` requests a call, each its own order number and user; the arguments are
    encoded before the clock starts. (redis-benchmark's ``__rand_int__`` was not replaced inside
    the JSON arguments: every request of its run had one order number.)"""

    async def timed() -> float:
        redis = create_redis(settings.redis)
        try:
            sha = await redis.script_load((LUA_DIR / "order_reserve.lua").read_text(encoding="utf-8"))
            now = datetime.now(UTC)
            now_ms = int(now.timestamp() * 1000)
            head: list[bytes | str | int] = [program_tag(show.program_id), now_ms, SEAT_ROW_STRIDE]
            head.append(settings.orders.view_ttl_s)
            numbers = range(SCRIPT_ORDERS, SCRIPT_ORDERS + requests)
            asked = backlog_requests(show, list(numbers), SCRIPT_USERS, now + timedelta(hours=1))
            calls: list[list[bytes | str | int]] = [
                [*head, *(orjson.dumps(request_json(r, now_ms)) for r in asked[first : first + batch])]
                for first in range(0, requests, batch)
            ]
            key = remaining_counts(show.program_id)
            started = time.perf_counter()
            for args in calls:
                await redis.evalsha(sha, 1, key, *args)
            return requests / (time.perf_counter() - started)
        finally:
            await redis.aclose()

    return asyncio.run(timed())


@dataclass
class Drain:
    backlog: int
    append_s: float
    decisions_per_s: float
    outcomes: Counter[str]
    held_per_s: float
    script_per_s: float
    script_left: int


def measure_allocator(
    settings: Settings, allocator: Child, backlog_show: Show, baseline_show: Show, args: argparse.Namespace
) -> Drain:
    allocator.stop()
    append_s = asyncio.run(append_backlog(settings, backlog_show, args.backlog))
    script_per_s = script_baseline(settings, baseline_show, args.backlog, args.script_batch)
    left = asyncio.run(seats_left(settings, baseline_show))
    restarted = Child(["cli.main", "allocator"], settings, LOGS / "allocator-backlog.log")
    try:
        polls = asyncio.run(wait_drained(settings, DRAIN_S))
    finally:
        restarted.stop()
    moving = [(t, lag) for t, lag in polls if lag < args.backlog]
    (first_t, first_lag), (last_t, _) = moving[0], moving[-1]
    found = [d for d in asyncio.run(decisions(settings)) if d.program_id == backlog_show.program_id]
    held = sorted(d.decided_at for d in found if d.outcome == "held")
    held_span = (held[-1] - held[0]).total_seconds() if len(held) > 1 else 0.0
    return Drain(
        args.backlog,
        append_s,
        first_lag / (last_t - first_t) if last_t > first_t else float("nan"),
        Counter(d.outcome for d in found),
        len(held) / held_span if held_span > 0 else float("nan"),
        script_per_s,
        left,
    )


# -- part 4: where the time goes -------------------------------------------------------------------


def profile(pid: int, name: str, subprocesses: bool) -> subprocess.Popen[bytes]:
    out = LOGS / f"profile-{name}.txt"
    command = [PY_SPY, "record", "--pid", str(pid), "--duration", str(PROFILE_S), "--rate", "100"]
    command += ["--format", "raw", "--output", str(out), "--nonblocking"] + (["--subprocesses"] if subprocesses else [])
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def top_frames(name: str, count: int = 12) -> tuple[int, list[tuple[str, int]], list[tuple[str, int]]]:
    """Samples, the frames most often on top of the stack (self), and most often in it (total)."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for line in (LOGS / f"profile-{name}.txt").read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        frames = [re.sub(r" \((?:.*/)?([^/]+/[^/]+:\d+)\)$", r" (\1)", f) for f in stack.split(";") if f]
        if not frames:
            continue
        samples += int(n)
        own[frames[-1]] += int(n)
        for frame in {re.sub(r":\d+\)$", ")", f) for f in frames}:
            if not frame.endswith(PLUMBING):
                total[frame] += int(n)
    return samples, own.most_common(count), total.most_common(count * 2)


def profile_sale(api: Server, allocator: Child, show: Show, tokens: list[str], args: argparse.Namespace) -> None:
    script = write_script(LOGS / "api-profile.lua", ORDERS_PATH, show, tokens)
    load = Load(args.connections, sent=len(tokens) // 2)
    spies = [profile(api.proc.pid, "api", args.api_processes > 1), profile(allocator.proc.pid, "allocator", False)]
    load.run(api.url, script, PROFILE_S)
    for spy in spies:
        spy.wait()
    for name in ("api", "allocator"):
        samples, own, total = top_frames(name)
        print(f"\npy-spy, {name}: {samples} samples in {PROFILE_S}s at 100/s ({samples / PROFILE_S:.0f}% of a core)")
        print("  self:")
        for frame, n in own:
            print(f"    {n / samples:6.1%}  {frame}")
        print("  total:")
        for frame, n in total:
            print(f"    {n / samples:6.1%}  {frame}")


# -- the run -------------------------------------------------------------------------------------


def report_sale(sale: Sale, args: argparse.Namespace) -> None:
    api, bare = sale.api, sale.bare
    bare_rps = statistics.median(r.per_s("202") for r in bare)
    latencies = sorted(d.latency_s for d in sale.decided)
    p50, p99 = (statistics.quantiles(latencies, n=100, method="inclusive")[i] for i in (49, 98))
    print(f"\nwrk -t1 -c{args.connections}, API processes: {args.api_processes}, log level {args.log_level}")
    print(f"1. purchases, {args.duration}s each: bare, API, bare")
    print(f"{'server':<8} {'202/s':>8} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'statuses':<30} {'wrk CPU':>8}")
    for name, run in [("bare", bare[0]), ("API", api), ("bare", bare[1])]:
        statuses = " ".join(f"{k}={v}" for k, v in run.statuses.items()) + (f" {run.errors}" if run.errors else "")
        cpu = f"{run.wrk_cpu_s / run.seconds:.0%}"
        row = f"{run.per_s('202'):>8,.0f} {run.requests_per_s:>8,.0f} {run.p50_ms:>8.1f} {run.p99_ms:>8.1f}"
        print(f"{name:<8} {row} {statuses:<30} {cpu:>8}")
    print(f"accepted/s vs bare (median of the two): {api.per_s('202') / bare_rps:.2f}   (goal >= 0.5)")
    print(
        f"decisions of the API run's requests: {len(latencies):,} "
        f"({', '.join(f'{k} {v:,}' for k, v in Counter(d.outcome for d in sale.decided).most_common())}); "
        f"decision latency p50 {p50 * 1000:,.0f} ms, p99 {p99 * 1000:,.0f} ms, max {latencies[-1] * 1000:,.0f} ms; "
        f"decided/s in the window {sale.decided_per_s:,.0f}"
    )
    goal = "met" if api.per_s("202") >= 3000 and p99 <= 1.0 else "not met"
    print(f"goal >= 3,000 accepted/s with decision p99 <= 1 s: {goal}")
    print("where the CPU went (seconds of CPU during the run; ms of CPU per accepted request):")
    for label, run, spent in [("API run", api, sale.api_cpu), ("bare run", bare[0], sale.bare_cpu)]:
        accepted = run.statuses.get("202", 0) or 1
        parts = sorted(((s, n) for n, s in spent.items() if s >= 0.05), reverse=True)
        total = sum(spent.values())
        print(
            f"  {label}: {total:.1f} s in {run.seconds:.0f} s ({total / run.seconds:.2f} cores), "
            f"{total * 1000 / accepted:.2f} ms per accepted request"
        )
        print("    " + ", ".join(f"{n} {s:.1f} s ({s * 1000 / accepted:.2f} ms)" for s, n in parts))
    print(flush=True)


def report_sold_out(sold_out: dict[str, list[Run]], args: argparse.Namespace) -> None:
    print(f"\n2. sold out, {args.sold_out_seconds}s x {args.rounds} rounds")
    medians = {name: statistics.median(r.requests_per_s for r in runs) for name, runs in sold_out.items()}
    for name, runs in sold_out.items():
        rounds = ", ".join(f"{r.requests_per_s:,.0f}" for r in runs)
        statuses = " ".join(f"{k}={v}" for k, v in runs[0].statuses.items())
        p99s = statistics.median(r.p99_ms for r in runs)
        wrk_cpu = statistics.median(r.wrk_cpu_s / r.seconds for r in runs)
        figures = f"{medians[name]:>8,.0f} req/s  p99 {p99s:.1f} ms  wrk CPU {wrk_cpu:.0%}"
        print(f"{name:<6} {figures}  (rounds {rounds}; first: {statuses})")
    print(f"API vs bare: {medians['API'] / medians['bare']:.2f}   (goal >= 0.8)", flush=True)


def report_drain(drain: Drain, args: argparse.Namespace) -> None:
    print(f"\n3. the allocator alone: {drain.backlog:,} requests of 1 seat for {args.rows * args.columns:,} seats")
    print(f"appended in {drain.append_s:.1f}s; outcomes {dict(drain.outcomes)}")
    print(f"allocator: {drain.decisions_per_s:,.0f} decisions/s (lag polled); holds {drain.held_per_s:,.0f}/s")
    print(
        f"order_reserve called back to back from Python (EVALSHA), batches of {args.script_batch}: "
        f"{drain.script_per_s:,.0f} decisions/s (seats left after it: {drain.script_left})"
    )
    print(f"allocator vs script: {drain.decisions_per_s / drain.script_per_s:.2f}   (goal >= 0.25)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=20, help="seconds of each purchase run")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--api-processes", type=int, default=1)
    parser.add_argument("--rows", type=int, default=200)
    parser.add_argument("--columns", type=int, default=250)
    parser.add_argument("--tokens", type=int, default=30_000, help="signed-in buyers the requests rotate over")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the sold-out runs")
    parser.add_argument("--sold-out-seconds", type=int, default=10)
    parser.add_argument("--backlog", type=int, default=100_000, help="order requests the allocator finds waiting")
    parser.add_argument("--script-batch", type=int, default=100, help="requests per script call of the baseline")
    parser.add_argument("--log-level", default="INFO", help="the API's log level (INFO writes an access line)")
    parser.add_argument("--profile", action="store_true", help="py-spy the API and the allocator in a further run")
    args = parser.parse_args()
    for tool in ("wrk",) + ((PY_SPY,) if args.profile else ()):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is missing")
    settings = get_settings().namespaced(f"bench{uuid.uuid4().hex[:8]}")
    LOGS.mkdir(parents=True, exist_ok=True)
    asyncio.run(provision_namespace(settings))
    asyncio.run(ensure_topics(settings.kafka.model_copy(update={"topic_prefix": bare_prefix(settings)}), []))
    children: list[Child] = []
    servers: list[Server] = []
    try:
        servers.append(api := start_api(settings, args.api_processes, args.log_level))
        servers.append(bare := start_bare(settings))
        children.append(Child(["cli.main", "worker"], settings, LOGS / "worker.log"))
        children.append(Child(["cli.main", "lifecycle"], settings, LOGS / "lifecycle.log"))
        children.append(allocator := Child(["cli.main", "allocator"], settings, LOGS / "allocator.log"))
        sale_show, small, backlog_show, baseline_show = asyncio.run(
            create_shows(api.url, settings, args.rows, args.columns)
        )
        issuer = AccessTokens(settings.tokens)
        tokens = [issuer.issue(TOKEN_USERS + i).token for i in range(args.tokens)]
        print(f"namespace {settings.kafka.topic_prefix} ready; {len(tokens):,} tokens", flush=True)
        meter = CpuMeter(
            {
                "API": api.proc.pid,
                "bare": bare.proc.pid,
                "worker": children[0].proc.pid,
                "lifecycle": children[1].proc.pid,
                "allocator": allocator.proc.pid,
            }
        )
        report_sale(measure_sale(settings, api, bare, sale_show, tokens, args, meter), args)
        if args.profile:
            profile_sale(api, allocator, sale_show, tokens, args)
        sell_out(api, settings, small, tokens, args.connections)
        report_sold_out(measure_sold_out(api, bare, small, tokens, args), args)
        report_drain(measure_allocator(settings, allocator, backlog_show, baseline_show, args), args)
    finally:
        for server in servers:
            server.stop()
        for child in children:
            child.stop(signal.SIGTERM)
        asyncio.run(remove_namespace(settings))


if __name__ == "__main__":
    main()
