"""The public JSON of the program queries: the detail, the seat map, a search hit, a search page
and a home page section (camelCase field names, 63-bit ids and prices as strings).

The detail and the seat map are built as bytes by their queries (``queries/detail.py``,
``queries/seat_map.py``: a model object per seat costs more than the map); their models here
declare the schema, and unit tests hold the two equal. A search hit is built from these models
by both of its paths, Elasticsearch and the Postgres fallback.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

HIGHLIGHT_TAGS = ("<em>", "</em>")
"""What a search hit wraps the keyword in, in the fields it matched: the only markup a highlight
carries, since the text around and inside the tags is escaped (``escape_highlight``)."""

HIGHLIGHT_ENCODER = "html"
"""Elasticsearch's highlight encoder; ``escape_highlight`` is its twin for the Postgres fallback,
and tests/integration/test_search_highlight.py holds the two equal."""

# The table of Lucene's SimpleHTMLEncoder, which Elasticsearch's "html" encoder is.
_HIGHLIGHT_ESCAPES = str.maketrans(
    {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#x27;", "/": "&#x2F;"}
)


class PublicShape(BaseModel):
    """camelCase in JSON, like every body of the API."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class TicketCategoryOut(PublicShape):
    id: str
    name: str
    price: str
    """Yuan, a decimal string with two places."""
    total: int
    remaining: int


class ShowTimeOut(PublicShape):
    id: str
    starts_at: datetime
    status: str
    ticket_categories: list[TicketCategoryOut]


class ProgramHeadOut(PublicShape):
    """What every view of a program begins with: the detail, a search hit, a home page entry."""

    id: str
    title: str
    actor: str | None
    venue: str
    area_id: int
    parent_category_id: int
    category_id: int


class ProgramDetailOut(ProgramHeadOut):
    """The body of GET /api/v1/programs/{id}, as queries.detail builds it and the cache holds it."""

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
    status: str
    show_times: list[ShowTimeOut]


class SeatOut(PublicShape):
    id: str
    ticket_category_id: str
    row: int
    column: int
    state: str


class PriceGroupOut(PublicShape):
    price: str
    ticket_category_ids: list[str]
    seats: list[SeatOut]


class SeatMapOut(PublicShape):
    """The body of GET /api/v1/programs/{id}/seats, as queries.seat_map.encode_seat_map builds it."""

    program_id: str
    show_time_id: str
    price_groups: list[PriceGroupOut]


class ProgramHitOut(ProgramHeadOut):
    """One program on a search page or a home page section."""

    first_show_at: datetime | None
    min_price: str | None
    max_price: str | None
    high_heat: bool
    sold_out: bool
    """No ticket category of any show time has a ticket left (held and sold tickets are gone;
    a cancelled or expired hold gives them back)."""
    highlight: dict[str, str]
    """The matched fields (title, actor) as HTML: the text escaped, the keyword wrapped in
    ``HIGHLIGHT_TAGS``."""


class ProgramPageOut(PublicShape):
    total: int
    page: int
    size: int
    items: list[ProgramHitOut]


class HomeSectionOut(PublicShape):
    category_id: int
    category_name: str
    programs: list[ProgramHitOut]


def escape_highlight(text: str) -> str:
    """Text as a highlight carries it, escaped byte for byte as Elasticsearch's ``html`` encoder
    escapes it (``& < > " ' /``; everything else as it is)."""
    return text.translate(_HIGHLIGHT_ESCAPES)


def yuan(amount: float | Decimal | None) -> str | None:
    """A price as the API shows it: a decimal string with two places."""
    return None if amount is None else f"{amount:.2f}"
