"""The registry of event types and the upcasters that lift old payloads to the current schema."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from events.base import DomainEvent

Payload = dict[str, Any]
Upcaster = Callable[[Payload], Payload]
E = TypeVar("E", bound=type[DomainEvent])

_event_types: dict[str, type[DomainEvent]] = {}
_upcasters: dict[tuple[str, int], Upcaster] = {}


class UnknownEventType(LookupError):
    """The log holds an event type this code does not know."""


def register_event(cls: E) -> E:
    """Class decorator: make an event type known by its wire name."""
    existing = _event_types.get(cls.event_type)
    if existing is not None and existing is not cls:
        raise ValueError(f"event type {cls.event_type!r} registered twice")
    _event_types[cls.event_type] = cls
    return cls


def upcaster(event_type: str, from_version: int) -> Callable[[Upcaster], Upcaster]:
    """Decorator: a function lifting ``event_type`` payloads from ``from_version`` to the next."""

    def decorate(fn: Upcaster) -> Upcaster:
        key = (event_type, from_version)
        if key in _upcasters:
            raise ValueError(f"upcaster for {key} registered twice")
        _upcasters[key] = fn
        return fn

    return decorate


def event_class(event_type: str) -> type[DomainEvent]:
    try:
        return _event_types[event_type]
    except KeyError:
        raise UnknownEventType(event_type) from None


def upcast(event_type: str, schema_version: int, payload: Payload) -> tuple[int, Payload]:
    """Apply upcasters in order until the payload matches the current schema version."""
    current = event_class(event_type).schema_version
    version = schema_version
    while version < current:
        try:
            step = _upcasters[(event_type, version)]
        except KeyError:
            raise UnknownEventType(f"{event_type} v{version} has no upcaster") from None
        payload = step(payload)
        version += 1
    if version > current:
        raise UnknownEventType(f"{event_type} v{version} is newer than this code (v{current})")
    return version, payload


def registered_types() -> dict[str, type[DomainEvent]]:
    return dict(_event_types)
