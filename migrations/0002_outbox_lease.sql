-- Webhook delivery leases: a node claims a due outbox row before it sends the event, so
-- nodes sharing this database do not deliver the same event at the same time. NULL: not
-- leased. A lease held past its time (the node died mid-attempt) may be taken by another
-- node; recording an attempt's outcome clears it.
ALTER TABLE outbox ADD COLUMN lease_until BIGINT;
