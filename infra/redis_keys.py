"""Redis key names. Every key of one program shares the hash tag ``{p:<id>}``, so a script
touching several of them stays in one slot (and runs unchanged on Redis Cluster)."""

from __future__ import annotations

# Columns per row in seat scores (row * stride + column): a row's seats are one score range.
SEAT_ROW_STRIDE = 100_000


def program_tag(program_id: int) -> str:
    return f"{{p:{program_id}}}"


def program_keys_pattern(program_id: int | None = None) -> str:
    """A SCAN pattern for every key of one program, or of every program."""
    return f"{program_tag(program_id)}*" if program_id is not None else "{p:*"


def program_of_key(key: bytes) -> int:
    """The program id in a key that ``program_keys_pattern()`` matched."""
    return int(key[3 : key.index(b"}")])


def aggregate_snapshot(aggregate_id: str, log: str) -> str:
    """Hash: the command side's snapshot of one aggregate (lua/aggregate_claim.lua states its fields).

    ``log`` is the topic prefix of the log the snapshot was taken from: a snapshot stands for one
    log, so a namespace with topics of its own (a test, a benchmark) has snapshots of its own.
    ``program-<id>`` keeps the program's hash tag, so it lives in the slot of the program's other
    keys.
    """
    kind, _, key = aggregate_id.partition("-")
    tag = program_tag(int(key)) if kind == "program" else f"{{{kind}:{key}}}"
    return f"{tag}:aggregate:{log}"


def aggregate_snapshots_pattern(log: str) -> str:
    """A SCAN pattern for every snapshot taken from one log."""
    return f"*:aggregate:{log}"


def snapshot_coverage(topic: str) -> str:
    """Hash: partition → offset. Every aggregate with an event below that offset of ``topic``'s
    partition has a command-side snapshot, so a missing snapshot there means a new aggregate
    (ADR 0007). No field, no such promise: the store reads the partition instead."""
    return f"snapshot-coverage:{topic}"


def inventory_applied(program_id: int) -> str:
    """Set of the catalogue event ids the seat inventory has applied."""
    return f"{program_tag(program_id)}:inventory:applied"


def order_snapshot(program_id: int, order_number: int) -> str:
    """Hash (``version``, ``state``): the Order aggregate's snapshot, in its program's slot beside
    the decision, so ``lua/order_release.lua`` saves it with the seats. ``:aggregate:`` marks it
    as the command side's: ``damai rebuild inventory`` leaves it alone, as the program's own."""
    return f"{program_tag(program_id)}:aggregate:order-{order_number}"


def pay_bill_marker(program_id: int, order_number: int) -> str:
    """String (JSON: ``payBillId``, ``channel``, ``amount``, ``createdAt`` ISO): the order's open
    pay bill, written by ``POST /api/v1/orders/{n}/payment`` before it answers, in the program's
    slot, so the lifecycle asks the provider before it expires an order someone may have paid,
    and the order view shows the bill at once. Expires with the order's view."""
    return f"{program_tag(program_id)}:aggregate:payment-{order_number}"


def hold_sequence(program_id: int) -> str:
    """Counter: the program's holds so far (``lua/order_reserve.lua`` increments it per hold; each
    ``SeatsReserved`` carries its value)."""
    return f"{program_tag(program_id)}:hold-sequence"


def remaining_counts(program_id: int) -> str:
    """Hash: ticket category id → tickets still on sale."""
    return f"{program_tag(program_id)}:remaining"


def ticket_category_prices(program_id: int) -> str:
    """Hash: ticket category id → its price in yuan ("1680.00"); every seat of a category has it."""
    return f"{program_tag(program_id)}:price"


def ticket_category_price_versions(program_id: int) -> str:
    """Hash: ticket category id → aggregate version of its price (the newest version wins)."""
    return f"{program_tag(program_id)}:price-version"


def available_seats(program_id: int, ticket_category_id: int) -> str:
    """Sorted set of available seat ids, scored row * SEAT_ROW_STRIDE + column."""
    return f"{program_tag(program_id)}:available:{ticket_category_id}"


def seat_facts(program_id: int, ticket_category_id: int) -> str:
    """Hash: seat id → "row:column" (read with ``seat_position``)."""
    return f"{program_tag(program_id)}:seat:{ticket_category_id}"


def seat_position(fact: bytes) -> tuple[int, int]:
    """(row, column) of a seat fact ("row:column")."""
    row, column = fact.split(b":")
    return int(row), int(column)


def seat_categories(program_id: int) -> str:
    """Hash: seat id → its ticket category id (a chosen seat names no category)."""
    return f"{program_tag(program_id)}:seat-category"


def category_show_times(program_id: int) -> str:
    """Hash: ticket category id → its show time id."""
    return f"{program_tag(program_id)}:category-show-time"


def category_columns(program_id: int) -> str:
    """Hash: "<ticket category id>:min" / ":max" → the lowest / highest column of its layout, whose
    middle is the centre line automatic seat choice prefers (lua/order_reserve.lua)."""
    return f"{program_tag(program_id)}:category-columns"


def search_availability(program_id: int) -> str:
    """Hash: the sold-out ticket categories the program's search document was last read with, the
    reading's stamp, and the highest stamp indexed (lua/search_availability.lua). In the program's
    slot, but outside ``program_keys_pattern``: the search's bookkeeping, not the inventory."""
    return f"search:{program_tag(program_id)}:availability"


def order_decision(program_id: int, order_number: int) -> str:
    """String (JSON): the allocator's decision on one order and, once held, what releasing it must
    undo (lua/order_reserve.lua states the shape). Deciding again returns it unchanged."""
    return f"{program_tag(program_id)}:order:{order_number}"


def account_tickets(program_id: int, user_id: int) -> str:
    """Counter: the tickets one user holds or bought for one program (the per-account limit)."""
    return f"{program_tag(program_id)}:account:{user_id}"


def show_documents(program_id: int, show_time_id: int) -> str:
    """Hash: ID document blind index (hex) → the order holding a ticket for it at this show time
    (one ticket per document per show, for programs that require real names)."""
    return f"{program_tag(program_id)}:documents:{show_time_id}"


def projector_offsets(projector: str) -> str:
    """Hash: "topic:partition" → the last offset a Redis projector applied (for rewinds, ADR 0003)."""
    return f"projector-offsets:{projector}"


def rate_limit_window(prefix: str, client_ip: str, group: str) -> str:
    """Counter of one IP address's requests to one route group in the current fixed window
    (``lua/fixed_window_limit.lua``, which gives it the window's length as its TTL)."""
    return f"{prefix}:rl:{{ip:{client_ip}}}:{group}"


def captcha_need(prefix: str, captcha_id: str) -> str:
    """String "1"/"0": whether the check that handed out this captcha id required a captcha
    (TTL ``CaptchaSettings.id_ttl_s``). The id's keys share the tag ``{captcha:<id>}``."""
    return f"{prefix}:{{captcha:{captcha_id}}}:need"


def captcha_answer(prefix: str, captcha_id: str) -> str:
    """String: the answer of the latest image drawn for this captcha id, taken once with GETDEL
    (TTL ``CaptchaSettings.answer_ttl_s``)."""
    return f"{prefix}:{{captcha:{captcha_id}}}:answer"


def registration_window(prefix: str) -> str:
    """Counter of the registrations in the current fixed window, which decides whether a captcha is
    required (``lua/fixed_window_limit.lua``, which gives it the window's length as its TTL)."""
    return f"{prefix}:{{captcha-window}}:registrations"


def user_tag(prefix: str, user_id: int) -> str:
    return f"{prefix}:{{u:{user_id}}}"


def user_state(prefix: str, user_id: int) -> str:
    """Hash, kept by the user projector after Postgres commits: ``version`` (the newest projected
    aggregate version) and ``status`` (``active``/``deleted``). Registration waits on ``version``;
    the purchase path refuses a deleted user."""
    return f"{user_tag(prefix, user_id)}:state"


def user_ticket_buyers(prefix: str, user_id: int) -> str:
    """Hash: ticket buyer id → the blind index (hex) of that buyer's ID document, kept by the user
    projector, so the purchase path checks buyers and one ticket per document without Postgres."""
    return f"{user_tag(prefix, user_id)}:ticket-buyers"


def user_bloom(prefix: str, part: str) -> str:
    """The registration Bloom filter's keys (``part``: live, building, builder): the blind indexes
    of mobiles and emails in use."""
    return f"{prefix}:{{user-bloom}}:{part}"


def login_failures(prefix: str, identifier_blind: str) -> str:
    """Counter of failed logins of one identifier (a mobile's or email's blind index) in the
    current window (``lua/fixed_window_limit.lua``)."""
    return f"{prefix}:{{login:{identifier_blind}}}:failures"


def revoked_tokens(prefix: str) -> str:
    """Stream of revoked access tokens (fields ``jti``, ``exp``), trimmed to the tokens' life;
    every API process tails it into a local set."""
    return f"{prefix}:{{sessions}}:revoked"


def user_rate_limit_window(prefix: str, user_id: int, group: str) -> str:
    """Counter of one signed-in user's requests to one route group in the current fixed window
    (``lua/fixed_window_limit.lua``), wherever they come from: ``rate_limit_window`` keyed by user."""
    return f"{prefix}:rl:{{u:{user_id}}}:{group}"


def idempotency_key(prefix: str, user_id: int, key: str) -> str:
    """String (JSON): the order an Idempotency-Key of this user placed and the fingerprint of its body."""
    return f"{user_tag(prefix, user_id)}:idempotency:{key}"


def user_order(prefix: str, user_id: int, order_number: int) -> str:
    """String: the program id of one of the user's orders, so its view finds the program's decision key
    (and another user's order number finds nothing)."""
    return f"{user_tag(prefix, user_id)}:order:{order_number}"


def order_member(order_number: int, program_id: int, user_id: int) -> str:
    """An order in a schedule (``order_expiries``, ``open_bills``): "<order>:<program>:<user>"."""
    return f"{order_number}:{program_id}:{user_id}"


def order_expiries(prefix: str, partition: int) -> str:
    """Sorted set: the held orders of one ``order`` partition ("<order>:<program>:<user>"), scored by
    their payment deadline (ms); the lifecycle that owns the partition expires them when due."""
    return f"{prefix}:{{order-expiry:{partition}}}"


def open_bills(prefix: str) -> str:
    """Sorted set: the orders with a pay bill ("<order>:<program>:<user>"), scored by when the bill
    is next to be asked about at its provider (ms); the reconciler asks, then drops the ones that
    ended."""
    return f"{prefix}:{{open-bills}}"


def refunds_due(prefix: str) -> str:
    """Sorted set: refunds to carry out at the provider (their JSON), scored by the next attempt (ms)."""
    return f"{prefix}:{{refunds}}"
