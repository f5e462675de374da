-- Time series by metric name: the viewer count sampled every 2 minutes while live (reference §5).
-- Owncast keeps them in data/metrics (tstorage); `time` is whole unix seconds, tstorage's precision.
CREATE TABLE metric_samples (
    metric TEXT NOT NULL,
    time INTEGER NOT NULL,
    value REAL NOT NULL,
    PRIMARY KEY (metric, time)
) WITHOUT ROWID;
-- Retention deletes by age across every metric.
CREATE INDEX metric_samples_by_time ON metric_samples (time);
