-- A user's wrapped data keys (docs/personal-data.md), routed by user id with the user rows (same
-- slot, same database). Not a column of {user}: that row is a projection of the log, rebuilt by
-- replaying it, while a data key is in no event and must exist before the user's first event.
-- wrapped_keys is a JSON array of {"keyId", "token"} (the last one current), each token a data key
-- sealed under a master key, never the key in clear. Shredding empties it for good and leaves the
-- row as a tombstone; Postgres keeps the old row version until VACUUM, and WAL and backups keep it
-- until they age out.
CREATE TABLE IF NOT EXISTS {user_data_key} (
    user_id       bigint      PRIMARY KEY,
    wrapped_keys  jsonb       NOT NULL,
    shredded      boolean     NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    shredded_at   timestamptz,
    CONSTRAINT {user_data_key}_keys_or_tombstone CHECK (
        jsonb_typeof(wrapped_keys) = 'array'
        AND (shredded = (jsonb_array_length(wrapped_keys) = 0))
        AND (shredded = (shredded_at IS NOT NULL))
    )
);
