"""``damai status``: the whole system on one screen, for an operator.

Each stack service's health, each processor kind's /metrics, each consumer group's lag per topic
and throughput (from the broker's offsets, so it needs no Prometheus), dead letters and gaps, and
the API's slowest routes. Rates come from two readings: a second apart once, or between refreshes
with ``--watch``.
"""

from __future__ import annotations

import asyncio
import functools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from infra import stack
from infra.logging import configure_logging
from infra.settings import Settings, get_settings
from infra.stack.service import LOOPBACK

if TYPE_CHECKING:
    from prometheus_client.samples import Sample

    from cli.consumer_lag import GroupOffsets

# Rates need two readings; a one-off status takes them this far apart.
RATE_WINDOW_S = 1.0
SLOWEST_ROUTES = 5
# Wide enough for a namespaced group and topic on one line when the output is not a terminal.
PLAIN_WIDTH = 160
EVENTS = "damai_processor_events_total"
GAPS = "damai_projector_gaps_total"


def processor_groups(settings: Settings) -> dict[str, str]:
    """Each processor kind (as in ``observability.metrics_ports``) and its consumer group."""
    return {
        "worker": settings.worker.projector_group,
        "allocator": settings.worker.allocator_group,
        "lifecycle": settings.worker.lifecycle_group,
        "payments": settings.payments.group,
    }


@dataclass(frozen=True)
class Reading:
    at: float
    """time.monotonic() when it was taken."""
    services: list[stack.ServiceStatus]
    metrics: dict[str, list[Sample] | None]
    """Each processor kind's samples (None: its /metrics did not answer)."""
    api_metrics: list[Sample] | None
    groups: list[GroupOffsets]
    broker_error: str | None


async def read(settings: Settings) -> Reading:
    """Everything the screen shows, read once."""
    import httpx

    from cli.consumer_lag import read_groups
    from cli.scrape import scrape

    ports = settings.observability.metrics_ports
    services = asyncio.create_task(asyncio.to_thread(stack.status, settings, stack.KNOWN_SERVICES))
    async with httpx.AsyncClient() as http:
        scraped = await asyncio.gather(
            scrape(http, f"http://{LOOPBACK}:{settings.api.port}/metrics"),
            *(scrape(http, f"http://{LOOPBACK}:{ports[kind]}/metrics") for kind in processor_groups(settings)),
        )
    groups: list[GroupOffsets] = []
    broker_error = None
    try:
        groups = await read_groups(settings, list(processor_groups(settings).values()))
    except Exception as exc:  # noqa: BLE001 - any broker failure is shown, not raised: the screen stays up
        broker_error = f"{type(exc).__name__}: {exc}"
    return Reading(
        time.monotonic(),
        await services,
        dict(zip(processor_groups(settings), scraped[1:], strict=True)),
        scraped[0],
        groups,
        broker_error,
    )


def render(settings: Settings, now: Reading, before: Reading | None) -> Group:
    title = Text(f"damai status  {datetime.now().astimezone():%Y-%m-%d %H:%M:%S}", style="bold")
    if settings.kafka.topic_prefix:
        title.append(f"  namespace {settings.kafka.topic_prefix.rstrip('.')}")
    parts: list[Table | Text] = [title, services_table(now), processors_table(settings, now, before)]
    parts.append(Text(f"broker: {now.broker_error}", style="red") if now.broker_error else lag_table(now))
    parts.append(routes_table(now))
    return Group(*parts)


def services_table(now: Reading) -> Table:
    table = Table(title="Services", title_justify="left", expand=False)
    for column in ("service", "address", "health", "detail"):
        table.add_column(column)
    for s in now.services:
        optional = s.name in stack.OPTIONAL_SERVICES and s.pid is None
        health = (
            Text("optional, off", "dim") if optional else Text("healthy", "green") if s.healthy else Text("DOWN", "red")
        )
        table.add_row(s.name, s.address, health, s.detail)
    return table


def processors_table(settings: Settings, now: Reading, before: Reading | None) -> Table:
    from cli.scrape import total

    table = Table(title="Processors", title_justify="left")
    for column in ("kind", "group", "/metrics", "events/s", "committed/s", "dead letters", "gaps"):
        table.add_column(column, justify="right" if column not in ("kind", "group", "/metrics") else "left")
    groups = {g.group: g for g in now.groups}
    earlier = {g.group: g for g in before.groups} if before else {}
    for kind, group in processor_groups(settings).items():
        port = settings.observability.metrics_ports.get(kind, 0)
        samples = now.metrics[kind]
        # A port of the default settings may be another namespace's process: its events name its group.
        served = set(total(samples or [], EVENTS, by="group"))
        ours = samples is not None and (not served or group in served)
        reachable = (
            Text(f":{port} up", "green")
            if ours
            else Text(f":{port} unreachable", "yellow")
            if samples is None
            else Text(f":{port} serves {', '.join(sorted(served))}", "yellow")
        )
        scraped_twice = ours and before is not None and before.metrics[kind] is not None
        events = _rate(now, before, functools.partial(_events, kind=kind, group=group)) if scraped_twice else None
        committed = _rate(now, before, functools.partial(_committed, group=group)) if group in earlier else None
        offsets = groups.get(group)
        dead = "-" if offsets is None or offsets.dead_letters is None else str(offsets.dead_letters)
        gaps = f"{_sum(total(samples or [], GAPS)):.0f}" if ours else "-"
        table.add_row(kind, group, reachable, _per_second(events), _per_second(committed), dead, gaps)
    return table


def lag_table(now: Reading) -> Table:
    table = Table(title="Consumer lag (committed offsets against end offsets, from the broker)", title_justify="left")
    for column in ("group", "topic", "lag", "worst partition", "partitions"):
        table.add_column(column, justify="right" if column in ("lag", "partitions") else "left")
    for offsets in now.groups:
        if not offsets.partitions:
            table.add_row(offsets.group, Text("no committed offsets", "dim"), "-", "-", "0")
        for topic in offsets.topics():
            partitions = offsets.of_topic(topic)
            worst = max(partitions, key=lambda p: p.lag)
            lag = sum(p.lag for p in partitions)
            table.add_row(
                offsets.group,
                topic,
                Text(str(lag), "yellow" if lag else "green"),
                f"{worst.partition}: {worst.lag}" if worst.lag else "-",
                str(len(partitions)),
            )
    return table


def routes_table(now: Reading) -> Table | Text:
    from cli.scrape import route_latencies

    if now.api_metrics is None:
        return Text("API /metrics unreachable: no route latencies", "yellow")
    table = Table(title=f"Slowest routes (p99 since the API started, top {SLOWEST_ROUTES})", title_justify="left")
    for column in ("method", "route", "requests", "p99", "mean"):
        table.add_column(column, justify="right" if column in ("requests", "p99", "mean") else "left")
    for r in route_latencies(now.api_metrics)[:SLOWEST_ROUTES]:
        p99 = "-" if math.isnan(r.p99_s) else f"{r.p99_s * 1000:.1f} ms"
        table.add_row(r.method, r.route, str(r.requests), p99, f"{r.mean_s * 1000:.1f} ms")
    return table


def _sum(values: dict[str, float]) -> float:
    return sum(values.values())


def _events(reading: Reading, kind: str, group: str) -> float:
    from cli.scrape import total

    return total(reading.metrics[kind] or [], EVENTS, by="group").get(group, 0.0)


def _committed(reading: Reading, group: str) -> float:
    return float(sum(g.committed_total for g in reading.groups if g.group == group))


def _rate(now: Reading, before: Reading | None, value: Callable[[Reading], float]) -> float | None:
    if before is None or now.at <= before.at:
        return None
    delta = value(now) - value(before)
    # A restarted process counts from 0 again: no rate across it.
    return delta / (now.at - before.at) if delta >= 0 else None


def _per_second(rate: float | None) -> str:
    return "-" if rate is None else f"{rate:.1f}"


async def show(settings: Settings, console: Console, watch_s: float | None) -> None:
    """Print the screen once, or refresh it every ``watch_s`` seconds until interrupted."""
    before = await read(settings)
    await asyncio.sleep(RATE_WINDOW_S)
    now = await read(settings)
    if watch_s is None:
        console.print(render(settings, now, before))
        return
    with Live(render(settings, now, before), console=console, auto_refresh=False, screen=False) as live:
        while True:
            await asyncio.sleep(watch_s)
            before, now = now, await read(settings)
            live.update(render(settings, now, before), refresh=True)


def status(
    watch: Annotated[
        float | None,
        typer.Option(
            "--watch",
            min=0.5,
            metavar="SECONDS",
            help="Refresh every SECONDS (e.g. --watch 2) until Ctrl-C.",
        ),
    ] = None,
) -> None:
    """Services, processors (lag, throughput, dead letters, gaps) and the slowest routes on one screen."""
    console = Console()
    if not console.is_terminal:
        console.width = max(console.width, PLAIN_WIDTH)
    settings = get_settings()
    configure_logging(settings.log_level, settings.log_json)
    try:
        asyncio.run(show(settings, console, watch))
    except KeyboardInterrupt:
        return
