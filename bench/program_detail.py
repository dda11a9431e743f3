"""Requests/s of GET /api/v1/programs/{id} through a running API, beside a bare FastAPI endpoint.

Three servers, each one uvicorn process started the same way (``python -m ...``, uvloop and
httptools, no access log from uvicorn), measured one after another with ``wrk`` (Debian's
package: ``apt-get install wrk``) on the same program:

1. the API with the local cache warm (memory hit: the cached JSON bytes are the response);
2. the API with ``DAMAI_PROGRAM_CACHE__LOCAL_ENABLED=false``: every request reads Redis
   (concurrent requests for the one program share a read);
3. baseline: a bare FastAPI app whose route returns the same document as a dict.

The API keeps its own middleware (request id, metrics, one JSON access-log line per request);
that is part of what a request costs. Medians of ``--rounds`` rounds; the program lives in a
namespace of its own (schema, cache keys), removed afterwards. Server logs go to
bench/results/program-detail/.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
from fastapi import FastAPI

from cli.provision import provision_namespace, remove_namespace
from infra.postgres.pools import ShardPools
from infra.postgres.routing import shard_layout
from infra.postgres.sharded import ShardedDatabase
from infra.redis import create_redis
from infra.settings import REPO_ROOT, Settings, get_settings
from queries.cache import add_program_to_bloom, invalidate_program
from tests.processes import free_port
from tests.program_rows import insert_program

DOCUMENT_ENV = "BENCH_PROGRAM_DOCUMENT"
START_TIMEOUT_S = 30.0
WARM_UP_S = 2
UNITS_S = {"us": 1e-6, "ms": 1e-3, "s": 1.0}


def bare_app() -> FastAPI:
    """The baseline: FastAPI returning a fixed JSON document, nothing else."""
    document: dict[str, Any] = orjson.loads(Path(os.environ[DOCUMENT_ENV]).read_bytes())
    app = FastAPI()

    @app.get("/api/v1/programs/{program_id}")
    async def detail(program_id: int) -> dict[str, Any]:
        return document

    return app


@dataclass
class Server:
    name: str
    proc: subprocess.Popen[bytes]
    url: str

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def start(name: str, args: list[str], env: dict[str, str], port: int, log_dir: Path) -> Server:
    log = (log_dir / f"{name.replace(' ', '-')}.log").open("wb")
    full_env = {**os.environ, **env, "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", *args], env=full_env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited early; see {log.name}")
        try:
            if httpx.get(f"{url}/openapi.json", timeout=1).status_code == 200:
                return Server(name, proc, url)
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"{name} did not answer within {START_TIMEOUT_S}s")


@dataclass
class Figures:
    requests_per_s: float
    p50_ms: float
    p99_ms: float


def median_of(figures: list[Figures]) -> Figures:
    """Each figure's median over the rounds."""
    return Figures(
        statistics.median(f.requests_per_s for f in figures),
        statistics.median(f.p50_ms for f in figures),
        statistics.median(f.p99_ms for f in figures),
    )


def run_wrk(url: str, connections: int, threads: int, seconds: int, script: Path | None = None) -> Figures:
    """One wrk run against ``url``; ``script`` is a wrk Lua script that shapes the requests."""
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency"]
    if script is not None:
        command += ["-s", str(script)]
    out = subprocess.run(
        [*command, url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    if re.search(r"Non-2xx or 3xx responses", out) or "Socket errors" in out:
        raise RuntimeError(f"wrk saw errors:\n{out}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    return Figures(rps, _percentile(out, "50%"), _percentile(out, "99%"))


def _percentile(out: str, label: str) -> float:
    value, unit = re.search(rf"{label}\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
    return float(value) * UNITS_S[unit] * 1000


async def prepare(settings: Settings) -> int:
    """One on-sale program in the namespace's shards, known to the Bloom filter."""
    pools = ShardPools(settings.postgres)
    await pools.start()
    redis = create_redis(settings.redis)
    try:
        db = ShardedDatabase(pools, shard_layout(settings))
        program = await insert_program(db)
        await add_program_to_bloom(redis, settings, program.id)
        await invalidate_program(redis, settings, program.id)
    finally:
        await redis.aclose()
        await pools.stop()
    return program.id


def measure(settings: Settings, program_id: int, args: argparse.Namespace, log_dir: Path) -> dict[str, list[Figures]]:
    env = {k: v for k, v in settings.namespace_env().items() if k != "DAMAI_API__PORT"}
    env["DAMAI_LOG_LEVEL"] = args.log_level
    servers: list[Server] = []
    try:
        local_port, redis_port, bare_port = free_port(), free_port(), free_port()
        servers.append(
            start("API, local cache", ["cli.main", "serve", "--port", str(local_port)], env, local_port, log_dir)
        )
        no_local = {**env, "DAMAI_PROGRAM_CACHE__LOCAL_ENABLED": "false"}
        servers.append(
            start("API, Redis only", ["cli.main", "serve", "--port", str(redis_port)], no_local, redis_port, log_dir)
        )
        path = f"/api/v1/programs/{program_id}"
        warm = httpx.get(servers[0].url + path, timeout=5)
        warm.raise_for_status()
        document = log_dir / "document.json"
        document.write_bytes(warm.content)
        bare_args = ["uvicorn", "bench.program_detail:bare_app", "--factory", "--port", str(bare_port)]
        bare_args += ["--no-access-log", "--log-level", "warning"]
        servers.append(start("bare FastAPI", bare_args, {DOCUMENT_ENV: str(document)}, bare_port, log_dir))
        for server in servers:
            response = httpx.get(server.url + path, timeout=5)
            assert response.status_code == 200 and orjson.loads(response.content) == orjson.loads(warm.content)
        for server in servers:  # warm-up: connections, caches, the interpreter's specialisation
            run_wrk(server.url + path, args.connections, args.threads, WARM_UP_S)
        results: dict[str, list[Figures]] = {s.name: [] for s in servers}
        for round_number in range(args.rounds):
            # Each round starts with another server, so none always runs first or last.
            shift = round_number % len(servers)
            for server in servers[shift:] + servers[:shift]:
                results[server.name].append(run_wrk(server.url + path, args.connections, args.threads, args.seconds))
        return results
    finally:
        for server in servers:
            server.stop()


def report(results: dict[str, list[Figures]], args: argparse.Namespace) -> None:
    baseline = median_of(results["bare FastAPI"]).requests_per_s
    print(
        f"\nGET /api/v1/programs/{{id}}: wrk -t{args.threads} -c{args.connections} -d{args.seconds}s, "
        f"medians of {args.rounds} rounds, log level {args.log_level}"
    )
    print(f"{'server':<20} {'requests/s':>12} {'p50 ms':>8} {'p99 ms':>8} {'vs bare':>8}")
    for name, figures in results.items():
        m = median_of(figures)
        ratio = m.requests_per_s / baseline
        print(f"{name:<20} {m.requests_per_s:>12,.0f} {m.p50_ms:>8.2f} {m.p99_ms:>8.2f} {ratio:>8.2f}")
        print(f"{'':<20} rounds: {', '.join(f'{f.requests_per_s:,.0f}' for f in figures)}")


async def setup(settings: Settings) -> int:
    await provision_namespace(settings)
    return await prepare(settings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=5, help="length of one wrk run")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (the servers need the other cores)")
    parser.add_argument("--log-level", default="INFO", help="the API's log level (INFO writes an access line)")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is missing: apt-get install wrk")
    settings = get_settings().namespaced(f"bench{uuid.uuid4().hex[:8]}")
    program_id = asyncio.run(setup(settings))
    try:
        logs = REPO_ROOT / "bench" / "results" / "program-detail"
        logs.mkdir(parents=True, exist_ok=True)
        results = measure(settings, program_id, args, logs)
    finally:
        asyncio.run(remove_namespace(settings))
    report(results, args)


if __name__ == "__main__":
    main()
