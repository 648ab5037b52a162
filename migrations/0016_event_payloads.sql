-- An event's payload as its type's schema read it: a partial refund is checked against the order's items and
-- re-evaluated on what remains of it (src/reversals/order-refund.ts). NULL for events accepted before it was kept.
ALTER TABLE events ADD COLUMN payload TEXT;
