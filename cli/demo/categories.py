"""Program categories for the demo: ten top-level categories, each with its children."""

from __future__ import annotations

from commands.reference import CreateCategory

# parent id, name, children (id, name); ids are stable codes used in filters and URLs.
DEMO_CATEGORIES: list[tuple[int, str, list[tuple[int, str]]]] = [
    (1, "演唱会", [(101, "流行"), (102, "摇滚"), (103, "民谣"), (104, "说唱")]),
    (2, "话剧歌剧", [(201, "话剧"), (202, "歌剧"), (203, "音乐剧")]),
    (3, "音乐会", [(301, "交响乐"), (302, "室内乐"), (303, "民乐")]),
    (4, "体育", [(401, "足球"), (402, "篮球"), (403, "网球")]),
    (5, "儿童亲子", [(501, "儿童剧"), (502, "亲子活动")]),
    (6, "展览休闲", [(601, "展览"), (602, "乐园")]),
    (7, "曲苑杂坛", [(701, "相声"), (702, "戏曲"), (703, "杂技")]),
    (8, "舞蹈芭蕾", [(801, "芭蕾"), (802, "现代舞")]),
    (9, "二次元", [(901, "动漫展"), (902, "游戏音乐会")]),
    (10, "脱口秀", [(1001, "单口喜剧"), (1002, "即兴喜剧")]),
]


def demo_category_commands() -> list[CreateCategory]:
    """Parents first, then their children, in display order."""
    commands = []
    for parent_id, name, children in DEMO_CATEGORIES:
        commands.append(CreateCategory(category_id=parent_id, name=name, sort_order=parent_id))
        commands += [
            CreateCategory(category_id=child_id, name=child, parent_id=parent_id, sort_order=position)
            for position, (child_id, child) in enumerate(children, start=1)
        ]
    return commands
