"""Who owns a mobile or an email: an aggregate per blind index, so one value has one account (ADR 0007).

Two registrations of one mobile both load the ownership at the same version; the aggregate store's
claim lets only one of them append, and the loser, reloading, finds the mobile held: ``MOBILE_TAKEN``.

A claim is made before its user's ``UserRegistered`` is appended, so a crash in between leaves a
claim for a user who never existed. Such a claim is *void* once it is older than the command
deadline (``api.command_ack_timeout_s`` + the producer's request timeout, as in ADR 0006): by then
the user's event is in the log or never will be. The caller says whether the holder exists (it
loads the holder's aggregate); the rule here stays pure.

``MobileClaimed`` is both the event that creates an ownership and the one that re-claims a released
one, so its library class is written out rather than made by ``@event``: it creates the aggregate
when there is none and applies to it when there is.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Self

from eventsourcing.domain import CanMutateAggregate
from eventsourcing.utils import get_topic

from aggregates.base import Aggregate
from aggregates.errors import Conflict
from events.user import email_key, mobile_key


class _Claimed(Aggregate.Created):
    user_id: int
    voided_user_id: int | None

    def mutate(self, aggregate: Any) -> Any:
        if aggregate is None:
            return super().mutate(None)
        return CanMutateAggregate.mutate(self, aggregate)

    def apply(self, aggregate: Any) -> None:
        aggregate.holder = self.user_id


class _Released(Aggregate.Event):
    user_id: int

    def apply(self, aggregate: Any) -> None:
        aggregate.holder = None


class Ownership(Aggregate):
    """A unique value's owner, known by the value's blind index only."""

    topic_family = "user"
    taken_code = "TAKEN"
    claimed_event = _Claimed
    released_event = _Released

    blind: str
    """The value's blind index (hex): the aggregate's key without its prefix."""
    holder: int | None
    """The user id holding the value; None once released."""

    @staticmethod
    def create_id(blind: str) -> str:
        raise NotImplementedError

    def identity(self) -> dict[str, Any]:
        raise NotImplementedError

    def __init__(self, user_id: int, voided_user_id: int | None) -> None:
        self.blind = self.id.split("-", 1)[1]
        self.holder = user_id

    @classmethod
    def first_claim(cls, blind: str, user_id: int) -> Self:
        """The ownership of a value nobody has claimed before (none in the log)."""
        return cls._create(cls.claimed_event, id=cls.create_id(blind), user_id=user_id, voided_user_id=None)

    def claim(self, user_id: int, *, now: datetime, holder_exists: bool, void_after: timedelta) -> None:
        """Give the value to ``user_id``: nothing to decide when it already holds it; refused while
        another user holds it, unless that claim is void (older than ``void_after`` and
        ``holder_exists`` false: the holder's account was never registered, or was deleted)."""
        if self.holder == user_id:
            return
        voided = None
        if self.holder is not None:
            if holder_exists or now - self.modified_on < void_after:
                raise Conflict("already held by another account", code=self.taken_code)
            voided = self.holder
        self.trigger_event(
            self.claimed_event, user_id=user_id, voided_user_id=voided, originator_topic=get_topic(type(self))
        )

    def release(self, user_id: int) -> None:
        """Free the value. Only its holder's release counts: a retried release must not free a claim
        another user has made since, so anyone else's decides nothing."""
        if self.holder == user_id:
            self.trigger_event(self.released_event, user_id=user_id)


class MobileOwnership(Ownership):
    taken_code = "MOBILE_TAKEN"

    class MobileClaimed(_Claimed):
        pass

    class MobileReleased(_Released):
        pass

    def __init__(self, user_id: int, voided_user_id: int | None) -> None:
        super().__init__(user_id, voided_user_id)

    claimed_event = MobileClaimed
    released_event = MobileReleased

    @staticmethod
    def create_id(blind: str) -> str:
        return mobile_key(blind)

    def identity(self) -> dict[str, Any]:
        return {"mobile_blind": self.blind}


class EmailOwnership(Ownership):
    taken_code = "EMAIL_TAKEN"

    class EmailClaimed(_Claimed):
        pass

    class EmailReleased(_Released):
        pass

    def __init__(self, user_id: int, voided_user_id: int | None) -> None:
        super().__init__(user_id, voided_user_id)

    claimed_event = EmailClaimed
    released_event = EmailReleased

    @staticmethod
    def create_id(blind: str) -> str:
        return email_key(blind)

    def identity(self) -> dict[str, Any]:
        return {"email_blind": self.blind}
