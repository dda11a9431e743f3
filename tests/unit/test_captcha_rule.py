import re

from hypothesis import given
from hypothesis import strategies as st
from pydantic import TypeAdapter

from commands.captcha import ANSWER_ALPHABET, CaptchaId, CaptchaRule, new_answer, new_captcha_id

CAPTCHA_ID = TypeAdapter(CaptchaId)


@given(
    threshold=st.floats(min_value=0, max_value=10_000, allow_nan=False),
    window_ms=st.integers(min_value=100, max_value=3_600_000),
    count=st.integers(min_value=0, max_value=10_000_000),
)
def test_a_captcha_is_required_when_the_rate_over_the_window_passes_the_threshold(threshold, window_ms, count):
    rule = CaptchaRule(threshold, window_ms, always=False, answer_length=5)

    assert rule.required(count) == (count * 1000 > threshold * window_ms)


def test_a_new_captcha_id_is_valid_when_drawn():
    assert CAPTCHA_ID.validate_python(new_captcha_id())


def test_an_answer_uses_only_unambiguous_characters_when_drawn():
    assert re.fullmatch(f"[{ANSWER_ALPHABET}]{{6}}", new_answer(6))
