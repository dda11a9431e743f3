"""The consumer lag a projector worker reports at its /metrics, against the real broker: it rises
while the worker is away (or held up) and falls to 0 once it has caught up."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from infra.kafka import EventPublisher
from infra.postgres.pools import ShardPools
from infra.settings import Settings
from projections.lag import ConsumerLag
from tests.integration.test_faust_workers import _all_there, _area, _area_ids_on, _areas
from tests.processes import Child, eventually, free_port

pytestmark = pytest.mark.slow
LAG_INTERVAL_S = 0.2
REPORTED_S = 60
CAUGHT_UP_S = 60


async def reported_lag(port: int, group: str) -> int | None:
    """The group's lag summed over the partitions the worker reports; None before it reports any."""
    try:
        async with httpx.AsyncClient() as http:
            text = (await http.get(f"http://127.0.0.1:{port}/metrics", timeout=2)).text
    except httpx.HTTPError:
        return None
    samples = [
        s.value
        for family in text_string_to_metric_families(text)
        if family.name == "damai_consumer_lag_messages"
        for s in family.samples
        if s.labels.get("group") == group
    ]
    return int(sum(samples)) if samples else None


@asynccontextmanager
async def projectors_held_up(pools: ShardPools) -> AsyncIterator[None]:
    """No projector can store an offset meanwhile, so the worker applies and commits nothing."""
    (_, first_database), *_ = pools
    async with first_database.acquire() as blocker, blocker.transaction():
        await blocker.execute("LOCK TABLE projector_offset IN EXCLUSIVE MODE")
        yield


async def _reports_lag_then_catches_up(
    settings: Settings, pools: ShardPools, log_path: Path, ids: list[int]
) -> tuple[Child, int]:
    """Start a worker held up, see it report a lag, let it go, see the lag fall to 0; returns the
    worker and the first lag it reported."""
    port = free_port()
    env = {
        "DAMAI_OBSERVABILITY__METRICS_PORT": str(port),
        "DAMAI_OBSERVABILITY__LAG_INTERVAL_S": str(LAG_INTERVAL_S),
    }
    group = settings.worker.projector_group
    first: list[int] = []

    async def lag_reported() -> bool:
        lag = await reported_lag(port, group)
        if lag is not None:
            first.append(lag)
        return lag is not None

    async def caught_up() -> bool:
        return await reported_lag(port, group) == 0 and await _all_there(pools, ids)

    worker = None
    try:
        async with projectors_held_up(pools):
            worker = Child(["cli.main", "worker"], settings, log_path, env)
            await eventually(lag_reported, REPORTED_S, "the worker to report its lag")
        await eventually(caught_up, CAUGHT_UP_S, "the worker to catch up and report no lag")
    except BaseException:
        if worker is not None:
            worker.stop()
        raise
    return worker, first[0]


async def test_the_lag_a_worker_reports_rises_while_it_is_away_and_falls_when_it_is_back(
    isolated: Settings, publisher: EventPublisher, pools: ShardPools, tmp_path: Path, area_code: int
):
    before = list(range(area_code * 10, area_code * 10 + 20))
    during = list(range(before[-1] + 1, before[-1] + 31))
    await publisher.publish_many(_areas(before[0], len(before)))

    worker, first_lag = await _reports_lag_then_catches_up(isolated, pools, tmp_path / "first.log", before)
    assert worker.stop() == 0
    await publisher.publish_many(_areas(during[0], len(during)))
    again, lag_when_back = await _reports_lag_then_catches_up(isolated, pools, tmp_path / "again.log", before + during)
    again.stop()

    assert first_lag == len(before)
    assert lag_when_back == len(during)


async def test_a_partition_a_process_no_longer_owns_leaves_its_lag_series(
    isolated: Settings, publisher: EventPublisher, area_code: int
):
    topic, group = isolated.kafka.topic("reference"), isolated.worker.projector_group
    partitions = list(range(isolated.kafka.topics["reference"].partitions))
    await publisher.publish_many([_area(i) for i in _area_ids_on([0], partitions, 5, first=area_code * 10)])
    owned: set[tuple[str, int]] = {(topic, 0)}
    labels = {"group": group, "topic": topic, "partition": "0"}

    async def gauge_is(expected: float | None) -> bool:
        return REGISTRY.get_sample_value("damai_consumer_lag_messages", labels) == expected

    measuring = asyncio.create_task(ConsumerLag(isolated.kafka.bootstrap, group, lambda: owned, LAG_INTERVAL_S).run())
    try:
        await eventually(lambda: gauge_is(5), REPORTED_S, "the lag of a partition nothing was read from")
        owned.clear()
        await eventually(lambda: gauge_is(None), REPORTED_S, "the series of a partition handed over to go")
    finally:
        measuring.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await measuring
