"""Why an id could not be issued. Each one means: no id rather than a possible duplicate."""

from __future__ import annotations


class IdRefused(Exception):
    """No id was issued."""


class ClockMovedBackwards(IdRefused):
    """The clock reads further behind the last issued millisecond than the generator will wait."""


class ClockBehindHighWater(ClockMovedBackwards):
    """The clock reads too far behind the previous holder's high-water mark of this worker id."""


class ClockAheadOfLease(IdRefused):
    """The clock jumped past the high-water mark the lease last claimed; the next renewal covers it."""


class WorkerLeaseLost(IdRefused):
    """This process no longer holds (or can no longer be sure it holds) its worker id."""


class WorkerIdsExhausted(IdRefused):
    """Every worker id is leased by a live process."""
