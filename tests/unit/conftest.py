"""Unit-level fixtures: tools the unit tests run, installed the way the stack installs them."""

from __future__ import annotations

import shutil

import pytest

from infra.stack import process
from infra.stack.errors import StackError
from infra.stack.prometheus import PROMTOOL, ensure_installed


@pytest.fixture(scope="session")
def promtool(tmp_path_factory: pytest.TempPathFactory) -> str:
    """promtool, installed as `damai stack up prometheus` installs it when it is missing."""
    found = shutil.which(PROMTOOL)
    if found is None and process.is_root():
        try:
            ensure_installed(tmp_path_factory.mktemp("prometheus") / "install.log")
        except StackError as exc:
            pytest.skip(f"promtool is missing and installing Debian's prometheus package failed: {exc}")
        found = shutil.which(PROMTOOL)
    if found is None:
        pytest.skip("promtool is missing (Debian package prometheus) and only root may install it")
    return found
