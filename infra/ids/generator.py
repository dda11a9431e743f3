"""The sequence and clock rules of one id generator: pure and synchronous, clock injected.

A generator issues strictly increasing ids of one layout for one worker id. It never
issues a duplicate: when the sequence of the current millisecond is used up it waits for
the next millisecond; when the clock steps back it waits the step out if it is short
(``max_step_back_ms``) and otherwise refuses with ``ClockMovedBackwards``.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from infra.ids.errors import ClockAheadOfLease, ClockMovedBackwards
from infra.ids.layout import MAX_TIMESTAMP_MS, IdLayout

Clock = Callable[[], int]
"""Reads the wall clock in Unix milliseconds."""
Sleep = Callable[[float], None]


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


class IdGenerator:
    """Issues strictly increasing ids of one layout for one worker id."""

    def __init__(
        self,
        layout: IdLayout,
        worker_id: int,
        *,
        max_step_back_ms: int,
        issued_after_ms: int,
        clock: Clock = wall_clock_ms,
        sleep: Sleep = time.sleep,
    ):
        """``issued_after_ms``: every id will carry a later millisecond than this one."""
        self._layout = layout
        self._worker_id = worker_id
        self._max_step_back_ms = max_step_back_ms
        self._clock = clock
        self._sleep = sleep
        # Start as if the sequence of issued_after_ms were used up, so the first id is later.
        self._last_ms = issued_after_ms
        self._sequence = layout.max_sequence
        self._ceiling_ms = MAX_TIMESTAMP_MS

    @property
    def last_ms(self) -> int:
        """The millisecond of the last id issued (``issued_after_ms`` before the first)."""
        return self._last_ms

    def cover_until(self, ceiling_ms: int) -> None:
        """Issue no id stamped after ``ceiling_ms``: the lease has promised no later one."""
        self._ceiling_ms = ceiling_ms

    def next(self, gene: int = 0) -> int:
        """The next id, carrying ``gene`` in its low bits (order numbers; 0 for entity ids)."""
        if not 0 <= gene < self._layout.gene_count:
            raise ValueError(f"gene {gene} is outside 0..{self._layout.gene_count - 1} for {self._layout.name}s")
        now = self._usable_ms(self._clock())
        if now > self._ceiling_ms:
            raise ClockAheadOfLease(f"the clock reads {now} ms, past the lease's high-water mark {self._ceiling_ms} ms")
        sequence = self._sequence + 1 if now == self._last_ms else 0
        id_ = self._layout.pack(now, self._worker_id, sequence, gene)
        self._last_ms, self._sequence = now, sequence
        return id_

    def _usable_ms(self, now: int) -> int:
        """``now``, or the first later clock reading that still leaves a sequence number free."""
        while now < self._last_ms or (now == self._last_ms and self._sequence == self._layout.max_sequence):
            behind = self._last_ms - now
            if behind > self._max_step_back_ms:
                raise ClockMovedBackwards(
                    f"the clock reads {behind} ms behind the last issued id; "
                    f"waiting out more than {self._max_step_back_ms} ms is refused"
                )
            # Sleep out a step back; a used-up millisecond (behind == 0) is spun out, as
            # sleeping would overshoot the next millisecond.
            self._sleep(behind / 1000)
            now = self._clock()
        return now
