"""Requests/s of the API with its request metrics on and off (issue 13): what counting and timing
every request (``damai_http_*``) costs a real server, beside ``bench/metrics_cost.py``'s CPU time of
the calls alone.

Two API processes (``python -m cli.main serve``, one uvicorn process each, started the same way),
one with ``DAMAI_OBSERVABILITY__REQUEST_METRICS=false``, measured one after the other with ``wrk``
(``apt-get install wrk``) on two cheap routes: ``GET /healthz`` and a cached read,
``GET /api/v1/programs/{id}`` (the local cache warm: the cached bytes are the response). Each round
runs both servers on both routes, the server that goes first alternating round by round, so that
the machine's noise falls on both alike. Prints the medians of ``--rounds`` rounds, the ratio
off / on, and each round's figures; then checks that the server with metrics off counted nothing.
The program lives in a namespace of its own, removed afterwards; server logs go to
bench/results/request-metrics/.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import uuid
from pathlib import Path

import httpx

from bench.program_detail import Figures, Server, median_of, prepare, run_wrk, start
from cli.provision import provision_namespace, remove_namespace
from infra.settings import REPO_ROOT, Settings, get_settings
from tests.processes import free_port

WARM_UP_S = 2
ON, OFF = "metrics on", "metrics off"
COUNTED = "damai_http_requests_total{"


def start_servers(settings: Settings, log_level: str, log_dir: Path) -> dict[str, Server]:
    env = {k: v for k, v in settings.namespace_env().items() if k != "DAMAI_API__PORT"}
    env["DAMAI_LOG_LEVEL"] = log_level
    servers: dict[str, Server] = {}
    for name, metrics in ((ON, "true"), (OFF, "false")):
        port = free_port()
        args = ["cli.main", "serve", "--port", str(port)]
        servers[name] = start(name, args, {**env, "DAMAI_OBSERVABILITY__REQUEST_METRICS": metrics}, port, log_dir)
    return servers


def measure(
    servers: dict[str, Server], paths: list[str], args: argparse.Namespace
) -> dict[str, dict[str, list[Figures]]]:
    """Figures by path, then by server, one per round."""
    for path in paths:
        for server in servers.values():
            httpx.get(server.url + path, timeout=5).raise_for_status()
            run_wrk(server.url + path, args.connections, args.threads, WARM_UP_S)
    results: dict[str, dict[str, list[Figures]]] = {p: {name: [] for name in servers} for p in paths}
    order = list(servers)
    for round_number in range(args.rounds):
        turn = order if round_number % 2 == 0 else order[::-1]
        for path in paths:
            for name in turn:
                figures = run_wrk(servers[name].url + path, args.connections, args.threads, args.seconds)
                results[path][name].append(figures)
    return results


def requests_counted(server: Server) -> int:
    """Lines of ``damai_http_requests_total`` at the server's /metrics (the scrape itself comes after)."""
    text = httpx.get(server.url + "/metrics", timeout=5).text
    return sum(1 for line in text.splitlines() if line.startswith(COUNTED))


def report(results: dict[str, dict[str, list[Figures]]], counted: dict[str, int], args: argparse.Namespace) -> None:
    print(
        f"\nAPI request metrics on and off: wrk -t{args.threads} -c{args.connections} -d{args.seconds}s, "
        f"one API process each, medians of {args.rounds} rounds (alternating which goes first), "
        f"log level {args.log_level}"
    )
    print(f"{'route':<26} {'on req/s':>10} {'off req/s':>10} {'off/on':>7} {'on p50':>7} {'off p50':>8}")
    for path, by_server in results.items():
        on, off = median_of(by_server[ON]), median_of(by_server[OFF])
        route = path if path == "/healthz" else "/api/v1/programs/{id}"
        ratio = off.requests_per_s / on.requests_per_s
        print(
            f"{route:<26} {on.requests_per_s:>10,.0f} {off.requests_per_s:>10,.0f} {ratio:>7.3f} "
            f"{on.p50_ms:>6.2f}ms {off.p50_ms:>6.2f}ms"
        )
        for name in (ON, OFF):
            rounds = ", ".join(f"{f.requests_per_s:,.0f}" for f in by_server[name])
            print(f"{'':<26} {name}: {rounds}")
        pairs = [b.requests_per_s / a.requests_per_s for a, b in zip(by_server[ON], by_server[OFF], strict=True)]
        print(f"{'':<26} off/on by round: {', '.join(f'{p:.3f}' for p in pairs)}")
    print(f"damai_http_requests_total series after the run: on {counted[ON]}, off {counted[OFF]}")


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
        logs = REPO_ROOT / "bench" / "results" / "request-metrics"
        logs.mkdir(parents=True, exist_ok=True)
        servers = start_servers(settings, args.log_level, logs)
        try:
            results = measure(servers, ["/healthz", f"/api/v1/programs/{program_id}"], args)
            counted = {name: requests_counted(server) for name, server in servers.items()}
        finally:
            for server in servers.values():
                server.stop()
        report(results, counted, args)  # before the clean-up, which a service gone meanwhile can fail
    finally:
        asyncio.run(remove_namespace(settings))
    if counted[OFF]:
        sys.exit("the server with request metrics off counted requests: the switch did not hold")


if __name__ == "__main__":
    main()
