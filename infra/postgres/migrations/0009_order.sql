-- Orders and their tickets, routed by order number; the number's gene puts all of a user's
-- orders in one table, so "my orders" reads one shard.
CREATE TABLE IF NOT EXISTS {order} (
    order_number       bigint        PRIMARY KEY,
    user_id            bigint        NOT NULL,
    program_id         bigint        NOT NULL,
    show_time_id       bigint        NOT NULL,
    program_title      text          NOT NULL,
    venue              text          NOT NULL,
    show_starts_at     timestamptz   NOT NULL,
    ticket_count       smallint      NOT NULL CHECK (ticket_count > 0),
    total_amount       numeric(12,2) NOT NULL CHECK (total_amount >= 0),
    status             text          NOT NULL
                       CHECK (status IN ('pending', 'unpaid', 'rejected', 'paid', 'cancelled', 'expired', 'refunded')),
    reject_reason      text,
    pay_deadline       timestamptz,
    paid_at            timestamptz,
    closed_at          timestamptz,
    aggregate_version  integer       NOT NULL,
    created_at         timestamptz   NOT NULL,
    updated_at         timestamptz   NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS {order}_user_idx ON {order} (user_id, created_at DESC);

CREATE TABLE IF NOT EXISTS {order_ticket} (
    id                  bigint        PRIMARY KEY,
    order_number        bigint        NOT NULL,
    user_id             bigint        NOT NULL,
    ticket_buyer_id     bigint,
    ticket_category_id  bigint        NOT NULL,
    seat_id             bigint,
    row_number          integer,
    column_number       integer,
    price               numeric(10,2) NOT NULL CHECK (price >= 0),
    aggregate_version   integer       NOT NULL,
    created_at          timestamptz   NOT NULL
);
CREATE INDEX IF NOT EXISTS {order_ticket}_order_idx ON {order_ticket} (order_number);
CREATE INDEX IF NOT EXISTS {order_ticket}_user_idx ON {order_ticket} (user_id);
