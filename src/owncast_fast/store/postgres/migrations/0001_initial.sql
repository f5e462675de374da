-- Owncast's "datastore" (reference §6.2): every runtime setting, one row per key.
-- Values are JSONB (see store/codec.py), not Go gob as in Owncast.
CREATE TABLE datastore (
    key TEXT NOT NULL PRIMARY KEY,
    value JSONB NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
