"""What the dashboard and the alert rules may query: the metrics issue 13's processes export, and
the metric names a PromQL expression uses."""

from __future__ import annotations

import re

COUNTERS = {
    "damai_http_requests_total",
    "damai_processor_events_total",
    "damai_dead_letters_total",
    "damai_projector_gaps_total",
    "damai_allocator_decisions_total",
    "damai_payment_notifications_total",
    "damai_refund_attempts_total",
}
GAUGES = {"damai_consumer_lag_messages", "damai_expiry_backlog_orders"}
HISTOGRAMS = {
    "damai_http_request_seconds",
    "damai_processor_batch_events",
    "damai_processor_batch_seconds",
    "damai_allocator_lua_seconds",
    "damai_allocator_batch_seconds",
    "damai_expiry_lateness_seconds",
}
METRICS = COUNTERS | GAUGES | HISTOGRAMS
HISTOGRAM_SERIES = ("_bucket", "_sum", "_count")

# Parts of an expression that hold no metric name: quoted label values, label matchers, ranges,
# grouping clauses, then numbers and durations.
_NOT_NAMES = (
    re.compile(r'"(?:[^"\\]|\\.)*"'),
    re.compile(r"\{[^}]*\}"),
    re.compile(r"\[[^\]]*\]"),
    re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)"),
    re.compile(r"\b\d+(?:\.\d+)?(?:ms|[smhdwy])?\b"),
)
_IDENTIFIER = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*(?=\s*(\()?)")
_KEYWORDS = {"and", "or", "unless", "offset", "bool"}


def metric_names(expr: str) -> set[str]:
    """The metric names ``expr`` selects, each histogram series named by its histogram."""
    for pattern in _NOT_NAMES:
        expr = pattern.sub(" ", expr)
    names = set()
    for match in _IDENTIFIER.finditer(expr):
        name, is_call = match.group(0), match.group(1) is not None
        if is_call or name in _KEYWORDS:
            continue
        for suffix in HISTOGRAM_SERIES:
            if name.endswith(suffix) and name.removesuffix(suffix) in HISTOGRAMS:
                name = name.removesuffix(suffix)
        names.add(name)
    return names
