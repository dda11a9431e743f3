-- A mobile's ownership as the user projector writes it: the row follows the mobile-<blind>
-- aggregate's version, and a release leaves the row as a tombstone (user_id NULL) at the
-- release's version, so a replayed older claim can never bring the mapping back.
ALTER TABLE {user_mobile}
    ALTER COLUMN user_id DROP NOT NULL,
    ADD COLUMN IF NOT EXISTS updated_at timestamptz NOT NULL DEFAULT now();
