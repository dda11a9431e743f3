"""Account commands: registering, the profile, the password, real-name verification, ticket buyers,
deleting the account; and one handler for each (ADR 0007).

A handler checks the input, seals every personal value under the user's data key and computes its
blind index, then lets the aggregates decide: the mobile's and email's ownership aggregates say
whether the value is free, the User aggregate says what the account may do. What they decided is
appended through the aggregate store; the handler then waits (bounded) until the read side has
projected it, so the caller can log in with, or read back, what it just changed.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Protocol, TypeVar

import structlog
from pydantic import Field, SecretStr

from aggregates.base import Aggregate
from aggregates.errors import Conflict, Forbidden, InvalidCommand, NotFound
from aggregates.identity_documents import identity_document, normalise_email, normalise_mobile
from aggregates.ownership import EmailOwnership, MobileOwnership, Ownership
from aggregates.user import SealedValue, User
from commands.captcha import (
    MAX_ANSWER_LENGTH,
    CaptchaGate,
    CaptchaId,
    CaptchaStoreUnavailable,
    captcha_required_for,
    count_registration,
    verify_captcha,
)
from commands.ports import CHANGE_ATTEMPTS, AggregateStore, Clock, ConcurrentChange, IdSource, Unavailable, change
from commands.program import Command
from events.user import Gender, IdType, user_key

log = structlog.get_logger(__name__)

OwnershipT = TypeVar("OwnershipT", bound=Ownership)

# -- rules of the input -----------------------------------------------------------------------

PASSWORD_MIN_LENGTH = 8
PASSWORD_MAX_LENGTH = 64
"""argon2 takes any length; the bound keeps a request from buying a long hash input."""
MOBILE_PATTERN = re.compile(r"1[3-9]\d{9}")
"""A mainland mobile: 11 digits, 13x to 19x (after ``normalise_mobile`` drops +86)."""
EMAIL_MAX_LENGTH = 254
EMAIL_PATTERN = re.compile(
    r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+"
)
"""An address as people type it: a plain local part and a dotted domain (no quoted or IP forms)."""
NAME_MAX_LENGTH = 64
RAW_MOBILE_MAX_LENGTH = 32
RAW_ID_NUMBER_MAX_LENGTH = 32


def check_password(password: SecretStr, confirm: SecretStr | None, mobile: str | None) -> None:
    """The stated strength rule: 8 to 64 characters, at least one letter and one digit, and not
    containing the account's mobile number. ``confirm`` (when given) must repeat it."""
    value = password.get_secret_value()
    if confirm is not None and confirm.get_secret_value() != value:
        raise InvalidCommand("the password and its confirmation differ", code="PASSWORDS_DIFFER")
    weak = (
        not PASSWORD_MIN_LENGTH <= len(value) <= PASSWORD_MAX_LENGTH
        or not any(c.isalpha() for c in value)
        or not any(c.isdigit() for c in value)
        or (mobile is not None and mobile in value)
    )
    if weak:
        raise InvalidCommand(
            f"a password has {PASSWORD_MIN_LENGTH} to {PASSWORD_MAX_LENGTH} characters, at least one letter and "
            "one digit, and does not contain the mobile number",
            code="PASSWORD_TOO_WEAK",
            details={"minLength": PASSWORD_MIN_LENGTH, "maxLength": PASSWORD_MAX_LENGTH},
        )


def valid_mobile(mobile: str) -> str:
    """The mobile in normal form (``13800138000``), or ``MOBILE_INVALID``."""
    normal = normalise_mobile(mobile)
    if not MOBILE_PATTERN.fullmatch(normal) or len(mobile) > RAW_MOBILE_MAX_LENGTH:
        raise InvalidCommand("a mobile is a mainland number of 11 digits (1[3-9]xxxxxxxxx)", code="MOBILE_INVALID")
    return normal


def valid_email(email: str) -> str:
    """The email in normal form, or ``EMAIL_INVALID``."""
    normal = normalise_email(email)
    if len(normal) > EMAIL_MAX_LENGTH or not EMAIL_PATTERN.fullmatch(normal):
        raise InvalidCommand("not an email address (name@example.com)", code="EMAIL_INVALID")
    return normal


def valid_name(name: str) -> str:
    normal = " ".join(name.split())
    if not normal:
        raise InvalidCommand("a name is not blank", code="NAME_INVALID")
    return normal


# -- ports ------------------------------------------------------------------------------------


class UserKeys(Protocol):
    """One user's data key, open: seals values of that user (``infra.personal_data``)."""

    def seal(self, field_name: str, value: SecretStr) -> str: ...


class PersonalData(Protocol):
    """Per-user data keys (docs/personal-data.md)."""

    async def create_keys(self, user_id: int) -> UserKeys:
        """A new user's data key, stored wrapped before any event names the user."""
        ...

    async def keys_of(self, user_id: int) -> UserKeys:
        """The user's data key; ``NotFound`` (``USER_NOT_FOUND``) when shredded or never made."""
        ...

    async def shred(self, user_id: int) -> None:
        """Destroy the user's data key for good."""
        ...


class BlindIndexes(Protocol):
    """The keyed hash stored instead of a value, for lookups (``infra.personal_data.BlindIndex``)."""

    def mobile(self, mobile: str) -> bytes: ...

    def email(self, email: str) -> bytes: ...

    def id_number(self, id_type: IdType, number: str) -> bytes: ...


class PasswordHasher(Protocol):
    async def hash(self, password: SecretStr) -> str: ...

    async def verify(self, stored_hash: str, password: SecretStr) -> bool: ...

    def needs_rehash(self, stored_hash: str) -> bool:
        """Whether the hash was made with other parameters than the current ones."""
        ...


class UserDirectory(Protocol):
    """What the read side knows about accounts (``queries/users.py``)."""

    async def registered(self, kind: str, blind: bytes) -> bool:
        """Whether a mobile (``kind`` "mobile") or email ("email") is in use: the Bloom filter
        answers "no" alone; a "maybe" is checked against the lookup table."""
        ...

    async def projected(self, user_id: int, version: int, timeout_s: float) -> bool:
        """Wait until the read side has projected ``user-<id>`` up to ``version``; False on timeout."""
        ...

    async def holds(self, kind: str, blind: bytes, user_id: int, timeout_s: float) -> bool:
        """Wait until the read side names ``user_id`` as the holder of this mobile or email (login
        looks it up there); False on timeout."""
        ...


class UserNotConfirmed(Unavailable):
    """The account is in the log but the read side did not show it in time."""

    code = "USER_NOT_CONFIRMED"
    message = "the account was recorded but could not be confirmed in time; try to log in shortly"


@dataclass(frozen=True)
class Accounts:
    """What the account handlers work with (built by ``bootstrap.py``)."""

    store: AggregateStore
    ids: IdSource
    clock: Clock
    personal_data: PersonalData
    blind: BlindIndexes
    passwords: PasswordHasher
    directory: UserDirectory
    captcha: CaptchaGate
    ticket_buyers_max: int
    void_claims_after: timedelta
    """A claim older than this whose user is not in the log never led to an account (ADR 0007)."""
    projection_wait_s: float


# -- commands ---------------------------------------------------------------------------------


class RegisterUser(Command):
    mobile: str = Field(min_length=1, max_length=RAW_MOBILE_MAX_LENGTH, description="mainland mobile, 11 digits")
    email: str | None = Field(default=None, min_length=1, max_length=EMAIL_MAX_LENGTH)
    password: SecretStr = Field(min_length=1, max_length=PASSWORD_MAX_LENGTH * 4)
    confirm_password: SecretStr = Field(min_length=1, max_length=PASSWORD_MAX_LENGTH * 4)
    captcha_id: CaptchaId | None = None
    captcha_answer: str | None = Field(default=None, min_length=1, max_length=MAX_ANSWER_LENGTH)


class ChangeProfile(Command):
    name: str | None = Field(default=None, min_length=1, max_length=NAME_MAX_LENGTH)
    gender: Gender | None = None
    email: str | None = Field(default=None, min_length=1, max_length=EMAIL_MAX_LENGTH)
    mobile: str | None = Field(default=None, min_length=1, max_length=RAW_MOBILE_MAX_LENGTH)
    password: SecretStr | None = Field(default=None, min_length=1, max_length=PASSWORD_MAX_LENGTH * 4)
    current_password: SecretStr | None = Field(
        default=None, max_length=PASSWORD_MAX_LENGTH * 4, description="required to change the password"
    )


class VerifyRealName(Command):
    real_name: str = Field(min_length=1, max_length=NAME_MAX_LENGTH)
    id_type: IdType = IdType.ID_CARD
    id_number: str = Field(min_length=1, max_length=RAW_ID_NUMBER_MAX_LENGTH)


class AddTicketBuyer(Command):
    name: str = Field(min_length=1, max_length=NAME_MAX_LENGTH)
    id_type: IdType
    id_number: str = Field(min_length=1, max_length=RAW_ID_NUMBER_MAX_LENGTH)


class DeleteUser(Command):
    password: SecretStr = Field(min_length=1, max_length=PASSWORD_MAX_LENGTH * 4)


@dataclass(frozen=True)
class AddedTicketBuyer:
    """The buyer as added, in clear only for the masked answer the route gives."""

    ticket_buyer_id: int
    name: str
    id_type: IdType
    id_number: str


# -- field names personal values are bound to (docs/personal-data.md) --------------------------


def ticket_buyer_field(ticket_buyer_id: int, part: str) -> str:
    return f"ticket-buyer:{ticket_buyer_id}:{part}"


MOBILE_FIELD = "mobile"
EMAIL_FIELD = "email"
NAME_FIELD = "name"
REAL_NAME_FIELD = "real-name"
ID_NUMBER_FIELD = "id-number"


# -- handlers ---------------------------------------------------------------------------------


async def register_user(cmd: RegisterUser, accounts: Accounts, correlation_id: uuid.UUID | None) -> int:
    """Open an account; returns the new user id once the account can log in.

    Checks, in order, each with its own code: the passwords (match, strength); the mobile and email; the captcha when
    the gate asks for one; whether the mobile or email is in use (Bloom filter, then the lookup
    table); then the ownership aggregates decide for good (``MOBILE_TAKEN``, ``EMAIL_TAKEN``).
    """
    check_password(cmd.password, cmd.confirm_password, normalise_mobile(cmd.mobile))
    mobile = valid_mobile(cmd.mobile)
    email = valid_email(cmd.email) if cmd.email is not None else None
    await _pass_captcha(cmd, accounts.captcha)
    mobile_blind = accounts.blind.mobile(mobile)
    email_blind = accounts.blind.email(email) if email is not None else None
    if await accounts.directory.registered("mobile", mobile_blind):
        raise _taken(MobileOwnership)
    if email_blind is not None and await accounts.directory.registered("email", email_blind):
        raise _taken(EmailOwnership)

    password_hash = await accounts.passwords.hash(cmd.password)
    user_id = accounts.ids.next_entity_id()
    keys = await accounts.personal_data.create_keys(user_id)
    await _claim(accounts, MobileOwnership, mobile_blind.hex(), user_id, correlation_id)
    if email_blind is not None:
        try:
            await _claim(accounts, EmailOwnership, email_blind.hex(), user_id, correlation_id)
        except BaseException:
            await _release(accounts, MobileOwnership, mobile_blind.hex(), user_id, correlation_id)
            raise
    user = User.register(
        user_id,
        SealedValue(cipher=keys.seal(MOBILE_FIELD, SecretStr(mobile)), blind=mobile_blind.hex()),
        password_hash,
        SealedValue(cipher=keys.seal(EMAIL_FIELD, SecretStr(email)), blind=email_blind.hex())
        if email is not None and email_blind is not None
        else None,
    )
    await accounts.store.save(user, correlation_id)
    try:
        await count_registration(accounts.captcha.store)
    except CaptchaStoreUnavailable:
        log.warning("users.registration_not_counted")
    wait_s = accounts.projection_wait_s
    directory = accounts.directory
    confirmed = (
        await directory.projected(user_id, user.version, wait_s)
        and await directory.holds("mobile", mobile_blind, user_id, wait_s)
        and (email_blind is None or await directory.holds("email", email_blind, user_id, wait_s))
    )
    if not confirmed:
        raise UserNotConfirmed()
    return user_id


async def change_profile(
    user_id: int, cmd: ChangeProfile, accounts: Accounts, correlation_id: uuid.UUID | None
) -> None:
    """Change the fields given. A new mobile or email is claimed first, then the profile changes,
    then the old one is released: login by the old one stops when this returns."""
    user = await _load_user(accounts, user_id)
    mobile = valid_mobile(cmd.mobile) if cmd.mobile is not None else None
    email = valid_email(cmd.email) if cmd.email is not None else None
    name = valid_name(cmd.name) if cmd.name is not None else None
    password_hash = None
    if cmd.password is not None:
        await _check_current_password(user, cmd.current_password, accounts)
        check_password(cmd.password, None, None)
        password_hash = await accounts.passwords.hash(cmd.password)
    keys = await accounts.personal_data.keys_of(user_id)
    new_mobile = _sealed(keys, MOBILE_FIELD, mobile, accounts.blind.mobile) if mobile is not None else None
    new_email = _sealed(keys, EMAIL_FIELD, email, accounts.blind.email) if email is not None else None
    if new_mobile is not None and new_mobile.blind != user.mobile_blind:
        await _claim(accounts, MobileOwnership, new_mobile.blind, user_id, correlation_id)
    if new_email is not None and new_email.blind != user.email_blind:
        await _claim(accounts, EmailOwnership, new_email.blind, user_id, correlation_id)
    name_cipher = keys.seal(NAME_FIELD, SecretStr(name)) if name is not None else None

    def decide(current: User | None) -> User:
        current = _existing(current, user_id)
        current.change_profile(name_cipher=name_cipher, gender=cmd.gender, email=new_email, mobile=new_mobile)
        if password_hash is not None:
            current.change_password(password_hash)
        return current

    changed, _ = await change(accounts.store, User, user_key(user_id), decide, correlation_id)
    if new_mobile is not None and user.mobile_blind != new_mobile.blind:
        await _release(accounts, MobileOwnership, user.mobile_blind, user_id, correlation_id)
    if new_email is not None and user.email_blind is not None and user.email_blind != new_email.blind:
        await _release(accounts, EmailOwnership, user.email_blind, user_id, correlation_id)
    await _await_projection(accounts, changed)


async def verify_real_name(
    user_id: int, cmd: VerifyRealName, accounts: Accounts, correlation_id: uuid.UUID | None
) -> None:
    """Record the user's real name and identity document, once."""
    real_name = valid_name(cmd.real_name)
    document = identity_document(cmd.id_type, cmd.id_number, today=_today(accounts))
    keys = await accounts.personal_data.keys_of(user_id)
    number = SealedValue(
        cipher=keys.seal(ID_NUMBER_FIELD, SecretStr(document.number)),
        blind=accounts.blind.id_number(document.id_type, document.number).hex(),
    )
    name_cipher = keys.seal(REAL_NAME_FIELD, SecretStr(real_name))
    await _change_user(
        accounts, user_id, correlation_id, lambda u: u.verify_real_name(name_cipher, document.id_type, number)
    )


async def add_ticket_buyer(
    user_id: int, cmd: AddTicketBuyer, accounts: Accounts, correlation_id: uuid.UUID | None
) -> AddedTicketBuyer:
    """Add a person the user may buy for; one document once, at most ``ticket_buyers_max``."""
    name = valid_name(cmd.name)
    document = identity_document(cmd.id_type, cmd.id_number, today=_today(accounts))
    ticket_buyer_id = accounts.ids.next_entity_id()
    keys = await accounts.personal_data.keys_of(user_id)
    number = SealedValue(
        cipher=keys.seal(ticket_buyer_field(ticket_buyer_id, ID_NUMBER_FIELD), SecretStr(document.number)),
        blind=accounts.blind.id_number(document.id_type, document.number).hex(),
    )
    name_cipher = keys.seal(ticket_buyer_field(ticket_buyer_id, NAME_FIELD), SecretStr(name))
    limit = accounts.ticket_buyers_max
    await _change_user(
        accounts,
        user_id,
        correlation_id,
        lambda u: u.add_ticket_buyer(ticket_buyer_id, name_cipher, document.id_type, number, limit=limit),
    )
    return AddedTicketBuyer(ticket_buyer_id, name, document.id_type, document.number)


async def remove_ticket_buyer(
    user_id: int, ticket_buyer_id: int, accounts: Accounts, correlation_id: uuid.UUID | None
) -> None:
    await _change_user(accounts, user_id, correlation_id, lambda u: u.remove_ticket_buyer(ticket_buyer_id))


async def delete_user(user_id: int, cmd: DeleteUser, accounts: Accounts, correlation_id: uuid.UUID | None) -> None:
    """Close the account (the password proves it is the owner): ``UserDeleted``, the data key
    destroyed (so nobody can read this person's data again), the mobile and email released."""
    user = await _load_user(accounts, user_id)
    await _check_current_password(user, cmd.password, accounts)

    def decide(current: User | None) -> User:
        current = _existing(current, user_id)
        current.delete()
        return current

    deleted, _ = await change(accounts.store, User, user_key(user_id), decide, correlation_id)
    # Shred first: the user projector shreds on UserDeleted too, so a crash from here on still
    # ends with the key destroyed; an unreleased mobile or email is void after the deadline.
    await accounts.personal_data.shred(user_id)
    await _release(accounts, MobileOwnership, deleted.mobile_blind, user_id, correlation_id)
    if deleted.email_blind is not None:
        await _release(accounts, EmailOwnership, deleted.email_blind, user_id, correlation_id)
    await _await_projection(accounts, deleted)


async def rehash_password(
    user_id: int, password: SecretStr, accounts: Accounts, correlation_id: uuid.UUID | None = None
) -> None:
    """After a successful login with a hash of older parameters: store a hash under the current
    ones (``PasswordChanged``), unless the password changed meanwhile."""
    user = await _load_user(accounts, user_id)
    if not accounts.passwords.needs_rehash(user.password_hash):
        return
    if not await accounts.passwords.verify(user.password_hash, password):
        return
    fresh = await accounts.passwords.hash(password)
    await _change_user(accounts, user_id, correlation_id, lambda u: u.change_password(fresh))


async def password_matches(user_id: int, password: SecretStr, accounts: Accounts) -> bool:
    """Whether ``password`` is the account's, as the log has it (for routes that re-ask it)."""
    user = await accounts.store.load(User, user_key(user_id))
    return user is not None and not user.deleted and await accounts.passwords.verify(user.password_hash, password)


# -- the steps --------------------------------------------------------------------------------


async def _pass_captcha(cmd: RegisterUser, gate: CaptchaGate) -> None:
    """When the gate asks for a captcha: ``CAPTCHA_REQUIRED`` without an answer, ``CAPTCHA_WRONG``
    for a wrong, used or expired one. An id no check handed out counts as a fresh check."""
    required = await captcha_required_for(cmd.captcha_id, gate.store) if cmd.captcha_id is not None else None
    if required is None:
        required = gate.rule.always or gate.rule.required(await gate.store.registrations_in_window())
    if not required:
        return
    if cmd.captcha_id is None or cmd.captcha_answer is None:
        raise InvalidCommand(
            "a captcha is required: check for one (POST /api/v1/captcha/check), draw it, and send its answer",
            code="CAPTCHA_REQUIRED",
        )
    if not await verify_captcha(cmd.captcha_id, cmd.captcha_answer, gate.store):
        raise InvalidCommand("the captcha answer is wrong, used or expired; draw a new image", code="CAPTCHA_WRONG")


async def _claim(
    accounts: Accounts, cls: type[OwnershipT], blind: str, user_id: int, correlation_id: uuid.UUID | None
) -> None:
    """Make ``user_id`` the owner of the value, or raise its ``*_TAKEN``. Two concurrent claims
    load the same version; the store appends only one, the other reloads and finds it held."""
    key = cls.create_id(blind)
    for attempt in range(CHANGE_ATTEMPTS):
        ownership = await accounts.store.load(cls, key)
        if ownership is None:
            ownership = cls.first_claim(blind, user_id)
        else:
            holder = ownership.holder
            holder_exists = holder is not None and holder != user_id and await _account_exists(accounts, holder)
            ownership.claim(
                user_id, now=accounts.clock(), holder_exists=holder_exists, void_after=accounts.void_claims_after
            )
        try:
            await accounts.store.save(ownership, correlation_id)
            return
        except ConcurrentChange:
            if attempt == CHANGE_ATTEMPTS - 1:
                raise _taken(cls) from None
    raise AssertionError("unreachable")


async def _release(
    accounts: Accounts, cls: type[OwnershipT], blind: str, user_id: int, correlation_id: uuid.UUID | None
) -> None:
    def decide(ownership: OwnershipT | None) -> OwnershipT:
        if ownership is None:
            raise NotFound("no such claim", code="CLAIM_NOT_FOUND")
        ownership.release(user_id)
        return ownership

    await change(accounts.store, cls, cls.create_id(blind), decide, correlation_id)


async def _account_exists(accounts: Accounts, user_id: int) -> bool:
    user = await accounts.store.load(User, user_key(user_id))
    return user is not None and not user.deleted


def _taken(cls: type[Ownership]) -> Conflict:
    what = "mobile" if cls is MobileOwnership else "email"
    return Conflict(f"this {what} belongs to another account", code=cls.taken_code)


async def _load_user(accounts: Accounts, user_id: int) -> User:
    return _existing(await accounts.store.load(User, user_key(user_id)), user_id)


def _existing(user: User | None, user_id: int) -> User:
    if user is None or user.deleted:
        raise NotFound(f"no user {user_id}", code="USER_NOT_FOUND")
    return user


async def _check_current_password(user: User, password: SecretStr | None, accounts: Accounts) -> None:
    if password is None:
        raise InvalidCommand("the current password is required for this change", code="CURRENT_PASSWORD_REQUIRED")
    if not await accounts.passwords.verify(user.password_hash, password):
        raise Forbidden("the current password is not right", code="PASSWORD_INCORRECT")


def _sealed(keys: UserKeys, field_name: str, value: str, index: Callable[[str], bytes]) -> SealedValue:
    return SealedValue(cipher=keys.seal(field_name, SecretStr(value)), blind=index(value).hex())


async def _change_user(
    accounts: Accounts, user_id: int, correlation_id: uuid.UUID | None, act: Callable[[User], None]
) -> None:
    def decide(user: User | None) -> User:
        user = _existing(user, user_id)
        act(user)
        return user

    changed, _ = await change(accounts.store, User, user_key(user_id), decide, correlation_id)
    await _await_projection(accounts, changed)


async def _await_projection(accounts: Accounts, aggregate: Aggregate) -> None:
    """Read-your-writes for the caller; the change is in the log either way, so a slow read side
    is logged, not refused."""
    if not await accounts.directory.projected(_user_id_of(aggregate), aggregate.version, accounts.projection_wait_s):
        log.warning("users.projection_slow", aggregate=aggregate.id, version=aggregate.version)


def _user_id_of(aggregate: Aggregate) -> int:
    assert isinstance(aggregate, User)
    return aggregate.user_id


def _today(accounts: Accounts) -> date:
    now: datetime = accounts.clock()
    return now.date()
