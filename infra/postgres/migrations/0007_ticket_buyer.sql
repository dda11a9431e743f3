-- A user's real-name ticket buyers, routed by user id: listing them reads one table.
CREATE TABLE IF NOT EXISTS {ticket_buyer} (
    id                 bigint      PRIMARY KEY,
    user_id            bigint      NOT NULL,
    name_cipher        bytea       NOT NULL,
    id_type            smallint    NOT NULL,
    id_number_cipher   bytea       NOT NULL,
    id_number_blind    bytea       NOT NULL,
    deleted            boolean     NOT NULL DEFAULT false,
    aggregate_version  integer     NOT NULL,
    created_at         timestamptz NOT NULL,
    updated_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS {ticket_buyer}_user_idx ON {ticket_buyer} (user_id);
-- One person (ID document) once per user's list.
CREATE UNIQUE INDEX IF NOT EXISTS {ticket_buyer}_document_uq
    ON {ticket_buyer} (user_id, id_type, id_number_blind) WHERE NOT deleted;
