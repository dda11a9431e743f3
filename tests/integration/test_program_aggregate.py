"""The Program aggregate on the command side: loaded as the log has it, whatever the projectors do.

No projector runs in these tests: every command must see the ones before it from the command
side's snapshot or from Kafka itself (ADR 0006).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest_asyncio

from aggregates.program import Program, ProgramStatus
from bootstrap import Adapters, CommandSide, open_command_side
from commands.program import (
    CreateProgram,
    RepriceTicketCategory,
    RescheduleShowTime,
    create_program,
    publish_program,
    reprice_ticket_category,
    reschedule_show_time,
)
from commands.reference import CreateArea, CreateCategory, add_area, add_category
from events.envelope import EventEnvelope
from events.program import program_key
from events.reference import AreaLevel
from infra.kafka import read_aggregate_events
from infra.redis_keys import aggregate_snapshot, snapshot_coverage
from infra.settings import Settings
from projections.batch import Delivered, Positioned
from projections.program_projector import ProgramProjector
from queries.views import programs

AREA, PARENT, CHILD = 310000, 1, 101


@pytest_asyncio.fixture
async def side(isolated: Settings) -> AsyncIterator[tuple[Adapters, CommandSide]]:
    """The command side on the test's namespace, with the reference data a program names."""
    async with AsyncExitStack() as exit_stack:
        adapters = await Adapters.open(isolated, index_templates=False)
        exit_stack.push_async_callback(adapters.close)
        commands = await open_command_side(adapters, exit_stack)
        await add_reference_data(commands)
        yield adapters, commands


async def add_reference_data(commands: CommandSide) -> None:
    """The area and categories a program names, created through their handlers (never projected here)."""
    await add_area(CreateArea(area_id=AREA, name="上海", level=AreaLevel.CITY), commands.reference, None)
    await add_category(CreateCategory(category_id=PARENT, name="演唱会"), commands.reference, None)
    await add_category(CreateCategory(category_id=CHILD, name="流行", parent_id=PARENT), commands.reference, None)


def a_program() -> CreateProgram:
    starts = datetime.now(UTC) + timedelta(days=20)
    return CreateProgram.model_validate(
        {
            "title": "命令端 演唱会",
            "venue": "梅赛德斯奔驰文化中心",
            "areaId": AREA,
            "parentCategoryId": PARENT,
            "categoryId": CHILD,
            "seatSelectable": True,
            "showTimes": [
                {
                    "startsAt": starts.isoformat(),
                    "ticketCategories": [
                        {"name": "内场", "price": "1280.00", "seatGrid": {"rows": 30, "columns": 40}},
                        {"name": "看台", "price": "480.00", "seatGrid": {"rows": 10, "columns": 20, "firstRow": 31}},
                    ],
                }
            ],
        }
    )


async def log_of(adapters: Adapters, side: CommandSide, program_id: int) -> list[EventEnvelope]:
    topic = adapters.settings.kafka.topic("program")
    partition = await side.publisher.partition_of(topic, program_key(program_id))
    return await read_aggregate_events(adapters.settings.kafka, partition, program_key(program_id))


async def test_publish_right_after_create_succeeds_while_no_projector_runs(side):
    adapters, commands = side

    created = await create_program(a_program(), commands.catalogue, None)
    published = await publish_program(created.program_id, commands.catalogue, None)

    log = await log_of(adapters, commands, created.program_id)
    assert published.events == 1
    assert [e.type for e in log][-1] == "ProgramPublished"
    assert [e.aggregate_version for e in log] == list(range(1, created.events + 2))
    assert await programs.get_program(adapters.db, created.program_id) is None  # nothing projected


async def test_two_reprices_in_a_row_both_apply(side):
    adapters, commands = side
    created = await create_program(a_program(), commands.catalogue, None)
    program = await commands.catalogue.store.load(Program, program_key(created.program_id))
    assert program is not None
    inner = next(i for i, c in program.ticket_categories.items() if c.name == "内场")

    first = await reprice_ticket_category(
        created.program_id, inner, RepriceTicketCategory(price=Decimal("1380.00")), commands.catalogue, None
    )
    second = await reprice_ticket_category(
        created.program_id, inner, RepriceTicketCategory(price=Decimal("1480.00")), commands.catalogue, None
    )

    repriced = [e for e in await log_of(adapters, commands, created.program_id) if e.type == "TicketCategoryRepriced"]
    assert (first.events, second.events) == (1, 1)
    assert [(e.payload["price"], e.payload["previousPrice"]) for e in repriced] == [
        ("1380.00", "1280.00"),
        ("1480.00", "1380.00"),
    ]


async def test_concurrent_commands_on_one_program_each_get_their_own_version(side):
    adapters, commands = side
    created = await create_program(a_program(), commands.catalogue, None)
    program = await commands.catalogue.store.load(Program, program_key(created.program_id))
    assert program is not None
    show_time_id = next(iter(program.show_times))
    later = program.show_times[show_time_id].starts_at + timedelta(hours=2)

    results = await asyncio.gather(
        publish_program(created.program_id, commands.catalogue, None),
        reschedule_show_time(
            created.program_id, show_time_id, RescheduleShowTime(starts_at=later), commands.catalogue, None
        ),
        *(
            reprice_ticket_category(
                created.program_id, category_id, RepriceTicketCategory(price=Decimal("99.00")), commands.catalogue, None
            )
            for category_id in program.ticket_categories
        ),
    )

    log = await log_of(adapters, commands, created.program_id)
    assert [r.events for r in results] == [1, 1, 1, 1]
    assert [e.aggregate_version for e in log] == list(range(1, len(log) + 1))
    assert len(log) == created.events + 4


async def test_a_program_rebuilt_from_its_kafka_events_equals_the_read_model(side, redis, es):
    adapters, commands = side
    created = await create_program(a_program(), commands.catalogue, None)
    await publish_program(created.program_id, commands.catalogue, None)
    loaded = await commands.catalogue.store.load(Program, program_key(created.program_id))
    assert loaded is not None
    inner = next(i for i, c in loaded.ticket_categories.items() if c.name == "内场")
    await reprice_ticket_category(
        created.program_id, inner, RepriceTicketCategory(price=Decimal("1666.00")), commands.catalogue, None
    )
    log = await log_of(adapters, commands, created.program_id)
    settings = adapters.settings
    projector = ProgramProjector(
        f"{settings.worker.projector_group}.program", adapters.db.pools, adapters.db.layout, redis, settings, es
    )
    await projector.apply([Positioned(Delivered(settings.kafka.topic("program"), 0, i), e) for i, e in enumerate(log)])

    rebuilt = Program.replay(log)

    assert rebuilt is not None and rebuilt == await commands.catalogue.store.load(Program, rebuilt.id)
    assert as_read_model_sees_it(rebuilt) == await read_model_of(adapters, created.program_id)


def as_read_model_sees_it(program: Program) -> dict[str, object]:
    return {
        "status": program.status,
        "title": program.title,
        "version": program.version,
        "show times": {i: s.starts_at for i, s in program.show_times.items()},
        "ticket categories": {
            i: (c.show_time_id, c.name, c.price, c.total) for i, c in program.ticket_categories.items()
        },
        "seats": sum(c.seats for c in program.ticket_categories.values()),
    }


async def read_model_of(adapters: Adapters, program_id: int) -> dict[str, object]:
    row = await programs.get_program(adapters.db, program_id)
    assert row is not None
    categories = await programs.ticket_categories_of(adapters.db, program_id)
    return {
        "status": ProgramStatus(row.status),
        "title": row.title,
        "version": row.aggregate_version,
        "show times": {s.id: s.starts_at for s in await programs.show_times_of(adapters.db, program_id)},
        "ticket categories": {c.id: (c.show_time_id, c.name, c.price, c.total) for c in categories},
        "seats": len(await programs.seats_of(adapters.db, program_id)),
    }


async def test_a_program_whose_snapshot_was_lost_is_loaded_from_the_log(side, redis):
    adapters, commands = side
    created = await create_program(a_program(), commands.catalogue, None)
    await publish_program(created.program_id, commands.catalogue, None)
    before = await commands.catalogue.store.load(Program, program_key(created.program_id))

    # Redis lost the snapshot and, with it, the record that the program log's snapshots are complete
    # (ADR 0007): without that record the store must read the log.
    await redis.delete(
        aggregate_snapshot(program_key(created.program_id), adapters.settings.kafka.topic_prefix),
        snapshot_coverage(adapters.settings.kafka.topic(Program.topic_family)),
    )
    after = await commands.catalogue.store.load(Program, program_key(created.program_id))

    assert after is not None and after == before and after.status is ProgramStatus.ON_SALE


async def test_a_claim_whose_events_never_reached_the_log_does_not_decide_the_next_command(side, redis):
    adapters, commands = side
    created = await create_program(a_program(), commands.catalogue, None)
    key = aggregate_snapshot(program_key(created.program_id), adapters.settings.kafka.topic_prefix)
    # A writer claimed "published" and died before appending: its claim is past its deadline.
    ghost = await commands.catalogue.store.load(Program, program_key(created.program_id))
    assert ghost is not None
    ghost.publish()
    ghost.collect_events()
    await redis.hset(
        key,
        mapping={
            "version": ghost.version,
            "state": ghost.snapshot(),
            "token": "dead-writer",
            "pending_until": int(time.time() * 1000) - 1,
        },
    )

    program = await commands.catalogue.store.load(Program, program_key(created.program_id))
    published = await publish_program(created.program_id, commands.catalogue, None)

    assert program is not None and program.status is ProgramStatus.DRAFT and program.version == created.events
    assert published.events == 1
