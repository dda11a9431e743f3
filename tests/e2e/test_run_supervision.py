"""`damai run` keeps its processes up: a killed worker is restarted while the API goes on answering,
and only a stop signal to `damai run` stops them all, leaving no process behind."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from events.envelope import EventEnvelope
from events.reference import AreaCreated, AreaLevel
from infra.kafka import EventPublisher
from infra.postgres.pools import ShardPools
from infra.settings import Settings
from tests.processes import Child, eventually, free_port

pytestmark = pytest.mark.slow
STARTED_S = 60
PROJECTED_S = 90  # the killed worker's partitions move after its session times out and the group rebalances
STOPPED_S = 30
HEALTH_POLL_S = 0.2
PROCESSORS = ("worker", "allocator", "lifecycle", "payments")  # each with a /metrics port of its own
STARTED = re.compile(r"damai run: started (\S+) \(pid (\d+)")


def _run_env(api_port: int) -> dict[str, str]:
    """Ports of their own, so `damai run` stays clear of the default one and of other tests."""
    sandbox_port = free_port()
    return {
        "DAMAI_API__PORT": str(api_port),
        "DAMAI_PAYMENTS__SANDBOX_PORT": str(sandbox_port),
        "DAMAI_PAYMENTS__ALIPAY__GATEWAY": f"http://127.0.0.1:{sandbox_port}/gateway.do",
        "DAMAI_OBSERVABILITY__METRICS_PORTS": json.dumps(dict.fromkeys(PROCESSORS, 0)),
        "DAMAI_RUN__RESTART_INITIAL_S": "0.5",
    }


def _last_pids(run: Child) -> list[int]:
    """The pid each process was last started with."""
    return [started[-1] for started in _started(run).values()]


def _started(run: Child) -> dict[str, list[int]]:
    """Every pid each process has had, in order, from `damai run`'s lines."""
    pids: dict[str, list[int]] = {}
    for name, pid in STARTED.findall(run.output()):
        pids.setdefault(name, []).append(int(pid))
    return pids


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


@pytest.fixture
def api_port() -> int:
    return free_port()


@pytest.fixture
def run(isolated: Settings, api_port: int, tmp_path: Path) -> Iterator[Child]:
    """`damai run` over the test's namespace, without the stack step and the demo seed."""
    child = Child(["cli.main", "run", "--no-seed", "--no-stack"], isolated, tmp_path / "run.log", _run_env(api_port))
    yield child
    child.stop()


@pytest.fixture
async def api(run: Child, api_port: int) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{api_port}", timeout=2) as client:

        async def healthy() -> bool:
            assert run.proc.poll() is None, run.output()[-3000:]
            try:
                return (await client.get("/healthz")).status_code == 200
            except httpx.HTTPError:
                return False

        await eventually(healthy, STARTED_S, "the API under damai run to answer /healthz")
        yield client


def _area(area_id: int) -> EventEnvelope:
    return EventEnvelope.wrap(
        AreaCreated(area_id=area_id, name=f"区域{area_id % 100}", level=AreaLevel.CITY), aggregate_version=1
    )


async def _projected(publisher: EventPublisher, pools: ShardPools, area_id: int, what: str) -> None:
    await publisher.publish_many([_area(area_id)])

    async def everywhere() -> bool:
        counts = [await pool.fetchval("SELECT count(*) FROM area WHERE id = $1", area_id) for _, pool in pools]
        return counts == [1] * len(counts)

    await eventually(everywhere, PROJECTED_S, what)


async def _health_answers(api: httpx.AsyncClient, stop: asyncio.Event) -> list[int | str]:
    """Each /healthz answer until ``stop``: its status, or the error that took its place."""
    answers: list[int | str] = []
    while not stop.is_set():
        try:
            answers.append((await api.get("/healthz")).status_code)
        except httpx.HTTPError as error:
            answers.append(repr(error))
        await asyncio.sleep(HEALTH_POLL_S)
    return answers


async def test_a_killed_worker_is_restarted_and_projects_again_while_the_api_answers(
    run: Child, api: httpx.AsyncClient, publisher: EventPublisher, pools: ShardPools, area_code: int
):
    await _projected(publisher, pools, area_code * 10, "the first worker to project")
    killed = _started(run)["worker"][-1]
    stop_polling = asyncio.Event()
    polling = asyncio.create_task(_health_answers(api, stop_polling))

    os.kill(killed, signal.SIGKILL)
    await eventually(lambda: _async(len(_started(run)["worker"]) == 2), STARTED_S, "the worker to be restarted")
    await _projected(publisher, pools, area_code * 10 + 1, "the restarted worker to project")
    stop_polling.set()
    answers = await polling

    assert re.search(
        rf"damai run: worker \(pid {killed}\) was killed by SIGKILL after [\d.]+s up; "
        r"restarting it in 0.5s, at \d\d:\d\d:\d\d \(restarted 0 times so far\)",
        run.output(),
    )
    assert set(answers) == {200}, answers
    assert run.proc.poll() is None


async def test_sigterm_to_damai_run_stops_every_process(run: Child, api: httpx.AsyncClient):
    run.proc.send_signal(signal.SIGTERM)
    exit_code = await asyncio.to_thread(run.proc.wait, STOPPED_S)

    assert exit_code == 0
    assert [pid for pid in _last_pids(run) if _alive(pid)] == []
    assert re.search(r"damai run: SIGTERM: stopping [a-z, -]*\bapi with SIGTERM \(SIGKILL after", run.output())
    assert "damai run: every process stopped" in run.output()


async def test_a_killed_damai_run_leaves_no_process_behind(run: Child, api: httpx.AsyncClient):
    run.kill()
    pids = _last_pids(run)

    await eventually(lambda: _async(not any(_alive(pid) for pid in pids)), STOPPED_S, "its children to stop")


async def _async(value: bool) -> bool:
    return value
