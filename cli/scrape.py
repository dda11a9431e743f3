"""One read of a process's /metrics (Prometheus text format): counter totals and the latency of
each route from its histogram, computed here so that ``damai status`` needs no Prometheus."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import httpx
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

# A local process answers at once or is not serving its metrics.
SCRAPE_TIMEOUT_S = 1.0
HTTP_LATENCY = "damai_http_request_seconds"


@dataclass(frozen=True)
class RouteLatency:
    method: str
    route: str
    requests: int
    p99_s: float
    mean_s: float


async def scrape(http: httpx.AsyncClient, url: str) -> list[Sample] | None:
    """Every sample ``url`` serves, or None when it does not answer."""
    try:
        response = await http.get(url, timeout=SCRAPE_TIMEOUT_S)
        response.raise_for_status()
    except httpx.HTTPError:
        return None
    return [sample for family in text_string_to_metric_families(response.text) for sample in family.samples]


def total(samples: Iterable[Sample], name: str, by: str | None = None) -> dict[str, float]:
    """The sum of the samples named ``name`` per value of the label ``by`` (all under "" without)."""
    sums: dict[str, float] = defaultdict(float)
    for sample in samples:
        if sample.name == name:
            sums[sample.labels.get(by, "") if by else ""] += sample.value
    return dict(sums)


def quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float:
    """The ``q`` quantile of a cumulative histogram's ``(upper bound, count)`` buckets, interpolated
    within its bucket as Prometheus' histogram_quantile does (NaN when it counts nothing)."""
    ordered = sorted(buckets)
    if not ordered or ordered[-1][1] == 0:
        return math.nan
    rank = q * ordered[-1][1]
    lower, below = 0.0, 0.0
    for upper, count in ordered:
        if count >= rank:
            if math.isinf(upper):
                return lower
            return lower + (upper - lower) * (rank - below) / (count - below) if count > below else upper
        lower, below = upper, count
    return lower


def route_latencies(samples: Iterable[Sample]) -> list[RouteLatency]:
    """Each route's request count, p99 and mean latency since the API started, slowest first."""
    buckets: dict[tuple[str, str], list[tuple[float, float]]] = defaultdict(list)
    sums: dict[tuple[str, str], float] = {}
    counts: dict[tuple[str, str], float] = {}
    for sample in samples:
        key = (sample.labels.get("method", ""), sample.labels.get("route", ""))
        if sample.name == f"{HTTP_LATENCY}_bucket":
            buckets[key].append((float(sample.labels["le"]), sample.value))
        elif sample.name == f"{HTTP_LATENCY}_sum":
            sums[key] = sample.value
        elif sample.name == f"{HTTP_LATENCY}_count":
            counts[key] = sample.value
    latencies = [
        RouteLatency(
            method, route, int(count), quantile(0.99, buckets[(method, route)]), sums.get((method, route), 0.0) / count
        )
        for (method, route), count in counts.items()
        if count > 0
    ]
    return sorted(latencies, key=lambda r: (r.p99_s, r.mean_s), reverse=True)
