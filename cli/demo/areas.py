"""Reference areas for the demo: provinces and the cities shows are held in (division codes)."""

from __future__ import annotations

from commands.reference import CreateArea
from events.reference import AreaLevel

P, C = AreaLevel.PROVINCE, AreaLevel.CITY

# (code, name, level, parent) — parents come before their children.
DEMO_AREAS: list[tuple[int, str, AreaLevel, int | None]] = [
    (110000, "北京", C, None),
    (120000, "天津", C, None),
    (310000, "上海", C, None),
    (500000, "重庆", C, None),
    (320000, "江苏省", P, None),
    (320100, "南京", C, 320000),
    (320500, "苏州", C, 320000),
    (330000, "浙江省", P, None),
    (330100, "杭州", C, 330000),
    (330200, "宁波", C, 330000),
    (420000, "湖北省", P, None),
    (420100, "武汉", C, 420000),
    (430000, "湖南省", P, None),
    (430100, "长沙", C, 430000),
    (440000, "广东省", P, None),
    (440100, "广州", C, 440000),
    (440300, "深圳", C, 440000),
    (510000, "四川省", P, None),
    (510100, "成都", C, 510000),
    (610000, "陕西省", P, None),
    (610100, "西安", C, 610000),
]


def demo_area_commands() -> list[CreateArea]:
    return [
        CreateArea(area_id=code, name=name, level=level, parent_id=parent) for code, name, level, parent in DEMO_AREAS
    ]
