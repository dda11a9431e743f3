from infra.settings import Settings
from infra.settings_doc import CONFIGURATION_DOC, markdown_table, setting_rows


def test_every_setting_has_a_meaning():
    undescribed = [env for env, _, description in setting_rows(Settings.model_construct()) if not description]

    assert undescribed == []


def test_configuration_doc_shows_the_current_defaults():
    # Regenerate with `damai config --write-doc` when a setting changes.
    assert markdown_table() in CONFIGURATION_DOC.read_text(encoding="utf-8")
