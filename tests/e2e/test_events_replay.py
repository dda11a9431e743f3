"""``damai events replay --until``: every read model rebuilt into a scratch namespace as the log
stood at a moment (issue 13). A program is published, the moment taken, then the program is taken
off sale; the replay until that moment shows it on sale in the scratch namespace's Postgres schema,
while the source shows it off sale."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
import pytest_asyncio

from cli.namespace_replay import target_settings
from cli.provision import remove_namespace
from infra.postgres.pools import ShardPools
from infra.postgres.routing import shard_layout
from infra.postgres.sharded import ShardedDatabase
from infra.settings import Settings
from queries.views import programs
from tests.e2e.conftest import System
from tests.e2e.test_admin_programs import PROJECTED_S, _published, _status_is, program_body
from tests.processes import eventually

pytestmark = pytest.mark.slow
SCRATCH_REDIS_DB = 3
REPLAY_S = 300


@pytest_asyncio.fixture
async def scratch(system: System) -> AsyncIterator[Settings]:
    """The scratch namespace's settings (on a Redis database of its own); removed after."""
    target = target_settings(system.settings, f"r{uuid.uuid4().hex[:10]}", SCRATCH_REDIS_DB)
    yield target
    await remove_namespace(target)


async def test_a_replay_until_a_moment_shows_the_program_as_it_was_before_a_later_change(
    system: System, catalogue: ShardedDatabase, scratch: Settings, tmp_path
):
    program_id = await _published(system, catalogue, program_body(title="回放前的标题"))
    moment = datetime.now(UTC)
    await asyncio.sleep(0.05)  # the change occurs strictly after the moment
    off = await system.http.post(
        f"/api/v1/admin/programs/{program_id}/off-sale", json={"reason": "档期调整"}, headers=system.admin()
    )
    assert off.status_code == 202, off.text
    await eventually(lambda: _status_is(catalogue, program_id, "off_sale"), PROJECTED_S, "the program off sale")

    code, output = await asyncio.wait_for(_replay(system.settings, scratch, moment, tmp_path), REPLAY_S)

    assert code == 0, output[-3000:]
    assert f"schema '{scratch.postgres.schema_name}'" in output
    pools = ShardPools(scratch.postgres)
    await pools.start()
    try:
        replayed = await programs.get_program(ShardedDatabase(pools, shard_layout(scratch)), program_id)
    finally:
        await pools.stop()
    assert replayed is not None
    assert (replayed.status, replayed.title) == ("on_sale", "回放前的标题")
    assert await _status_is(catalogue, program_id, "off_sale")


async def _replay(source: Settings, target: Settings, until: datetime, logs) -> tuple[int | None, str]:
    """``damai events replay`` run in the source's namespace: its exit code and output."""
    namespace = target.kafka.topic_prefix.rstrip(".")
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "cli.events",
        "replay",
        "--into",
        namespace,
        "--redis-db",
        str(target.redis.db),
        "--until",
        until.isoformat(),
        "--logs",
        str(logs),
        env={**os.environ, **source.namespace_env()},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await child.communicate()
    return child.returncode, output.decode(errors="replace")
