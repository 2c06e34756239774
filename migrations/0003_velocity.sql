-- Velocity budgets shared by every node (risk rules: per payer, per IP, per merchant), as
-- GCRA state: `tat` is the theoretical arrival time (unix ns) of the next order at the
-- budget's steady rate; an order is allowed while `tat` is at most `tolerance` ns ahead
-- of now. A row whose `tat` has passed is the same as no row (a full budget) and is
-- purged.
CREATE TABLE velocity (
    key BYTEA PRIMARY KEY,
    tat BIGINT NOT NULL,
    tolerance BIGINT NOT NULL
);
CREATE INDEX velocity_tat ON velocity (tat);
