"""``damai logs --correlation ID``: one request's story across processes, from their JSON logs.

Every process writes JSON lines (infra/logging.py). A line belongs to the story when the id is the
value of one of its ``TRACE_FIELDS``: the processors bind the envelope's ``correlation_id`` to
their lines for an event (projections/allocator.py, lifecycle.py, projector.py), and the API's
access line names the request by ``request_id`` (a client that sends the same UUID as
``X-Request-Id`` and ``X-Correlation-Id`` finds its request there too; docs/analytics.md).
Lines are merged from every file in time order; a line that is not JSON is never matched.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer

from infra.settings import get_settings

TRACE_FIELDS = ("correlation_id", "request_id")
LOG_SUFFIXES = (".log", ".jsonl")


@dataclass(frozen=True, order=True)
class LogLine:
    timestamp: datetime
    source: str
    text: str


def log_files(paths: Iterable[Path]) -> list[Path]:
    """The files named, and the log files under each directory named (recursively)."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in LOG_SUFFIXES)
        else:
            found.append(path)
    return found


def correlated_lines(files: Iterable[Path], correlation_id: str) -> list[LogLine]:
    """Every line of the files that carries the id in a trace field, oldest first."""
    needle = correlation_id.encode()
    lines = [line for path in files for line in _matching(path, needle, correlation_id)]
    return sorted(lines)


def _matching(path: Path, needle: bytes, correlation_id: str) -> Iterator[LogLine]:
    with path.open("rb") as lines:
        for raw in lines:
            if needle not in raw:  # the cheap test first: most lines are about something else
                continue
            record = _json(raw)
            if record is None or not any(record.get(f) == correlation_id for f in TRACE_FIELDS):
                continue
            yield LogLine(_moment(record.get("timestamp")), path.name, raw.decode(errors="replace").rstrip())


def _json(raw: bytes) -> dict[str, Any] | None:
    start = raw.find(b"{")  # a child's output may prefix its lines (e.g. a supervisor's name)
    if start < 0:
        return None
    try:
        record = orjson.loads(raw[start:])
    except orjson.JSONDecodeError:
        return None
    return record if isinstance(record, dict) else None


def _moment(value: object) -> datetime:
    """The line's time (UTC when it names no zone); a line without one sorts last."""
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        return datetime.max.replace(tzinfo=UTC)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def logs(
    correlation: Annotated[str, typer.Option("--correlation", help="The correlation (or request) id to follow")],
    paths: Annotated[
        list[Path] | None, typer.Argument(help="Log files or directories (default: the --dir directory)")
    ] = None,
    directory: Annotated[
        Path | None, typer.Option("--dir", help="Directory of JSON log files (default: <state dir>/logs)")
    ] = None,
) -> None:
    """Print every JSON log line that carries one correlation id, from every file, in time order."""
    roots = list(paths or []) or [directory or get_settings().state_dir / "logs"]
    missing = [p for p in roots if not p.exists()]
    if missing:
        typer.echo(f"no such file or directory: {', '.join(map(str, missing))}", err=True)
        raise typer.Exit(2)
    found = correlated_lines(log_files(roots), correlation)
    for line in found:
        typer.echo(f"{line.source}\t{line.text}")
    if not found:
        typer.echo(f"no line carries {correlation}", err=True)
        raise typer.Exit(1)


if __name__ == "__main__":
    typer.run(logs)
