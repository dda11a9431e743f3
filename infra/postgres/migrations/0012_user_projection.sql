-- The user row as the user projector writes it (projections/user_projector.py). The table has
-- never held rows, so its columns are reshaped freely: sealed values are pd1 tokens (ASCII
-- text, infra/personal_data), the profile name is a sealed value like the others, gender and
-- document type are the wire format's names (events/user.py). Only this shard group's tables
-- here: a migration keeps to one group; the lookup and ticket buyer tables change in the other
-- 0012_* files.
ALTER TABLE {user}
    DROP COLUMN IF EXISTS nickname,
    ADD COLUMN IF NOT EXISTS name_cipher text,
    ADD COLUMN IF NOT EXISTS id_type text,
    ALTER COLUMN mobile_cipher TYPE text USING convert_from(mobile_cipher, 'UTF8'),
    ALTER COLUMN email_cipher TYPE text USING convert_from(email_cipher, 'UTF8'),
    ALTER COLUMN real_name_cipher TYPE text USING convert_from(real_name_cipher, 'UTF8'),
    ALTER COLUMN id_number_cipher TYPE text USING convert_from(id_number_cipher, 'UTF8'),
    -- smallint had no agreed meaning and no row used it.
    ALTER COLUMN gender TYPE text USING NULL,
    ADD CONSTRAINT {user}_gender_known CHECK (gender IN ('FEMALE', 'MALE', 'UNDISCLOSED')),
    ADD CONSTRAINT {user}_status_known CHECK (status IN ('active', 'deleted'));
