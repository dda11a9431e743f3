"""The settings as rows of (environment variable, default, description), for docs and `damai config`."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from pydantic import BaseModel

from infra.settings import REPO_ROOT, Settings

ENV_PREFIX = "DAMAI_"
CONFIGURATION_DOC = REPO_ROOT / "docs" / "configuration.md"
TABLE_MARKERS = ("<!-- settings:begin -->", "<!-- settings:end -->")


def setting_rows(model: BaseModel | None = None, path: tuple[str, ...] = ()) -> Iterator[tuple[str, str, str]]:
    """Every leaf setting: its variable name, its current value, its description."""
    model = model or Settings()
    for name, field in type(model).model_fields.items():
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            yield from setting_rows(value, (*path, name))
            continue
        env = ENV_PREFIX + "__".join(p.upper() for p in (*path, name))
        if isinstance(value, dict):
            shown = ", ".join(f"{k}={v.partitions if hasattr(v, 'partitions') else v}" for k, v in value.items())
        else:
            shown = str(value)
        yield env, shown, field.description or ""


def markdown_table() -> str:
    """The defaults as a Markdown table, with paths shown relative to the repository."""
    lines = ["| variable | default | meaning |", "|---|---|---|"]
    for env, value, description in setting_rows(Settings.model_construct()):
        lines.append(f"| `{env}` | `{value.replace(str(REPO_ROOT), '<repo>')}` | {description} |")
    return "\n".join(lines)


def write_configuration_doc(path: Path = CONFIGURATION_DOC) -> None:
    """Replace the table between the markers in docs/configuration.md."""
    begin, end = TABLE_MARKERS
    text = path.read_text(encoding="utf-8")
    pattern = re.compile(re.escape(begin) + ".*?" + re.escape(end), re.S)
    path.write_text(pattern.sub(f"{begin}\n{markdown_table()}\n{end}", text), encoding="utf-8")
