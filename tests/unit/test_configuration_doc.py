from pathlib import Path

from infra.settings import REPO_ROOT, Settings
from infra.settings_doc import setting_rows

DOC = Path(REPO_ROOT / "docs" / "configuration.md")


def test_every_setting_is_documented_with_a_meaning():
    text = DOC.read_text(encoding="utf-8")
    rows = list(setting_rows(Settings.model_construct()))

    missing = [env for env, _, _ in rows if f"`{env}`" not in text]
    undescribed = [env for env, _, description in rows if not description]

    assert missing == []
    assert undescribed == []
