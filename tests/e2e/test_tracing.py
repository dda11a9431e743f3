"""One correlation id through the processes (issue 13): an order placed through the API, decided by
the allocator and taken by the lifecycle, each a real process writing its JSON log to a file, and
``damai logs --correlation`` finding the order's lines in all three, in time order.

A command's correlation id is the client's ``X-Correlation-Id``, or one the API makes; either is
on the request's access line and in the answer's ``X-Correlation-Id``.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator

import orjson
import pytest
import pytest_asyncio

from cli.logs import correlated_lines
from infra.postgres.sharded import ShardedDatabase
from tests.e2e.conftest import System, buyers_env
from tests.e2e.test_allocation import DECIDED, automatic, on_sale
from tests.e2e.test_order_requests import signed_in_buyer
from tests.processes import Child, eventually

pytestmark = pytest.mark.slow
LOGGED_S = 10


@pytest.fixture(scope="module")
def api_env() -> dict[str, str]:
    return buyers_env()


@pytest_asyncio.fixture(scope="module")
async def deciders(system: System, tmp_path_factory) -> AsyncIterator[dict[str, Child]]:
    logs = tmp_path_factory.mktemp("deciders")
    names = ("allocator", "lifecycle")
    children = {name: Child(["cli.main", name], system.settings, logs / f"{name}.log") for name in names}
    yield children
    for child in children.values():
        child.stop()


async def test_an_order_s_correlation_id_is_in_the_api_allocator_and_lifecycle_logs_when_the_client_sends_it(
    system: System, catalogue: ShardedDatabase, deciders: dict[str, Child]
):
    show = await on_sale(system, catalogue, rows=1, columns=4)
    buyer = await signed_in_buyer(system)
    correlation = str(uuid.uuid4())
    traced = {"X-Correlation-Id": correlation}

    placed = await system.http.post(
        "/api/v1/orders", json=automatic(show, 2), headers=buyer.auth | DECIDED | traced, timeout=30
    )

    assert placed.status_code == 201, placed.text
    files = [system.api_log, deciders["allocator"].log_path, deciders["lifecycle"].log_path]

    async def in_every_log() -> bool:
        return {line.source for line in correlated_lines(files, correlation)} == {f.name for f in files}

    await eventually(in_every_log, LOGGED_S, "the correlation id in the API's, allocator's and lifecycle's logs")
    events = [orjson.loads(line.text)["event"] for line in correlated_lines(files, correlation)]
    # The access line is written when the answer is (after the decision: Prefer: wait).
    assert {"http.request", "allocator.decided", "lifecycle.decision_read"} <= set(events)


async def test_damai_logs_prints_one_correlation_s_lines_from_every_file_oldest_first(
    system: System, catalogue: ShardedDatabase, deciders: dict[str, Child]
):
    show = await on_sale(system, catalogue, rows=1, columns=4)
    buyer = await signed_in_buyer(system)
    correlation = str(uuid.uuid4())
    headers = buyer.auth | DECIDED | {"X-Correlation-Id": correlation}
    placed = await system.http.post("/api/v1/orders", json=automatic(show, 1), headers=headers, timeout=30)
    assert placed.status_code == 201, placed.text
    files = [system.api_log, deciders["allocator"].log_path, deciders["lifecycle"].log_path]
    await eventually(lambda: _logged_by(files, correlation, 3), LOGGED_S, "the lines of three processes")

    command = [sys.executable, "-m", "cli.logs", "--correlation", correlation, *map(str, files)]
    ran = await asyncio.to_thread(subprocess.run, command, capture_output=True, text=True, check=True)
    shown = ran.stdout.splitlines()

    sources = [line.split("\t", 1)[0] for line in shown]
    moments = [orjson.loads(line.split("\t", 1)[1])["timestamp"] for line in shown]
    assert set(sources) == {"api.log", "allocator.log", "lifecycle.log"}
    assert moments == sorted(moments)


async def _logged_by(files, correlation: str, processes: int) -> bool:
    return len({line.source for line in correlated_lines(files, correlation)}) == processes


async def test_a_command_sent_without_a_correlation_id_gets_one_back_and_its_story_is_logged_under_it(
    system: System, catalogue: ShardedDatabase, deciders: dict[str, Child]
):
    show = await on_sale(system, catalogue, rows=1, columns=4)
    buyer = await signed_in_buyer(system)

    placed = await system.http.post("/api/v1/orders", json=automatic(show, 1), headers=buyer.auth | DECIDED, timeout=30)

    assert placed.status_code == 201, placed.text
    correlation = str(uuid.UUID(placed.headers["x-correlation-id"]))
    files = [system.api_log, deciders["allocator"].log_path, deciders["lifecycle"].log_path]
    await eventually(lambda: _logged_by(files, correlation, 3), LOGGED_S, "the made id in all three logs")
