"""`damai rebuild postgres` and `damai verify postgres` (projections/rebuild_postgres.py)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Annotated

import typer

from cli.context import command_settings
from infra.collector import tune_for_batches
from infra.settings import Settings

if TYPE_CHECKING:
    from projections.rebuild_postgres import PostgresRebuilt

PROJECTION_HELP = "One projection: reference, user, program (with its orders; 'order' names it too) or payment"


def rebuild_postgres_command(
    projection: Annotated[str | None, typer.Option("--projection", help=f"{PROJECTION_HELP} (default: all)")] = None,
    drop_replaced: Annotated[
        bool, typer.Option("--drop-replaced", help="Only drop the tables earlier rebuilds replaced, then stop")
    ] = False,
) -> None:
    """Rebuild Postgres read models from the log while the system runs: shadow tables, then a swap
    (the live projectors wait a moment; readers never do). Prints how the replaced tables compare
    with the rebuilt ones; exit 1 when the live projectors could not be frozen (nothing swapped)."""
    settings = command_settings()
    if drop_replaced:
        dropped = asyncio.run(_drop_replaced(settings))
        typer.echo(f"dropped {len(dropped)} schemas of replaced tables" + "".join(f"\n  {s}" for s in dropped))
        return
    for report in _run(settings, projection, swap=True):
        _print(report)
        if report.replaced_schema is not None:
            kept = f"replaced tables kept in schema {report.replaced_schema}"
            typer.echo(f"  {kept} (damai rebuild postgres --drop-replaced)")


def verify_postgres_command(
    projection: Annotated[str | None, typer.Option("--projection", help=f"{PROJECTION_HELP} (default: all)")] = None,
) -> None:
    """Rebuild Postgres read models from the log beside the live ones, without swapping, and compare
    them table by table at one moment (row counts and hashes); exit 1 on any difference."""
    reports = _run(command_settings(), projection, swap=False)
    for report in reports:
        _print(report)
    if not all(r.equal for r in reports):
        raise typer.Exit(1)


def _run(settings: Settings, projection: str | None, *, swap: bool) -> list[PostgresRebuilt]:
    from projections.rebuild_postgres import PROJECTIONS, RebuildFailed, projection_named, rebuild_postgres

    try:
        names = [projection_named(projection).name] if projection is not None else list(PROJECTIONS)
    except KeyError:
        typer.echo(f"no projection {projection!r}; one of {', '.join(PROJECTIONS)}", err=True)
        raise typer.Exit(2) from None

    tune_for_batches()

    async def run() -> list[PostgresRebuilt]:
        return [await rebuild_postgres(settings, name, swap=swap, say=typer.echo) for name in names]

    try:
        return asyncio.run(run())
    except RebuildFailed as failed:
        typer.echo(str(failed), err=True)
        raise typer.Exit(1) from failed


def _print(report: PostgresRebuilt) -> None:
    for table in report.tables:
        if not table.equal:
            rows = f"{table.rows[0]} rows before, {table.rows[1]} rebuilt"
            typer.echo(f"  {table.database}.{table.table}: differs ({rows})")
            for difference in table.differences:
                typer.echo(f"    {difference}")
    equal = sum(t.equal for t in report.tables)
    typer.echo(
        f"{report.projection}: {'swapped' if report.swapped else 'compared'}; {report.events:,} events"
        f" ({report.events_per_s:,.0f}/s), {report.skipped} skipped; live projectors frozen {report.frozen_ms:,.0f} ms"
        f" (attempt {report.freeze_attempts}); {equal} of {len(report.tables)} tables equal"
    )


async def _drop_replaced(settings: Settings) -> list[str]:
    from infra.postgres.pools import ShardPools

    pools = ShardPools(settings.postgres)
    await pools.start()
    dropped = []
    try:
        for database, pool in pools:
            pattern = f"{settings.postgres.schema_name}\\_\\_replaced\\_%"
            for schema in await pool.fetch("SELECT nspname FROM pg_namespace WHERE nspname LIKE $1", pattern):
                await pool.execute(f'DROP SCHEMA "{schema["nspname"]}" CASCADE')
                dropped.append(f"{database}.{schema['nspname']}")
    finally:
        await pools.stop()
    return dropped
