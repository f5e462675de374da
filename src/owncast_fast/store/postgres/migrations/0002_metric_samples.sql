-- Time series by metric name: the viewer count sampled every 2 minutes while live (reference §5).
-- Owncast keeps them in data/metrics (tstorage); times are whole seconds, tstorage's precision.
CREATE TABLE metric_samples (
    metric TEXT NOT NULL,
    time TIMESTAMPTZ NOT NULL,
    value DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (metric, time)
);
-- Retention deletes by age across every metric.
CREATE INDEX metric_samples_by_time ON metric_samples (time);
