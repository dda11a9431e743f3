-- Payment and refund bills, routed by the order number they settle.
CREATE TABLE IF NOT EXISTS {pay_bill} (
    id                 bigint        PRIMARY KEY,
    order_number       bigint        NOT NULL UNIQUE,
    channel            text          NOT NULL,
    trade_number       text,
    amount             numeric(12,2) NOT NULL CHECK (amount >= 0),
    status             text          NOT NULL CHECK (status IN ('created', 'paid', 'closed', 'refunded')),
    paid_at            timestamptz,
    aggregate_version  integer       NOT NULL,
    created_at         timestamptz   NOT NULL,
    updated_at         timestamptz   NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS {refund_bill} (
    id                 bigint        PRIMARY KEY,
    order_number       bigint        NOT NULL,
    pay_bill_id        bigint        NOT NULL,
    amount             numeric(12,2) NOT NULL CHECK (amount > 0),
    reason             text          NOT NULL,
    status             text          NOT NULL CHECK (status IN ('requested', 'refunded', 'failed')),
    refunded_at        timestamptz,
    aggregate_version  integer       NOT NULL,
    created_at         timestamptz   NOT NULL,
    updated_at         timestamptz   NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS {refund_bill}_order_idx ON {refund_bill} (order_number);
