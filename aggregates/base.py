"""What every aggregate of this project is: an ``eventsourcing`` aggregate whose events are the
project's own event types, so that Kafka — not the library's recorders — is the log of record.

An aggregate's ``@event("<Type>")`` methods are named after the project's registered event types
(``events/``) and take exactly that event's payload fields, less the identity fields the
aggregate supplies itself (``identity()``). So the library event ``Program.ProgramPublished``
and the wire event ``ProgramPublished`` are one fact in two forms:

- ``outbox()`` turns the events an aggregate has just decided into ``Decided`` (the project's
  event, its version and time), ready for the envelope (``aggregate_id`` = the library's
  ``originator_id``, ``aggregate_version`` = its ``originator_version``);
- ``replay()`` folds envelopes read back from Kafka into the aggregate, through the same
  ``@event`` methods, so a loaded aggregate is exactly the one that decided.

Snapshots (``snapshot()`` / ``from_snapshot()``) are the library's ``Snapshot.take`` and
``mutate``; their state is held as JSON checked against the aggregate's annotated attributes.
See docs/decisions/0006-aggregates-on-eventsourcing.md.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from datetime import datetime
from functools import cache
from typing import Any, ClassVar, NamedTuple, Self, cast, get_type_hints

from eventsourcing.domain import (
    BaseAggregate,
    CanCreateTimestamp,
    CanInitAggregate,
    CanMutateAggregate,
    CanSnapshotAggregate,
    MetaDomainEvent,
)
from eventsourcing.utils import get_topic
from pydantic import TypeAdapter
from typing_extensions import TypedDict

from events.base import DomainEvent
from events.envelope import EventEnvelope
from events.registry import event_class
from events.serialization import payload_of

# Fields the library gives every event; the rest is the project event's payload.
_LIBRARY_FIELDS = frozenset({"originator_id", "originator_version", "timestamp", "originator_topic"})
# Attributes the library keeps on every aggregate; a snapshot restores them itself.
_LIBRARY_STATE = frozenset({"_id", "_version", "_pending_events"})


@dataclasses.dataclass(frozen=True)
class KeyedEvent(CanCreateTimestamp, metaclass=MetaDomainEvent):
    """A library event whose aggregate id is the project's aggregate key (``program-<id>``)."""

    originator_id: str
    originator_version: int
    timestamp: datetime


@dataclasses.dataclass(frozen=True)
class Snapshot(CanSnapshotAggregate[str], KeyedEvent):
    """The library's snapshot, for aggregates keyed by string."""

    topic: str
    state: dict[str, Any]


class Decided(NamedTuple):
    """One event an aggregate has decided, as the envelope needs it."""

    event: DomainEvent
    version: int
    occurred_at: datetime


class OutOfOrderEvent(ValueError):
    """The log holds a version of an aggregate that does not follow the one before."""


class Aggregate(BaseAggregate[str]):
    """Base of the project's aggregates (Program now; User, Order and PayBill next)."""

    class Event(CanMutateAggregate[str], KeyedEvent):
        pass

    class Created(Event, CanInitAggregate[str]):
        originator_topic: str

    topic_family: ClassVar[str]
    """The Kafka topic family its events travel on (``events/``)."""
    snapshot_version: ClassVar[int] = 1
    """Bumped when the attributes change shape; older snapshots are then rebuilt from the log."""

    def identity(self) -> dict[str, Any]:
        """The payload fields every event of this aggregate carries (e.g. ``program_id``)."""
        raise NotImplementedError

    def outbox(self) -> list[Decided]:
        """Collect the events just decided, as the project's events with their versions."""
        identity = self.identity()
        out = []
        for decided in self.collect_events():
            payload = {f.name: getattr(decided, f.name) for f in dataclasses.fields(decided)}  # type: ignore[arg-type]
            fields = {k: v for k, v in payload.items() if k not in _LIBRARY_FIELDS}
            wire = event_class(type(decided).__name__)(**{**identity, **fields})
            out.append(Decided(wire, decided.originator_version, decided.timestamp))
        return out

    @classmethod
    def replay(cls, envelopes: Iterable[EventEnvelope], into: Self | None = None) -> Self | None:
        """Fold an aggregate's envelopes, in log order, onto ``into`` (or from nothing).

        A version already applied is skipped: the log may hold an event twice (a producer's
        retry), never two different events under one version.
        """
        aggregate = into
        for envelope in envelopes:
            current = aggregate.version if aggregate is not None else 0
            if envelope.aggregate_version <= current:
                continue
            if envelope.aggregate_version != current + 1:
                raise OutOfOrderEvent(
                    f"{envelope.aggregate_id}: version {envelope.aggregate_version} after {current}"
                )
            aggregate = cast(Self, cls._library_event(envelope).mutate(aggregate))
        return aggregate

    @classmethod
    def _library_event(cls, envelope: EventEnvelope) -> CanMutateAggregate[str]:
        library_class = getattr(cls, envelope.type)
        event = payload_of(envelope)
        fields = {
            f.name: getattr(event, f.name)
            for f in dataclasses.fields(library_class)
            if f.name not in _LIBRARY_FIELDS
        }
        extra = {"originator_topic": get_topic(cls)} if issubclass(library_class, CanInitAggregate) else {}
        made: CanMutateAggregate[str] = library_class(
            originator_id=envelope.aggregate_id,
            originator_version=envelope.aggregate_version,
            timestamp=envelope.occurred_at,
            **extra,
            **fields,
        )
        return made

    def snapshot(self) -> bytes:
        """This aggregate's state as JSON (the library's snapshot, encoded)."""
        taken = Snapshot.take(self)
        state = {k: v for k, v in taken.state.items() if k not in _LIBRARY_STATE}
        return _snapshot_adapter(type(self)).dump_json(
            {
                "id": taken.originator_id,
                "version": taken.originator_version,
                "snapshotVersion": self.snapshot_version,
                "state": state,
            }
        )

    @classmethod
    def from_snapshot(cls, raw: bytes) -> Self | None:
        """The aggregate a snapshot holds; None when it was taken of an older shape."""
        data = _snapshot_adapter(cls).validate_json(raw)
        if data["snapshotVersion"] != cls.snapshot_version:
            return None
        snapshot = Snapshot(
            originator_id=data["id"],
            originator_version=data["version"],
            timestamp=data["state"]["_modified_on"],
            topic=get_topic(cls),
            state=dict(data["state"]),
        )
        return cast(Self, snapshot.mutate(None))


@cache
def _snapshot_adapter(cls: type[Aggregate]) -> TypeAdapter[Any]:
    """A JSON schema of ``cls``'s snapshot, from its annotated attributes."""
    hints = get_type_hints(cls)
    own: dict[str, Any] = {name: hints[name] for name in _own_annotations(cls)}
    state = TypedDict(  # type: ignore[misc]
        f"{cls.__name__}State", {"_created_on": datetime, "_modified_on": datetime, **own}
    )
    envelope = TypedDict(  # type: ignore[misc]  # noqa: UP013 (its state type is built above)
        f"{cls.__name__}Snapshot", {"id": str, "version": int, "snapshotVersion": int, "state": state}
    )
    return TypeAdapter(envelope)


def _own_annotations(cls: type) -> Sequence[str]:
    names: list[str] = []
    for klass in reversed(cls.__mro__):
        if klass is Aggregate or not issubclass(klass, Aggregate):
            continue
        names += [n for n in vars(klass).get("__annotations__", {}) if n not in names and not n.isupper()]
    return [n for n in names if n != "snapshot_version"]
