"""User events: an account, its profile and real-name ticket buyers; and who owns each mobile and email.

Personal data travels only sealed (``*_cipher``: a ``pd1`` token of ``infra.personal_data``, under
the user's data key) beside its blind index (``*_blind``: HMAC-SHA256 as 64 hex characters); a
password only as its argon2 hash. Deleting the user's data key makes every ``*_cipher`` unreadable
while the events stay (docs/personal-data.md, ADR 0007).

The events of one user share the aggregate ``user-<id>``; a mobile's (an email's) ownership is an
aggregate of its own, keyed by its blind index (``mobile-<hex>``), never by the value.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import Field

from events.base import DomainEvent
from events.program import EntityId
from events.registry import register_event

USER_FAMILY = "user"

CIPHER_MAX_LENGTH = 4096
"""Room for a sealed value of ~3 KB: any name, mobile, email or ID number the API accepts."""

Cipher = Annotated[str, Field(pattern=r"^pd1\.[A-Za-z0-9_-]{1,32}\.[A-Za-z0-9_-]+$", max_length=CIPHER_MAX_LENGTH)]
"""A personal value sealed under its user's data key (``pd1.<data key id>.<base64url>``)."""
BlindIndexHex = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
"""A blind index (HMAC-SHA256 of the normalised value), lower-case hex."""
PasswordHash = Annotated[str, Field(pattern=r"^\$argon2(id|i|d)\$[ -~]+$", max_length=512)]
"""An argon2 PHC string (``$argon2id$v=19$m=...,t=...,p=...$<salt>$<hash>``), never a password."""



class IdType(StrEnum):
    """The kinds of identity document a ticket buyer may name (rules: aggregates/identity_documents.py)."""

    ID_CARD = "ID_CARD"
    HK_MACAO_TAIWAN_RESIDENCE_PERMIT = "HK_MACAO_TAIWAN_RESIDENCE_PERMIT"
    HK_MACAO_TRAVEL_PERMIT = "HK_MACAO_TRAVEL_PERMIT"
    TAIWAN_TRAVEL_PERMIT = "TAIWAN_TRAVEL_PERMIT"
    PASSPORT = "PASSPORT"
    FOREIGN_PERMANENT_RESIDENCE_CARD = "FOREIGN_PERMANENT_RESIDENCE_CARD"

class Gender(StrEnum):
    FEMALE = "FEMALE"
    MALE = "MALE"
    UNDISCLOSED = "UNDISCLOSED"


def user_key(user_id: int) -> str:
    return f"user-{user_id}"


def mobile_key(mobile_blind: str) -> str:
    return f"mobile-{mobile_blind}"


def email_key(email_blind: str) -> str:
    return f"email-{email_blind}"


class UserEvent(DomainEvent):
    topic_family = USER_FAMILY

    user_id: EntityId

    def aggregate_key(self) -> str:
        return user_key(self.user_id)


@register_event
class UserRegistered(UserEvent):
    """An account was opened for a mobile (and an email) its ownership had been claimed for."""

    event_type = "UserRegistered"

    mobile_cipher: Cipher
    mobile_blind: BlindIndexHex
    email_cipher: Cipher | None = None
    email_blind: BlindIndexHex | None = None
    password_hash: PasswordHash


@register_event
class ProfileChanged(UserEvent):
    """Some of the profile changed; a field left out (None) is unchanged."""

    event_type = "ProfileChanged"

    name_cipher: Cipher | None = None
    gender: Gender | None = None
    email_cipher: Cipher | None = None
    email_blind: BlindIndexHex | None = None
    mobile_cipher: Cipher | None = None
    mobile_blind: BlindIndexHex | None = None


@register_event
class PasswordChanged(UserEvent):
    event_type = "PasswordChanged"

    password_hash: PasswordHash


@register_event
class RealNameVerified(UserEvent):
    """The user proved who they are with an identity document (once per user)."""

    event_type = "RealNameVerified"

    real_name_cipher: Cipher
    id_type: IdType
    id_number_cipher: Cipher
    id_number_blind: BlindIndexHex


@register_event
class TicketBuyerAdded(UserEvent):
    """A person the user may buy tickets for (a 购票人), by their identity document."""

    event_type = "TicketBuyerAdded"

    ticket_buyer_id: EntityId
    name_cipher: Cipher
    id_type: IdType
    id_number_cipher: Cipher
    id_number_blind: BlindIndexHex


@register_event
class TicketBuyerRemoved(UserEvent):
    """Carries the document's blind index so the purchase path's copy drops it without a lookup."""

    event_type = "TicketBuyerRemoved"

    ticket_buyer_id: EntityId
    id_number_blind: BlindIndexHex


@register_event
class UserDeleted(UserEvent):
    """The account is closed; its data key is destroyed, so its personal data is unreadable."""

    event_type = "UserDeleted"


class MobileEvent(DomainEvent):
    topic_family = USER_FAMILY

    mobile_blind: BlindIndexHex
    user_id: EntityId

    def aggregate_key(self) -> str:
        return mobile_key(self.mobile_blind)


class EmailEvent(DomainEvent):
    topic_family = USER_FAMILY

    email_blind: BlindIndexHex
    user_id: EntityId

    def aggregate_key(self) -> str:
        return email_key(self.email_blind)


@register_event
class MobileClaimed(MobileEvent):
    """The mobile belongs to ``user_id`` from now on; ``voided_user_id`` names a claim that never
    led to a user and was overridden (ADR 0007)."""

    event_type = "MobileClaimed"

    voided_user_id: EntityId | None = None


@register_event
class MobileReleased(MobileEvent):
    event_type = "MobileReleased"


@register_event
class EmailClaimed(EmailEvent):
    """As ``MobileClaimed``, for an email."""

    event_type = "EmailClaimed"

    voided_user_id: EntityId | None = None


@register_event
class EmailReleased(EmailEvent):
    event_type = "EmailReleased"
