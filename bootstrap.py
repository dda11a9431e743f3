"""The one composition root: opens the adapters (``infra/``) and wires them into the command
handlers (``commands/``) and the read side (``queries/``), for the API, the workers and the CLI.

- ``Adapters``: Redis with its scripts, the sharded Postgres (one handle), Elasticsearch.
- ``open_command_side``: the publisher, the id service and the handlers' dependencies
  (``Catalogue``, ``Reference``, ``Accounts``, ``Sessions``, the captcha gate).
- ``open_read_side``: the caches and the search the queries go through.
- ``open_api``: all three, as the API holds them for its lifetime.
"""

from __future__ import annotations

import functools
import secrets
from collections.abc import Callable, Hashable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import structlog
from elasticsearch import AsyncElasticsearch
from elasticsearch import ConnectionError as SearchConnectionError
from pydantic import SecretStr
from redis.asyncio import Redis

from commands.captcha import CaptchaGate
from commands.order import Orders
from commands.payment import Payments
from commands.ports import PaymentProvider
from commands.program import Catalogue
from commands.reference import Reference
from commands.sessions import Sessions
from commands.user import Accounts, rehash_password
from infra.aggregate_store import AggregateStore
from infra.captcha import LibraryCaptchaImages, RedisCaptchaStore, captcha_rule
from infra.ids import IdService
from infra.kafka import EventPublisher
from infra.login_attempts import LoginAttempts
from infra.order_store import (
    GeneOrderNumbers,
    RedisDecisions,
    RedisOrderAdmission,
    RedisOrderIndex,
    RedisPayBills,
    RedisTicketBuyers,
)
from infra.passwords import Passwords
from infra.payments.alipay import AlipayProvider
from infra.personal_data import BlindIndex, MasterKeyring
from infra.personal_data.postgres_store import PostgresDataKeyStore
from infra.personal_data.vault import PersonalDataVault
from infra.postgres.pools import ShardPools
from infra.postgres.routing import shard_layout
from infra.postgres.sharded import ShardedDatabase
from infra.redis import LuaScripts, create_redis
from infra.revocations import RevokedTokens
from infra.search import apply_index_templates, create_elasticsearch, index_name
from infra.settings import Settings
from infra.tokens import AccessTokens
from queries.cache import ProgramDetailCache, RemainingCounts
from queries.cache.micro import MicroCache
from queries.order_payments import FreshPayments
from queries.orders import CataloguePrograms, OrderReads
from queries.refund_policies import DetailRefundPolicies
from queries.search import ProgramSearch
from queries.seat_map import SeatLayouts
from queries.users import UserReads

log = structlog.get_logger(__name__)


@dataclass
class Adapters:
    """The stores every process talks to, opened and closed together."""

    settings: Settings
    redis: Redis
    scripts: LuaScripts
    db: ShardedDatabase
    es: AsyncElasticsearch

    @classmethod
    def create(cls, settings: Settings) -> Adapters:
        """The clients, not yet connected (a worker builds its projectors on them before it starts)."""
        redis = create_redis(settings.redis)
        pools = ShardPools(settings.postgres)
        es = create_elasticsearch(settings.elasticsearch)
        return cls(settings, redis, LuaScripts(redis), ShardedDatabase(pools, shard_layout(settings)), es)

    @classmethod
    async def open(cls, settings: Settings, *, index_templates: bool = True) -> Adapters:
        adapters = cls.create(settings)
        await adapters.start(index_templates=index_templates)
        return adapters

    async def start(self, *, index_templates: bool = True) -> None:
        """Connect; with ``index_templates``, bring the search indices up to their mappings too."""
        await self.scripts.preload(self.redis)
        await self.db.pools.start()
        if not index_templates:
            return
        try:
            await apply_index_templates(self.es, self.settings.elasticsearch)
        except SearchConnectionError as exc:
            # Search is the one store a process can start without: `damai stack up` stored the
            # templates already, queries fall back to Postgres, projectors retry their writes.
            log.warning("bootstrap.search_unavailable_at_start", error=repr(exc))

    async def close(self) -> None:
        await self.redis.aclose()
        await self.db.pools.stop()
        await self.es.close()


@dataclass
class CommandSide:
    publisher: EventPublisher
    ids: IdService
    catalogue: Catalogue
    reference: Reference
    captcha: CaptchaGate
    tokens: AccessTokens
    revoked: RevokedTokens
    accounts: Accounts
    sessions: Sessions
    orders: Orders
    payments: Payments


def payment_providers(settings: Settings) -> dict[str, PaymentProvider]:
    """The adapters of the channels buyers may pay by (``payments.channels``)."""
    alipay = settings.payments.alipay
    if not alipay.notify_url:
        own = f"http://{settings.api.host}:{settings.api.port}/api/v1/payments/alipay/notify"
        alipay = alipay.model_copy(update={"notify_url": own})
    known: dict[str, Callable[[], PaymentProvider]] = {
        "alipay": lambda: AlipayProvider(alipay, settings.state_dir),
    }
    return {channel: known[channel]() for channel in settings.payments.channels}


async def open_command_side(
    adapters: Adapters, exit_stack: AsyncExitStack, reads: ReadSide | None = None
) -> CommandSide:
    """The handlers' dependencies; what they hold open is closed with ``exit_stack``. ``reads`` is the
    read side the handlers consult (the API passes its own; others get a fresh one)."""
    settings = adapters.settings
    publisher = EventPublisher(settings.kafka)
    await publisher.start()
    exit_stack.push_async_callback(publisher.stop)
    ids = await exit_stack.enter_async_context(IdService.start(adapters.redis, adapters.scripts, settings.ids))
    store = AggregateStore(settings, adapters.redis, adapters.scripts, publisher)
    catalogue = Catalogue(store, ids, lambda: datetime.now(UTC), settings.catalogue)
    captcha = CaptchaGate(
        RedisCaptchaStore(adapters.redis, adapters.scripts, settings.captcha),
        LibraryCaptchaImages.of(settings.captcha),
        captcha_rule(settings.captcha),
    )
    revoked = RevokedTokens(
        adapters.redis, settings.users, settings.tokens.access_token_ttl_s, leeway_s=settings.tokens.leeway_s
    )
    await revoked.start()
    exit_stack.push_async_callback(revoked.stop)
    tokens = AccessTokens(settings.tokens)
    passwords = Passwords(settings.passwords)
    blind = BlindIndex.from_settings(settings.security)
    consulted = _ConsultedReads.of(reads) if reads is not None else _ConsultedReads.idle(adapters, exit_stack)
    users = consulted.users
    accounts = Accounts(
        store=store,
        ids=ids,
        clock=lambda: datetime.now(UTC),
        personal_data=personal_data_vault(adapters),
        blind=blind,
        passwords=passwords,
        directory=users,
        captcha=captcha,
        ticket_buyers_max=settings.users.ticket_buyers_max,
        void_claims_after=timedelta(milliseconds=store.pending_ms),
        projection_wait_s=settings.users.registration_wait_s,
    )
    sessions = Sessions(
        blind=blind,
        credentials=users,
        failures=LoginAttempts(adapters.redis, adapters.scripts, settings.users),
        passwords=passwords,
        tokens=tokens,
        revocations=revoked,
        dummy_hash=await passwords.hash(SecretStr(secrets.token_urlsafe(16))),
        rehash=functools.partial(rehash_password, accounts=accounts),
    )
    orders = Orders(
        programs=CataloguePrograms(consulted.program_details),
        ticket_buyers=RedisTicketBuyers(adapters.redis, settings),
        availability=consulted.remaining,
        admission=RedisOrderAdmission(adapters.redis, adapters.scripts, settings),
        index=consulted.order_index,
        decisions=RedisDecisions(adapters.redis),
        numbers=GeneOrderNumbers(ids, adapters.db.layout),
        log=publisher,
        clock=lambda: datetime.now(UTC),
        decision_deadline=timedelta(seconds=settings.orders.decision_deadline_s),
        append_timeout_s=settings.api.command_ack_timeout_s,
    )
    providers = payment_providers(settings)
    for provider in providers.values():
        exit_stack.push_async_callback(provider.aclose)
    payments = Payments(
        store=store,
        providers=providers,
        index=consulted.order_index,
        decisions=RedisDecisions(adapters.redis),
        bills=RedisPayBills(adapters.redis, settings),
        policies=DetailRefundPolicies(consulted.program_details),
        ids=ids,
        log=publisher,
        clock=lambda: datetime.now(UTC),
        append_timeout_s=settings.api.command_ack_timeout_s,
    )
    return CommandSide(
        publisher, ids, catalogue, Reference(store), captcha, tokens, revoked, accounts, sessions, orders, payments
    )


@dataclass
class _ConsultedReads:
    """What of the read side the handlers consult."""

    program_details: ProgramDetailCache
    remaining: RemainingCounts
    users: UserReads
    order_index: RedisOrderIndex

    @classmethod
    def of(cls, reads: ReadSide) -> _ConsultedReads:
        return cls(reads.program_details, reads.remaining, reads.users, reads.order_index)

    @classmethod
    def idle(cls, adapters: Adapters, exit_stack: AsyncExitStack) -> _ConsultedReads:
        """For a process without a read side (the CLI): the same readers, without their background
        work (no invalidation listener, no Bloom filter builds)."""
        remaining = RemainingCounts.open(adapters.settings)
        exit_stack.push_async_callback(remaining.close)
        details = ProgramDetailCache.open(adapters.db, adapters.settings)
        exit_stack.push_async_callback(details.stop)
        return cls(
            details,
            remaining,
            user_reads(adapters),
            RedisOrderIndex(adapters.redis, adapters.settings),
        )


def personal_data_vault(adapters: Adapters) -> PersonalDataVault:
    return PersonalDataVault(MasterKeyring.from_settings(adapters.settings.security), PostgresDataKeyStore(adapters.db))


def user_reads(adapters: Adapters) -> UserReads:
    return UserReads(adapters.db, adapters.redis, adapters.settings.users, personal_data_vault(adapters))


@dataclass
class ReadSide:
    program_details: ProgramDetailCache
    remaining: RemainingCounts
    search: ProgramSearch
    search_pages: MicroCache[Hashable, bytes]
    seat_maps: MicroCache[tuple[int, int, int | None], bytes]
    seat_layouts: SeatLayouts
    users: UserReads
    order_index: RedisOrderIndex
    orders: OrderReads


async def open_read_side(adapters: Adapters, exit_stack: AsyncExitStack) -> ReadSide:
    """The caches and the search the queries read through; closed with ``exit_stack``."""
    settings = adapters.settings
    program_details = ProgramDetailCache.open(adapters.db, settings)
    await program_details.start()
    exit_stack.push_async_callback(program_details.stop)
    remaining = RemainingCounts.open(settings)
    exit_stack.push_async_callback(remaining.close)
    search = ProgramSearch(
        adapters.es,
        index_name(settings.elasticsearch, "program"),
        adapters.db,
        ZoneInfo(settings.api.timezone),
        settings.elasticsearch.retry_after_s,
        remaining,
    )
    search_pages: MicroCache[Hashable, bytes] = MicroCache(
        "search_pages", settings.api.search_cache_ttl_s, settings.api.search_cache_max_entries
    )
    seat_maps: MicroCache[tuple[int, int, int | None], bytes] = MicroCache(
        "seat_maps", settings.program_cache.seat_map_ttl_s, settings.program_cache.local_max_entries
    )
    seat_layouts = SeatLayouts(
        adapters.redis, settings.program_cache.seat_layouts_max_entries, settings.program_cache.seat_map_ttl_s
    )
    users = user_reads(adapters)
    await users.start()
    exit_stack.push_async_callback(users.stop)
    order_index = RedisOrderIndex(adapters.redis, settings)
    orders = OrderReads(RedisDecisions(adapters.redis), order_index, adapters.db, FreshPayments(adapters.redis))
    return ReadSide(
        program_details, remaining, search, search_pages, seat_maps, seat_layouts, users, order_index, orders
    )


@dataclass
class Resources:
    """What the API holds for its lifetime."""

    settings: Settings
    adapters: Adapters
    commands: CommandSide
    reads: ReadSide
    _exit: AsyncExitStack

    @property
    def redis(self) -> Redis:
        return self.adapters.redis

    @property
    def db(self) -> ShardedDatabase:
        return self.adapters.db

    @classmethod
    async def open(cls, settings: Settings) -> Resources:
        return await open_api(settings)

    async def close(self) -> None:
        await self._exit.aclose()


async def open_api(settings: Settings) -> Resources:
    exit_stack = AsyncExitStack()
    adapters = await Adapters.open(settings)
    exit_stack.push_async_callback(adapters.close)
    try:
        reads = await open_read_side(adapters, exit_stack)
        commands = await open_command_side(adapters, exit_stack, reads)
    except BaseException:
        await exit_stack.aclose()
        raise
    return Resources(settings, adapters, commands, reads, exit_stack)
