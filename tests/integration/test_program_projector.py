"""The program projector against real Postgres shards, called in-process."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from commands.program import CreateProgram, KnownReferences
from events.envelope import EventEnvelope
from events.program import (
    ProgramEvent,
    ProgramPublished,
    ProgramTakenOffSale,
    ShowTimeAdded,
    ShowTimeRescheduled,
    TicketCategoryAdded,
    TicketCategoryRepriced,
)
from infra.postgres.routing import shard_layout
from infra.postgres.sharded import ShardedDatabase
from projections.batch import Delivered, Positioned
from projections.program_projector import ProgramProjector
from queries.views import programs
from tests.decided import create_program
from tests.id_sources import CountingIds

NOW = datetime.now(UTC)


# Area 110000, child category 101 under top-level 1: the program below names exactly these.
REFERENCES = KnownReferences({110000}, {1: None, 101: 1})


def _events(first_id: int) -> list[ProgramEvent]:
    cmd = CreateProgram.model_validate(
        {
            "title": "五月天 回到那一天",
            "actor": "五月天",
            "venue": "鸟巢",
            "areaId": 110000,
            "parentCategoryId": 1,
            "categoryId": 101,
            "seatSelectable": True,
            "notices": ["凭身份证入场"],
            "refundPolicy": {"refundable": True, "deadlineHoursBeforeShow": 48},
            "showTimes": [
                {
                    "startsAt": (NOW + timedelta(days=10)).isoformat(),
                    "ticketCategories": [
                        {"name": "内场", "price": "1355.00", "seatGrid": {"rows": 40, "columns": 60}},
                        {"name": "看台", "price": "555.00", "seatGrid": {"rows": 5, "columns": 10, "firstRow": 41}},
                    ],
                }
            ],
        }
    )
    return create_program(cmd, REFERENCES, CountingIds(first_id), NOW)


def _batch(topic: str, events: list[ProgramEvent], first_offset: int = 0, first_version: int = 1):
    return [
        Positioned(Delivered(topic, 0, first_offset + i), EventEnvelope.wrap(e, aggregate_version=first_version + i))
        for i, e in enumerate(events)
    ]


async def test_created_program_lands_in_its_shard_tables(isolated, pools, redis, es, area_code):
    layout = shard_layout(isolated)
    projector = ProgramProjector(f"{isolated.worker.projector_group}.program", pools, layout, redis, isolated, es)
    events = _events(area_code * 100_000)
    program_id = events[0].program_id

    await projector.apply(_batch(isolated.kafka.topic("program"), events))

    db = ShardedDatabase(pools, layout)
    program = await programs.get_program(db, program_id)
    assert program is not None and program.status == "draft" and program.title == "五月天 回到那一天"
    assert program.notices == ["凭身份证入场"]
    assert program.refund_policy == {"refundable": True, "deadlineHoursBeforeShow": 48}
    categories = await programs.ticket_categories_of(db, program_id)
    assert [(c.name, c.price, c.total, c.remaining) for c in categories] == [
        ("看台", Decimal("555.00"), 50, 50),
        ("内场", Decimal("1355.00"), 2400, 2400),
    ]
    seats = await programs.seats_of(db, program_id)
    assert len(seats) == 2450 and {s.status for s in seats} == {"available"}


async def test_publishing_and_taking_off_sale_change_the_status_in_order(isolated, pools, redis, es, area_code):
    layout = shard_layout(isolated)
    projector = ProgramProjector(f"{isolated.worker.projector_group}.program", pools, layout, redis, isolated, es)
    topic = isolated.kafka.topic("program")
    events = _events(area_code * 100_000)
    program_id = events[0].program_id
    await projector.apply(_batch(topic, events))
    db = ShardedDatabase(pools, layout)

    n = len(events)
    await projector.apply(_batch(topic, [ProgramPublished(program_id=program_id)], n, n + 1))
    published = await programs.get_program(db, program_id)
    await projector.apply(_batch(topic, [ProgramTakenOffSale(program_id=program_id, reason="场馆检修")], n + 1, n + 2))
    off = await programs.get_program(db, program_id)

    assert published is not None and published.status == "on_sale"
    assert off is not None and off.status == "off_sale"


def _changes(events: list[ProgramEvent]) -> tuple[ShowTimeRescheduled, TicketCategoryRepriced]:
    """Move the show time a day later and make the first ticket category 100 yuan dearer."""
    show = next(e for e in events if isinstance(e, ShowTimeAdded))
    category = next(e for e in events if isinstance(e, TicketCategoryAdded))
    return (
        ShowTimeRescheduled(
            program_id=show.program_id,
            show_time_id=show.show_time_id,
            starts_at=show.starts_at + timedelta(days=1),
            previous_starts_at=show.starts_at,
        ),
        TicketCategoryRepriced(
            program_id=show.program_id,
            show_time_id=show.show_time_id,
            ticket_category_id=category.ticket_category_id,
            price=category.price + 100,
            previous_price=category.price,
        ),
    )


async def test_a_new_show_time_and_price_reach_the_rows_and_the_program_version(isolated, pools, redis, es, area_code):
    layout = shard_layout(isolated)
    projector = ProgramProjector(f"{isolated.worker.projector_group}.program", pools, layout, redis, isolated, es)
    topic = isolated.kafka.topic("program")
    events = _events(area_code * 100_000)
    program_id, n = events[0].program_id, len(events)
    await projector.apply(_batch(topic, events))
    db = ShardedDatabase(pools, layout)
    created = await programs.get_program(db, program_id)
    moved, repriced = _changes(events)

    await projector.apply(_batch(topic, [moved, repriced], n, n + 1))

    changed = await programs.get_program(db, program_id)
    assert created is not None and created.aggregate_version == n  # not 1: every event of the program advances it
    assert changed is not None and changed.aggregate_version == n + 2
    [show] = await programs.show_times_of(db, program_id)
    assert show.starts_at == moved.starts_at
    category = next(
        c for c in await programs.ticket_categories_of(db, program_id) if c.id == repriced.ticket_category_id
    )
    assert category.price == Decimal("1455.00")
    seats = await programs.seats_of(db, program_id, repriced.ticket_category_id)
    assert {s.price for s in seats} == {Decimal("1455.00")} and len(seats) == 2400


async def test_replaying_the_program_events_changes_nothing(isolated, pools, redis, es, area_code):
    layout = shard_layout(isolated)
    topic = isolated.kafka.topic("program")
    events = _events(area_code * 100_000)
    program_id = events[0].program_id
    batch = _batch(topic, [*events, ProgramPublished(program_id=program_id), *_changes(events)])
    first = ProgramProjector(f"{isolated.worker.projector_group}.program", pools, layout, redis, isolated, es)
    await first.apply(batch)
    db = ShardedDatabase(pools, layout)
    before = (
        await programs.get_program(db, program_id),
        await programs.show_times_of(db, program_id),
        await programs.ticket_categories_of(db, program_id),
        await programs.seats_of(db, program_id),
    )

    await first.apply(batch)  # redelivery: skipped by offsets
    await ProgramProjector("a-rebuilding-projector", pools, layout, redis, isolated, es).apply(
        batch
    )  # replay: guarded by versions

    after = (
        await programs.get_program(db, program_id),
        await programs.show_times_of(db, program_id),
        await programs.ticket_categories_of(db, program_id),
        await programs.seats_of(db, program_id),
    )
    assert after == before
