-- Portcullis control-plane store, schema version 13: API keys.
--
-- A key's text (`pcul_<id>_<secret>`) is shown once, when it is issued; only its SHA-256 is
-- kept. Every live key travels in the snapshots with its principal and expiry, so nodes check
-- it without calling the control plane. Revoked and expired keys stay for the record.
CREATE TABLE api_keys (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    source     TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    user_name  TEXT NOT NULL,
    hash       BLOB NOT NULL,
    created_ms INTEGER NOT NULL,
    expires_ms INTEGER,
    revoked_ms INTEGER,
    author     TEXT NOT NULL
) STRICT;
CREATE INDEX api_keys_by_user ON api_keys (source, user_id);
