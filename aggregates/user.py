"""The User aggregate: an account, its profile, its real name and its ticket buyers (ADR 0007).

It holds no personal data in clear and keeps only what its rules need: blind indexes (to tell
one ID document or mobile from another) and the password hash. Sealed values (``*_cipher``) pass
through to the events; the read models keep them. Which mobile and email belong to which
account is decided by their ownership aggregates (``aggregates/ownership.py``), not here.
"""

from __future__ import annotations

from typing import Any

from eventsourcing.domain import event
from pydantic import BaseModel, ConfigDict

from aggregates.base import Aggregate
from aggregates.errors import Conflict, NotFound
from events.user import USER_FAMILY, Gender, IdType, user_key


class SealedValue(BaseModel):
    """A personal value as the aggregate may see it: sealed (a ``pd1`` token) and its blind index."""

    model_config = ConfigDict(frozen=True)

    cipher: str
    blind: str


class TicketBuyer(BaseModel):
    model_config = ConfigDict(frozen=True)

    id_type: IdType
    id_number_blind: str


class User(Aggregate):
    topic_family = USER_FAMILY

    user_id: int
    mobile_blind: str
    email_blind: str | None
    password_hash: str
    gender: Gender | None
    real_name_verified: bool
    ticket_buyers: dict[int, TicketBuyer]
    deleted: bool

    @staticmethod
    def create_id(user_id: int) -> str:
        return user_key(user_id)

    def identity(self) -> dict[str, Any]:
        return {"user_id": self.user_id}

    # -- registering ---------------------------------------------------------------------------

    @classmethod
    def register(cls, user_id: int, mobile: SealedValue, password_hash: str, email: SealedValue | None = None) -> User:
        """A new account, once its mobile (and email) ownership is claimed for ``user_id``."""
        return cls(
            user_id=user_id,
            mobile_cipher=mobile.cipher,
            mobile_blind=mobile.blind,
            email_cipher=email.cipher if email else None,
            email_blind=email.blind if email else None,
            password_hash=password_hash,
        )

    @event("UserRegistered")
    def __init__(
        self,
        user_id: int,
        mobile_cipher: str,
        mobile_blind: str,
        email_cipher: str | None,
        email_blind: str | None,
        password_hash: str,
    ) -> None:
        self.user_id = user_id
        self.mobile_blind = mobile_blind
        self.email_blind = email_blind
        self.password_hash = password_hash
        self.gender = None
        self.real_name_verified = False
        self.ticket_buyers = {}
        self.deleted = False

    # -- profile and password ------------------------------------------------------------------

    def change_profile(
        self,
        *,
        name_cipher: str | None = None,
        gender: Gender | None = None,
        email: SealedValue | None = None,
        mobile: SealedValue | None = None,
    ) -> None:
        """Change the given fields; nothing is decided when none differs. A new mobile or email
        must have been claimed for this user first (ADR 0007)."""
        self._check_active()
        if gender == self.gender:
            gender = None
        if email is not None and email.blind == self.email_blind:
            email = None
        if mobile is not None and mobile.blind == self.mobile_blind:
            mobile = None
        if name_cipher is None and gender is None and email is None and mobile is None:
            return
        self._profile_changed(
            name_cipher=name_cipher,
            gender=gender,
            email_cipher=email.cipher if email else None,
            email_blind=email.blind if email else None,
            mobile_cipher=mobile.cipher if mobile else None,
            mobile_blind=mobile.blind if mobile else None,
        )

    @event("ProfileChanged")
    def _profile_changed(
        self,
        name_cipher: str | None,
        gender: Gender | None,
        email_cipher: str | None,
        email_blind: str | None,
        mobile_cipher: str | None,
        mobile_blind: str | None,
    ) -> None:
        if gender is not None:
            self.gender = gender
        if email_blind is not None:
            self.email_blind = email_blind
        if mobile_blind is not None:
            self.mobile_blind = mobile_blind

    def change_password(self, password_hash: str) -> None:
        """Store a new hash; the caller has verified the old password."""
        self._check_active()
        self._password_changed(password_hash)

    @event("PasswordChanged")
    def _password_changed(self, password_hash: str) -> None:
        self.password_hash = password_hash

    # -- real name and ticket buyers -----------------------------------------------------------

    def verify_real_name(self, real_name_cipher: str, id_type: IdType, id_number: SealedValue) -> None:
        """Once per user."""
        self._check_active()
        if self.real_name_verified:
            raise Conflict("the real name is already verified", code="REAL_NAME_ALREADY_VERIFIED")
        self._real_name_verified(real_name_cipher, id_type, id_number.cipher, id_number.blind)

    @event("RealNameVerified")
    def _real_name_verified(
        self, real_name_cipher: str, id_type: IdType, id_number_cipher: str, id_number_blind: str
    ) -> None:
        self.real_name_verified = True

    def add_ticket_buyer(
        self, ticket_buyer_id: int, name_cipher: str, id_type: IdType, id_number: SealedValue, *, limit: int
    ) -> None:
        """One more person to buy for: one document at most once, at most ``limit`` buyers."""
        self._check_active()
        if any(b.id_number_blind == id_number.blind for b in self.ticket_buyers.values()):
            raise Conflict("this document is already a ticket buyer", code="TICKET_BUYER_EXISTS")
        if len(self.ticket_buyers) >= limit:
            raise Conflict(
                f"at most {limit} ticket buyers per user", code="TICKET_BUYERS_LIMIT", details={"limit": limit}
            )
        self._ticket_buyer_added(ticket_buyer_id, name_cipher, id_type, id_number.cipher, id_number.blind)

    @event("TicketBuyerAdded")
    def _ticket_buyer_added(
        self, ticket_buyer_id: int, name_cipher: str, id_type: IdType, id_number_cipher: str, id_number_blind: str
    ) -> None:
        self.ticket_buyers[ticket_buyer_id] = TicketBuyer(id_type=id_type, id_number_blind=id_number_blind)

    def remove_ticket_buyer(self, ticket_buyer_id: int) -> None:
        self._check_active()
        buyer = self.ticket_buyers.get(ticket_buyer_id)
        if buyer is None:
            raise NotFound(
                f"no ticket buyer {ticket_buyer_id}",
                code="TICKET_BUYER_NOT_FOUND",
                details={"ticketBuyerId": ticket_buyer_id},
            )
        self._ticket_buyer_removed(ticket_buyer_id, buyer.id_number_blind)

    @event("TicketBuyerRemoved")
    def _ticket_buyer_removed(self, ticket_buyer_id: int, id_number_blind: str) -> None:
        del self.ticket_buyers[ticket_buyer_id]

    # -- deleting ------------------------------------------------------------------------------

    def delete(self) -> None:
        """Close the account; the caller then releases its mobile and email and shreds its data key."""
        self._check_active()
        self._deleted()

    @event("UserDeleted")
    def _deleted(self) -> None:
        self.deleted = True
        self.ticket_buyers = {}

    def _check_active(self) -> None:
        if self.deleted:
            raise Conflict("the account was deleted", code="USER_DELETED")
