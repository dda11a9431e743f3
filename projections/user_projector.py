"""Projects users into their Postgres shards (user, ticket buyers, the mobile and email lookups),
then into Redis: the user's state and ticket buyers for the purchase path and registration's wait,
and the registration Bloom filter.

Every row follows one aggregate's version: a user row and its ticket buyers ``user-<id>``, a
lookup row its ``mobile-<blind>`` (``email-<blind>``) ownership. A release keeps the lookup row as a
tombstone at the release's version, so no replayed older claim brings the mapping back (ADR 0007).
"""

from __future__ import annotations

from collections import defaultdict

from redis.asyncio import Redis

from events.base import DomainEvent
from events.envelope import EventEnvelope
from events.serialization import payload_of
from events.user import (
    EmailClaimed,
    EmailEvent,
    MobileClaimed,
    MobileEvent,
    PasswordChanged,
    ProfileChanged,
    RealNameVerified,
    TicketBuyerAdded,
    TicketBuyerRemoved,
    UserDeleted,
    UserEvent,
    UserRegistered,
)
from infra.personal_data.postgres_store import SHRED_DATA_KEYS
from infra.postgres.pools import ShardPools
from infra.postgres.routing import ShardLayout
from infra.redis import LuaScripts
from infra.redis_keys import user_state, user_ticket_buyers
from infra.settings import Settings
from projections.batch import Delivered
from projections.projector import Batch, OffsetsInEveryShard, RowWrite, apply_row_writes
from queries.cache.user_bloom import add_identifiers_to_bloom
from queries.views.users import UserStatus

INSERT_USER = f"""
INSERT INTO {{table}} (id, mobile_cipher, mobile_blind, email_cipher, email_blind, password_hash, status,
    aggregate_version, created_at)
VALUES ($1, $2, $3, $4, $5, $6, '{UserStatus.ACTIVE}', $7, $8)
ON CONFLICT (id) DO NOTHING
"""
# Updates name the event's version and skip rows that already have it (or a newer one).
CHANGE_PROFILE = """
UPDATE {table} SET name_cipher = COALESCE($2, name_cipher), gender = COALESCE($3, gender),
    email_cipher = COALESCE($4, email_cipher), email_blind = COALESCE($5, email_blind),
    mobile_cipher = COALESCE($6, mobile_cipher), mobile_blind = COALESCE($7, mobile_blind),
    aggregate_version = $8, updated_at = now()
WHERE id = $1 AND aggregate_version < $8
"""
CHANGE_PASSWORD = """
UPDATE {table} SET password_hash = $2, aggregate_version = $3, updated_at = now()
WHERE id = $1 AND aggregate_version < $3
"""
VERIFY_REAL_NAME = """
UPDATE {table} SET real_name_verified = true, real_name_cipher = $2, id_type = $3, id_number_cipher = $4,
    id_number_blind = $5, aggregate_version = $6, updated_at = now()
WHERE id = $1 AND aggregate_version < $6
"""
DELETE_USER = f"""
UPDATE {{table}} SET status = '{UserStatus.DELETED}', aggregate_version = $2, updated_at = now()
WHERE id = $1 AND aggregate_version < $2
"""
# The user row carries the newest version of any event of the user, ticket buyers' included.
ADVANCE_USER_VERSION = """
UPDATE {table} SET aggregate_version = $2, updated_at = now()
WHERE id = $1 AND aggregate_version < $2
"""
INSERT_TICKET_BUYER = """
INSERT INTO {table} (id, user_id, name_cipher, id_type, id_number_cipher, id_number_blind, aggregate_version,
    created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
ON CONFLICT (id) DO NOTHING
"""
REMOVE_TICKET_BUYER = """
UPDATE {table} SET deleted = true, aggregate_version = $3, updated_at = now()
WHERE id = $1 AND user_id = $2 AND aggregate_version < $3
"""
REMOVE_TICKET_BUYERS_OF_USER = """
UPDATE {table} SET deleted = true, aggregate_version = $2, updated_at = now()
WHERE user_id = $1 AND NOT deleted AND aggregate_version < $2
"""


def _set_holder(column: str) -> str:
    """Claim (a user id) or release (NULL) a lookup row, newer ownership versions only."""
    return f"""
INSERT INTO {{table}} AS held ({column}, user_id, aggregate_version, created_at) VALUES ($1, $2, $3, $4)
ON CONFLICT ({column}) DO UPDATE SET
    user_id = EXCLUDED.user_id, aggregate_version = EXCLUDED.aggregate_version, updated_at = now()
WHERE held.aggregate_version < EXCLUDED.aggregate_version
"""


SET_MOBILE_HOLDER = _set_holder("mobile_blind")
SET_EMAIL_HOLDER = _set_holder("email_blind")

UserFamilyEvent = UserEvent | MobileEvent | EmailEvent
Typed = list[tuple[EventEnvelope, UserFamilyEvent]]
"""Events of a batch with their validated payloads."""


def _blind(hex_blind: str | None) -> bytes | None:
    return bytes.fromhex(hex_blind) if hex_blind is not None else None


def _user_writes(layout: ShardLayout, env: EventEnvelope, e: UserEvent) -> list[RowWrite]:
    user, buyers, v = layout.user(e.user_id), layout.ticket_buyers(e.user_id), env.aggregate_version
    match e:
        case UserRegistered():
            row = (e.user_id, e.mobile_cipher, _blind(e.mobile_blind), e.email_cipher, _blind(e.email_blind))
            return [RowWrite(user, INSERT_USER, (*row, e.password_hash, v, env.occurred_at))]
        case ProfileChanged():
            gender = e.gender.value if e.gender is not None else None
            changes = (e.name_cipher, gender, e.email_cipher, _blind(e.email_blind), e.mobile_cipher)
            return [RowWrite(user, CHANGE_PROFILE, (e.user_id, *changes, _blind(e.mobile_blind), v))]
        case PasswordChanged():
            return [RowWrite(user, CHANGE_PASSWORD, (e.user_id, e.password_hash, v))]
        case RealNameVerified():
            document = (e.id_type.value, e.id_number_cipher, _blind(e.id_number_blind))
            return [RowWrite(user, VERIFY_REAL_NAME, (e.user_id, e.real_name_cipher, *document, v))]
        case TicketBuyerAdded():
            document = (e.id_type.value, e.id_number_cipher, _blind(e.id_number_blind))
            buyer = (e.ticket_buyer_id, e.user_id, e.name_cipher, *document, v, env.occurred_at)
            return [RowWrite(buyers, INSERT_TICKET_BUYER, buyer), RowWrite(user, ADVANCE_USER_VERSION, (e.user_id, v))]
        case TicketBuyerRemoved():
            return [
                RowWrite(buyers, REMOVE_TICKET_BUYER, (e.ticket_buyer_id, e.user_id, v)),
                RowWrite(user, ADVANCE_USER_VERSION, (e.user_id, v)),
            ]
        case UserDeleted():
            return [
                RowWrite(user, DELETE_USER, (e.user_id, v)),
                RowWrite(buyers, REMOVE_TICKET_BUYERS_OF_USER, (e.user_id, v)),
                RowWrite(layout.user_data_keys(e.user_id), SHRED_DATA_KEYS, (e.user_id,)),
            ]
    # A user event with no columns here still moves the row to its version.
    return [RowWrite(user, ADVANCE_USER_VERSION, (e.user_id, v))]


def _writes(layout: ShardLayout, env: EventEnvelope, e: UserFamilyEvent) -> list[RowWrite]:
    """The row writes one event makes, in the order they apply."""
    v, at = env.aggregate_version, env.occurred_at
    match e:
        case UserEvent():
            return _user_writes(layout, env, e)
        case MobileEvent():
            blind = bytes.fromhex(e.mobile_blind)
            holder = e.user_id if isinstance(e, MobileClaimed) else None
            return [RowWrite(layout.user_mobile(blind), SET_MOBILE_HOLDER, (blind, holder, v, at))]
        case EmailEvent():
            blind = bytes.fromhex(e.email_blind)
            holder = e.user_id if isinstance(e, EmailClaimed) else None
            return [RowWrite(layout.user_email(blind), SET_EMAIL_HOLDER, (blind, holder, v, at))]
    return []


def _state_args(env: EventEnvelope, e: UserEvent) -> list[str | int]:
    """``lua/user_state_apply.lua``'s quadruple for one user event."""
    v = env.aggregate_version
    match e:
        case TicketBuyerAdded():
            return [v, "buyer_added", e.ticket_buyer_id, e.id_number_blind]
        case TicketBuyerRemoved():
            return [v, "buyer_removed", e.ticket_buyer_id, ""]
        case UserDeleted():
            return [v, "deleted", "", ""]
    return [v, "event", "", ""]


class UserRows(OffsetsInEveryShard):
    """Each database applies the batch's rows it holds, in one transaction with its offsets: the
    Postgres part of ``UserProjector``, alone what a Postgres rebuild replays."""

    def __init__(self, name: str, pools: ShardPools, layout: ShardLayout):
        self.name = name
        self._pools = pools
        self._layout = layout

    async def apply(self, batch: Batch) -> None:
        await self.write(batch, typed_user_events(batch))

    async def write(self, batch: Batch, typed: dict[Delivered, tuple[EventEnvelope, UserFamilyEvent]]) -> None:
        """Apply ``batch`` whose user events, validated once, are ``typed``."""
        await apply_row_writes(self.name, self._pools, batch, typed, lambda t: _writes(self._layout, *t))


class UserProjector(UserRows):
    """The users' rows (``UserRows``); then Redis learns of the users' new versions and ticket
    buyers, and the Bloom filter of the claimed identifiers."""

    def __init__(
        self, name: str, pools: ShardPools, layout: ShardLayout, redis: Redis, scripts: LuaScripts, settings: Settings
    ):
        super().__init__(name, pools, layout)
        self._redis = redis
        self._apply_state = scripts["user_state_apply"]
        self._settings = settings

    async def apply(self, batch: Batch) -> None:
        typed = typed_user_events(batch)
        await self.write(batch, typed)
        # After commit, for the whole batch: a retried batch whose rows were already committed
        # still reaches Redis, and the version guards make a repeat change nothing.
        events = list(typed.values())
        await self._tell_user_states(events)
        await self._tell_bloom(events)

    async def _tell_user_states(self, events: Typed) -> None:
        args_by_user: dict[int, list[str | int]] = defaultdict(list)
        for env, e in events:
            if isinstance(e, UserEvent):
                args_by_user[e.user_id] += _state_args(env, e)
        if not args_by_user:
            return
        prefix = self._settings.users.key_prefix
        async with self._redis.pipeline(transaction=False) as pipe:
            for user_id, args in args_by_user.items():
                keys = [user_state(prefix, user_id), user_ticket_buyers(prefix, user_id)]
                await self._apply_state(keys=keys, args=args, client=pipe)
            await pipe.execute()

    async def _tell_bloom(self, events: Typed) -> None:
        claimed = [
            bytes.fromhex(e.mobile_blind if isinstance(e, MobileClaimed) else e.email_blind)
            for _, e in events
            if isinstance(e, MobileClaimed | EmailClaimed)
        ]
        await add_identifiers_to_bloom(self._redis, self._settings.users, claimed)


def typed_user_events(batch: Batch) -> dict[Delivered, tuple[EventEnvelope, UserFamilyEvent]]:
    """The batch's user events by position, each payload validated once whatever the number of
    databases."""
    return {r.position: (r.item, e) for r in batch if (e := _user_family_event(r.item)) is not None}


def _user_family_event(envelope: EventEnvelope) -> UserFamilyEvent | None:
    event: DomainEvent = payload_of(envelope)
    return event if isinstance(event, UserEvent | MobileEvent | EmailEvent) else None
