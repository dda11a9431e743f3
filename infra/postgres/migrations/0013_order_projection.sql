-- The order rows as the order projector writes them (projections/order_projector.py). The tables
-- have never held rows.
--
-- The program's title, venue and show time are not copied into the order: the projector would
-- have to read another projector's rows (which a rebuild may not have written yet) and a
-- rescheduled show time would leave every copy stale. The read side takes them from the
-- catalogue by program_id and show_time_id; the columns stay, unwritten, until a snapshot is
-- wanted (or are dropped).
--
-- A rejected order holds no tickets (OrderRejected does not carry the count asked for), so its
-- ticket_count is 0; every other order holds at least one.
ALTER TABLE {order}
    ALTER COLUMN program_title DROP NOT NULL,
    ALTER COLUMN venue DROP NOT NULL,
    ALTER COLUMN show_starts_at DROP NOT NULL,
    DROP CONSTRAINT IF EXISTS {order}_ticket_count_check,
    ADD CONSTRAINT {order}_ticket_count_check
        CHECK (ticket_count > 0 OR (ticket_count = 0 AND status = 'rejected'));

-- A ticket is the order's ticket number n (its place in SeatsReserved.tickets): exact and the
-- same on every replay. A bigint id derived from the 63-bit order number and the index cannot be
-- exact, and a hash that collided would make the upsert drop a ticket silently.
ALTER TABLE {order_ticket}
    DROP COLUMN IF EXISTS id,
    ADD COLUMN IF NOT EXISTS ticket_index smallint NOT NULL CHECK (ticket_index >= 0),
    ADD PRIMARY KEY (order_number, ticket_index);
-- The primary key serves the order's tickets now.
DROP INDEX IF EXISTS {order_ticket}_order_idx;
