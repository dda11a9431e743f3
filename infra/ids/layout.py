"""Bit layouts of the 63-bit ids: packing and taking apart, nothing else.

Both layouts are positive 63-bit integers (they fit a Postgres ``bigint``) and put the
timestamp and the worker id in the same places, so any two ids compare by time first::

    order number  | timestamp ms (41) | worker (8) | sequence (6)  | gene (8) |
    entity id     | timestamp ms (41) | worker (8) | sequence (14)            |

- timestamp: milliseconds since the custom epoch 2026-01-01T00:00:00Z. 2**41 ms is 69.7
  years: the last representable millisecond is 2095-09-07T15:47:35.551Z.
- worker: 256 worker ids, each leased by one live process (``infra.ids.lease``).
- sequence: ids per millisecond per worker, 64 order numbers (64,000/s per worker, 16.4 M/s
  over 256 workers) or 16,384 entity ids (16.4 M/s per worker).
- gene: the buyer's gene, chosen by the caller. For any N a power of two up to 256,
  ``order_number % N == gene % N``, so an order number routes to the same table as its buyer.

Order numbers and entity ids are separate id spaces: the same integer may be both an order
number and (say) a seat id. Each layout has its own sequence state in a generator.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

EPOCH_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z in Unix milliseconds
TIMESTAMP_BITS = 41
WORKER_BITS = 8
GENE_BITS = 8
ORDER_SEQUENCE_BITS = 6
ENTITY_SEQUENCE_BITS = 14
ID_BITS = 63

WORKER_COUNT = 1 << WORKER_BITS
MAX_TIMESTAMP_MS = EPOCH_MS + (1 << TIMESTAMP_BITS) - 1
# Timestamp and worker sit at the same shifts in both layouts.
TIMESTAMP_SHIFT = ID_BITS - TIMESTAMP_BITS
WORKER_SHIFT = TIMESTAMP_SHIFT - WORKER_BITS


class IdParts(NamedTuple):
    unix_ms: int
    worker_id: int
    sequence: int
    gene: int


@dataclass(frozen=True)
class IdLayout:
    """Where the sequence and the gene sit below the worker id."""

    name: str
    sequence_bits: int
    gene_bits: int
    # Derived once: they are read for every id issued.
    max_sequence: int = field(init=False)
    gene_count: int = field(init=False)

    def __post_init__(self) -> None:
        if self.sequence_bits + self.gene_bits != WORKER_SHIFT:
            raise ValueError(f"layout {self.name} must fill the {WORKER_SHIFT} bits below the worker id")
        object.__setattr__(self, "max_sequence", (1 << self.sequence_bits) - 1)
        object.__setattr__(self, "gene_count", 1 << self.gene_bits)

    def pack(self, unix_ms: int, worker_id: int, sequence: int, gene: int = 0) -> int:
        """The id of these parts; ValueError when a part does not fit its bits."""
        if not EPOCH_MS <= unix_ms <= MAX_TIMESTAMP_MS:
            raise ValueError(f"timestamp {unix_ms} ms is outside the id epoch {EPOCH_MS}..{MAX_TIMESTAMP_MS}")
        if not 0 <= worker_id < WORKER_COUNT:
            raise ValueError(f"worker id {worker_id} is outside 0..{WORKER_COUNT - 1}")
        if not 0 <= sequence <= self.max_sequence:
            raise ValueError(f"sequence {sequence} is outside 0..{self.max_sequence}")
        if not 0 <= gene < self.gene_count:
            raise ValueError(f"gene {gene} is outside 0..{self.gene_count - 1}")
        return (unix_ms - EPOCH_MS) << TIMESTAMP_SHIFT | worker_id << WORKER_SHIFT | sequence << self.gene_bits | gene

    def unpack(self, id_: int) -> IdParts:
        return IdParts(unix_ms_of(id_), worker_id_of(id_), self.sequence_of(id_), self.gene_of(id_))

    def sequence_of(self, id_: int) -> int:
        return (id_ >> self.gene_bits) & self.max_sequence

    def gene_of(self, id_: int) -> int:
        return id_ & (self.gene_count - 1)


def unix_ms_of(id_: int) -> int:
    """When an id of either layout was issued, in Unix milliseconds."""
    return (id_ >> TIMESTAMP_SHIFT) + EPOCH_MS


def worker_id_of(id_: int) -> int:
    return (id_ >> WORKER_SHIFT) & (WORKER_COUNT - 1)


ORDER_NUMBER = IdLayout("order number", sequence_bits=ORDER_SEQUENCE_BITS, gene_bits=GENE_BITS)
ENTITY_ID = IdLayout("entity id", sequence_bits=ENTITY_SEQUENCE_BITS, gene_bits=0)
