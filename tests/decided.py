"""Decisions under test without a store: what a handler would append, as the project's events."""

from __future__ import annotations

from datetime import datetime

from aggregates.program import CatalogueReferences
from commands.ports import IdSource
from commands.program import CreateProgram, new_program
from events.program import ProgramEvent


def create_program(cmd: CreateProgram, refs: CatalogueReferences, ids: IdSource, now: datetime) -> list[ProgramEvent]:
    """The events a new program is decided into, in order (versions 1..n)."""
    return [d.event for d in new_program(cmd, refs, ids, now).outbox()]  # type: ignore[misc]
