-- The bills as the projectors write them (projections/payment_projector.py for the payment topic,
-- projections/order_projector.py for the refunds an order requires). Neither table has held rows.
--
-- A pay bill keeps the first trade that paid it (trade_number, paid_at): a second trade of the
-- same bill (the buyer paid twice) is given back and never replaces it. What the bill took and
-- gave back is summed so it reads 'refunded' only once every trade's money is back.
ALTER TABLE {pay_bill}
    ADD COLUMN IF NOT EXISTS paid_amount numeric(12,2) NOT NULL DEFAULT 0 CHECK (paid_amount >= 0),
    ADD COLUMN IF NOT EXISTS refunded_amount numeric(12,2) NOT NULL DEFAULT 0 CHECK (refunded_amount >= 0),
    ADD COLUMN IF NOT EXISTS refunded_at timestamptz;

-- A refund gives one payment back: the order requires it once per payment (RefundRequired, on the
-- order topic), and the provider's attempts at it are recorded on the bill (RefundSucceeded,
-- RefundFailed, on the payment topic). The two topics are projected apart, in any interleaving,
-- so the row is keyed by what both know, the order and its trade, and whichever comes first
-- makes it:
--   trade_no        the provider's number of the payment given back;
--   refund_number   our number of the refund (the provider's out_request_no), once an attempt
--                   or the order's OrderRefunded named it; unique per bill;
--   pay_bill_id     the bill, once an attempt named it (RefundRequired does not);
--   reason          'order_refunded' (the paid order's refund asked for: its seats went back)
--                   or 'payment_not_needed' (a payment after the order ended, or a second one),
--                   when the order projector could tell;
--   attempts        attempts made at the provider (failed ones, and the one that succeeded);
--   last_error      the provider's error of the last failed attempt;
--   retry_at        when a failed refund is tried again (none once refunded);
--   created_at      when the refund was required (or its first attempt, until the order's event
--                   is projected);
--   aggregate_version  the bill's version of the last attempt applied (0: none yet).
-- The id nothing could derive exactly is dropped, as migration 0013 dropped the tickets'.
ALTER TABLE {refund_bill}
    DROP COLUMN IF EXISTS id,
    ALTER COLUMN pay_bill_id DROP NOT NULL,
    ALTER COLUMN reason DROP NOT NULL,
    ADD COLUMN IF NOT EXISTS trade_no text NOT NULL,
    ADD COLUMN IF NOT EXISTS refund_number text,
    ADD COLUMN IF NOT EXISTS attempts integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    ADD COLUMN IF NOT EXISTS last_error text,
    ADD COLUMN IF NOT EXISTS retry_at timestamptz,
    ADD PRIMARY KEY (order_number, trade_no),
    ADD CONSTRAINT {refund_bill}_refund_number_key UNIQUE (order_number, refund_number),
    -- A bill may be of nothing to pay (free tickets); giving it back is no error.
    DROP CONSTRAINT IF EXISTS {refund_bill}_amount_check,
    ADD CONSTRAINT {refund_bill}_amount_check CHECK (amount >= 0);
-- The primary key serves an order's refunds now.
DROP INDEX IF EXISTS {refund_bill}_order_idx;
