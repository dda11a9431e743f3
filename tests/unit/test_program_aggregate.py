"""The Program aggregate and its two other forms: the log (envelopes) and the snapshot."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aggregates.base import OutOfOrderEvent
from aggregates.errors import DomainError
from aggregates.program import Program, ProgramStatus
from commands.program import CreateProgram, KnownReferences, new_program
from events.envelope import EventEnvelope
from infra.postgres.migrations import MIGRATIONS_DIR
from tests.id_sources import CountingIds

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def a_program() -> Program:
    cmd = CreateProgram.model_validate(
        {
            "title": "周杰伦 嘉年华",
            "venue": "上海体育场",
            "areaId": 310000,
            "parentCategoryId": 1,
            "categoryId": 101,
            "seatSelectable": True,
            "showTimes": [
                {
                    "startsAt": (NOW + timedelta(days=30)).isoformat(),
                    "ticketCategories": [
                        {"name": "内场", "price": "1280.00", "seatGrid": {"rows": 30, "columns": 50}},
                        {"name": "看台", "price": "480.00", "seatGrid": {"rows": 4, "columns": 5, "firstRow": 31}},
                    ],
                },
                {
                    "startsAt": (NOW + timedelta(days=31)).isoformat(),
                    "ticketCategories": [{"name": "内场", "price": "1280.00", "seatGrid": {"rows": 2, "columns": 2}}],
                },
            ],
        }
    )
    return new_program(cmd, KnownReferences({310000}, {1: None, 101: 1}), CountingIds(1000), NOW)


def envelopes(program: Program) -> list[EventEnvelope]:
    decided = program.outbox()
    return [EventEnvelope.wrap(d.event, aggregate_version=d.version, occurred_at=d.occurred_at) for d in decided]


changes = st.lists(
    st.one_of(
        st.just(("publish",)),
        st.just(("take_off_sale",)),
        st.tuples(st.just("reprice"), st.integers(0, 2), st.integers(0, 99_999)),
        st.tuples(st.just("reschedule"), st.integers(0, 1), st.integers(-48, 48)),
    ),
    max_size=12,
)


def apply(program: Program, change: tuple[object, ...]) -> None:
    """One admin command on ``program``; refused ones decide nothing, as in the handlers."""
    categories, shows = sorted(program.ticket_categories), sorted(program.show_times)
    try:
        match change:
            case ("publish",):
                program.publish()
            case ("take_off_sale",):
                program.take_off_sale("")
            case ("reprice", int(i), int(cents)):
                program.reprice_ticket_category(categories[i], Decimal(cents) / 100)
            case ("reschedule", int(i), int(hours)):
                show = shows[i]
                program.reschedule_show_time(show, program.show_times[show].starts_at + timedelta(hours=hours), NOW)
    except DomainError:
        pass


@settings(max_examples=60, deadline=None)
@given(changes=changes)
def test_the_log_and_the_snapshot_rebuild_the_same_program(changes):
    program = a_program()
    log = envelopes(program)
    for change in changes:
        apply(program, change)
        log += envelopes(program)

    from_log = Program.replay(log)
    from_snapshot = Program.from_snapshot(program.snapshot())

    assert from_log == program
    assert from_snapshot == program
    assert [e.aggregate_version for e in log] == list(range(1, program.version + 1))


def test_an_event_delivered_twice_is_applied_once():
    program = a_program()
    log = envelopes(program)

    assert Program.replay(log + log[-3:]) == program


def test_a_gap_in_the_versions_is_refused():
    log = envelopes(a_program())

    with pytest.raises(OutOfOrderEvent):
        Program.replay(log[:2] + log[3:])


def test_seats_are_counted_not_kept():
    program = a_program()

    assert [c.seats for c in program.ticket_categories.values()] == [1500, 20, 4]
    assert len(program.snapshot()) < 4096
    assert program.status is ProgramStatus.DRAFT


def test_a_snapshot_of_another_shape_is_not_used(monkeypatch):
    raw = a_program().snapshot()
    monkeypatch.setattr(Program, "snapshot_version", Program.snapshot_version + 1)

    assert Program.from_snapshot(raw) is None


def test_the_read_model_accepts_exactly_the_program_statuses():
    """The one place the status is spelled outside the enum: the program table's CHECK."""
    migration = (MIGRATIONS_DIR / "0008_program.sql").read_text(encoding="utf-8")
    check = re.search(r"status\s+text\s+NOT NULL DEFAULT '(\w+)'\s+CHECK \(status IN \(([^)]*)\)\)", migration)

    assert check is not None
    assert check.group(1) == ProgramStatus.DRAFT
    assert {v.strip(" '") for v in check.group(2).split(",")} == {s.value for s in ProgramStatus}
