-- Ticket buyers as the user projector writes them: sealed values as pd1 tokens (ASCII text), the
-- document type by its wire name (events/user.py IdType). The table has never held rows.
ALTER TABLE {ticket_buyer}
    ALTER COLUMN name_cipher TYPE text USING convert_from(name_cipher, 'UTF8'),
    ALTER COLUMN id_number_cipher TYPE text USING convert_from(id_number_cipher, 'UTF8'),
    -- smallint had no agreed meaning and no row used it; the unique index on it is rebuilt.
    ALTER COLUMN id_type TYPE text USING NULL;
