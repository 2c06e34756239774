-- paygate schema, version 1. Applied by the binary at start (src/store/pg/migrate.rs),
-- inside one transaction together with its row in paygate_schema.
--
-- Records are stored as versioned blobs (a layout byte and a bincode body, the same record
-- types the sled backend writes: src/store/records); the columns beside them are what
-- queries, uniqueness and optimistic concurrency need. Text columns that are sorted on use
-- the "C" collation, so ids (which begin with their creation time) sort by bytes, as sled
-- sorts them.

CREATE TABLE orders (
    id TEXT COLLATE "C" PRIMARY KEY,
    merchant_id TEXT COLLATE "C" NOT NULL,
    merchant_order_no TEXT NOT NULL,
    -- The order's version: an order transition updates the row only at the version its
    -- writer read (optimistic concurrency between nodes).
    version BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    -- The order's pending wake-up time (unix ms), if any.
    wake BIGINT,
    anomalous BOOLEAN NOT NULL DEFAULT FALSE,
    record BYTEA NOT NULL,
    CONSTRAINT orders_merchant_order_no UNIQUE (merchant_id, merchant_order_no)
);
CREATE INDEX orders_by_merchant ON orders (merchant_id, id);
CREATE INDEX orders_by_wake ON orders (wake, id) WHERE wake IS NOT NULL;
CREATE INDEX orders_anomalous ON orders (id) WHERE anomalous;

CREATE TABLE order_events (
    order_id TEXT COLLATE "C" NOT NULL,
    seq BIGINT NOT NULL,
    record BYTEA NOT NULL,
    PRIMARY KEY (order_id, seq)
);

CREATE TABLE refunds (
    id TEXT COLLATE "C" PRIMARY KEY,
    order_id TEXT COLLATE "C" NOT NULL,
    merchant_id TEXT COLLATE "C" NOT NULL,
    merchant_refund_no TEXT NOT NULL,
    CONSTRAINT refunds_merchant_refund_no UNIQUE (merchant_id, merchant_refund_no)
);

CREATE TABLE outbox (
    id TEXT COLLATE "C" PRIMARY KEY,
    merchant_id TEXT COLLATE "C" NOT NULL,
    status TEXT NOT NULL,
    next_due BIGINT NOT NULL,
    delivered_at BIGINT,
    record BYTEA NOT NULL
);
CREATE INDEX outbox_due ON outbox (next_due, id) WHERE status = 'pending';

CREATE TABLE stats_daily (
    merchant_id TEXT COLLATE "C" NOT NULL,
    day BIGINT NOT NULL,
    channel TEXT COLLATE "C" NOT NULL,
    currency TEXT COLLATE "C" NOT NULL,
    orders BIGINT NOT NULL,
    paid_orders BIGINT NOT NULL,
    paid BIGINT NOT NULL,
    refunded BIGINT NOT NULL,
    late_paid BIGINT NOT NULL,
    late_refunded BIGINT NOT NULL,
    PRIMARY KEY (merchant_id, day, channel, currency)
);

-- Small keyed records with compare-and-swap (src/store/cas.rs): idempotency keys (the
-- primary key is what makes a key claimed once), risk day counters, alerts, anomaly
-- acknowledgements, and the simulators' state (trees named sim_<channel>).
CREATE TABLE kv (
    tree TEXT COLLATE "C" NOT NULL,
    key BYTEA NOT NULL,
    value BYTEA NOT NULL,
    PRIMARY KEY (tree, key)
);
