-- Deprovisioning receipts: which identity revision each published version carries, and
-- when each node acknowledged each version, so "when was this event enforced everywhere?"
-- has an answer.
CREATE TABLE published_versions (
    version INTEGER PRIMARY KEY,
    identity_revision INTEGER NOT NULL,
    published_ms INTEGER NOT NULL
);
CREATE INDEX published_versions_by_revision ON published_versions (identity_revision);
CREATE TABLE node_acks (
    node_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    acked_ms INTEGER NOT NULL,
    PRIMARY KEY (node_id, version)
);
CREATE INDEX node_acks_by_version ON node_acks (version);
