"""Redis key names. Every key of one program shares the hash tag ``{p:<id>}``, so a script
touching several of them stays in one slot (and runs unchanged on Redis Cluster)."""

from __future__ import annotations


def program_tag(program_id: int) -> str:
    return f"{{p:{program_id}}}"


def program_version_counter(program_id: int) -> str:
    return f"{program_tag(program_id)}:version"
