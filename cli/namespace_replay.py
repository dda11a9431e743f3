"""``damai events replay``: every read model rebuilt in a scratch namespace from the log, as of a
moment — the steps of docs/operations.md ("Replaying a namespace's log"), run in order.

1. The namespace's topics, index templates and schema (``provision_namespace``).
2. The catalogue and the users copied (``copy_families``, with ``until``: only what occurred
   before it), and a projector worker over them until its group has caught up: the order
   projector needs the seat rows.
3. The order requests, orders and payments copied; each program's Redis purchase state written
   from the copied log (``rebuild_program_inventory``: decisions are facts of the log, never taken
   again); the worker until it has caught up again.
4. Without ``until`` only: the allocator and the lifecycle, until they have caught up (each
   request found decided, each ending found ended). As of an earlier moment they are left out:
   what they would decide now (a hold past its payment deadline expired, a request past its
   decision deadline rejected) is not what the log said then.

Then the processes stop; the namespace stays for the analyst to query (``Replayed.where``).
The program keys of Redis carry the program's id, not the namespace: the target needs a Redis
database of its own, or it would write over the source's inventory.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from faust.types import TP

from cli.provision import provision_namespace
from infra.kafka import end_offsets
from infra.postgres.pools import ShardPools
from infra.postgres.routing import shard_layout
from infra.postgres.sharded import ShardedDatabase
from infra.redis import create_redis
from infra.settings import Settings
from projections.rebuild_inventory import rebuild_program_inventory
from projections.replay import CATALOGUE_FAMILIES, ReplayRefused, copy_families
from projections.rewind import committed_offsets
from queries.views.programs import full_route_program_ids

FIRST_FAMILIES = (*CATALOGUE_FAMILIES, "user")
THEN_FAMILIES = ("order-requests", "order", "payment")
PROJECTED_FAMILIES = ("reference", "program", "user", "order", "payment")
"""What the projector worker's group reads (it keeps no offsets on ``order-requests``)."""
CAUGHT_UP_POLL_S = 1.0
STOP_WAIT_S = 20.0


@dataclass(frozen=True)
class Replayed:
    settings: Settings
    copied: dict[str, int]
    programs: int
    logs: Path

    def where(self) -> list[str]:
        """How to reach the namespace's read models."""
        s = self.settings
        env = " ".join(f"{k}={v}" for k, v in {**s.namespace_env(), "DAMAI_REDIS__DB": str(s.redis.db)}.items())
        return [
            f"Postgres: schema {s.postgres.schema_name!r} in every shard database"
            f" (SET search_path TO \"{s.postgres.schema_name}\"; `damai db layout` names the tables)",
            f"Elasticsearch: indices {s.elasticsearch.index_prefix}*",
            f"Redis: database {s.redis.db} (program keys {{p:<id>}}:*; orders under {s.orders.key_prefix!r},"
            f" users under {s.users.key_prefix!r}, program cache under {s.program_cache.key_prefix!r})",
            f"Kafka: topics {s.kafka.topic_prefix}*",
            f"The API over it (read-only use): {env} damai serve --port <free port>",
            f"Processes' logs: {self.logs}",
        ]


def target_settings(source: Settings, namespace: str, redis_db: int) -> Settings:
    """The scratch namespace's settings; refused when it is the source's or shares its Redis database."""
    target = source.namespaced(namespace)
    target = target.model_copy(update={"redis": target.redis.model_copy(update={"db": redis_db})})
    same = target.kafka.topic_prefix == source.kafka.topic_prefix
    if same or target.postgres.schema_name == source.postgres.schema_name:
        raise ReplayRefused(f"{namespace!r} is the source's own namespace")
    if redis_db == source.redis.db:
        raise ReplayRefused(
            f"Redis database {redis_db} is the source's: program keys carry no namespace, the replay"
            " would write over the source's inventory; pick another with --redis-db"
        )
    return target


async def replay_into(
    source: Settings,
    target: Settings,
    until: datetime | None,
    logs: Path,
    timeout_s: float,
    say: Callable[[str], None],
) -> Replayed:
    """Rebuild every read model of ``target`` from ``source``'s log (as of ``until``); see the module."""
    await provision_namespace(target)
    say(f"namespace provisioned: topics {target.kafka.topic_prefix}*, schema {target.postgres.schema_name}")
    copied = await copy_families(source.kafka, target.kafka, FIRST_FAMILIES, until)
    say(f"copied {copied}")
    with _processes(target, ["worker"], logs) as worker:
        await _caught_up(target, target.worker.projector_group, FIRST_FAMILIES, timeout_s, worker)
        then = await copy_families(source.kafka, target.kafka, THEN_FAMILIES, until)
        copied |= then
        say(f"copied {then}")
        programs = await _rebuild_inventories(target)
        say(f"{programs} programs' Redis purchase state rebuilt from the copied log")
        await _caught_up(target, target.worker.projector_group, PROJECTED_FAMILIES, timeout_s, worker)
        if until is None:
            with _processes(target, ["allocator", "lifecycle"], logs) as deciders:
                groups = (
                    (target.worker.allocator_group, "order-requests"),
                    (target.worker.lifecycle_group, "order"),
                    (target.worker.projector_group, "order"),
                )
                for group, family in groups:
                    await _caught_up(target, group, (family,), timeout_s, [*worker, *deciders])
    say("caught up; processes stopped")
    return Replayed(target, copied, programs, logs)


async def _rebuild_inventories(target: Settings) -> int:
    pools = ShardPools(target.postgres)
    await pools.start()
    redis = create_redis(target.redis)
    try:
        programs = 0
        async for program_ids in full_route_program_ids(ShardedDatabase(pools, shard_layout(target))):
            for program_id in program_ids:
                await rebuild_program_inventory(target, redis, program_id)
                programs += 1
        return programs
    finally:
        await redis.aclose()
        await pools.stop()


async def _caught_up(
    settings: Settings,
    group: str,
    families: Sequence[str],
    timeout_s: float,
    children: Sequence[subprocess.Popen[bytes]],
) -> None:
    """Until ``group`` has committed every partition of the families up to its end (now)."""
    deadline = time.monotonic() + timeout_s
    kafka = settings.kafka
    ends = {
        TP(kafka.topic(f), p): end
        for f in families
        for p, end in (await end_offsets(kafka, kafka.topic(f), kafka.topics[f].partitions)).items()
        if end > 0
    }
    while True:
        committed = await committed_offsets(kafka.bootstrap, group, set(ends))
        if all(committed.get(tp, -1) >= end for tp, end in ends.items()):
            return
        dead = [c.args for c in children if c.poll() is not None]
        if dead:
            raise RuntimeError(f"a replay process exited early: {dead} (see its log)")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{group} did not catch up on {', '.join(families)} within {timeout_s}s")
        await asyncio.sleep(CAUGHT_UP_POLL_S)


@contextmanager
def _processes(settings: Settings, commands: list[str], logs: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    """``damai <command>`` for each, in the namespace, its output in ``logs/<command>.log``; stopped after."""
    env = {
        **os.environ,
        **settings.namespace_env(),
        "DAMAI_REDIS__DB": str(settings.redis.db),
        # Not the live processes' /metrics ports: a scratch run is nothing to scrape.
        "DAMAI_OBSERVABILITY__METRICS_PORT": "0",
    }
    children = []
    logs.mkdir(parents=True, exist_ok=True)
    try:
        for command in commands:
            with (logs / f"{command}.log").open("ab") as out:
                children.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "cli.main", command], env=env, stdout=out, stderr=subprocess.STDOUT
                    )
                )
        yield children
    finally:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in children:
            try:
                child.wait(STOP_WAIT_S)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
