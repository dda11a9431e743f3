"""``damai rebuild redis`` and ``damai verify redis``: each program's Redis purchase state rebuilt
from its log, or compared with it, by the hash of its keys (projections/rebuild_inventory.py;
docs/operations.md, "Rebuilding Redis")."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

import typer

from cli.context import command_settings
from infra.collector import tune_for_batches
from infra.settings import Settings

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from projections.inventory_log import ProgramLogs
    from projections.redis_hashes import KeyDifference

ProgramOption = Annotated[
    int | None, typer.Option("--program", help="Only this program (default: every program, a full route)")
]
DIFFERENCES_SHOWN = 20
"""Differing keys printed per program; the rest are counted."""


@dataclass
class _Tally:
    programs: int = 0
    same: int = 0
    differing: int = 0
    differing_keys: int = 0
    refused: int = 0
    keys: int = 0


def rebuild_redis_command(program_id: ProgramOption = None) -> None:
    """Replace each program's Redis purchase state (inventory, decisions, accounts, documents) with the
    one its log describes, one program at a time, atomically; print the hash of its keys before and
    after and the keys that changed. Exit 1 if a program's state kept changing (pause its sale, then
    run again); a change repaired is no failure."""
    from projections.rebuild_inventory import RebuildRefused, rebuild_program_inventory

    settings = command_settings()
    tally = _Tally()

    async def rebuild(redis: Redis, logs: ProgramLogs, program: int) -> None:
        tally.programs += 1
        try:
            rebuilt = await rebuild_program_inventory(settings, redis, program, logs=logs)
        except RebuildRefused as refused:
            tally.refused += 1
            typer.echo(f"program {program}: refused: {refused}")
            return
        tally.keys += rebuilt.after.count
        what = (
            f"attempt {rebuilt.attempts}; {_count(rebuilt.catalogue_events, 'catalogue event')},"
            f" {_count(rebuilt.decisions, 'decision')}, {rebuilt.live_orders} held or sold"
        )
        if rebuilt.unchanged:
            tally.same += 1
            typer.echo(f"program {program}: rebuilt, unchanged: hash {rebuilt.after} ({what})")
            return
        tally.differing += 1
        tally.differing_keys += len(rebuilt.differences)
        typer.echo(
            f"program {program}: rebuilt, {_keys(len(rebuilt.differences))} changed:"
            f" hash {rebuilt.before} before, {rebuilt.after} after ({what})"
        )
        _echo_differences(rebuilt.differences)

    tune_for_batches()
    started = time.monotonic()
    asyncio.run(_each_program(settings, program_id, rebuild))
    typer.echo(
        f"{_count(tally.programs, 'program')} in {time.monotonic() - started:.1f} s: {tally.same} unchanged,"
        f" {tally.differing} repaired ({_keys(tally.differing_keys)} changed), {tally.refused} refused;"
        f" {_keys(tally.keys)} written"
    )
    if tally.refused:
        raise typer.Exit(1)


def verify_redis_command(program_id: ProgramOption = None) -> None:
    """Compare each program's Redis purchase state with the one its log describes, by the hash of its
    keys, writing nothing; name the keys that differ. Exit 1 if any differ, or if a program's state
    kept changing during every comparison."""
    from projections.rebuild_inventory import RebuildRefused, compare_program_state

    settings = command_settings()
    tally = _Tally()

    async def verify(redis: Redis, logs: ProgramLogs, program: int) -> None:
        tally.programs += 1
        try:
            compared = await compare_program_state(settings, redis, program, logs=logs)
        except RebuildRefused as refused:
            tally.refused += 1
            typer.echo(f"program {program}: not verified: {refused}")
            return
        tally.keys += compared.redis.count
        if compared.ok:
            tally.same += 1
            typer.echo(f"program {program}: agrees with the log: hash {compared.redis}")
            return
        tally.differing += 1
        tally.differing_keys += len(compared.differences)
        typer.echo(
            f"program {program}: {_keys(len(compared.differences))} {_verb(len(compared.differences), 'differ')}:"
            f" hash {compared.redis} in Redis, {compared.log} from the log"
        )
        _echo_differences(compared.differences)

    tune_for_batches()
    started = time.monotonic()
    asyncio.run(_each_program(settings, program_id, verify))
    typer.echo(
        f"{_count(tally.programs, 'program')} verified in {time.monotonic() - started:.1f} s: {tally.same} agree,"
        f" {tally.differing} differ ({_keys(tally.differing_keys)}), {tally.refused} not verified;"
        f" {_keys(tally.keys)} read"
    )
    if tally.differing or tally.refused:
        raise typer.Exit(1)


async def _each_program(
    settings: Settings, program_id: int | None, visit: Callable[[Redis, ProgramLogs, int], Awaitable[None]]
) -> None:
    """``visit`` the program, or every program of the program tables (a deliberate full route), in
    turn, with one reader of their log (it reads the order topic once for them all)."""
    from infra.redis import create_redis
    from projections.inventory_log import ProgramLogs

    program_ids = [program_id] if program_id is not None else await _every_program(settings)
    redis = create_redis(settings.redis)
    try:
        async with ProgramLogs(settings, program_ids) as logs:
            for program in program_ids:
                await visit(redis, logs, program)
    finally:
        await redis.aclose()


async def _every_program(settings: Settings) -> list[int]:
    from infra.postgres.pools import ShardPools
    from infra.postgres.routing import shard_layout
    from infra.postgres.sharded import ShardedDatabase
    from queries.views.programs import full_route_program_ids

    pools = ShardPools(settings.postgres)
    await pools.start()
    try:
        return [p async for ids in full_route_program_ids(ShardedDatabase(pools, shard_layout(settings))) for p in ids]
    finally:
        await pools.stop()


def _echo_differences(found: Sequence[KeyDifference]) -> None:
    for difference in found[:DIFFERENCES_SHOWN]:
        typer.echo(f"  {difference}")
    if len(found) > DIFFERENCES_SHOWN:
        typer.echo(f"  … and {len(found) - DIFFERENCES_SHOWN} more")


def _keys(n: int) -> str:
    return _count(n, "key")


def _verb(n: int, verb: str) -> str:
    return f"{verb}s" if n == 1 else verb


def _count(n: int, what: str) -> str:
    return f"{n} {what}{'' if n == 1 else 's'}"
