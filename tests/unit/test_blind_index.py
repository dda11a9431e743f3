import pytest
from hypothesis import given
from hypothesis import strategies as st

from events.user import IdType
from infra.personal_data import BlindIndex
from infra.postgres.routing import shard_layout
from infra.settings import SecuritySettings, Settings

KEY = b"blind-index-test-key-0123456789-abcdef"
mobiles = st.from_regex(r"1[3-9][0-9]{9}", fullmatch=True)


@given(mobile=mobiles)
def test_a_mobile_indexes_alike_in_every_written_form(mobile):
    index = BlindIndex(KEY)
    spaced = f"+86 {mobile[:3]} {mobile[3:7]} {mobile[7:]}"

    assert index.mobile(spaced) == index.mobile(f"0086-{mobile}") == index.mobile(mobile)


def test_an_email_indexes_alike_whatever_its_case_and_surrounding_space():
    index = BlindIndex(KEY)

    assert index.email(" Fan.Li@Example.COM\n") == index.email("fan.li@example.com")


def test_an_id_number_indexes_per_document_type():
    index = BlindIndex(KEY)

    assert index.id_number(IdType.ID_CARD, "11010519491231002x") == index.id_number(
        IdType.ID_CARD, "11010519491231002X"
    )
    assert index.id_number(IdType.PASSPORT, "12345678") != index.id_number(IdType.TAIWAN_TRAVEL_PERMIT, "12345678")


def test_the_same_characters_index_differently_as_mobile_email_and_id_number():
    index = BlindIndex(KEY)

    assert (
        len({index.mobile("13800138000"), index.email("13800138000"), index.id_number(IdType.PASSPORT, "13800138000")})
        == 3
    )


def test_another_key_gives_another_index():
    assert BlindIndex(KEY).mobile("13800138000") != BlindIndex(KEY[::-1]).mobile("13800138000")


def test_a_short_key_is_refused():
    with pytest.raises(ValueError, match="32 bytes"):
        BlindIndex(b"too short")


def test_routing_uses_the_blind_index_of_the_settings():
    settings = Settings()
    index = BlindIndex.from_settings(settings.security)

    assert shard_layout(settings).mobile_blind("+86 138 0013 8000") == index.mobile("13800138000")
    assert shard_layout(settings).email_blind("A@B.CN") == index.email("a@b.cn")
    assert "Blind" in repr(index) and settings.security.blind_index_key.get_secret_value() not in repr(index)


def test_security_settings_decode_the_base64_keys():
    security = SecuritySettings()

    assert len(security.blind_index_key_bytes()) == 32
    assert {k: len(v) for k, v in security.master_key_bytes().items()} == {security.current_master_key_id: 32}
    assert security.uses_development_keys()
