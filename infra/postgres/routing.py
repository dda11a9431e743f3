"""The shard layout: the only place that knows which database and table hold a row.

Every shard group spans all shard databases with the same number of tables in each
(``DAMAI_POSTGRES__TABLES_PER_DATABASE``). A key maps to a *slot* ``0 .. N-1`` (N = databases ×
tables); slot ``s`` is the physical table ``<family>_<s>`` in database ``databases[s // tables]``.

How keys become slots:

- numeric ids (user, program) are mixed first (splitmix64), because snowflake ids carry a
  sequence in their low bits that is mostly zero and would pile up in slot 0;
- order numbers carry the buyer's gene in their low bits (``infra.ids``), so
  ``order_number mod N`` is ``gene mod N`` — the slot of that user's orders, whichever of the two
  keys a query has. Pay and refund bills follow their order number the same way;
- mobiles and emails go through the blind index (``infra.personal_data.BlindIndex``: HMAC-SHA256
  of the normalised value), so login by either never fans out and the table never holds the plain
  value.
"""

from __future__ import annotations

from dataclasses import dataclass

from infra.ids.layout import GENE_BITS
from infra.personal_data.blind_index import BlindIndex
from infra.settings import PostgresSettings, Settings

MASK64 = (1 << 64) - 1

# Shard group → the table families routed together (same key, same slot).
SHARD_GROUPS: dict[str, tuple[str, ...]] = {
    "user": ("user", "user_data_key"),
    "user_mobile": ("user_mobile",),
    "user_email": ("user_email",),
    "ticket_buyer": ("ticket_buyer",),
    "order": ("order", "order_ticket"),
    "program": ("program", "show_time", "ticket_category", "seat"),
    "bill": ("pay_bill", "refund_bill"),
}
# Small tables every shard database holds whole.
REFERENCE_TABLES = ("area", "category")
GROUP_OF_FAMILY = {family: group for group, families in SHARD_GROUPS.items() for family in families}


def mix64(value: int) -> int:
    """splitmix64's finaliser: spreads ids whose low bits barely change."""
    z = (value + 0x9E3779B97F4A7C15) & MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


@dataclass(frozen=True, order=True)
class Shard:
    database: str
    table: str


class ShardLayout:
    def __init__(self, settings: PostgresSettings, blind_index: BlindIndex):
        self._databases = list(settings.databases)
        self._tables = dict(settings.tables_per_database)
        self._blind_index = blind_index
        missing = set(SHARD_GROUPS) - set(self._tables)
        if missing:
            raise ValueError(f"tables_per_database lacks shard groups: {sorted(missing)}")
        for group, tables in self._tables.items():
            if tables < 1:
                raise ValueError(f"shard group {group} needs at least one table per database")
        order_slots = self.slots("order")
        if order_slots & (order_slots - 1) or order_slots > 1 << GENE_BITS:
            raise ValueError(
                f"order tables in all ({order_slots}) must be a power of two up to {1 << GENE_BITS}, "
                "so that the gene in an order number names its table"
            )

    # --- the layout ------------------------------------------------------------------

    @property
    def databases(self) -> list[str]:
        return list(self._databases)

    def slots(self, group: str) -> int:
        return len(self._databases) * self._tables[group]

    def shard(self, family: str, slot: int) -> Shard:
        tables = self._tables[GROUP_OF_FAMILY[family]]
        return Shard(self._databases[slot // tables], f"{family}_{slot}")

    def physical_tables(self, family: str) -> list[Shard]:
        """Every physical table of a family, in slot order (for migrations and full routes)."""
        return [self.shard(family, s) for s in range(self.slots(GROUP_OF_FAMILY[family]))]

    def tables_in(self, database: str, family: str) -> list[str]:
        return [s.table for s in self.physical_tables(family) if s.database == database]

    # --- keys to slots ---------------------------------------------------------------

    def gene_of_user(self, user_id: int) -> int:
        """The low bits every order number of this user carries."""
        return mix64(user_id) & ((1 << GENE_BITS) - 1)

    def mobile_blind(self, mobile: str) -> bytes:
        return self._blind_index.mobile(mobile)

    def email_blind(self, email: str) -> bytes:
        return self._blind_index.email(email)

    def _slot_of_id(self, group: str, entity_id: int) -> int:
        return mix64(entity_id) % self.slots(group)

    def _slot_of_blind(self, group: str, blind: bytes) -> int:
        return int.from_bytes(blind[:8], "big") % self.slots(group)

    # --- access paths ----------------------------------------------------------------

    def user(self, user_id: int) -> Shard:
        return self.shard("user", self._slot_of_id("user", user_id))

    def user_data_keys(self, user_id: int) -> Shard:
        """The wrapped data keys of a user: same slot and database as the user's row."""
        return self.shard("user_data_key", self._slot_of_id("user", user_id))

    def ticket_buyers(self, user_id: int) -> Shard:
        return self.shard("ticket_buyer", self._slot_of_id("ticket_buyer", user_id))

    def user_mobile(self, mobile_blind: bytes) -> Shard:
        return self.shard("user_mobile", self._slot_of_blind("user_mobile", mobile_blind))

    def user_email(self, email_blind: bytes) -> Shard:
        return self.shard("user_email", self._slot_of_blind("user_email", email_blind))

    def order(self, order_number: int) -> Shard:
        return self.shard("order", order_number % self.slots("order"))

    def order_tickets(self, order_number: int) -> Shard:
        return self.shard("order_ticket", order_number % self.slots("order"))

    def orders_of_user(self, user_id: int) -> Shard:
        """The one table holding all of a user's orders (the same one their order numbers name)."""
        return self.shard("order", self.gene_of_user(user_id) % self.slots("order"))

    def order_tickets_of_user(self, user_id: int) -> Shard:
        return self.shard("order_ticket", self.gene_of_user(user_id) % self.slots("order"))

    def program_family(self, family: str, program_id: int) -> Shard:
        """program, show_time, ticket_category or seat rows of one program."""
        if GROUP_OF_FAMILY[family] != "program":
            raise ValueError(f"{family} is not routed by program id")
        return self.shard(family, self._slot_of_id("program", program_id))

    def pay_bill(self, order_number: int) -> Shard:
        return self.shard("pay_bill", order_number % self.slots("bill"))

    def refund_bill(self, order_number: int) -> Shard:
        return self.shard("refund_bill", order_number % self.slots("bill"))


def shard_layout(settings: Settings) -> ShardLayout:
    return ShardLayout(settings.postgres, BlindIndex.from_settings(settings.security))
