"""The CPU cost of the metrics calls on the hot paths (issue 13), timed alone with timeit.

- per API request: what ``RequestContextMiddleware`` does for metrics once a request is answered
  (its recorder looked up by method, route template and status; the counter's ``inc``; the latency
  histogram's ``observe``), and the same with the labels resolved every time (no recorder cache);
- per processor batch: ``ProcessorMetrics.batch`` (a counter and two histograms);
- per allocator script call: ``ALLOCATOR_LUA_SECONDS.time()`` around nothing.

Each is the best of ``--repeat`` runs of ``--number`` calls, in µs per call. Compare with the time
a request takes (bench/README.md, "Issue 11: the purchase path under load"); the API's share measured
as requests/s of real servers with the metrics on and off is ``bench/request_metrics.py``.
"""

from __future__ import annotations

import argparse
import timeit

from infra.metrics import ALLOCATOR_LUA_SECONDS, HTTP_LATENCY, HTTP_REQUESTS, ProcessorMetrics

ROUTE = "/api/v1/orders"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    recorders = {("POST", ROUTE, 202): (HTTP_REQUESTS.labels("POST", ROUTE, "202"), HTTP_LATENCY.labels("POST", ROUTE))}
    batches = ProcessorMetrics("bench", "allocator")

    def request_cached() -> None:
        recorder = recorders.get(("POST", ROUTE, 202))
        assert recorder is not None
        recorder[0].inc()
        recorder[1].observe(0.0012)

    def request_uncached() -> None:
        HTTP_REQUESTS.labels("POST", ROUTE, "202").inc()
        HTTP_LATENCY.labels("POST", ROUTE).observe(0.0012)

    def batch() -> None:
        batches.batch(100, 0.012)

    def lua_timer() -> None:
        with ALLOCATOR_LUA_SECONDS.time():
            pass

    def nothing() -> None:
        pass

    calls = {
        "empty call (the timing's own cost)": nothing,
        "API request, as the middleware does it (recorder cached)": request_cached,
        "API request, labels resolved each time": request_uncached,
        "processor batch (ProcessorMetrics.batch)": batch,
        "allocator script call (ALLOCATOR_LUA_SECONDS.time())": lua_timer,
    }
    for name, call in calls.items():
        best = min(timeit.repeat(call, number=args.number, repeat=args.repeat)) / args.number
        print(f"{best * 1e6:7.3f} µs  {name}")


if __name__ == "__main__":
    main()
