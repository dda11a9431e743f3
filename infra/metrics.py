"""Prometheus metrics shared by the API and the stream workers."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

HTTP_REQUESTS = Counter("damai_http_requests_total", "HTTP requests answered", ["method", "route", "status"])
HTTP_LATENCY = Histogram("damai_http_request_seconds", "HTTP request latency", ["method", "route"])
EVENTS_PUBLISHED = Counter("damai_events_published_total", "Events acknowledged by Kafka", ["topic", "type"])
EVENTS_PROJECTED = Counter("damai_events_projected_total", "Events applied by a projector", ["projector"])
EVENTS_SKIPPED = Counter(
    "damai_events_skipped_total", "Redelivered events a projector had already applied", ["projector"]
)
DEAD_LETTERS = Counter("damai_dead_letters_total", "Messages sent to a dead-letter topic", ["consumer_group", "reason"])
PROJECTOR_RETRIES = Counter(
    "damai_projector_retries_total", "Batches retried after a transient store error", ["projector"]
)
