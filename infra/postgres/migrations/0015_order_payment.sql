-- The payment that paid an order (OrderPaid schema 2; none for an order paid before payments were
-- named, or not paid). A RefundRequired of this payment refunds the order and puts its seats back
-- on sale; one of another payment (after the order ended, or a second payment) leaves the order
-- as it is (projections/order_projector.py).
ALTER TABLE {order}
    ADD COLUMN IF NOT EXISTS payment_id text;
