-- Chat (reference §6.2): users, their access tokens, messages and IP bans.
CREATE TABLE users (
    id TEXT PRIMARY KEY,
    display_name TEXT NOT NULL,
    display_color INTEGER NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    disabled_at TIMESTAMPTZ,
    previous_names TEXT NOT NULL DEFAULT '',
    namechanged_at TIMESTAMPTZ,
    scopes TEXT NOT NULL DEFAULT '',
    authenticated_at TIMESTAMPTZ,
    type TEXT NOT NULL DEFAULT 'STANDARD',
    last_used TIMESTAMPTZ
);
-- Name uniqueness looks up registered users by exact name.
CREATE INDEX users_by_display_name ON users (display_name);
CREATE TABLE user_access_tokens (
    token TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    timestamp TIMESTAMPTZ NOT NULL
);
-- `seq` keeps the order of messages posted within the same microsecond.
CREATE TABLE messages (
    seq BIGSERIAL PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    user_id TEXT REFERENCES users (id) ON DELETE CASCADE,
    body TEXT NOT NULL,
    event_type TEXT NOT NULL,
    hidden_at TIMESTAMPTZ,
    timestamp TIMESTAMPTZ NOT NULL
);
CREATE INDEX messages_by_timestamp ON messages (timestamp);
CREATE INDEX messages_by_user ON messages (user_id);
CREATE TABLE ip_bans (
    ip_address TEXT PRIMARY KEY,
    notes TEXT NOT NULL DEFAULT '',
    created_at TIMESTAMPTZ NOT NULL
);
