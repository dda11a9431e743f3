"""The detail document: the cache's stored form is the API's response, and it round-trips."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import orjson

from aggregates.program import ProgramStatus
from queries.cache import CachedDetail
from queries.detail import (
    ProgramDetail,
    ShowTimeDetail,
    TicketCategoryDetail,
    decode_detail,
    encode_detail,
    overlay_remaining,
)
from queries.shapes import ProgramDetailOut

DETAIL = ProgramDetail(
    id=(1 << 62) + 12345,
    title="周杰伦 嘉年华",
    actor=None,
    venue="梅赛德斯奔驰文化中心",
    area_id=310000,
    parent_category_id=1,
    category_id=101,
    detail="<p>演唱会</p>",
    notices=["实名入场"],
    per_order_limit=4,
    per_account_limit=6,
    seat_selectable=False,
    real_name_required=True,
    refund_policy={"refundable": False, "deadlineHoursBeforeShow": 0},
    high_heat=True,
    issue_time=datetime(2026, 12, 1, 12, 0, tzinfo=UTC),
    payment_minutes=15,
    status=ProgramStatus.ON_SALE,
    show_times=(
        ShowTimeDetail(
            id=(1 << 62) + 1,
            starts_at=datetime(2027, 1, 2, 19, 30, tzinfo=UTC),
            status="scheduled",
            ticket_categories=(TicketCategoryDetail((1 << 62) + 2, "VIP", Decimal("1999.00"), 100, 3),),
        ),
    ),
)


def test_document_round_trips_to_the_same_detail_when_encoded_and_decoded():
    assert decode_detail(encode_detail(DETAIL)) == DETAIL


def test_document_matches_the_declared_api_response_when_validated():
    document = orjson.loads(encode_detail(DETAIL))

    declared = ProgramDetailOut.model_validate(document).model_dump(by_alias=True)

    assert orjson.loads(orjson.dumps(declared)) == document  # same fields, same values, nothing extra


def test_large_ids_travel_as_strings_when_encoded():
    document = orjson.loads(encode_detail(DETAIL))

    assert document["id"] == str(DETAIL.id)
    assert document["showTimes"][0]["ticketCategories"][0] == {
        "id": str((1 << 62) + 2),
        "name": "VIP",
        "price": "1999.00",
        "total": 100,
        "remaining": 3,
    }


def test_live_counts_replace_the_stored_ones_and_nothing_else():
    raw = encode_detail(DETAIL)
    category_id = DETAIL.show_times[0].ticket_categories[0].id

    live = orjson.loads(overlay_remaining(raw, {category_id: 0, 999: 5}))

    stored = orjson.loads(raw)
    stored["showTimes"][0]["ticketCategories"][0]["remaining"] = 0
    assert live == stored


def test_a_cached_detail_reuses_its_overlay_while_the_counts_are_equal():
    cached = CachedDetail(encode_detail(DETAIL), DETAIL)
    category_id = DETAIL.show_times[0].ticket_categories[0].id

    first = cached.with_remaining({category_id: 1})
    again = cached.with_remaining({category_id: 1})
    changed = cached.with_remaining({category_id: 2})

    assert again is first and changed != first
    assert cached.with_remaining(None) is cached.raw and cached.with_remaining({}) is cached.raw
