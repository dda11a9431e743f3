from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from aggregates.errors import InvalidCommand
from commands.program import CatalogueLimits, CreateProgram, KnownReferences
from events.program import ProgramCreated, SeatsLaidOut, ShowTimeAdded, TicketCategoryAdded
from tests.decided import create_program
from tests.id_sources import CountingIds

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
SEATS_PER_EVENT = CatalogueLimits().seats_per_event


def references() -> KnownReferences:
    """Reference data as the read side would answer: one area, two top-level categories, one child."""
    return KnownReferences({310000}, {1: None, 101: 1, 2: None})


def ids() -> CountingIds:
    return CountingIds(1000)


def command(**changes) -> CreateProgram:
    body = {
        "title": "周杰伦 嘉年华 世界巡回演唱会",
        "actor": "周杰伦",
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
                    {"name": "看台", "price": "480.00", "seatGrid": {"rows": 10, "columns": 20, "firstRow": 31}},
                ],
            }
        ],
    }
    return CreateProgram.model_validate(body | changes)


def test_program_with_a_seat_grid_becomes_ordered_events():
    events = create_program(command(), references(), ids(), NOW)

    created, show = events[0], events[1]
    assert isinstance(created, ProgramCreated) and created.per_order_limit == 6 and created.payment_minutes == 15
    assert isinstance(show, ShowTimeAdded)
    categories = [e for e in events if isinstance(e, TicketCategoryAdded)]
    assert [(c.name, c.price, c.total) for c in categories] == [
        ("内场", Decimal("1280.00"), 1500),
        ("看台", Decimal("480.00"), 200),
    ]
    seat_events = [e for e in events if isinstance(e, SeatsLaidOut)]
    assert all(len(e.seats) <= SEATS_PER_EVENT for e in seat_events)
    seats = [s for e in seat_events for s in e.seats]
    assert len(seats) == 1700 and len({s.seat_id for s in seats}) == 1700
    assert {e.program_id for e in events} == {created.program_id}


def test_program_without_seat_choice_counts_tickets_by_total():
    cmd = command(
        seatSelectable=False,
        showTimes=[
            {
                "startsAt": (NOW + timedelta(days=3)).isoformat(),
                "ticketCategories": [{"name": "普通票", "price": "180.00", "total": 500}],
            }
        ],
    )

    events = create_program(cmd, references(), ids(), NOW)

    assert [type(e) for e in events] == [ProgramCreated, ShowTimeAdded, TicketCategoryAdded]
    category = events[2]
    assert isinstance(category, TicketCategoryAdded) and category.total == 500


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"areaId": 999999}, "AREA_UNKNOWN"),
        ({"parentCategoryId": 101}, "PARENT_CATEGORY_UNKNOWN"),
        ({"categoryId": 2}, "CATEGORY_MISMATCH"),
        ({"perOrderLimit": 8, "perAccountLimit": 6}, "LIMITS_INCONSISTENT"),
        ({"seatSelectable": False}, "SEAT_LAYOUT_MISMATCH"),
        (
            {
                "showTimes": [
                    {
                        "startsAt": (NOW - timedelta(hours=1)).isoformat(),
                        "ticketCategories": [{"name": "A", "price": "1.00", "seatGrid": {"rows": 1, "columns": 1}}],
                    }
                ]
            },
            "SHOW_TIME_IN_PAST",
        ),
        (
            {
                "showTimes": [
                    {
                        "startsAt": (NOW + timedelta(days=1)).isoformat(),
                        "ticketCategories": [
                            {"name": "A", "price": "1.00", "seatGrid": {"rows": 2, "columns": 2}},
                            {"name": "B", "price": "2.00", "seats": [{"row": 2, "column": 2, "price": "2.00"}]},
                        ],
                    }
                ]
            },
            "SEAT_DUPLICATE",
        ),
        (
            {
                "showTimes": [
                    {
                        "startsAt": (NOW + timedelta(days=1)).isoformat(),
                        "ticketCategories": [
                            {"name": "B", "price": "2.00", "seats": [{"row": 1, "column": 1, "price": "3.00"}]}
                        ],
                    }
                ]
            },
            "SEAT_PRICE_MISMATCH",
        ),
    ],
)
def test_rule_breaking_program_is_refused_with_its_code(changes, code):
    with pytest.raises(InvalidCommand) as err:
        create_program(command(**changes), references(), ids(), NOW)
    assert err.value.code == code


@pytest.mark.parametrize(
    "changes",
    [
        {"showTimes": []},
        {"title": ""},
        {
            "showTimes": [
                {"startsAt": "2026-12-01T19:30:00", "ticketCategories": [{"name": "A", "price": "1.00", "total": 1}]}
            ]
        },
        {
            "showTimes": [
                {
                    "startsAt": (NOW + timedelta(days=1)).isoformat(),
                    "ticketCategories": [
                        {"name": "A", "price": "1.00", "total": 5, "seatGrid": {"rows": 1, "columns": 1}}
                    ],
                }
            ]
        },
        {
            "showTimes": [
                {
                    "startsAt": (NOW + timedelta(days=1)).isoformat(),
                    "ticketCategories": [{"name": "A", "price": "1.001", "total": 5}],
                }
            ]
        },
        {"unknownField": 1},
    ],
)
def test_malformed_program_fails_validation(changes):
    with pytest.raises(ValidationError):
        command(**changes)


@st.composite
def stacked_grids(draw: st.DrawFn) -> list[dict[str, object]]:
    """Ticket categories as seat grids stacked row after row, so no two share a seat."""
    categories: list[dict[str, object]] = []
    first_row = 1
    for index in range(draw(st.integers(min_value=1, max_value=4))):
        rows, columns = draw(st.integers(1, 40)), draw(st.integers(1, 60))
        price = f"{draw(st.integers(0, 5000))}.00"
        grid = {"rows": rows, "columns": columns, "firstRow": first_row}
        categories.append({"name": f"区{index}", "price": price, "seatGrid": grid})
        first_row += rows
    return categories


@settings(max_examples=60, deadline=None)
@given(categories=stacked_grids())
def test_every_seat_of_a_layout_is_laid_out_once_in_small_events(categories):
    cmd = command(showTimes=[{"startsAt": (NOW + timedelta(days=9)).isoformat(), "ticketCategories": categories}])

    events = create_program(cmd, references(), ids(), NOW)

    added = {e.ticket_category_id: e for e in events if isinstance(e, TicketCategoryAdded)}
    chunks = [e for e in events if isinstance(e, SeatsLaidOut)]
    assert all(0 < len(c.seats) <= SEATS_PER_EVENT for c in chunks)
    for category_id, category in added.items():
        seats = [s for c in chunks if c.ticket_category_id == category_id for s in c.seats]
        assert len(seats) == category.total  # the count the inventory starts from
        assert {s.price for s in seats} <= {category.price}
    positions = [(s.row, s.column) for c in chunks for s in c.seats]
    assert (
        len(positions)
        == len(set(positions))
        == sum(g["seatGrid"]["rows"] * g["seatGrid"]["columns"] for g in categories)
    )
    ids_used = [e.show_time_id for e in events if isinstance(e, ShowTimeAdded)] + list(added)
    ids_used += [s.seat_id for c in chunks for s in c.seats]
    assert len(ids_used) == len(set(ids_used))
