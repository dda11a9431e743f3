"""The seat allocator's loop under two consumers, on the same backlog in the same run (issue 11, ADR 0008).

One namespace of its own. The API and a projector worker make ``3 × --rounds`` programs through
the admin API (as ``bench/purchase.py`` does: one show time, one seated category of ``--rows`` ×
``--columns`` seats, per account 6) and are stopped before anything is timed. Then, each round:

- (a) the plain aiokafka consumer group the allocator runs as (``python -m cli.main allocator``:
  ``Allocator``), and (b) a Faust agent (this module with ``--faust-worker``: the project's app
  factory, ``stream.take_events`` with the allocator's batch size and poll time, acked by Faust as
  ADR 0003 says; on uvloop, as the allocator) — each a process of its own, each round starting
  with the other one. Both decide with the same ``Allocation.decide`` (``projections/allocator.py``):
  one ``order_reserve.lua`` call per program per batch, then the decision events appended (acks=all).
  Each run has a fresh program and a fresh consumer group whose offsets are committed at the end of
  ``order-requests`` before ``--backlog`` one-seat requests (distinct users, a deadline an hour
  away) are appended with ``publish_many``; then the consumer is started and runs until the last
  request's decision is in the log. Decisions/s = the decisions after the first batch over the
  time from the first batch's decision to the last one's (each decision event's ``occurred_at`` is
  its batch's clock), so start-up and group join are not counted; CPU = the consumer process's
  user + system time over the same stretch (sampled from /proc every ``POLL_S``).
- the script baseline: ``lua/order_reserve.lua`` called back to back from Python on a fresh
  program (``bench.purchase.script_baseline``: EVALSHA, one connection, ``--script-batch`` a call).

A run is void, and the bench fails, unless every request was decided exactly once: one decision
event per order number, holds + SOLD_OUT = backlog, no seat held twice, no seat left.

``--ack-edge`` runs only a check of ADR 0003's edge on each consumer: the first append in the
process raises an error no retry waits out, after the script has decided the batch; it prints how
many requests are decided in Redis, how many have their event in the log and how many are left
uncommitted (to be read again), after the consumer (aiokafka: a restarted allocator) has gone on.

Logs go to bench/results/allocator-consumers/; the namespace is removed afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import faust
import httpx
import orjson
import uvloop
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from faust.types import StreamT
from faust.types.tuples import Message

from bench.purchase import (
    BACKLOG_USERS,
    HTTP_TIMEOUT_S,
    PUBLISH_CHUNK,
    Show,
    backlog_requests,
    create_references,
    create_show,
    script_baseline,
    start_api,
)
from bench.purchase import (
    LOGS as API_LOGS,
)
from cli.provision import provision_namespace, remove_namespace
from events.envelope import EventEnvelope
from infra.ids import IdService
from infra.kafka import EventPublisher
from infra.logging import configure_logging
from infra.order_store import GeneOrderNumbers
from infra.postgres.routing import shard_layout
from infra.redis import LuaScripts, create_redis
from infra.redis_keys import order_decision, remaining_counts
from infra.settings import REPO_ROOT, Settings, get_settings
from projections.allocator import Allocation, Allocator
from projections.app import create_app
from projections.topics import declare_topics
from tests.processes import Child

LOGS = REPO_ROOT / "bench" / "results" / "allocator-consumers"
CONSUMERS = ("aiokafka", "faust")
DECISIONS = ("SeatsReserved", "OrderRejected")
POLL_S, DRAIN_S, READ_S = 0.05, 600.0, 60.0
EDGE_ROWS, EDGE_COLUMNS, EDGE_BACKLOG, EDGE_SETTLE_S = 20, 100, 3_000, 3.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
Decided = dict[str, Any]
"""A decision event as read from the log (the envelope's JSON)."""


# -- (b) the Faust agent, run as its own worker process -------------------------------------------

FAIL_FIRST_APPEND = "DAMAI_BENCH_FAIL_FIRST_APPEND"
"""Set (to anything) for the ack edge check: the worker's first append raises."""


class FailingFirstAppend(EventPublisher):
    """A publisher whose first append in the process raises an error no retry waits out (a bug, say)
    after the script has decided the batch: the edge of ADR 0003 and 0008."""

    failed = False  # per process: an agent restarted after the failure appends normally

    async def append(self, envelopes: list[EventEnvelope], timeout_s: float) -> None:
        if not FailingFirstAppend.failed:
            FailingFirstAppend.failed = True
            raise RuntimeError("the ack edge check: the first append fails")
        await super().append(envelopes, timeout_s)


def faust_allocator(settings: Settings) -> faust.App:
    """The allocator's loop as a Faust agent: the allocator's group as the app id, its batch size
    and poll time for ``take_events``, the same ``Allocation`` deciding each taken batch."""
    app = create_app(settings, group=settings.worker.allocator_group)
    topics = declare_topics(app, settings)
    batch, within_s = settings.worker.allocator_batch_size, settings.worker.allocator_poll_ms / 1000

    @app.agent(topics.order_requests, name="allocator")
    async def allocate(stream: StreamT[bytes]) -> None:
        assert isinstance(stream, faust.Stream)  # take_events is on the concrete stream
        redis = create_redis(settings.redis)
        scripts = LuaScripts(redis)
        await scripts.preload(redis)
        failing = FAIL_FIRST_APPEND in os.environ
        publisher = FailingFirstAppend(settings.kafka) if failing else EventPublisher(settings.kafka)
        await publisher.start()
        allocation = Allocation(settings, scripts, publisher)
        try:
            async for events in stream.take_events(batch, within=within_s):
                await allocation.decide(_record(event.message) for event in events)
        finally:
            await publisher.stop()
            await redis.aclose()

    return app


def _record(message: Message) -> ConsumerRecord[bytes, bytes]:
    """Faust's message as the record ``Allocation`` reads (its topic, partition, offset, value)."""
    return ConsumerRecord(
        message.topic,
        message.partition,
        message.offset,
        int(message.timestamp * 1000),
        message.timestamp_type,
        message.key,
        message.value,
        None,
        message.serialized_key_size,
        message.serialized_value_size,
        message.headers or [],
    )


def faust_data_dir(settings: Settings, group: str) -> Path:
    """Where ``create_app`` puts a Faust app's local data (this bench's apps': removed after use)."""
    return Path(settings.worker.data_dir or settings.state_dir / "faust") / group


# -- one run ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Drained:
    consumer: str
    round: int
    backlog: int
    decisions_per_s: float
    cpu_ms_per_1000: float
    outcomes: Counter[str]


async def _ends(settings: Settings, family: str) -> dict[TopicPartition, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka.bootstrap)
    await consumer.start()
    try:
        topic = settings.kafka.topic(family)
        ends: dict[TopicPartition, int] = await consumer.end_offsets(
            [TopicPartition(topic, p) for p in range(settings.kafka.topics[family].partitions)]
        )
        return ends
    finally:
        await consumer.stop()


async def start_group_at_the_end(settings: Settings) -> None:
    """The run's group begins where order-requests ends now: it reads this run's backlog only."""
    ends = await _ends(settings, "order-requests")
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka.bootstrap, group_id=settings.worker.allocator_group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        consumer.assign(list(ends))
        await consumer.commit(ends)
    finally:
        await consumer.stop()


async def append_backlog(settings: Settings, show: Show, count: int) -> list[int]:
    """``count`` one-seat requests for ``show``, in order; their order numbers."""
    redis = create_redis(settings.redis)
    publisher = EventPublisher(settings.kafka)
    await publisher.start()
    try:
        async with IdService.start(redis, LuaScripts(redis), settings.ids) as ids:
            gene = GeneOrderNumbers(ids, shard_layout(settings))
            numbers = [gene.next_for(u) for u in range(BACKLOG_USERS, BACKLOG_USERS + count)]
        now = datetime.now(UTC)
        for first in range(0, count, PUBLISH_CHUNK):
            chunk = numbers[first : first + PUBLISH_CHUNK]
            requests = backlog_requests(show, chunk, BACKLOG_USERS + first, now + timedelta(hours=1))
            await publisher.publish_many(
                [EventEnvelope.wrap(r, aggregate_version=1, occurred_at=now) for r in requests]
            )
        return numbers
    finally:
        await publisher.stop()
        await redis.aclose()


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (/proc/<pid>/stat, fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


async def wait_decided(settings: Settings, show: Show, numbers: list[int], pid: int) -> float:
    """Wait until the last request is decided in Redis; the consumer's CPU seconds from the end of
    its first batch (the first request decided) to then."""
    redis = create_redis(settings.redis)
    first, last = order_decision(show.program_id, numbers[0]), order_decision(show.program_id, numbers[-1])
    cpu_at_first: float | None = None
    deadline = time.monotonic() + DRAIN_S
    try:
        while time.monotonic() < deadline:
            cpu = cpu_s(pid)
            if cpu_at_first is None and await redis.exists(first):
                cpu_at_first = cpu
            if cpu_at_first is not None and await redis.exists(last):
                return cpu - cpu_at_first
            await asyncio.sleep(POLL_S)
        raise AssertionError(f"the backlog of program {show.program_id} was not decided within {DRAIN_S}s")
    finally:
        await redis.aclose()


async def read_decisions(
    settings: Settings, since: dict[TopicPartition, int], show: Show, count: int, wait_s: float = READ_S
) -> list[Decided]:
    """The decision events of ``show``'s program in the order topic after ``since``, once ``count``
    are there (the last batch's append may still be on its way when Redis has its decisions)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka.bootstrap, enable_auto_commit=False)
    await consumer.start()
    found: list[Decided] = []
    deadline = time.monotonic() + wait_s
    try:
        consumer.assign(list(since))
        for tp, offset in since.items():
            consumer.seek(tp, offset)
        while len(found) < count and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=500, max_records=10_000)).values():
                for record in records:
                    event = orjson.loads(record.value or b"{}")
                    if event.get("type") in DECISIONS and int(event["payload"]["programId"]) == show.program_id:
                        found.append(event)
        return found
    finally:
        await consumer.stop()


def check_every_request_decided_once(found: list[Decided], numbers: list[int], show: Show, left: int) -> Counter[str]:
    """Holds + SOLD_OUT = the backlog, one decision per request, no seat twice; else the run is void."""
    decided = Counter(int(e["payload"]["orderNumber"]) for e in found)
    outcomes = Counter("held" if e["type"] == "SeatsReserved" else e["payload"]["reason"] for e in found)
    seats = [t["seatId"] for e in found if e["type"] == "SeatsReserved" for t in e["payload"]["tickets"]]
    problems = [
        f"{len(decided)} of {len(numbers)} requests decided" if set(decided) != set(numbers) else "",
        f"{sum(n > 1 for n in decided.values())} decided more than once" if max(decided.values()) > 1 else "",
        f"outcomes {dict(outcomes)}" if set(outcomes) - {"held", "SOLD_OUT"} else "",
        f"{len(seats) - len(set(seats))} seats held twice" if len(seats) != len(set(seats)) else "",
        f"{outcomes['held']} holds for {show.seats} seats" if outcomes["held"] != min(show.seats, len(numbers)) else "",
        f"{left} seats left" if left != max(show.seats - len(numbers), 0) else "",
    ]
    if any(problems):
        raise AssertionError(f"void run on program {show.program_id}: {'; '.join(p for p in problems if p)}")
    return outcomes


def decisions_per_s(found: list[Decided]) -> float:
    """Decisions after the first batch over the time from the first batch to the last (a batch's
    decisions share their ``occurred_at``): the last batch is timed by its start, so it is left out."""
    batches = Counter(datetime.fromisoformat(e["occurred_at"]) for e in found)
    first, last = min(batches), max(batches)
    seconds = (last - first).total_seconds()
    return (len(found) - batches[last]) / seconds if seconds > 0 else float("nan")


def after_first_batch(found: list[Decided]) -> int:
    """Decisions made after the first batch (the stretch the consumer's CPU is sampled over)."""
    batches = Counter(datetime.fromisoformat(e["occurred_at"]) for e in found)
    return len(found) - batches[min(batches)]


def _run_settings(settings: Settings, consumer: str, round_number: int) -> Settings:
    """The namespace with a consumer group of the run's own (its Faust topics under the prefix)."""
    group = f"{settings.kafka.topic_prefix}allocator-{consumer}-{round_number}"
    return settings.model_copy(update={"worker": settings.worker.model_copy(update={"allocator_group": group})})


def drain(settings: Settings, consumer: str, round_number: int, show: Show, backlog: int) -> Drained:
    run = _run_settings(settings, consumer, round_number)
    asyncio.run(start_group_at_the_end(run))
    numbers = asyncio.run(append_backlog(run, show, backlog))
    since = asyncio.run(_ends(run, "order"))
    command = ["cli.main", "allocator"] if consumer == "aiokafka" else ["bench.allocator_consumers", "--faust-worker"]
    child = Child(command, run, LOGS / f"{consumer}-{round_number}.log")
    try:
        cpu = asyncio.run(wait_decided(run, show, numbers, child.proc.pid))
        found = asyncio.run(read_decisions(run, since, show, backlog))
    finally:
        child.stop()
        shutil.rmtree(faust_data_dir(run, run.worker.allocator_group), ignore_errors=True)
    left = asyncio.run(seats_left(run, show))
    outcomes = check_every_request_decided_once(found, numbers, show, left)
    cpu_per_1000_ms = cpu * 1e6 / after_first_batch(found)
    return Drained(consumer, round_number, backlog, decisions_per_s(found), cpu_per_1000_ms, outcomes)


async def seats_left(settings: Settings, show: Show) -> int:
    redis = create_redis(settings.redis)
    try:
        return int(await redis.hget(remaining_counts(show.program_id), str(show.category_id)) or 0)
    finally:
        await redis.aclose()


# -- the ack edge: a batch whose append fails -----------------------------------------------------


async def decided_in_redis(settings: Settings, show: Show, numbers: list[int]) -> int:
    redis = create_redis(settings.redis)
    try:
        async with redis.pipeline(transaction=False) as pipe:
            for number in numbers:
                pipe.exists(order_decision(show.program_id, number))
            return sum(await pipe.execute())
    finally:
        await redis.aclose()


async def committed_lag(settings: Settings) -> int:
    """Requests of order-requests that the run's group has not committed."""
    ends = await _ends(settings, "order-requests")
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka.bootstrap)
    await admin.start()
    try:
        committed = await admin.list_consumer_group_offsets(settings.worker.allocator_group)
        return sum(end - (committed[tp].offset if tp in committed else 0) for tp, end in ends.items())
    finally:
        await admin.close()


async def aiokafka_failing(settings: Settings) -> str:
    """``Allocator`` in process with the failing publisher: how its run ends."""
    redis = create_redis(settings.redis)
    scripts = LuaScripts(redis)
    await scripts.preload(redis)
    publisher = FailingFirstAppend(settings.kafka)
    await publisher.start()
    try:
        await Allocator(settings, redis, scripts, publisher).run()
        return "returned"
    except RuntimeError as exc:
        return f"raised {exc}"
    finally:
        await publisher.stop()
        await redis.aclose()


def ack_edge(settings: Settings, consumer: str, show: Show, backlog: int) -> None:
    """The first batch's append fails after its script call: what is in Redis, in the log, and
    committed afterwards; then (aiokafka) a restarted allocator, or (Faust) the restarted agent."""
    run = _run_settings(settings, consumer, 0)
    asyncio.run(start_group_at_the_end(run))
    numbers = asyncio.run(append_backlog(run, show, backlog))
    since = asyncio.run(_ends(run, "order"))
    if consumer == "aiokafka":
        ended = asyncio.run(aiokafka_failing(run))
        print(
            f"ack edge, aiokafka: the allocator {ended}; decided in Redis "
            f"{asyncio.run(decided_in_redis(run, show, numbers)):,}, not committed {asyncio.run(committed_lag(run)):,}"
        )
        child = Child(["cli.main", "allocator"], run, LOGS / "ack-edge-aiokafka.log")
    else:
        extra = {FAIL_FIRST_APPEND: "1"}
        child = Child(["bench.allocator_consumers", "--faust-worker"], run, LOGS / "ack-edge-faust.log", extra)
    try:
        asyncio.run(wait_decided(run, show, numbers, child.proc.pid))
        time.sleep(EDGE_SETTLE_S)  # Faust commits what was acked within a second
        found = asyncio.run(read_decisions(run, since, show, backlog, EDGE_SETTLE_S))
        lag = asyncio.run(committed_lag(run))
    finally:
        child.stop()
        shutil.rmtree(faust_data_dir(run, run.worker.allocator_group), ignore_errors=True)
    logged = {int(e["payload"]["orderNumber"]) for e in found}
    print(
        f"ack edge, {consumer}, after the failed append: decided in Redis "
        f"{asyncio.run(decided_in_redis(run, show, numbers)):,} of {backlog:,}; decision events in the log for "
        f"{len(logged):,}; decided with no event {len(set(numbers) - logged):,}; not committed {lag:,}",
        flush=True,
    )


# -- the bench -------------------------------------------------------------------------------------


def make_shows(settings: Settings, count: int, rows: int, columns: int) -> list[Show]:
    """``count`` programs through the admin API; the API and the projector worker stop after."""
    api = start_api(settings, 1, "WARNING")
    worker = Child(["cli.main", "worker"], settings, LOGS / "worker.log")

    async def made() -> list[Show]:
        async with httpx.AsyncClient(base_url=api.url, timeout=HTTP_TIMEOUT_S) as http:
            await create_references(http, settings)
            return [await create_show(http, settings, rows, columns, f"allocator run {i}") for i in range(count)]

    try:
        return asyncio.run(made())
    finally:
        api.stop()
        worker.stop()
        shutil.rmtree(faust_data_dir(settings, settings.worker.projector_group), ignore_errors=True)


def report(runs: list[Drained], script: list[float], args: argparse.Namespace) -> None:
    print(
        f"\n{args.backlog:,} requests of 1 seat for {args.rows * args.columns:,} seats, per run; {args.rounds} rounds"
    )
    print(f"{'round':>5} {'consumer':<9} {'decisions/s':>12} {'CPU ms/1000':>12}  outcomes")
    for r in runs:
        row = f"{r.decisions_per_s:>12,.0f} {r.cpu_ms_per_1000:>12,.0f}"
        print(f"{r.round:>5} {r.consumer:<9} {row}  {dict(r.outcomes)}")
    rate = {c: statistics.median(r.decisions_per_s for r in runs if r.consumer == c) for c in CONSUMERS}
    cpu = {c: statistics.median(r.cpu_ms_per_1000 for r in runs if r.consumer == c) for c in CONSUMERS}
    baseline = statistics.median(script)
    print(f"script baseline (order_reserve back to back, batches of {args.script_batch}): ", end="")
    print(", ".join(f"{s:,.0f}" for s in script) + f" -> median {baseline:,.0f} decisions/s")
    for c in CONSUMERS:
        figures = f"{rate[c]:>8,.0f} decisions/s  {cpu[c]:>6,.0f} CPU ms/1000"
        print(f"median {c:<9} {figures}  vs script {rate[c] / baseline:.2f}")
    print(f"faust / aiokafka: decisions/s {rate['faust'] / rate['aiokafka']:.2f}, CPU per decision ", end="")
    print(f"{cpu['faust'] / cpu['aiokafka']:.2f}   (the goal: >= 0.25 of the script)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backlog", type=int, default=60_000, help="order requests each run finds waiting")
    parser.add_argument("--rows", type=int, default=200)
    parser.add_argument("--columns", type=int, default=250)
    parser.add_argument("--rounds", type=int, default=2, help="rounds; each runs both consumers and the script")
    parser.add_argument("--script-batch", type=int, default=100, help="requests per script call of the baseline")
    parser.add_argument("--ack-edge", action="store_true", help="only the ack edge check, on 2 small programs")
    parser.add_argument("--faust-worker", action="store_true", help="run as variant (b)'s Faust worker")
    args = parser.parse_args()
    if args.faust_worker:
        settings = get_settings()
        configure_logging("WARNING", settings.log_json)
        # The event loop the allocator runs on (cli/main.py), so that only the consumer differs.
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        faust.Worker(faust_allocator(settings), loglevel="WARNING", override_logging=False).execute_from_commandline()
    settings = get_settings().namespaced(f"bench{uuid.uuid4().hex[:8]}")
    for logs in (LOGS, API_LOGS):  # the API's log goes where bench/purchase.py keeps it
        logs.mkdir(parents=True, exist_ok=True)
    asyncio.run(provision_namespace(settings))
    try:
        if args.ack_edge:
            edge_shows = make_shows(settings, len(CONSUMERS), EDGE_ROWS, EDGE_COLUMNS)
            for consumer, show in zip(CONSUMERS, edge_shows, strict=True):
                ack_edge(settings, consumer, show, EDGE_BACKLOG)
            return
        shows = iter(make_shows(settings, 3 * args.rounds, args.rows, args.columns))
        print(f"namespace {settings.kafka.topic_prefix} ready", flush=True)
        runs: list[Drained] = []
        script: list[float] = []
        for round_number in range(1, args.rounds + 1):
            order = CONSUMERS if round_number % 2 else CONSUMERS[::-1]
            for consumer in order:
                runs.append(drained := drain(settings, consumer, round_number, next(shows), args.backlog))
                print(f"round {round_number} {consumer}: {drained.decisions_per_s:,.0f} decisions/s", flush=True)
            script.append(script_baseline(settings, next(shows), args.backlog, args.script_batch))
            print(f"round {round_number} script: {script[-1]:,.0f} decisions/s", flush=True)
        report(runs, script, args)
    finally:
        asyncio.run(remove_namespace(settings))


if __name__ == "__main__":
    main()
