"""A deterministic id source for decisions under test (the service itself is tested in test_ids)."""

from __future__ import annotations

import itertools


class CountingIds:
    def __init__(self, start: int = 1) -> None:
        self._next = itertools.count(start)

    def next_entity_id(self) -> int:
        return next(self._next)
