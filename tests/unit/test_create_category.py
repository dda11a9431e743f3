import pytest
from pydantic import ValidationError

from aggregates.errors import Conflict, InvalidCommand
from commands.reference import CreateCategory, KnownCategories, create_category


def test_top_level_category_is_created():
    event = create_category(CreateCategory(category_id=1, name=" 演唱会 ", sort_order=1), KnownCategories({}))

    assert (event.category_id, event.name, event.parent_id, event.sort_order) == (1, "演唱会", None, 1)


def test_child_category_under_a_top_level_one_is_created():
    event = create_category(CreateCategory(category_id=101, name="流行", parent_id=1), KnownCategories({1: None}))

    assert event.parent_id == 1


def test_existing_category_is_a_conflict():
    with pytest.raises(Conflict) as err:
        create_category(CreateCategory(category_id=1, name="演唱会"), KnownCategories({1: None}))
    assert err.value.code == "CATEGORY_EXISTS"


@pytest.mark.parametrize(
    ("cmd", "code"),
    [
        ({"category_id": 102, "name": "摇滚", "parent_id": 9}, "CATEGORY_PARENT_UNKNOWN"),
        ({"category_id": 1011, "name": "三级", "parent_id": 101}, "CATEGORY_PARENT_NOT_TOP_LEVEL"),
        ({"category_id": 103, "name": "  "}, "CATEGORY_NAME_BLANK"),
    ],
)
def test_rule_breaking_category_is_refused_with_its_code(cmd, code):
    with pytest.raises(InvalidCommand) as err:
        create_category(CreateCategory(**cmd), KnownCategories({1: None, 101: 1}))
    assert err.value.code == code


@pytest.mark.parametrize(
    "bad",
    [
        {"category_id": 0, "name": "x"},
        {"category_id": 10000, "name": "x"},
        {"category_id": 1, "name": ""},
        {"category_id": 1, "name": "x", "sort_order": -1},
    ],
)
def test_malformed_category_command_fails_validation(bad):
    with pytest.raises(ValidationError):
        CreateCategory(**bad)
