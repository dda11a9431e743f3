"""`damai status` against a namespace with an API and a projector worker running."""

from __future__ import annotations

import io

from rich.console import Console

from cli.status import SLOWEST_ROUTES, show
from infra import stack
from infra.postgres.sharded import ShardedDatabase
from tests.consumer_groups import caught_up
from tests.e2e.conftest import System
from tests.processes import eventually

SCREEN_WIDTH = 240
COMMITTED_WITHIN_S = 30


async def screen(system: System) -> str:
    out = io.StringIO()
    await show(system.settings, Console(file=out, width=SCREEN_WIDTH, color_system=None), None)
    return out.getvalue()


def rows(text: str) -> list[list[str]]:
    """The cells of every table row on the screen."""
    return [[cell.strip() for cell in line.split("│")[1:-1]] for line in text.splitlines() if line.startswith("│")]


async def test_status_shows_every_service_healthy_when_the_stack_is_up(system: System) -> None:
    text = await screen(system)

    healthy = {row[0] for row in rows(text) if len(row) == 4 and row[2] == "healthy"}
    assert set(stack.SERVICES) <= healthy, text


async def test_status_shows_the_projector_groups_lag_on_a_topic_when_it_has_committed_there(
    system: System, catalogue: ShardedDatabase
) -> None:
    settings = system.settings
    group, reference = settings.worker.projector_group, settings.kafka.topic("reference")
    partitions = settings.kafka.topics["reference"].partitions
    await eventually(lambda: caught_up(settings, group, reference, partitions), COMMITTED_WITHIN_S, "the commit")

    text = await screen(system)

    lag = [row for row in rows(text) if row[:2] == [group, reference]]
    assert lag == [[group, reference, "0", "-", str(partitions)]], text


async def test_status_shows_the_apis_slowest_routes_when_it_has_answered_requests(
    system: System, catalogue: ShardedDatabase
) -> None:
    text = await screen(system)

    routes = [row for row in rows(text) if len(row) == 5 and row[0] in ("GET", "POST")]
    assert len(routes) == SLOWEST_ROUTES, text
    p99s = [float(row[3].removesuffix(" ms")) for row in routes]
    assert p99s == sorted(p99s, reverse=True)
