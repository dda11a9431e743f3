"""What every `damai` command starts from."""

from __future__ import annotations

from infra.logging import configure_logging
from infra.settings import Settings, get_settings


def command_settings() -> Settings:
    """The settings, with logging configured by them."""
    settings = get_settings()
    configure_logging(settings.log_level, settings.log_json)
    return settings
