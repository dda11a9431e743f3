-- Email → user id, routed by the email's blind index so login by email reads one table.
CREATE TABLE IF NOT EXISTS {user_email} (
    email_blind        bytea       PRIMARY KEY,
    user_id            bigint      NOT NULL,
    aggregate_version  integer     NOT NULL,
    created_at         timestamptz NOT NULL
);
