-- Portcullis control-plane store, schema version 7: the identity model's bindings (role
-- bundles, dynamic groups, conditions, lifecycle, break-glass), versioned and change-controlled,
-- and break-glass activations.

-- Every version of the bindings document that went live. Rollback is a new version whose
-- content is an earlier one's.
CREATE TABLE binding_versions (
    version      INTEGER PRIMARY KEY,
    at_ms        INTEGER NOT NULL,
    author       TEXT NOT NULL,
    comment      TEXT,
    content_json TEXT NOT NULL,
    hash         TEXT NOT NULL,
    diff         TEXT NOT NULL
) STRICT;

-- Time-boxed emergency access. Expiry is carried in snapshots, so nodes end it on their own.
CREATE TABLE break_glass_activations (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    role         TEXT NOT NULL,
    source       TEXT NOT NULL,
    user_id      TEXT NOT NULL,
    user_name    TEXT NOT NULL,
    reason       TEXT NOT NULL,
    author       TEXT NOT NULL,
    activated_ms INTEGER NOT NULL,
    expires_ms   INTEGER NOT NULL,
    revoked_ms   INTEGER
) STRICT;
CREATE INDEX break_glass_by_expiry ON break_glass_activations (expires_ms);

-- Events an operator must see first (break-glass activations, nesting cycles).
ALTER TABLE identity_events ADD COLUMN priority TEXT NOT NULL DEFAULT 'normal';
