import pytest
from pydantic import ValidationError

from aggregates.errors import Conflict, InvalidCommand
from commands.reference import CreateArea, KnownAreas, create_area
from events.reference import AreaLevel


def test_city_under_a_known_province_is_created():
    event = create_area(
        CreateArea(area_id=440300, name=" 深圳 ", level=AreaLevel.CITY, parent_id=440000), KnownAreas({440000})
    )

    assert (event.area_id, event.name, event.level, event.parent_id) == (440300, "深圳", AreaLevel.CITY, 440000)


def test_municipality_is_a_city_without_parent():
    assert (
        create_area(CreateArea(area_id=310000, name="上海", level=AreaLevel.CITY), KnownAreas(set())).parent_id is None
    )


def test_existing_area_is_a_conflict():
    with pytest.raises(Conflict) as err:
        create_area(CreateArea(area_id=310000, name="上海", level=AreaLevel.CITY), KnownAreas({310000}))
    assert err.value.code == "AREA_EXISTS"


@pytest.mark.parametrize(
    ("cmd", "code"),
    [
        (dict(area_id=440000, name="广东省", level=AreaLevel.PROVINCE, parent_id=110000), "AREA_PARENT_NOT_ALLOWED"),
        (dict(area_id=440106, name="天河区", level=AreaLevel.DISTRICT), "AREA_PARENT_REQUIRED"),
        (dict(area_id=440300, name="深圳", level=AreaLevel.CITY, parent_id=440000), "AREA_PARENT_UNKNOWN"),
        (dict(area_id=440300, name="   ", level=AreaLevel.CITY), "AREA_NAME_BLANK"),
    ],
)
def test_rule_breaking_area_is_refused_with_its_code(cmd, code):
    with pytest.raises(InvalidCommand) as err:
        create_area(CreateArea(**cmd), KnownAreas({110000}))
    assert err.value.code == code


@pytest.mark.parametrize(
    "bad",
    [
        dict(area_id=12, name="x", level=AreaLevel.CITY),
        dict(area_id=310000, name="", level=AreaLevel.CITY),
        dict(area_id=310000, name="x", level="planet"),
        dict(area_id=310000, name="x", level=AreaLevel.CITY, extra=1),
    ],
)
def test_malformed_command_fails_validation(bad):
    with pytest.raises(ValidationError):
        CreateArea(**bad)
