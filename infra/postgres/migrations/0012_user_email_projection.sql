-- An email's ownership as the user projector writes it: as the mobile lookup (0012_user_mobile_projection),
-- a release leaves a tombstone (user_id NULL) at the release's version.
ALTER TABLE {user_email}
    ALTER COLUMN user_id DROP NOT NULL,
    ADD COLUMN IF NOT EXISTS updated_at timestamptz NOT NULL DEFAULT now();
