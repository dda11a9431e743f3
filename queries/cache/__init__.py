"""Program detail caching: each process's memory → Redis → Postgres (see docs/caching.md).

What the write side calls when it projects a program: ``add_program_to_bloom`` (a new id) and
``invalidate_program`` (any change), both after its Postgres transaction has committed.
"""

from queries.cache.invalidation import InvalidationListener, invalidate_program
from queries.cache.program_bloom import add_program_to_bloom, ensure_program_bloom, rebuild_program_bloom
from queries.cache.program_detail import CachedDetail, ProgramDetailCache
from queries.cache.remaining import RemainingCounts

__all__ = [
    "CachedDetail",
    "InvalidationListener",
    "ProgramDetailCache",
    "RemainingCounts",
    "add_program_to_bloom",
    "ensure_program_bloom",
    "invalidate_program",
    "rebuild_program_bloom",
]
