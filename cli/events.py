"""``damai events``: the event log for analysts — export it, read one aggregate's history, replay it
into a scratch namespace as of a moment and drop that namespace again (docs/analytics.md)."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import orjson
import typer

from cli.context import command_settings
from events.envelope import EventEnvelope

app = typer.Typer(help="The event log: export, one aggregate's history, replay as of a moment.", no_args_is_help=True)

REPLAY_TIMEOUT_S = 600.0
"""How long ``replay`` waits for each processor to catch up, unless told (--timeout)."""


def moment(text: str) -> datetime:
    """An ISO 8601 moment; one without a zone is UTC."""
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not an ISO 8601 moment (e.g. 2026-12-01T10:00:00+08:00)") from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


@app.command()
def export(
    topics: Annotated[list[str], typer.Option("--topic", help="Topic family (repeat for several): order, program…")],
    start: Annotated[str, typer.Option("--from", help="Events that occurred at or after this ISO moment")],
    end: Annotated[str, typer.Option("--to", help="…and before this one (occurred_at, UTC when no zone)")],
    out: Annotated[Path, typer.Option("--out", help="Directory: one file per topic family")],
    fmt: Annotated[str, typer.Option("--format", help="parquet or jsonl")] = "parquet",
) -> None:
    """One row per event (envelope columns, topic, partition, offset, payload as JSON text, sealed
    personal data still sealed), filtered by the envelope's occurred_at within [from, to)."""
    from projections.export import ExportFormat, Window, export_family, families_known

    settings = command_settings()
    window = Window(moment(start), moment(end))
    try:
        families = families_known(settings.kafka, topics)
        chosen = ExportFormat(fmt)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    for family in families:
        started = time.monotonic()
        done = asyncio.run(export_family(settings.kafka, family, window, chosen, out))
        seconds = time.monotonic() - started
        skipped = f", {done.unreadable} unreadable left out" if done.unreadable else ""
        typer.echo(
            f"{family}: {done.events} events of {done.read} read{skipped} → {done.path}"
            f" ({seconds:.1f}s, {done.read / max(seconds, 1e-9):,.0f} events/s read)"
        )


@app.command()
def history(
    aggregate: Annotated[str, typer.Option("--aggregate", help="order-123, program-5, payment-123, user-7…")],
    as_json: Annotated[bool, typer.Option("--json", help="One JSON envelope a line")] = False,
) -> None:
    """One aggregate's events in log order: version, time, type, correlation id, payload."""
    from queries.event_history import UnknownAggregate, aggregate_history

    settings = command_settings()
    try:
        envelopes = asyncio.run(aggregate_history(settings.kafka, aggregate))
    except UnknownAggregate as exc:
        raise typer.BadParameter(str(exc)) from None
    for envelope in envelopes:
        typer.echo(envelope.model_dump_json() if as_json else history_line(envelope))
    if not envelopes:
        typer.echo(f"no events of {aggregate}", err=True)
        raise typer.Exit(1)


def history_line(envelope: EventEnvelope) -> str:
    payload = orjson.dumps(envelope.payload).decode()
    return (
        f"{envelope.aggregate_version:>4}  {envelope.occurred_at.isoformat()}  {envelope.type:<22}"
        f"  {envelope.correlation_id}  {payload}"
    )


@app.command()
def replay(
    into: Annotated[str, typer.Option("--into", help="The scratch namespace (a new tag, e.g. asof1201)")],
    redis_db: Annotated[int, typer.Option("--redis-db", help="Its Redis database: never the source's")],
    until: Annotated[
        str | None, typer.Option("--until", help="Only events that occurred before this ISO moment")
    ] = None,
    logs: Annotated[Path | None, typer.Option(help="Where the replay's processes log")] = None,
    timeout: Annotated[float, typer.Option(help="Seconds each processor may take to catch up")] = REPLAY_TIMEOUT_S,
) -> None:
    """Rebuild every read model into a scratch namespace from this namespace's log (as of --until),
    then print where to query it."""
    from cli.namespace_replay import replay_into, target_settings
    from projections.replay import ReplayRefused

    source = command_settings()
    try:
        target = target_settings(source, into, redis_db)
        replayed = asyncio.run(
            replay_into(
                source,
                target,
                moment(until) if until else None,
                logs or source.state_dir / "replays" / into,
                timeout,
                typer.echo,
            )
        )
    except ReplayRefused as refused:
        typer.echo(str(refused), err=True)
        raise typer.Exit(1) from refused
    for line in replayed.where():
        typer.echo(line)


@app.command()
def drop(
    namespace: Annotated[str, typer.Option("--namespace", help="The scratch namespace a replay made")],
    redis_db: Annotated[int, typer.Option("--redis-db", help="Its Redis database (as given to replay)")],
) -> None:
    """Remove a replay's scratch namespace: its topics, indices, schema and Redis keys (never the
    source's own namespace)."""
    from cli.namespace_replay import target_settings
    from cli.provision import remove_namespace
    from projections.replay import ReplayRefused

    try:
        target = target_settings(command_settings(), namespace, redis_db)
    except ReplayRefused as refused:
        typer.echo(str(refused), err=True)
        raise typer.Exit(1) from refused
    asyncio.run(remove_namespace(target))
    typer.echo(f"namespace {namespace} removed")


if __name__ == "__main__":
    app()
