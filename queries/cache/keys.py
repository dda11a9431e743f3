"""Redis key names of the program detail cache, under the namespace's key prefix.

Keys of one program carry its hash tag ``{p:<id>}`` (so the fill script touches one slot);
the Bloom filter's keys share the tag ``{program-bloom}``.
"""

from __future__ import annotations

from infra.redis_keys import program_tag
from infra.settings import ProgramCacheSettings

# Bumped when the detail document changes shape, so old entries are never served as new ones.
DETAIL_DOCUMENT_VERSION = 1


class ProgramCacheKeys:
    def __init__(self, settings: ProgramCacheSettings):
        self._prefix = settings.key_prefix
        # Size and hash count are in the name: a filter of another shape is another filter.
        self.bloom = f"{self._prefix}:{{program-bloom}}:{settings.bloom_bits}x{settings.bloom_hashes}"
        self.bloom_building = f"{self.bloom}:building"
        self.bloom_builder = f"{self.bloom}:builder"
        self.invalidations = f"{self._prefix}:program-detail:invalidations"

    def detail(self, program_id: int) -> str:
        return f"{self._prefix}:{program_tag(program_id)}:detail:v{DETAIL_DOCUMENT_VERSION}"

    def load_lock(self, program_id: int) -> str:
        return f"{self.detail(program_id)}:loading"

    def pattern(self) -> str:
        """Every key of this namespace's cache (for removing a namespace)."""
        return f"{self._prefix}:*"
