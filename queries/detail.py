"""The detail of one program: its fields, show times and ticket categories, from one shard.

The document form (``to_document``) is the public JSON of ``GET /api/v1/programs/{id}``
(camelCase, prices as decimal strings in yuan, 63-bit ids as strings so JavaScript keeps them
exact); the cache stores exactly that, so a cached detail is served without being decoded.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import orjson

from aggregates.program import ProgramStatus
from infra.postgres.sharded import ShardedDatabase
from queries.views.programs import (
    ProgramRow,
    ShowTimeRow,
    TicketCategoryRow,
    get_program,
    show_times_of,
    ticket_categories_of,
)

HIDDEN_STATUSES = frozenset({ProgramStatus.DRAFT})
CENTS = Decimal("0.01")


@dataclass(frozen=True)
class TicketCategoryDetail:
    id: int
    name: str
    price: Decimal
    total: int
    remaining: int


@dataclass(frozen=True)
class ShowTimeDetail:
    id: int
    starts_at: datetime
    status: str
    ticket_categories: tuple[TicketCategoryDetail, ...]


@dataclass(frozen=True)
class ProgramDetail:
    id: int
    title: str
    actor: str | None
    venue: str
    area_id: int
    parent_category_id: int
    category_id: int
    detail: str
    notices: Any
    per_order_limit: int
    per_account_limit: int
    seat_selectable: bool
    real_name_required: bool
    refund_policy: Any
    high_heat: bool
    issue_time: datetime | None
    payment_minutes: int
    status: ProgramStatus
    show_times: tuple[ShowTimeDetail, ...]

    def to_document(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "title": self.title,
            "actor": self.actor,
            "venue": self.venue,
            "areaId": self.area_id,
            "parentCategoryId": self.parent_category_id,
            "categoryId": self.category_id,
            "detail": self.detail,
            "notices": self.notices,
            "perOrderLimit": self.per_order_limit,
            "perAccountLimit": self.per_account_limit,
            "seatSelectable": self.seat_selectable,
            "realNameRequired": self.real_name_required,
            "refundPolicy": self.refund_policy,
            "highHeat": self.high_heat,
            "issueTime": self.issue_time.isoformat() if self.issue_time else None,
            "paymentMinutes": self.payment_minutes,
            "status": self.status,
            "showTimes": [_show_time_document(s) for s in self.show_times],
        }

    @classmethod
    def from_document(cls, doc: dict[str, Any]) -> ProgramDetail:
        issue_time = doc["issueTime"]
        return cls(
            id=int(doc["id"]),
            title=doc["title"],
            actor=doc["actor"],
            venue=doc["venue"],
            area_id=doc["areaId"],
            parent_category_id=doc["parentCategoryId"],
            category_id=doc["categoryId"],
            detail=doc["detail"],
            notices=doc["notices"],
            per_order_limit=doc["perOrderLimit"],
            per_account_limit=doc["perAccountLimit"],
            seat_selectable=doc["seatSelectable"],
            real_name_required=doc["realNameRequired"],
            refund_policy=doc["refundPolicy"],
            high_heat=doc["highHeat"],
            issue_time=datetime.fromisoformat(issue_time) if issue_time else None,
            payment_minutes=doc["paymentMinutes"],
            status=ProgramStatus(doc["status"]),
            show_times=tuple(_show_time_of(s) for s in doc["showTimes"]),
        )


def overlay_remaining(raw: bytes, remaining: Mapping[int, int]) -> bytes:
    """The document ``raw`` with the remaining counts of the categories ``remaining`` names replaced."""
    doc = orjson.loads(raw)
    for show_time in doc["showTimes"]:
        for category in show_time["ticketCategories"]:
            live = remaining.get(int(category["id"]))
            if live is not None:
                category["remaining"] = live
    return orjson.dumps(doc)


def encode_detail(detail: ProgramDetail) -> bytes:
    return orjson.dumps(detail.to_document())


def decode_detail(raw: bytes) -> ProgramDetail:
    return ProgramDetail.from_document(orjson.loads(raw))


async def load_program_detail(db: ShardedDatabase, program_id: int) -> ProgramDetail | None:
    """The visible detail of a program, or None when it does not exist or is still a draft."""
    program = await get_program(db, program_id)
    if program is None or program.status in HIDDEN_STATUSES:
        return None
    show_times, categories = await asyncio.gather(show_times_of(db, program_id), ticket_categories_of(db, program_id))
    return assemble_detail(program, show_times, categories)


def assemble_detail(
    program: ProgramRow, show_times: list[ShowTimeRow], categories: list[TicketCategoryRow]
) -> ProgramDetail:
    by_show_time: dict[int, list[TicketCategoryDetail]] = {}
    for c in categories:
        by_show_time.setdefault(c.show_time_id, []).append(
            TicketCategoryDetail(c.id, c.name, c.price.quantize(CENTS), c.total, c.remaining)
        )
    return ProgramDetail(
        id=program.id,
        title=program.title,
        actor=program.actor,
        venue=program.venue,
        area_id=program.area_id,
        parent_category_id=program.parent_category_id,
        category_id=program.category_id,
        detail=program.detail,
        notices=program.notices,
        per_order_limit=program.per_order_limit,
        per_account_limit=program.per_account_limit,
        seat_selectable=program.seat_selectable,
        real_name_required=program.real_name_required,
        refund_policy=program.refund_policy,
        high_heat=program.high_heat,
        issue_time=program.issue_time,
        payment_minutes=program.payment_minutes,
        status=program.status,
        show_times=tuple(
            ShowTimeDetail(s.id, s.starts_at, s.status, tuple(by_show_time.get(s.id, ()))) for s in show_times
        ),
    )


def _show_time_document(show_time: ShowTimeDetail) -> dict[str, Any]:
    return {
        "id": str(show_time.id),
        "startsAt": show_time.starts_at.isoformat(),
        "status": show_time.status,
        "ticketCategories": [
            {"id": str(c.id), "name": c.name, "price": f"{c.price:.2f}", "total": c.total, "remaining": c.remaining}
            for c in show_time.ticket_categories
        ],
    }


def _show_time_of(doc: dict[str, Any]) -> ShowTimeDetail:
    return ShowTimeDetail(
        id=int(doc["id"]),
        starts_at=datetime.fromisoformat(doc["startsAt"]),
        status=doc["status"],
        ticket_categories=tuple(
            TicketCategoryDetail(int(c["id"]), c["name"], Decimal(c["price"]), c["total"], c["remaining"])
            for c in doc["ticketCategories"]
        ),
    )
