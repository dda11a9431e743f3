"""The seat map's JSON is built without models; it must still be what the API declares."""

from __future__ import annotations

from decimal import Decimal

import orjson

from queries.seat_map import AVAILABLE, UNAVAILABLE, PriceGroup, SeatState, encode_seat_map
from queries.shapes import SeatMapOut

BIG = 1 << 62


def test_the_encoded_map_is_the_declared_response_with_ids_as_strings():
    groups = [
        PriceGroup(
            Decimal("380.00"),
            (BIG + 2,),
            (SeatState(1, 1, BIG + 10, BIG + 2, AVAILABLE), SeatState(1, 2, BIG + 11, BIG + 2, UNAVAILABLE)),
        ),
        PriceGroup(Decimal("1680"), (BIG + 3, BIG + 4), (SeatState(2, 1, BIG + 12, BIG + 4, AVAILABLE),)),
    ]

    raw = encode_seat_map(BIG + 1, BIG + 5, groups)

    declared = SeatMapOut.model_validate_json(raw)
    assert orjson.loads(declared.model_dump_json(by_alias=True)) == orjson.loads(raw)
    document = orjson.loads(raw)
    assert [g["price"] for g in document["priceGroups"]] == ["380.00", "1680.00"]
    assert document["priceGroups"][0]["seats"][1] == {
        "id": str(BIG + 11),
        "ticketCategoryId": str(BIG + 2),
        "row": 1,
        "column": 2,
        "state": "unavailable",
    }
    assert document["priceGroups"][1]["ticketCategoryIds"] == [str(BIG + 3), str(BIG + 4)]
