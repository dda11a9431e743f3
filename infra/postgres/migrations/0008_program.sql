-- A program and everything sold for it, all routed by program id: one program's show times,
-- ticket categories and seats live in tables of the same slot.
CREATE TABLE IF NOT EXISTS {program} (
    id                   bigint      PRIMARY KEY,
    title                text        NOT NULL,
    actor                text,
    venue                text        NOT NULL,
    area_id              integer     NOT NULL,
    parent_category_id   integer     NOT NULL,
    category_id          integer     NOT NULL,
    detail               text        NOT NULL DEFAULT '',
    notices              jsonb       NOT NULL DEFAULT '[]'::jsonb,
    per_order_limit      smallint    NOT NULL DEFAULT 6,
    per_account_limit    smallint    NOT NULL DEFAULT 6,
    seat_selectable      boolean     NOT NULL,
    real_name_required   boolean     NOT NULL DEFAULT false,
    refund_policy        jsonb       NOT NULL DEFAULT '{}'::jsonb,
    high_heat            boolean     NOT NULL DEFAULT false,
    issue_time           timestamptz,
    payment_minutes      smallint    NOT NULL DEFAULT 15,
    status               text        NOT NULL DEFAULT 'draft'
                                     CHECK (status IN ('draft', 'on_sale', 'off_sale')),
    aggregate_version    integer     NOT NULL,
    created_at           timestamptz NOT NULL,
    updated_at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS {program}_area_category_idx ON {program} (area_id, parent_category_id);

CREATE TABLE IF NOT EXISTS {show_time} (
    id                 bigint      PRIMARY KEY,
    program_id         bigint      NOT NULL,
    starts_at          timestamptz NOT NULL,
    status             text        NOT NULL DEFAULT 'scheduled',
    aggregate_version  integer     NOT NULL,
    created_at         timestamptz NOT NULL,
    updated_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS {show_time}_program_idx ON {show_time} (program_id, starts_at);

CREATE TABLE IF NOT EXISTS {ticket_category} (
    id                 bigint        PRIMARY KEY,
    program_id         bigint        NOT NULL,
    show_time_id       bigint        NOT NULL,
    name               text          NOT NULL,
    price              numeric(10,2) NOT NULL CHECK (price >= 0),
    total              integer       NOT NULL CHECK (total >= 0),
    remaining          integer       NOT NULL CHECK (remaining >= 0),
    aggregate_version  integer       NOT NULL,
    created_at         timestamptz   NOT NULL,
    updated_at         timestamptz   NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS {ticket_category}_program_idx ON {ticket_category} (program_id, show_time_id);

-- Seat states: available → locked → sold, and back to available on cancel/expiry/refund.
CREATE TABLE IF NOT EXISTS {seat} (
    id                  bigint        PRIMARY KEY,
    program_id          bigint        NOT NULL,
    show_time_id        bigint        NOT NULL,
    ticket_category_id  bigint        NOT NULL,
    row_number          integer       NOT NULL,
    column_number       integer       NOT NULL,
    price               numeric(10,2) NOT NULL CHECK (price >= 0),
    status              text          NOT NULL DEFAULT 'available'
                                      CHECK (status IN ('available', 'locked', 'sold')),
    order_number        bigint,
    aggregate_version   integer       NOT NULL,
    created_at          timestamptz   NOT NULL,
    updated_at          timestamptz   NOT NULL DEFAULT now(),
    UNIQUE (show_time_id, row_number, column_number)
);
CREATE INDEX IF NOT EXISTS {seat}_program_idx ON {seat} (program_id, ticket_category_id, status);
