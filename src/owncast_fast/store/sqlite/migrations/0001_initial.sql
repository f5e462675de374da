-- Owncast's "datastore" (reference §6.2): every runtime setting, one row per key.
-- Values are JSON text (see store/codec.py), not Go gob as in Owncast.
CREATE TABLE datastore (
    key TEXT NOT NULL PRIMARY KEY,
    value TEXT NOT NULL CHECK (json_valid(value)),
    updated_at TEXT NOT NULL
);
