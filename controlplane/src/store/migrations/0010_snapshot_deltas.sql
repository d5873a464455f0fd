-- Deltas between consecutive snapshot versions: nodes resume from the version they hold
-- after a control-plane restart, and the latest snapshot is rebuilt from the last full one.
CREATE TABLE snapshot_deltas (
    version INTEGER PRIMARY KEY,
    base_version INTEGER NOT NULL,
    identity_revision INTEGER NOT NULL,
    created_ms INTEGER NOT NULL,
    content_hash TEXT NOT NULL,
    payload BLOB NOT NULL
);
