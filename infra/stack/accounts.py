"""OS users that servers refusing root run as, and the file ownership they need."""

from __future__ import annotations

import os
import pwd
import stat
from pathlib import Path

import structlog

from infra.stack import process
from infra.stack.errors import StackError

log = structlog.get_logger(__name__)


def user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def ensure_system_user(name: str) -> None:
    if user_exists(name):
        return
    if not process.is_root():
        raise StackError(f"OS user {name!r} is missing and only root can create it")
    log.info("stack.creating_user", user=name)
    process.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
        what=f"useradd {name}",
    )


def owned_by(path: Path, user: str) -> bool:
    try:
        return path.stat().st_uid == pwd.getpwnam(user).pw_uid
    except (OSError, KeyError):
        return False


def chown_tree(path: Path, user: str) -> None:
    """Give ``path`` and everything under it to ``user``; a no-op when we are not root."""
    if not process.is_root():
        return
    entry = pwd.getpwnam(user)
    process.run(["chown", "-R", f"{entry.pw_uid}:{entry.pw_gid}", str(path)], what=f"chown {path}")


def make_dirs(user: str | None, *dirs: Path) -> None:
    """Create directories and, when running as root, hand them to ``user``."""
    for directory in dirs:
        directory.mkdir(parents=True, exist_ok=True)
        if user is not None and process.is_root() and not owned_by(directory, user):
            entry = pwd.getpwnam(user)
            os.chown(directory, entry.pw_uid, entry.pw_gid)


def check_traversable(path: Path, user: str) -> None:
    """Fail early, with the culprit named, if ``user`` cannot reach ``path``.

    Postgres and Elasticsearch run as their own users; a state_dir below a private
    directory (e.g. /root) would make them fail with a bare "permission denied".
    """
    entry = pwd.getpwnam(user)
    groups = set(os.getgrouplist(user, entry.pw_gid))
    for ancestor in reversed(path.resolve().parents):
        st = ancestor.stat()
        if st.st_uid == entry.pw_uid:
            needed = stat.S_IXUSR
        elif st.st_gid in groups:
            needed = stat.S_IXGRP
        else:
            needed = stat.S_IXOTH
        if not st.st_mode & needed:
            raise StackError(
                f"OS user {user!r} cannot traverse {ancestor} on the way to {path}; "
                f"run `chmod o+x {ancestor}` or set DAMAI_STATE_DIR to a directory "
                "everyone can traverse"
            )
