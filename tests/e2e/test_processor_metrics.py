"""The allocator, the lifecycle and the payment processor, as real processes, each at its own
/metrics: their batches, their consumer lag, the allocator's script calls, and the expiry's lateness
and backlog."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from prometheus_client.parser import text_string_to_metric_families

from infra.postgres.sharded import ShardedDatabase
from tests.e2e.conftest import System, buyers_env
from tests.e2e.test_allocation import automatic, on_sale, order
from tests.e2e.test_order_requests import signed_in_buyer
from tests.processes import Child, eventually, free_port

pytestmark = pytest.mark.slow
PAYMENT_WINDOW_S = 2
LAG_INTERVAL_S = 0.2
SCRAPED_S = 30
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture(scope="module")
def api_env() -> dict[str, str]:
    return buyers_env()


@pytest_asyncio.fixture(scope="module")
async def ports(system: System, tmp_path_factory) -> AsyncIterator[dict[str, int]]:
    """The allocator's, the lifecycle's and the payment processor's /metrics ports; the processes run
    meanwhile."""
    logs = tmp_path_factory.mktemp("processors")
    ports = {"allocator": free_port(), "lifecycle": free_port(), "payments": free_port()}
    children = [
        Child(
            ["cli.main", kind],
            system.settings,
            logs / f"{kind}.log",
            {
                "DAMAI_ORDERS__PAYMENT_WINDOW_S": str(PAYMENT_WINDOW_S),
                "DAMAI_OBSERVABILITY__METRICS_PORT": str(port),
                "DAMAI_OBSERVABILITY__LAG_INTERVAL_S": str(LAG_INTERVAL_S),
            },
        )
        for kind, port in ports.items()
    ]
    yield ports
    for child in children:
        child.stop()


async def scrape(port: int) -> Samples:
    """Every sample at a process's /metrics, by name and labels; none while it does not answer."""
    try:
        async with httpx.AsyncClient() as http:
            text = (await http.get(f"http://127.0.0.1:{port}/metrics", timeout=2)).text
    except httpx.HTTPError:
        return {}
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sum of ``name`` over the samples that carry ``labels``."""
    wanted = set(labels.items())
    return sum(v for (n, have), v in samples.items() if n == name and wanted <= have)


def lag_series(samples: Samples, group: str) -> list[float]:
    return [v for (n, have), v in samples.items() if n == "damai_consumer_lag_messages" and ("group", group) in have]


async def orders_held(system: System, catalogue: ShardedDatabase, count: int) -> list[dict[str, Any]]:
    show = await on_sale(system, catalogue, rows=2, columns=10, perAccountLimit=20, perOrderLimit=6)
    buyer = await signed_in_buyer(system)
    placed = []
    for _ in range(count):
        response = await order(system, buyer, automatic(show, 1))
        assert response.status_code == 201, response.text
        placed.append(response.json())
    return placed


async def test_the_allocator_reports_its_decisions_its_script_calls_and_no_lag_once_done(
    system: System, catalogue: ShardedDatabase, ports: dict[str, int]
):
    group = system.settings.worker.allocator_group
    await orders_held(system, catalogue, 3)

    async def reported() -> bool:
        samples = await scrape(ports["allocator"])
        lags = lag_series(samples, group)
        return value(samples, "damai_processor_events_total", group=group) >= 3 and bool(lags) and sum(lags) == 0

    await eventually(reported, SCRAPED_S, "the allocator to report its batches and no lag")
    samples = await scrape(ports["allocator"])

    assert value(samples, "damai_allocator_decisions_total", outcome="held") >= 3
    assert value(samples, "damai_allocator_lua_seconds_count") >= 1
    assert value(samples, "damai_processor_batch_events_sum", group=group, processor="allocator") >= 3
    assert value(samples, "damai_processor_batch_seconds_count", group=group, processor="allocator") >= 1


async def test_the_lifecycle_reports_how_late_it_expired_holds_and_no_backlog_once_done(
    system: System, catalogue: ShardedDatabase, ports: dict[str, int]
):
    group = system.settings.worker.lifecycle_group
    before = await scrape(ports["lifecycle"])
    placed = await orders_held(system, catalogue, 2)

    async def expired() -> bool:
        return _late(before, await scrape(ports["lifecycle"]))[0] >= len(placed)

    await eventually(expired, PAYMENT_WINDOW_S + SCRAPED_S, "the lifecycle to expire the holds")

    async def settled() -> bool:
        samples = await scrape(ports["lifecycle"])
        lags = lag_series(samples, group)
        return bool(lags) and sum(lags) == 0 and value(samples, "damai_expiry_backlog_orders") == 0

    await eventually(settled, SCRAPED_S, "the lifecycle to report no lag and no backlog")
    samples = await scrape(ports["lifecycle"])
    expiries, lateness_s = _late(before, samples)

    assert value(samples, "damai_processor_events_total", group=group, processor="lifecycle") >= len(placed)
    assert lateness_s / expiries < 2.0


async def test_the_payment_processor_reports_its_batches_under_its_group_and_no_lag_once_done(
    system: System, catalogue: ShardedDatabase, ports: dict[str, int]
):
    group = system.settings.payments.group
    mine = {"group": group, "processor": "payments"}
    before = value(await scrape(ports["payments"]), "damai_processor_events_total", **mine)
    placed = await orders_held(system, catalogue, 2)

    async def reported() -> bool:
        samples = await scrape(ports["payments"])
        lags = lag_series(samples, group)
        read = value(samples, "damai_processor_events_total", **mine) - before
        return read >= len(placed) and bool(lags) and sum(lags) == 0

    await eventually(reported, SCRAPED_S, "the payment processor to report the holds it read and no lag")
    samples = await scrape(ports["payments"])

    assert value(samples, "damai_processor_batch_events_sum", **mine) >= len(placed)
    assert value(samples, "damai_processor_batch_seconds_count", **mine) >= 1


def _late(before: Samples, after: Samples) -> tuple[float, float]:
    """Holds expired between two scrapes, and how late they were in all (seconds)."""
    count, total = "damai_expiry_lateness_seconds_count", "damai_expiry_lateness_seconds_sum"
    return value(after, count) - value(before, count), value(after, total) - value(before, total)
