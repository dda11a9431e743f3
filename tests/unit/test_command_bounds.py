"""Commands refuse at the door what the read models cannot hold, and a seat layout too large to build."""

import json
from datetime import timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from aggregates.errors import InvalidCommand
from commands.program import (
    MAX_GRID_SIDE,
    MAX_PRICE,
    NOTICE_MAX_LENGTH,
    CatalogueLimits,
    KnownReferences,
    RescheduleShowTime,
    new_program,
)
from commands.reference import CreateArea, CreateCategory
from events.envelope import EventEnvelope
from events.program import REFUND_DEADLINE_HOURS_MAX, SEAT_COLUMN_MAX
from events.reference import POSTGRES_INTEGER_MAX, AreaLevel
from events.serialization import decode, encode, payload_of
from tests.decided import create_program
from tests.id_sources import CountingIds
from tests.unit.test_create_program import NOW, command, references

PAST_INTEGER = POSTGRES_INTEGER_MAX + 1
PAST_BIGINT = 1 << 63


def show_time(*categories: dict[str, Any]) -> dict[str, Any]:
    return {"startsAt": (NOW + timedelta(days=3)).isoformat(), "ticketCategories": list(categories)}


def counted(total: int) -> dict[str, Any]:
    return {"name": "普通票", "price": "180.00", "total": total}


def grid(rows: int, columns: int, first_row: int = 1, name: str = "内场") -> dict[str, Any]:
    return {"name": name, "price": "1280.00", "seatGrid": {"rows": rows, "columns": columns, "firstRow": first_row}}


def listed(row: int, column: int) -> dict[str, Any]:
    return {"name": "包厢", "price": "1.00", "seats": [{"row": row, "column": column, "price": "1.00"}]}


@pytest.mark.parametrize(
    "changes",
    [
        {"areaId": PAST_INTEGER},
        {"parentCategoryId": PAST_INTEGER},
        {"categoryId": PAST_BIGINT},
        {"seatSelectable": False, "showTimes": [show_time(counted(PAST_INTEGER))]},
        {"seatSelectable": False, "showTimes": [show_time(counted(PAST_BIGINT))]},
        {"showTimes": [show_time(grid(2, 2, first_row=POSTGRES_INTEGER_MAX))]},
        {"showTimes": [show_time(listed(row=PAST_INTEGER, column=1))]},
        {"showTimes": [show_time(listed(row=1, column=SEAT_COLUMN_MAX + 1))]},
        {"refundPolicy": {"refundable": True, "deadlineHoursBeforeShow": REFUND_DEADLINE_HOURS_MAX + 1}},
        {"showTimes": [show_time(grid(2, 2)) | {"startsAt": "9999-12-31T23:00:00-10:00"}]},
        {"issueTime": "0001-01-01T00:00:00+10:00"},
    ],
)
def test_program_is_refused_when_a_number_or_a_time_is_past_what_the_stores_hold(changes):
    with pytest.raises(ValidationError):
        command(**changes)


@pytest.mark.parametrize(
    "changes",
    [
        {"title": "周杰伦\x00演唱会"},
        {"actor": "\x00"},
        {"venue": json.loads('"\\ud800 体育场"')},
        {"notices": ["凭证入场\x00"]},
        {"notices": ["长" * (NOTICE_MAX_LENGTH + 1)]},
    ],
)
def test_program_is_refused_when_its_text_is_not_what_postgres_text_and_utf8_hold(changes):
    with pytest.raises(ValidationError):
        command(**changes)


def test_area_is_refused_when_its_name_holds_a_nul_character():
    with pytest.raises(ValidationError):
        CreateArea(area_id=320500, name="苏\x00州", level=AreaLevel.CITY)


def test_show_time_is_not_moved_when_the_new_time_is_past_what_every_store_holds():
    with pytest.raises(ValidationError):
        RescheduleShowTime.model_validate({"startsAt": "9999-12-31T23:00:00-10:00"})


def test_category_is_refused_when_its_sort_order_is_past_what_the_read_model_holds():
    with pytest.raises(ValidationError):
        CreateCategory(category_id=7, name="展览", sort_order=PAST_INTEGER)


def test_largest_program_the_contract_allows_is_decided_into_events_the_projectors_accept():
    parent, child = POSTGRES_INTEGER_MAX - 1, POSTGRES_INTEGER_MAX
    cmd = command(
        areaId=POSTGRES_INTEGER_MAX,
        parentCategoryId=parent,
        categoryId=child,
        perOrderLimit=20,
        perAccountLimit=100,
        paymentMinutes=120,
        refundPolicy={"refundable": True, "deadlineHoursBeforeShow": REFUND_DEADLINE_HOURS_MAX},
        showTimes=[
            show_time(
                {**grid(1, MAX_GRID_SIDE, first_row=POSTGRES_INTEGER_MAX), "price": str(MAX_PRICE)},
                {"name": "边角", "price": "0.00", "seats": [{"row": 1, "column": SEAT_COLUMN_MAX, "price": "0.00"}]},
            )
        ],
    )
    refs = KnownReferences({POSTGRES_INTEGER_MAX}, {parent: None, child: parent})

    events = create_program(cmd, refs, CountingIds((1 << 63) - 10_000), NOW)

    for version, event in enumerate(events, start=1):
        envelope = decode(encode(EventEnvelope.wrap(event, aggregate_version=version)))
        assert payload_of(envelope) == event


def test_largest_counted_category_the_contract_allows_is_decided_into_events_the_projectors_accept():
    cmd = command(seatSelectable=False, showTimes=[show_time(counted(POSTGRES_INTEGER_MAX))])

    [*_, category] = create_program(cmd, references(), CountingIds(1), NOW)

    assert payload_of(decode(encode(EventEnvelope.wrap(category, aggregate_version=3)))) == category


class DrawnIds(CountingIds):
    """Counts the ids drawn: a seat is built with one."""

    def __init__(self) -> None:
        super().__init__(1)
        self.drawn = 0

    def next_entity_id(self) -> int:
        self.drawn += 1
        return super().next_entity_id()


def test_layout_is_refused_before_any_seat_is_built_when_a_show_time_has_more_seats_than_the_limit():
    categories = [grid(MAX_GRID_SIDE, MAX_GRID_SIDE, first_row=1 + i * MAX_GRID_SIDE, name=f"区{i}") for i in range(20)]
    cmd = command(showTimes=[show_time(*categories)] * 50)
    ids = DrawnIds()

    with pytest.raises(InvalidCommand) as refused:
        new_program(cmd, references(), ids, NOW)

    assert refused.value.code == "LAYOUT_TOO_LARGE"
    assert refused.value.details["seats"] == 20 * MAX_GRID_SIDE**2
    assert refused.value.details["limit"] == CatalogueLimits().seats_per_show_time
    assert ids.drawn == 0


def test_layout_counts_listed_seats_and_grids_together_when_checked_against_the_limit():
    box = {"name": "包厢", "price": "1.00", "seats": [{"row": 9, "column": c, "price": "1.00"} for c in (1, 2)]}
    cmd = command(showTimes=[show_time(grid(4, 5), box)])

    with pytest.raises(InvalidCommand) as refused:
        new_program(cmd, references(), CountingIds(1), NOW, CatalogueLimits(seats_per_show_time=21))

    assert (refused.value.code, refused.value.details["seats"]) == ("LAYOUT_TOO_LARGE", 22)


def test_layout_is_accepted_when_each_show_time_is_within_the_limit():
    cmd = command(showTimes=[show_time(grid(4, 5)), show_time(grid(4, 5))])

    program = new_program(cmd, references(), CountingIds(1), NOW, CatalogueLimits(seats_per_show_time=20))

    assert sum(c.seats for c in program.ticket_categories.values()) == 40



def test_layout_is_refused_when_the_show_times_together_pass_the_program_limit():
    cmd = command(showTimes=[show_time(grid(4, 5)), show_time(grid(4, 5))])
    ids = DrawnIds()

    with pytest.raises(InvalidCommand) as refused:
        new_program(cmd, references(), ids, NOW, CatalogueLimits(seats_per_show_time=20, seats_per_program=39))

    assert (refused.value.code, refused.value.details) == ("LAYOUT_TOO_LARGE", {"seats": 40, "limit": 39})
    assert ids.drawn == 0
