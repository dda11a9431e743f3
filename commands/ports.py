"""What command handlers need from the outside world, as protocols; ``bootstrap.py`` plugs in the
adapters (``infra/``). Handlers import these, never an adapter."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Protocol, TypeVar

from aggregates.base import Aggregate
from aggregates.errors import Conflict

A = TypeVar("A", bound=Aggregate)


class ConcurrentChange(Conflict):
    """Another command changed the aggregate between this one's load and its save."""

    code = "CONCURRENT_CHANGE"


class Unavailable(Exception):
    """A store or the log a handler needs did not answer in time; the client may retry.

    ``code`` and ``message`` are what the API answers with (503, ``Retry-After``)."""

    code: str = "DEPENDENCY_UNAVAILABLE"
    message: str = "a dependency did not answer in time; retry"


class LogUnavailable(Unavailable):
    """The event log did not acknowledge an append in time; the command may or may not be in it."""

    code = "EVENT_LOG_UNAVAILABLE"
    message = "the event log did not acknowledge the command; retry"


class AggregateStore(Protocol):
    """Aggregates as the log has them: every event appended for one is seen by the next load."""

    async def load(self, cls: type[A], aggregate_id: str) -> A | None:
        """The aggregate with all its events applied; None if it has none."""
        ...

    async def save(self, aggregate: Aggregate, correlation_id: uuid.UUID | None) -> list[uuid.UUID]:
        """Append the events the aggregate has just decided; return their event ids.

        Raises ``ConcurrentChange`` when another save got there first (nothing is appended),
        ``LogUnavailable`` when Kafka did not acknowledge the events in time.
        """
        ...


class IdSource(Protocol):
    def next_entity_id(self) -> int: ...


Clock = Callable[[], datetime]

# A command that lost a race reloads and decides again, this many times before answering 409.
CHANGE_ATTEMPTS = 5


async def change(
    store: AggregateStore,
    cls: type[A],
    aggregate_id: str,
    decide: Callable[[A | None], A],
    correlation_id: uuid.UUID | None,
) -> tuple[A, list[uuid.UUID]]:
    """Load → decide → append, again from the load when another command got there first.

    Returns the aggregate and the ids of the events appended (none when it decided nothing)."""
    for attempt in range(CHANGE_ATTEMPTS):
        aggregate = decide(await store.load(cls, aggregate_id))
        try:
            return aggregate, await store.save(aggregate, correlation_id)
        except ConcurrentChange:
            if attempt == CHANGE_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")

