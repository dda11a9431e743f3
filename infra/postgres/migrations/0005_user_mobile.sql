-- Mobile → user id, routed by the mobile's blind index so login by mobile reads one table.
CREATE TABLE IF NOT EXISTS {user_mobile} (
    mobile_blind       bytea       PRIMARY KEY,
    user_id            bigint      NOT NULL,
    aggregate_version  integer     NOT NULL,
    created_at         timestamptz NOT NULL
);
