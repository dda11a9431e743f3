"""A deterministic demo catalogue: programs in every demo city and category, from a small club
to a 50,000-seat stadium, with show times over the coming weeks. Same seed, same catalogue."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta

from cli.demo.areas import DEMO_AREAS
from cli.demo.categories import DEMO_CATEGORIES
from commands.program import CreateProgram
from events.reference import AreaLevel

PROGRAMS_PER_CITY = 5
SHOW_WINDOW_DAYS = 56
EVENING_SHOW = time(11, 30)  # 19:30 in Beijing, in UTC


@dataclass(frozen=True)
class VenueKind:
    name: str
    seat_selectable: bool
    # (ticket category, price, rows, columns) — or, without seat choice, rows × columns is the total.
    tiers: tuple[tuple[str, str, int, int], ...]


CLUB = VenueKind("Livehouse", False, (("站票", "180.00", 10, 30), ("VIP", "380.00", 2, 20)))
THEATRE = VenueKind("大剧院", True, (("池座", "680.00", 20, 40), ("楼座", "280.00", 10, 40)))
ARENA = VenueKind(
    "体育馆", True, (("内场", "1280.00", 40, 50), ("看台A", "880.00", 60, 60), ("看台B", "480.00", 50, 70))
)
STADIUM = VenueKind(
    "体育场",
    True,
    (
        ("内场", "1680.00", 100, 125),
        ("一层看台", "1280.00", 100, 125),
        ("二层看台", "880.00", 100, 125),
        ("三层看台", "480.00", 100, 125),
    ),
)
# What kind of venue each top-level category plays in.
VENUES_BY_CATEGORY = {
    1: (ARENA, CLUB),
    2: (THEATRE,),
    3: (THEATRE,),
    4: (ARENA,),
    5: (THEATRE, CLUB),
    6: (CLUB,),
    7: (THEATRE, CLUB),
    8: (THEATRE,),
    9: (ARENA, CLUB),
    10: (CLUB, THEATRE),
}
PERFORMERS = [
    "星河乐队",
    "林夕",
    "陈绮贞",
    "苏打绿",
    "朴树",
    "李宇春",
    "新裤子",
    "万能青年旅店",
    "痛仰",
    "逃跑计划",
    "周深",
    "张学友",
    "孙燕姿",
    "许嵩",
    "毛不易",
    "五条人",
    "草东没有派对",
    "房东的猫",
]
TITLES_BY_CATEGORY = {
    1: "{p} 巡回演唱会",
    2: "{p} 主演话剧《雷雨》",
    3: "{p} 新年音乐会",
    4: "{city}城市杯 篮球联赛",
    5: "儿童剧《小王子》{city}站",
    6: "{city}光影艺术展",
    7: "{p} 相声专场",
    8: "芭蕾舞剧《天鹅湖》",
    9: "{city}动漫嘉年华",
    10: "{p} 脱口秀专场",
}


def demo_program_commands(seed: int, today: datetime) -> list[tuple[CreateProgram, bool]]:
    """(command, publish it?) for every demo program; one stadium show headlines the catalogue."""
    rng = random.Random(seed)
    cities = [(code, name) for code, name, level, _ in DEMO_AREAS if level is AreaLevel.CITY]
    start = datetime.combine(today.date(), EVENING_SHOW, tzinfo=UTC) + timedelta(days=1)
    out: list[tuple[CreateProgram, bool]] = []
    for city_index, (area_id, city) in enumerate(cities):
        for n in range(PROGRAMS_PER_CITY):
            parent_id, _, children = DEMO_CATEGORIES[(city_index * PROGRAMS_PER_CITY + n) % len(DEMO_CATEGORIES)]
            venue = rng.choice(VENUES_BY_CATEGORY[parent_id])
            performer = rng.choice(PERFORMERS)
            title = TITLES_BY_CATEGORY[parent_id].format(p=performer, city=city) + f" · {city}"
            if any(c.title == title for c, _ in out):
                title += f" 第{n + 1}场"
            out.append((_command(rng, title, performer, venue, city, area_id, parent_id, children, start), n != 4))
    stadium_city = cities[0]
    out.append(
        (
            _command(
                rng,
                f"{PERFORMERS[0]} 体育场演唱会 · {stadium_city[1]}",
                PERFORMERS[0],
                STADIUM,
                stadium_city[1],
                stadium_city[0],
                1,
                DEMO_CATEGORIES[0][2],
                start,
                high_heat=True,
            ),
            True,
        )
    )
    return out


def _command(
    rng: random.Random,
    title: str,
    performer: str,
    venue: VenueKind,
    city: str,
    area_id: int,
    parent_id: int,
    children: list[tuple[int, str]],
    start: datetime,
    high_heat: bool = False,
) -> CreateProgram:
    # The stadium plays once: 50,000 seats are the load-test show, not a demo of repetition.
    shows = sorted(rng.sample(range(SHOW_WINDOW_DAYS), 1 if venue is STADIUM else rng.randint(1, 3)))
    return CreateProgram.model_validate(
        {
            "title": title,
            "actor": performer,
            "venue": f"{city}{venue.name}",
            "areaId": area_id,
            "parentCategoryId": parent_id,
            "categoryId": rng.choice(children)[0],
            "detail": f"{title}。演出时长约 120 分钟，请提前 30 分钟入场。",
            "notices": ["实名制购票，一人一证", "演出开始后谢绝入场"],
            "seatSelectable": venue.seat_selectable,
            "realNameRequired": venue is STADIUM,
            "refundPolicy": {"refundable": venue is not CLUB, "deadlineHoursBeforeShow": 48},
            "highHeat": high_heat or rng.random() < 0.2,
            "issueTime": (start - timedelta(days=rng.randint(1, 30))).isoformat(),
            "showTimes": [
                {"startsAt": (start + timedelta(days=d)).isoformat(), "ticketCategories": _tiers(venue)} for d in shows
            ],
        }
    )


def _tiers(venue: VenueKind) -> list[dict[str, object]]:
    """Ticket categories of one show; seat blocks are stacked row after row, front rows first."""
    tiers: list[dict[str, object]] = []
    first_row = 1
    for name, price, rows, columns in venue.tiers:
        if venue.seat_selectable:
            tiers.append(
                {"name": name, "price": price, "seatGrid": {"rows": rows, "columns": columns, "firstRow": first_row}}
            )
            first_row += rows
        else:
            tiers.append({"name": name, "price": price, "total": rows * columns})
    return tiers


def seats_of(cmd: CreateProgram) -> int:
    return sum(
        (c.seat_grid.rows * c.seat_grid.columns if c.seat_grid else c.total or 0)
        for show in cmd.show_times
        for c in show.ticket_categories
    )
