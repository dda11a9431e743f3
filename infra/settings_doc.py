"""The settings as rows of (environment variable, default, description), for docs and `damai config`."""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import BaseModel

from infra.settings import Settings

ENV_PREFIX = "DAMAI_"


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
