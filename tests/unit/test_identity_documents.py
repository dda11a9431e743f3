from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aggregates.errors import InvalidCommand
from aggregates.identity_documents import (
    ID_NUMBER_INVALID,
    IdentityDocument,
    check_character,
    identity_document,
    mask_email,
    mask_id_number,
    mask_mobile,
    mask_name,
    normalise_email,
    normalise_id_number,
    normalise_mobile,
)
from events.user import IdType

TODAY = date(2026, 11, 30)
PROVINCES = [11, 12, 13, 14, 15, 21, 22, 23, 31, 32, 33, 34, 35, 36, 37, 41, 42, 43, 44, 45, 46]
PROVINCES += [50, 51, 52, 53, 54, 61, 62, 63, 64, 65, 71, 81, 82, 83]
birth_dates = st.dates(min_value=date(1900, 1, 1), max_value=TODAY)
digits = st.text(alphabet="0123456789", min_size=1, max_size=1)


def with_check(first_seventeen: str) -> str:
    return first_seventeen + check_character(first_seventeen)


@st.composite
def id_cards(draw: st.DrawFn) -> str:
    province = draw(st.sampled_from(PROVINCES))
    district = draw(st.integers(0, 9999))
    born = draw(birth_dates)
    sequence = draw(st.integers(0, 999))
    return with_check(f"{province:02d}{district:04d}{born:%Y%m%d}{sequence:03d}")


@st.composite
def residence_permits(draw: st.DrawFn) -> str:
    region = draw(st.sampled_from(["810000", "820000", "830000"]))
    born = draw(birth_dates)
    return with_check(f"{region}{born:%Y%m%d}{draw(st.integers(0, 999)):03d}")


def refusal(id_type: IdType, number: str) -> InvalidCommand:
    with pytest.raises(InvalidCommand) as refused:
        identity_document(id_type, number, today=TODAY)
    return refused.value


def test_the_id_types_are_exactly_the_six_of_the_issue():
    assert [t.value for t in IdType] == [
        "ID_CARD",
        "HK_MACAO_TAIWAN_RESIDENCE_PERMIT",
        "HK_MACAO_TRAVEL_PERMIT",
        "TAIWAN_TRAVEL_PERMIT",
        "PASSPORT",
        "FOREIGN_PERMANENT_RESIDENCE_CARD",
    ]


def test_a_published_example_id_card_passes_with_its_x_check_character():
    # The example number of GB 11643-1999 itself.
    assert identity_document(IdType.ID_CARD, "11010519491231002x", today=TODAY) == IdentityDocument(
        IdType.ID_CARD, "11010519491231002X"
    )


@given(number=id_cards())
def test_a_generated_id_card_passes(number):
    assert identity_document(IdType.ID_CARD, number, today=TODAY).number == number


@given(number=id_cards(), position=st.integers(0, 17), data=st.data())
def test_any_single_character_change_of_an_id_card_fails_the_check(number, position, data):
    alphabet = "0123456789X" if position == 17 else "0123456789"
    replacement = data.draw(st.sampled_from([c for c in alphabet if c != number[position]]))
    changed = number[:position] + replacement + number[position + 1 :]

    assert check_character(changed[:17]) != changed[17]
    assert refusal(IdType.ID_CARD, changed).code == ID_NUMBER_INVALID


def test_an_id_card_refusal_names_the_type_and_rule_but_never_the_number():
    number = "110105194912310020"  # the example's check character is X

    error = refusal(IdType.ID_CARD, number)

    assert error.details == {"idType": "ID_CARD", "rule": "CHECK_CHARACTER"}
    assert number not in str(error) and number not in repr(error.details)


@pytest.mark.parametrize(
    ("body", "rule"),
    [
        ("11010520261201002", "BIRTH_DATE"),  # tomorrow and later
        ("11010518991231002", "BIRTH_DATE"),  # before 1900
        ("11010519490231002", "BIRTH_DATE"),  # 31 February
        ("91010519491231002", "REGION"),  # first digit 9
        ("10010519491231002", "REGION"),  # no province 10
    ],
)
def test_an_id_card_is_refused_when_its_birth_date_or_region_is_impossible(body, rule):
    assert refusal(IdType.ID_CARD, with_check(body)).details["rule"] == rule


@pytest.mark.parametrize(
    "number", ["1101051949123100", "1101051949123100211", "11010519491231002Y", "X1010519491231002"]
)
def test_an_id_card_is_refused_when_it_is_not_17_digits_and_a_check_character(number):
    assert refusal(IdType.ID_CARD, number).details == {"idType": "ID_CARD", "rule": "FORMAT"}


@given(number=residence_permits())
def test_a_residence_permit_passes_with_a_hong_kong_macao_or_taiwan_prefix(number):
    assert identity_document(IdType.HK_MACAO_TAIWAN_RESIDENCE_PERMIT, number, today=TODAY).number == number


@given(number=id_cards())
def test_a_mainland_id_card_number_is_not_a_residence_permit(number):
    if number[:6] not in ("810000", "820000", "830000"):
        assert refusal(IdType.HK_MACAO_TAIWAN_RESIDENCE_PERMIT, number).details["rule"] == "REGION"


@pytest.mark.parametrize(
    ("id_type", "number"),
    [
        (IdType.HK_MACAO_TRAVEL_PERMIT, "H12345678"),
        (IdType.HK_MACAO_TRAVEL_PERMIT, "m1234567890"),
        (IdType.TAIWAN_TRAVEL_PERMIT, "12345678"),
        (IdType.TAIWAN_TRAVEL_PERMIT, "1234567890"),
        (IdType.TAIWAN_TRAVEL_PERMIT, "1234567890(B)"),
        (IdType.PASSPORT, "E12345678"),
        (IdType.PASSPORT, "g 1234 5678"),
        (IdType.FOREIGN_PERMANENT_RESIDENCE_CARD, "USA110075080152"),
        (IdType.FOREIGN_PERMANENT_RESIDENCE_CARD, with_check("93184019900101012")),
    ],
)
def test_documents_of_other_types_pass_in_their_published_formats(id_type, number):
    assert identity_document(id_type, number, today=TODAY).number == normalise_id_number(number)


@pytest.mark.parametrize(
    ("id_type", "number"),
    [
        (IdType.HK_MACAO_TRAVEL_PERMIT, "C12345678"),
        (IdType.HK_MACAO_TRAVEL_PERMIT, "H123456789"),
        (IdType.TAIWAN_TRAVEL_PERMIT, "1234567"),
        (IdType.TAIWAN_TRAVEL_PERMIT, "123456789"),
        (IdType.PASSPORT, "E123"),
        (IdType.PASSPORT, "E1234567890123456789X"),
        (IdType.PASSPORT, "E1234-5678"),
        (IdType.FOREIGN_PERMANENT_RESIDENCE_CARD, "US1110075080152"),
        (IdType.FOREIGN_PERMANENT_RESIDENCE_CARD, with_check("83184019900101012")),
        (IdType.FOREIGN_PERMANENT_RESIDENCE_CARD, "12345"),
    ],
)
def test_documents_of_other_types_are_refused_outside_their_formats(id_type, number):
    assert refusal(id_type, number).details == {"idType": id_type.value, "rule": "FORMAT"}


def test_a_new_permanent_residence_card_is_refused_when_its_check_character_is_wrong():
    number = with_check("93184019900101012")
    wrong = number[:-1] + ("1" if number[-1] != "1" else "2")

    assert refusal(IdType.FOREIGN_PERMANENT_RESIDENCE_CARD, wrong).details["rule"] == "CHECK_CHARACTER"


def test_a_document_shows_only_its_masked_number_when_printed():
    document = identity_document(IdType.ID_CARD, "11010519491231002X", today=TODAY)

    assert "11010519491231002X" not in repr(document) and "11010519491231002X" not in f"{document}"
    assert "1101**********002X" in repr(document)


@pytest.mark.parametrize(
    ("given_mobile", "normal"),
    [("13800138000", "13800138000"), ("+86 138 0013 8000", "13800138000"), ("0086-138-0013-8000", "13800138000")],
)
def test_a_mobile_normalises_to_its_eleven_digits(given_mobile, normal):
    assert normalise_mobile(given_mobile) == normal


def test_an_email_normalises_trimmed_and_lower_cased():
    assert normalise_email("  Fan.Li@Example.COM ") == "fan.li@example.com"


def test_the_masks_of_the_issue():
    assert mask_name("张三") == "张*"
    assert mask_name("欧阳娜娜") == "欧***"
    assert mask_name("张") == "*"
    assert mask_mobile("13800000000") == "138****0000"
    assert mask_id_number("11010519491231002X") == "1101**********002X"
    assert mask_email("alice@example.com") == "a***@example.com"
    assert mask_email("a@example.com") == "***@example.com"


def clear_characters(masked: str) -> int:
    return sum(c != "*" for c in masked)


@given(name=st.text(min_size=0, max_size=30).filter(lambda s: "*" not in s))
def test_a_masked_name_shows_at_most_its_first_character(name):
    masked = mask_name(name)

    assert len(masked) == len(name)
    assert clear_characters(masked) <= (1 if len(name) > 1 else 0)


@given(mobile=st.text(alphabet="0123456789", max_size=20))
def test_a_masked_mobile_shows_at_most_seven_digits_and_never_most_of_a_short_one(mobile):
    masked = mask_mobile(mobile)

    assert len(masked) == len(mobile)
    assert clear_characters(masked) <= min(7, max(0, len(mobile) - 4))


@given(number=st.text(alphabet="0123456789ABCDEFGHX()", max_size=30))
def test_a_masked_id_number_shows_at_most_eight_characters_and_never_half(number):
    masked = mask_id_number(number)

    assert len(masked) == len(number)
    assert clear_characters(masked) <= min(8, len(number) // 2)


@given(
    local=st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789._+", min_size=1, max_size=40),
    domain=st.from_regex(r"[a-z0-9]{1,20}\.[a-z]{2,6}", fullmatch=True),
)
def test_a_masked_email_shows_at_most_one_character_of_its_local_part(local, domain):
    masked_local, _, masked_domain = mask_email(f"{local}@{domain}").rpartition("@")

    assert masked_domain == domain
    assert clear_characters(masked_local) <= (1 if len(local) > 1 else 0)
    assert local not in masked_local
