"""Prometheus metrics shared by the API and the stream workers (docs/operations.md, "Metrics"), and
the /metrics endpoint of a processor process."""

from __future__ import annotations

import structlog
from prometheus_client import Counter, Gauge, Histogram, start_http_server

from infra.settings import Settings

log = structlog.get_logger(__name__)

METRICS_HOST = "127.0.0.1"
"""A processor's /metrics is for the local Prometheus only."""
BATCH_EVENTS_BUCKETS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000)
BATCH_SECONDS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
LUA_SECONDS_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25)
LATENESS_SECONDS_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)

HTTP_REQUESTS = Counter("damai_http_requests_total", "HTTP requests answered", ["method", "route", "status"])
HTTP_LATENCY = Histogram("damai_http_request_seconds", "HTTP request latency", ["method", "route"])
EVENTS_PUBLISHED = Counter("damai_events_published_total", "Events acknowledged by Kafka", ["topic", "type"])
EVENTS_PROJECTED = Counter("damai_events_projected_total", "Events applied by a projector", ["projector"])
DEAD_LETTERS = Counter("damai_dead_letters_total", "Messages sent to a dead-letter topic", ["consumer_group", "reason"])
PROJECTOR_GAPS = Counter(
    "damai_projector_gaps_total",
    "Batches that began past the offset after the last one a projector applied: events it never saw",
    ["projector"],
)
PROJECTOR_RETRIES = Counter(
    "damai_projector_retries_total", "Batches retried after a transient store error", ["projector"]
)
CACHE_HITS = Counter(
    "damai_cache_hits_total",
    "Cache lookups a layer answered (kind: found, or missing = a cached or Bloom-filtered unknown id)",
    ["cache", "layer", "kind"],
)
CACHE_MISSES = Counter("damai_cache_misses_total", "Cache lookups a layer could not answer", ["cache", "layer"])
CACHE_LOADS = Counter("damai_cache_loads_total", "Loads from the store of record behind a cache", ["cache", "outcome"])
CACHE_LOAD_SECONDS = Histogram("damai_cache_load_seconds", "Duration of loads from the store of record", ["cache"])
CACHE_REDIS_ERRORS = Counter(
    "damai_cache_redis_errors_total", "Redis errors a cache worked around by going to the store of record", ["cache"]
)
CACHE_INVALIDATIONS = Counter(
    "damai_cache_invalidations_total", "Invalidation messages applied to this process's cache", ["cache"]
)
SEARCH_FALLBACKS = Counter(
    "damai_search_fallbacks_total", "Program searches answered from Postgres because Elasticsearch was down"
)
RATE_LIMITED = Counter(
    "damai_rate_limited_total", "Requests refused with 429 because their IP address was over a limit", ["group"]
)
ALLOCATOR_DECISIONS = Counter(
    "damai_allocator_decisions_total",
    "Order requests the allocator decided, by outcome (held or the rejection code) and whether decided before",
    ["outcome", "again"],
)
ALLOCATOR_BATCH_SECONDS = Histogram(
    "damai_allocator_batch_seconds",
    "One fetch of order requests decided, appended and committed",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
ORDERS_ENDED = Counter(
    "damai_orders_ended_total", "Held orders ended by the lifecycle, by how (cancelled, expired, paid)", ["outcome"]
)
PAYMENT_NOTIFICATIONS = Counter(
    "damai_payment_notifications_total",
    "Provider notifications answered (outcome: recorded, duplicate, not_paid, or the reason it was refused)",
    ["channel", "outcome"],
)
PAYMENTS_RECONCILED = Counter(
    "damai_payments_reconciled_total",
    "Open bills the reconciler asked the provider about (outcome: paid, open, ended, unavailable)",
    ["outcome"],
)
REFUND_ATTEMPTS = Counter(
    "damai_refund_attempts_total", "Refunds asked of a provider (outcome: refunded, failed)", ["outcome"]
)
PROCESSOR_EVENTS = Counter(
    "damai_processor_events_total",
    "Records a stream processor handled: applied, decided, or set aside (dead-lettered, not its event)",
    ["group", "processor"],
)
PROCESSOR_BATCH_EVENTS = Histogram(
    "damai_processor_batch_events",
    "Records in one batch a processor handled",
    ["group", "processor"],
    buckets=BATCH_EVENTS_BUCKETS,
)
PROCESSOR_BATCH_SECONDS = Histogram(
    "damai_processor_batch_seconds",
    "Time a processor took to apply or decide one batch (store outages waited out included)",
    ["group", "processor"],
    buckets=BATCH_SECONDS_BUCKETS,
)
CONSUMER_LAG = Gauge(
    "damai_consumer_lag_messages",
    "The broker's end offset minus the group's committed offset, per partition the reporting process owns",
    ["group", "topic", "partition"],
)
ALLOCATOR_LUA_SECONDS = Histogram(
    "damai_allocator_lua_seconds",
    "One call of lua/order_reserve.lua (one program's requests of a batch)",
    buckets=LUA_SECONDS_BUCKETS,
)
EXPIRY_BACKLOG = Gauge(
    "damai_expiry_backlog_orders",
    "Holds past their payment deadline not yet expired, over this lifecycle's partitions",
)
EXPIRY_LATENESS = Histogram(
    "damai_expiry_lateness_seconds",
    "How long after its payment deadline a hold was expired",
    buckets=LATENESS_SECONDS_BUCKETS,
)


class ProcessorMetrics:
    """One processor's children of the ``damai_processor_*`` metrics, labelled once (a label lookup
    costs more than the count)."""

    def __init__(self, group: str, processor: str) -> None:
        self._events = PROCESSOR_EVENTS.labels(group=group, processor=processor)
        self._sizes = PROCESSOR_BATCH_EVENTS.labels(group=group, processor=processor)
        self._seconds = PROCESSOR_BATCH_SECONDS.labels(group=group, processor=processor)

    def batch(self, events: int, seconds: float) -> None:
        """A batch of ``events`` records handled in ``seconds``."""
        self._events.inc(events)
        self._sizes.observe(events)
        self._seconds.observe(seconds)


def metrics_port(settings: Settings, kind: str) -> int:
    """The /metrics port of a processor of ``kind`` (worker, allocator, lifecycle, payments): its own
    when set, else its kind's; 0 is none."""
    if settings.observability.metrics_port is not None:
        return settings.observability.metrics_port
    return settings.observability.metrics_ports.get(kind, 0)


def serve_metrics(settings: Settings, kind: str) -> int | None:
    """Serve this process's metrics at http://127.0.0.1:<port>/metrics from a thread of their own;
    the port, or None when off or taken (the processor runs on without: a second process of a kind
    on one machine must not die of its port)."""
    port = metrics_port(settings, kind)
    if not port:
        log.info("metrics.off", kind=kind)
        return None
    try:
        start_http_server(port, addr=METRICS_HOST)
    except OSError as exc:
        log.warning(
            "metrics.port_unavailable",
            kind=kind,
            port=port,
            error=str(exc),
            hint="running without /metrics; give this process its own DAMAI_OBSERVABILITY__METRICS_PORT",
        )
        return None
    log.info("metrics.serving", kind=kind, url=f"http://{METRICS_HOST}:{port}/metrics")
    return port
