"""Registrations/s and logins/s through the API, and "is this mobile registered" with and without the Bloom filter.

1. One API process (``python -m cli.main serve``) and one projector worker (``cli.main worker``)
   in a namespace of their own, with the captcha threshold and the registration and login rate
   limits raised out of the way. ``--clients`` concurrent httpx clients send ``--requests``
   registrations of distinct mobiles (``POST /api/v1/users``: an argon2id hash, the claims and
   the account through Kafka, then the wait until the worker has projected the account), and
   ``--requests`` logins (``POST /api/v1/sessions``: the lookup table, the user row, an argon2id
   verify, a signed token). Baseline: ``GET /healthz`` of the same process, same client, same
   concurrency (``--healthz`` requests): the floor of this API, its middleware and this client.
   Before the rounds, ``--requests`` registrations (the accounts the logins use) warm everything up.
2. In process, on the namespace's Redis and Postgres, with the API and worker stopped:
   ``UserReads.registered("mobile", blind)`` for ``--checks`` mobiles never registered (the Bloom
   filter answers ABSENT: one Redis round trip, no query), beside ``user_id_by_mobile`` straight
   on the lookup table for the same mobiles; and, for comparison, ``registered`` for mobiles that
   are registered (MAYBE_PRESENT: the lookup table, then the user row). ``--concurrency`` checks
   in flight; every query the pools run is counted (asyncpg's query logger).

Each round runs every path, starting with another one; figures are medians of ``--rounds`` rounds
(``--check-rounds`` in part 2). The namespace (topics, schema, Redis keys) is removed afterwards;
API and worker logs go to bench/results/users/.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.program_detail import Figures, median_of
from bench.search_latency import start_api
from cli.provision import provision_namespace, remove_namespace
from infra.personal_data import BlindIndex, MasterKeyring
from infra.personal_data.postgres_store import PostgresDataKeyStore
from infra.personal_data.vault import PersonalDataVault
from infra.postgres.pools import ShardPools
from infra.postgres.routing import shard_layout
from infra.postgres.sharded import ShardedDatabase
from infra.redis import create_redis
from infra.settings import REPO_ROOT, Settings, get_settings
from queries.cache.bloom import Membership
from queries.cache.user_bloom import ensure_user_bloom, user_bloom
from queries.users import UserReads
from queries.views.users import user_id_by_mobile
from tests.processes import Child

PASSWORD = "right-horse-42"
OUT_OF_THE_WAY = "1000000"  # captcha threshold and rate limits: the bench measures the work, not the gates
REGISTERED_PREFIX, NEVER_REGISTERED_PREFIX = "138", "199"  # then 8 digits: distinct valid mobiles per run
HTTP_TIMEOUT_S = 30.0
REGISTER, LOGIN, HEALTHZ = "POST /api/v1/users (register)", "POST /api/v1/sessions (log in)", "GET /healthz"
BLOOM_ABSENT, POSTGRES_ABSENT, BLOOM_PRESENT = (
    "registered(): Bloom ABSENT, never registered",
    "user_id_by_mobile(): Postgres, same mobiles",
    "registered(): registered mobiles (Bloom + 2 queries)",
)
MIB = 8 * 1024 * 1024

Send = Callable[[httpx.AsyncClient, int], Awaitable[httpx.Response]]
Check = Callable[[bytes], Awaitable[object]]


class QueryCount:
    """The pools' observer: how many queries they ran."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, database: str, query: str) -> None:
        self.count += 1


@dataclass
class CheckFigures:
    checks_per_s: list[float]
    queries: list[int]


def mobiles(prefix: str, first: int, count: int) -> list[str]:
    return [f"{prefix}{n:08d}" for n in range(first, first + count)]


def percentile_ms(latencies: list[float], pct: int) -> float:
    return statistics.quantiles(latencies, n=100, method="inclusive")[pct - 1] * 1000


# -- part 1: through the API -----------------------------------------------------------------------


def registration(batch: list[str]) -> Send:
    def send(http: httpx.AsyncClient, i: int) -> Awaitable[httpx.Response]:
        return http.post("/api/v1/users", json={"mobile": batch[i], "password": PASSWORD, "confirmPassword": PASSWORD})

    return send


def login(batch: list[str]) -> Send:
    def send(http: httpx.AsyncClient, i: int) -> Awaitable[httpx.Response]:
        return http.post("/api/v1/sessions", json={"mobile": batch[i % len(batch)], "password": PASSWORD})

    return send


def healthz(http: httpx.AsyncClient, i: int) -> Awaitable[httpx.Response]:
    return http.get("/healthz")


async def drive(http: httpx.AsyncClient, send: Send, count: int, clients: int, expected: int) -> Figures:
    """``count`` requests from ``clients`` concurrent clients; any other status than ``expected`` fails the run."""
    latencies: list[float] = []
    pending = iter(range(count))

    async def client() -> None:
        for i in pending:
            started = time.perf_counter()
            response = await send(http, i)
            latencies.append(time.perf_counter() - started)
            if response.status_code != expected:
                raise RuntimeError(f"{response.request.url.path}: {response.status_code} {response.text[:300]}")

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    elapsed = time.perf_counter() - started
    return Figures(count / elapsed, percentile_ms(latencies, 50), percentile_ms(latencies, 99))


async def api_rounds(url: str, args: argparse.Namespace) -> tuple[dict[str, list[Figures]], list[str]]:
    """The rounds of part 1; also the mobiles registered (the warm-up's first)."""
    limits = httpx.Limits(max_connections=args.clients, max_keepalive_connections=args.clients)
    async with httpx.AsyncClient(base_url=url, timeout=HTTP_TIMEOUT_S, limits=limits) as http:
        accounts = mobiles(REGISTERED_PREFIX, 0, args.requests)
        await drive(http, registration(accounts), args.requests, args.clients, 201)  # warm-up
        registered = list(accounts)
        results: dict[str, list[Figures]] = {REGISTER: [], LOGIN: [], HEALTHZ: []}
        for round_number in range(args.rounds):
            batch = mobiles(REGISTERED_PREFIX, (round_number + 1) * args.requests, args.requests)
            paths: list[tuple[str, Send, int, int]] = [
                (REGISTER, registration(batch), args.requests, 201),
                (LOGIN, login(accounts), args.requests, 201),
                (HEALTHZ, healthz, args.healthz, 200),
            ]
            # Each round starts with another path, so none always runs first or last.
            shift = round_number % len(paths)
            for name, send, count, expected in paths[shift:] + paths[:shift]:
                results[name].append(await drive(http, send, count, args.clients, expected))
            registered += batch
    return results, registered


def measure_api(
    settings: Settings, args: argparse.Namespace, log_dir: Path
) -> tuple[dict[str, list[Figures]], list[str]]:
    env = {
        "DAMAI_CAPTCHA__THRESHOLD_PER_SECOND": OUT_OF_THE_WAY,
        "DAMAI_RATE_LIMITS__REGISTRATION_LIMIT": OUT_OF_THE_WAY,
        "DAMAI_RATE_LIMITS__LOGIN_LIMIT": OUT_OF_THE_WAY,
        "DAMAI_USERS__BLOOM_BITS": str(settings.users.bloom_bits),
        "DAMAI_LOG_LEVEL": args.log_level,
    }
    worker = Child(["cli.main", "worker"], settings, log_dir / "worker.log", env)
    try:
        api = start_api("API", settings, log_dir, env)
        try:
            return asyncio.run(api_rounds(api.url, args))
        finally:
            api.stop()
    finally:
        worker.stop()


# -- part 2: is this mobile registered, in process ----------------------------------------------


async def check_rate(check: Check, blinds: list[bytes], concurrency: int) -> float:
    pending: Iterator[bytes] = iter(blinds)

    async def checker() -> None:
        for blind in pending:
            await check(blind)

    started = time.perf_counter()
    await asyncio.gather(*(checker() for _ in range(concurrency)))
    return len(blinds) / (time.perf_counter() - started)


async def measure_checks(
    settings: Settings, registered: list[str], args: argparse.Namespace
) -> tuple[dict[str, CheckFigures], bool]:
    """The rounds of part 2; also whether the Bloom filter had to be built here."""
    queries = QueryCount()
    pools = ShardPools(settings.postgres, observer=queries)
    await pools.start()
    redis = create_redis(settings.redis)
    try:
        db = ShardedDatabase(pools, shard_layout(settings))
        built_here = await ensure_user_bloom(redis, settings.users, db)
        vault = PersonalDataVault(MasterKeyring.from_settings(settings.security), PostgresDataKeyStore(db))
        reads = UserReads(db, redis, settings.users, vault)
        blind = BlindIndex.from_settings(settings.security)
        absent = [blind.mobile(m) for m in mobiles(NEVER_REGISTERED_PREFIX, 0, args.checks)]
        present = [blind.mobile(registered[i % len(registered)]) for i in range(args.checks)]
        bloom = user_bloom(redis, settings.users)
        assert await bloom.check(present[0]) is Membership.MAYBE_PRESENT, "the registered are not in the filter"
        assert await reads.registered("mobile", present[0]) and await user_id_by_mobile(db, present[0])
        assert not await reads.registered("mobile", absent[0]) and await user_id_by_mobile(db, absent[0]) is None

        async def via_registered(b: bytes) -> object:
            return await reads.registered("mobile", b)

        async def via_postgres(b: bytes) -> object:
            return await user_id_by_mobile(db, b)

        paths: list[tuple[str, Check, list[bytes]]] = [
            (BLOOM_ABSENT, via_registered, absent),
            (POSTGRES_ABSENT, via_postgres, absent),
            (BLOOM_PRESENT, via_registered, present),
        ]
        for _, check, blinds in paths:  # warm-up: connections, scripts, the interpreter's specialisation
            await check_rate(check, blinds[: args.concurrency * 10], args.concurrency)
        results = {name: CheckFigures([], []) for name, _, _ in paths}
        for round_number in range(args.check_rounds):
            shift = round_number % len(paths)
            for name, check, blinds in paths[shift:] + paths[:shift]:
                queries.count = 0
                rate = await check_rate(check, blinds, args.concurrency)
                await asyncio.sleep(0)  # asyncpg calls the query logger with call_soon
                results[name].checks_per_s.append(rate)
                results[name].queries.append(queries.count)
        return results, built_here
    finally:
        await redis.aclose()
        await pools.stop()


# -- report ------------------------------------------------------------------------------------


def report_api(results: dict[str, list[Figures]], settings: Settings, args: argparse.Namespace) -> None:
    p = settings.passwords
    print(
        f"\nUsers through the API: one API process + one projector worker, {args.clients} clients, "
        f"{args.requests} registrations and {args.requests} logins per round (/healthz: {args.healthz}), "
        f"medians of {args.rounds} rounds, log level {args.log_level}"
    )
    print(
        f"argon2id: time_cost={p.time_cost}, memory_cost={p.memory_cost_kib:,} KiB "
        f"({p.memory_cost_kib / 1024:.0f} MiB), parallelism={p.parallelism} (DAMAI_PASSWORDS__*)"
    )
    baseline = median_of(results[HEALTHZ]).requests_per_s
    print(f"{'path':<32} {'requests/s':>11} {'p50 ms':>8} {'p99 ms':>8} {'vs healthz':>11}")
    for name, figures in results.items():
        m = median_of(figures)
        ratio = m.requests_per_s / baseline
        print(f"{name:<32} {m.requests_per_s:>11,.1f} {m.p50_ms:>8.1f} {m.p99_ms:>8.1f} {ratio:>11.3f}")
        rounds = ", ".join(f"{f.requests_per_s:,.1f}/{f.p50_ms:.1f}/{f.p99_ms:.1f}" for f in figures)
        print(f"{'':<32} rounds (req/s / p50 / p99): {rounds}")


def report_checks(
    results: dict[str, CheckFigures], settings: Settings, registered: int, built_here: bool, args: argparse.Namespace
) -> None:
    users = settings.users
    built = "built here" if built_here else "built by the API at its start"
    print(
        f'\n"Is this mobile registered", in process: {args.checks:,} checks per path per round, '
        f"{args.concurrency} in flight, medians of {args.check_rounds} rounds"
    )
    print(
        f"Bloom filter: {users.bloom_bits:,} bits ({users.bloom_bits / MIB:.1f} MiB), {users.bloom_hashes} hashes, "
        f"{built}, {registered:,} mobiles registered"
    )
    baseline = statistics.median(results[POSTGRES_ABSENT].checks_per_s)
    print(f"{'path':<54} {'checks/s':>10} {'µs/check':>9} {'queries/round':>14} {'vs Postgres':>12}")
    for name, figures in results.items():
        rate = statistics.median(figures.checks_per_s)
        queries = statistics.median(figures.queries)
        print(f"{name:<54} {rate:>10,.0f} {1e6 / rate:>9.1f} {queries:>14,.0f} {rate / baseline:>12.2f}")
        rounds = ", ".join(f"{r:,.0f}" for r in figures.checks_per_s)
        print(f"{'':<54} rounds: {rounds}; queries: {', '.join(f'{q:,}' for q in figures.queries)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=32, help="concurrent HTTP clients")
    parser.add_argument("--requests", type=int, default=300, help="registrations (and logins) per round")
    parser.add_argument("--healthz", type=int, default=3000, help="GET /healthz requests per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--checks", type=int, default=5000, help="registration checks per path per round")
    parser.add_argument("--concurrency", type=int, default=50, help="registration checks in flight")
    parser.add_argument("--check-rounds", type=int, default=5)
    parser.add_argument("--bloom-bits", type=int, default=None, help="registration Bloom filter size (settings')")
    parser.add_argument("--log-level", default="INFO", help="the API's log level (INFO writes an access line)")
    args = parser.parse_args()
    settings = get_settings().namespaced(f"bench{uuid.uuid4().hex[:8]}")
    if args.bloom_bits is not None:
        settings = settings.model_copy(
            update={"users": settings.users.model_copy(update={"bloom_bits": args.bloom_bits})}
        )
    logs = REPO_ROOT / "bench" / "results" / "users"
    logs.mkdir(parents=True, exist_ok=True)
    try:
        asyncio.run(provision_namespace(settings))
        api_results, registered = measure_api(settings, args, logs)
        check_results, built_here = asyncio.run(measure_checks(settings, registered, args))
    finally:
        asyncio.run(remove_namespace(settings))
    report_api(api_results, settings, args)
    report_checks(check_results, settings, len(registered), built_here, args)


if __name__ == "__main__":
    main()
