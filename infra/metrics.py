"""Prometheus metrics shared by the API and the stream workers."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

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
