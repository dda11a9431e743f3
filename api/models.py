"""The JSON convention of every response body (camelCase field names), and the ids the API takes
in paths and queries, bounded where they enter to what the stores hold (a 422, never a query)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path

from events.program import EntityId
from events.reference import AreaId
from queries.shapes import PublicShape

IdPath = Annotated[EntityId, Path(description="a 63-bit id")]
"""A program's, show time's or ticket category's id in a path: a positive 63-bit integer (Postgres bigint)."""
AreaIdPath = Annotated[AreaId, Path(description="an area's division code")]
"""An area's id in a path: a positive Postgres integer."""


CamelModel = PublicShape
"""Every body the API answers with: camelCase field names (one convention, kept by the read side)."""
