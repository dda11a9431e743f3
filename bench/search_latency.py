"""Latency of GET /api/v1/programs (search) at 100 concurrent clients, beside Elasticsearch itself.

The demo catalogue (seed 7: 71 programs, 57 on sale) is published through the commands into a
namespace of its own, and the real worker projects it into Postgres and Elasticsearch. Then
``wrk`` (Debian's package: ``apt-get install wrk``) drives each path with the same fixed mix of
searches, one after another in turn (a wrk Lua script written to bench/results/search-latency/):
keywords (titles, actors, cities; Chinese), area and category filters, this week and this month,
sort by heat and by show time, and a second page.

1. the API's search with Elasticsearch up (the normal path: identical searches within
   ``search_cache_ttl_s`` share one answer);
2. the same with the page cache off (``DAMAI_API__SEARCH_CACHE_TTL_S=0``): every search asks
   Elasticsearch, except that concurrent identical ones still share one query;
3. baseline: the same searches sent straight to Elasticsearch's ``_search``, each body built by
   the project's own ``search_body``: what the API adds over the search engine;
4. baseline: the API's ``/healthz`` (no I/O): the floor of this API process and its middleware;
5. with ``--fallback``: an API process whose Elasticsearch URL refuses connections, page cache
   off, so every search takes the Postgres full route (slower, same answers).

Before measuring, every search must answer 200 with hits on every path, the API must return the
ids Elasticsearch returns, and the fallback the same totals; wrk errors fail the run. Medians of
``--rounds`` rounds, each starting with another path; the namespace (topics, indices, schema,
cache keys) is removed afterwards. The demo's shows start tomorrow, so on a Sunday or on the last
day of a month "this week" or "this month" holds no show; that search then asks for the same
calendar window as of the first show's day, as a date range (``timeWindow=range``).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import httpx
import orjson

from bench.program_detail import WARM_UP_S, Figures, Server, median_of, run_wrk, start
from cli.demo.programs import demo_program_commands
from cli.demo.seed import seed_demo
from cli.provision import provision_namespace, remove_namespace
from infra.search import index_name
from infra.settings import REPO_ROOT, Settings, get_settings
from queries.search import ProgramQuery, SortOrder, TimeWindow, search_body, window_bounds
from tests.processes import eventually, free_port, start_worker

SEED = 7  # the searches below are picked from this catalogue
CATALOGUE_READY_S = 180.0
CHECK_TIMEOUT_S = 10.0
API_SEARCH, API_UNCACHED, ES_DIRECT, HEALTHZ, FALLBACK = (
    "API search",
    "API search, no page cache",
    "Elasticsearch _search direct",
    "API /healthz",
    "API search, Postgres fallback",
)
NO_PAGE_CACHE = {"DAMAI_API__SEARCH_CACHE_TTL_S": "0"}
SEARCH_PATH = "/api/v1/programs"
QUERIES = [
    ProgramQuery(keyword="演唱会"),
    ProgramQuery(keyword="天鹅湖"),
    ProgramQuery(keyword="林夕"),
    ProgramQuery(keyword="星河乐队"),
    ProgramQuery(keyword="上海"),
    ProgramQuery(keyword="篮球", sort=SortOrder.SHOW_TIME),
    ProgramQuery(area_id=110000, parent_category_id=1),
    ProgramQuery(area_id=310000, category_id=303),
    ProgramQuery(area_id=440300, sort=SortOrder.HEAT),
    ProgramQuery(parent_category_id=8, sort=SortOrder.SHOW_TIME),
    ProgramQuery(window=TimeWindow.WEEK),
    ProgramQuery(window=TimeWindow.MONTH, sort=SortOrder.HEAT),
    ProgramQuery(sort=SortOrder.HEAT),
    ProgramQuery(sort=SortOrder.SHOW_TIME, page=2),
]
WRK_SCRIPT = """\
-- Sends the requests below in turn (one wrk thread: one rotation over all connections).
-- Written by bench/search_latency.py; each entry is {{method, path, JSON body or nil}}.
local specs = {{
{specs}
}}
local requests = {{}}
local next_request = 0

function init(args)
  for i, s in ipairs(specs) do
    local headers = s[3] and {{["Content-Type"] = "application/json"}} or nil
    requests[i] = wrk.format(s[1], s[2], headers, s[3])
  end
end

function request()
  next_request = next_request % #requests + 1
  return requests[next_request]
end
"""


@dataclass(frozen=True)
class Target:
    """One path under test: the URL wrk opens, and the script that picks each request (if any)."""

    name: str
    url: str
    script: Path | None = None


def api_path(q: ProgramQuery) -> str:
    """The API request a client sends for ``q``: only the parameters it sets."""
    default = ProgramQuery()
    params = {
        "keyword": q.keyword,
        "areaId": q.area_id,
        "parentCategoryId": q.parent_category_id,
        "categoryId": q.category_id,
        "timeWindow": q.window.value if q.window is not default.window else None,
        "startDate": q.start_date.isoformat() if q.start_date is not None else None,
        "endDate": q.end_date.isoformat() if q.end_date is not None else None,
        "sort": q.sort.value if q.sort is not default.sort else None,
        "page": q.page if q.page != default.page else None,
        "size": q.size if q.size != default.size else None,
    }
    return f"{SEARCH_PATH}?{urlencode({k: v for k, v in params.items() if v is not None})}"


def with_shows(q: ProgramQuery, now: datetime, zone: ZoneInfo) -> ProgramQuery:
    """``q``, or, if its calendar window holds none of the demo's shows, that window as of the first show's day."""
    bounds = window_bounds(q, now, zone)
    commands = demo_program_commands(SEED, now)
    shows = sorted(s.starts_at for cmd, published in commands if published for s in cmd.show_times)
    if bounds is None or any(bounds[0] <= s < bounds[1] for s in shows):
        return q
    start, end = window_bounds(q, shows[0], zone) or bounds
    return replace(q, window=TimeWindow.RANGE, start_date=start.date(), end_date=(end - timedelta(days=1)).date())


def es_request(settings: Settings, q: ProgramQuery, now: datetime) -> tuple[str, bytes]:
    """(path, body) of the ``_search`` the API sends for ``q``."""
    body = search_body(q, now, ZoneInfo(settings.api.timezone))
    index = index_name(settings.elasticsearch, "program")
    return f"/{index}/_search?ignore_unavailable=true", orjson.dumps(body)


def write_script(path: Path, requests: list[tuple[str, str, bytes | None]]) -> Path:
    lines = []
    for method, target, body in requests:
        lua_body = _lua_string(body.decode()) if body is not None else "nil"
        lines.append(f'  {{"{method}", {_lua_string(target)}, {lua_body}}},')
    path.write_text(WRK_SCRIPT.format(specs="\n".join(lines)))
    return path


def _lua_string(text: str) -> str:
    # A long bracket needs no escaping, as long as the text never closes it.
    assert "]==]" not in text
    return f"[==[{text}]==]"


async def publish_catalogue(settings: Settings, api_url: str) -> None:
    """Seed the demo catalogue; wait until the API's search counts every program on sale."""
    await seed_demo(settings, seed=SEED)
    on_sale = sum(published for _, published in demo_program_commands(SEED, datetime.now(UTC)))
    async with httpx.AsyncClient(base_url=api_url, timeout=CHECK_TIMEOUT_S) as http:

        async def indexed() -> bool:
            response = await http.get(SEARCH_PATH, params={"size": 1})
            return response.status_code == 200 and response.json()["total"] == on_sale

        await eventually(indexed, CATALOGUE_READY_S, f"{on_sale} programs on sale in the search index")


def check_answers(
    settings: Settings, api: Server, fallback: Server | None, now: datetime, queries: list[ProgramQuery]
) -> None:
    """Every search answers 200 with hits on every path, and the paths agree; raise otherwise."""
    with httpx.Client(timeout=CHECK_TIMEOUT_S) as http:
        healthz = http.get(f"{api.url}/healthz")
        assert healthz.status_code == 200, f"/healthz: {healthz.status_code}"
        for q in queries:
            found = _page(http.get(api.url + api_path(q)), API_SEARCH, q)
            path, body = es_request(settings, q, now)
            raw = http.post(
                settings.elasticsearch.url + path, content=body, headers={"Content-Type": "application/json"}
            )
            assert raw.status_code == 200, f"{ES_DIRECT} {q}: {raw.status_code} {raw.text[:300]}"
            es_ids = [h["_source"]["id"] for h in raw.json()["hits"]["hits"]]
            assert es_ids, f"{ES_DIRECT} {q}: no hits"
            assert [i["id"] for i in found["items"]] == es_ids, f"{q}: the API and Elasticsearch disagree"
            if fallback is not None:
                slow = _page(http.get(fallback.url + api_path(q)), FALLBACK, q)
                assert slow["total"] == found["total"], f"{q}: fallback total {slow['total']} != {found['total']}"


def _page(response: httpx.Response, path: str, q: ProgramQuery) -> dict[str, Any]:
    assert response.status_code == 200, f"{path} {q}: {response.status_code} {response.text[:300]}"
    page: dict[str, Any] = response.json()
    assert page["items"], f"{path} {q}: no hits"
    return page


def start_api(name: str, settings: Settings, log_dir: Path, extra_env: dict[str, str] | None = None) -> Server:
    env = {k: v for k, v in settings.namespace_env().items() if k != "DAMAI_API__PORT"}
    port = free_port()
    return start(name, ["cli.main", "serve", "--port", str(port)], {**env, **(extra_env or {})}, port, log_dir)


def measure(settings: Settings, args: argparse.Namespace, log_dir: Path) -> dict[str, list[Figures]]:
    env = {"DAMAI_LOG_LEVEL": args.log_level}
    servers: list[Server] = []
    try:
        servers.append(api := start_api(API_SEARCH, settings, log_dir, env))
        worker = start_worker(settings, log_dir / "worker.log")
        try:
            asyncio.run(publish_catalogue(settings, api.url))
        finally:
            worker.stop()  # the catalogue is in place; the worker would only share the cores
        servers.append(uncached := start_api(API_UNCACHED, settings, log_dir, {**env, **NO_PAGE_CACHE}))
        fallback = None
        if args.fallback:
            refused = f"http://127.0.0.1:{free_port()}"  # nothing listens there
            fallback_env = {**env, **NO_PAGE_CACHE, "DAMAI_ELASTICSEARCH__URL": refused}
            fallback = start_api(FALLBACK, settings, log_dir, fallback_env)
            servers.append(fallback)
        now = datetime.now(UTC)
        queries = [with_shows(q, now, ZoneInfo(settings.api.timezone)) for q in QUERIES]
        print("windows:", ", ".join(api_path(q) for q in queries if q.window is not TimeWindow.ALL), flush=True)
        check_answers(settings, api, fallback, now, queries)
        targets = [
            Target(
                API_SEARCH, api.url, write_script(log_dir / "api.lua", [("GET", api_path(q), None) for q in queries])
            ),
            Target(
                ES_DIRECT,
                settings.elasticsearch.url,
                write_script(log_dir / "es.lua", [("POST", *es_request(settings, q, now)) for q in queries]),
            ),
            Target(HEALTHZ, f"{api.url}/healthz"),
        ]
        targets.insert(1, replace(targets[0], name=API_UNCACHED, url=uncached.url))
        if fallback is not None:
            targets.append(replace(targets[0], name=FALLBACK, url=fallback.url))
        for target in targets:  # warm-up: connections, caches, the interpreter's specialisation
            run_wrk(target.url, args.connections, args.threads, WARM_UP_S, target.script)
        results: dict[str, list[Figures]] = {t.name: [] for t in targets}
        for round_number in range(args.rounds):
            # Each round starts with another path, so none always runs first or last.
            shift = round_number % len(targets)
            for t in targets[shift:] + targets[:shift]:
                results[t.name].append(run_wrk(t.url, args.connections, args.threads, args.seconds, t.script))
        return results
    finally:
        for server in servers:
            server.stop()


def report(results: dict[str, list[Figures]], args: argparse.Namespace) -> None:
    es = median_of(results[ES_DIRECT])
    print(
        f"\nGET {SEARCH_PATH}, {len(QUERIES)} searches in turn: wrk -t{args.threads} -c{args.connections} "
        f"-d{args.seconds}s, medians of {args.rounds} rounds, log level {args.log_level}"
    )
    print(f"{'path':<32} {'requests/s':>11} {'p50 ms':>8} {'p99 ms':>8} {'p50/ES':>7} {'p99/ES':>7}")
    for name, figures in results.items():
        m = median_of(figures)
        ratios = f"{m.p50_ms / es.p50_ms:>7.2f} {m.p99_ms / es.p99_ms:>7.2f}"
        print(f"{name:<32} {m.requests_per_s:>11,.0f} {m.p50_ms:>8.2f} {m.p99_ms:>8.2f} {ratios}")
        rounds = ", ".join(f"{f.requests_per_s:,.0f}/{f.p50_ms:.1f}/{f.p99_ms:.1f}" for f in figures)
        print(f"{'':<32} rounds (req/s / p50 / p99): {rounds}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=5, help="length of one wrk run")
    parser.add_argument("--connections", type=int, default=100)
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (the servers need the other cores)")
    parser.add_argument("--log-level", default="INFO", help="the API's log level (INFO writes an access line)")
    parser.add_argument("--fallback", action="store_true", help="also measure the Postgres fallback path")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is missing: apt-get install wrk")
    settings = get_settings().namespaced(f"bench{uuid.uuid4().hex[:8]}")
    logs = REPO_ROOT / "bench" / "results" / "search-latency"
    logs.mkdir(parents=True, exist_ok=True)
    try:
        asyncio.run(provision_namespace(settings))
        results = measure(settings, args, logs)
    finally:
        asyncio.run(remove_namespace(settings))
    report(results, args)


if __name__ == "__main__":
    main()
