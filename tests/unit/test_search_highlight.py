"""The Postgres fallback's highlights: escaped text, the keyword marked with ``<em>`` only."""

from __future__ import annotations

import string

from queries.shapes import escape_highlight
from queries.views.program_search import highlight_fields


def _fields(title: str, actor: str | None = None) -> dict[str, str | None]:
    return {"title": title, "actor": actor}


def test_markup_in_a_title_comes_back_escaped_when_the_keyword_matches_beside_it():
    highlight = highlight_fields(_fields("<img src=x onerror=alert(1)> fuzzxss"), "fuzzxss")

    assert highlight == {"title": "&lt;img src=x onerror=alert(1)&gt; <em>fuzzxss</em>"}


def test_a_tag_is_never_cut_open_when_the_keyword_matches_inside_its_name():
    highlight = highlight_fields(_fields("x", "<script>alert(1)</script>"), "script")

    assert highlight == {"actor": "&lt;<em>script</em>&gt;alert(1)&lt;&#x2F;<em>script</em>&gt;"}


def test_markup_in_the_keyword_is_escaped_inside_the_marks_when_it_matches():
    highlight = highlight_fields(_fields('say "<b>hi</b>" & go'), '"<b>')

    assert highlight == {"title": "say <em>&quot;&lt;b&gt;</em>hi&lt;&#x2F;b&gt;&quot; &amp; go"}


def test_a_keyword_never_matches_inside_an_escape_when_the_text_holds_none():
    highlight = highlight_fields(_fields("Tom & Jerry"), "amp")

    assert highlight == {}


def test_every_character_but_six_is_left_as_elasticsearch_leaves_it_when_escaped():
    # What Elasticsearch 9.2.4 answers with "encoder": "html" for this text (probed on the stack).
    text = string.punctuation + " é五\u00a0\t😀"

    escaped = escape_highlight(text)

    assert escaped == "!&quot;#$%&amp;&#x27;()*+,-.&#x2F;:;&lt;=&gt;?@[\\]^_`{|}~ é五\u00a0\t😀"
