-- The hold of its program that last took a seat row (projections/order_projector.py). A seat
-- passes from one order to another, and two orders' events sit in different partitions of the
-- order topic, which the projector may apply in any interleaving (a lagging partition, a
-- replay). Each hold carries its program's hold sequence (lua/order_reserve.lua); a hold locks a
-- seat only over an older hold, so the rows converge on what Redis decided. 0: never held.
ALTER TABLE {seat}
    ADD COLUMN IF NOT EXISTS hold_sequence bigint NOT NULL DEFAULT 0 CHECK (hold_sequence >= 0);
