-- Portcullis control-plane store, schema version 1.

-- Counters that must survive restarts: identity_revision, snapshot_version.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) STRICT;
INSERT INTO meta (key, value) VALUES ('identity_revision', 0), ('snapshot_version', 0);

-- SCIM users. `resource` is the SCIM representation as stored, without the attributes the
-- server computes on read (id, meta, groups). Deleting a user deletes the row; its history
-- stays in identity_events.
CREATE TABLE users (
    id           TEXT PRIMARY KEY,
    source       TEXT NOT NULL,
    user_name    TEXT NOT NULL,
    user_name_lc TEXT NOT NULL,
    external_id  TEXT,
    active       INTEGER NOT NULL,
    resource     TEXT NOT NULL,
    created_ms   INTEGER NOT NULL,
    modified_ms  INTEGER NOT NULL,
    version      INTEGER NOT NULL,
    UNIQUE (source, user_name_lc)
) STRICT;
CREATE INDEX users_by_external_id ON users (source, external_id);

CREATE TABLE groups (
    id              TEXT PRIMARY KEY,
    source          TEXT NOT NULL,
    display_name    TEXT NOT NULL,
    display_name_lc TEXT NOT NULL,
    external_id     TEXT,
    resource        TEXT NOT NULL,
    created_ms      INTEGER NOT NULL,
    modified_ms     INTEGER NOT NULL,
    version         INTEGER NOT NULL,
    UNIQUE (source, display_name_lc)
) STRICT;
CREATE INDEX groups_by_external_id ON groups (source, external_id);

-- Direct memberships. Nesting (a group inside a group) is a row with member_type 'Group'.
CREATE TABLE group_members (
    group_id    TEXT NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    member_id   TEXT NOT NULL,
    member_type TEXT NOT NULL CHECK (member_type IN ('User', 'Group')),
    PRIMARY KEY (group_id, member_id)
) STRICT;
CREATE INDEX group_members_by_member ON group_members (member_id);

-- Every identity change, written in the same transaction as the change itself.
CREATE TABLE identity_events (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    revision      INTEGER NOT NULL,
    at_ms         INTEGER NOT NULL,
    source        TEXT NOT NULL,
    operation     TEXT NOT NULL,
    resource_type TEXT NOT NULL,
    resource_id   TEXT NOT NULL,
    before_json   TEXT,
    after_json    TEXT
) STRICT;
CREATE INDEX identity_events_by_resource ON identity_events (resource_id, seq);

-- SCIM bearer tokens, stored only as SHA-256.
CREATE TABLE scim_tokens (
    id           TEXT PRIMARY KEY,
    source       TEXT NOT NULL,
    token_sha256 TEXT NOT NULL UNIQUE,
    label        TEXT,
    created_ms   INTEGER NOT NULL,
    revoked_ms   INTEGER
) STRICT;

-- Every policy version that went live.
CREATE TABLE policy_versions (
    counter    INTEGER PRIMARY KEY,
    hash       TEXT NOT NULL,
    schema     TEXT NOT NULL,
    files_json TEXT NOT NULL,
    created_ms INTEGER NOT NULL
) STRICT;

-- Recent compiled snapshots (framed bytes).
CREATE TABLE snapshots (
    version           INTEGER PRIMARY KEY,
    identity_revision INTEGER NOT NULL,
    policy_counter    INTEGER NOT NULL,
    content_hash      TEXT NOT NULL,
    created_ms        INTEGER NOT NULL,
    payload           BLOB NOT NULL
) STRICT;

-- Data-plane nodes that ever subscribed.
CREATE TABLE nodes (
    node_id           TEXT PRIMARY KEY,
    agent             TEXT NOT NULL,
    listen            TEXT NOT NULL,
    peer              TEXT NOT NULL,
    first_seen_ms     INTEGER NOT NULL,
    last_seen_ms      INTEGER NOT NULL,
    applied_version   INTEGER NOT NULL,
    last_ack_ms       INTEGER,
    last_nack_version INTEGER,
    last_nack_reason  TEXT,
    last_nack_ms      INTEGER
) STRICT;
