"""The JSON convention of every response body (camelCase field names) and of ids in paths."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path

from queries.shapes import PublicShape

MAX_ID = (1 << 63) - 1
"""Ids are positive 63-bit integers (Postgres bigint); anything else is a 422, not a query."""

IdPath = Annotated[int, Path(ge=1, le=MAX_ID, description="a 63-bit id")]


CamelModel = PublicShape
"""Every body the API answers with: camelCase field names (one convention, kept by the read side)."""
