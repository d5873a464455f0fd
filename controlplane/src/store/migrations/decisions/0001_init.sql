-- Decision records shipped by data-plane nodes. A node numbers its records per records
-- directory (`epoch`), so (node, epoch, seq) identifies a record and storing is idempotent.
-- `id` only grows (never reused, even after retention deletes the newest rows): SIEM sinks
-- deliver in its order.
CREATE TABLE decisions (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    node              TEXT NOT NULL,
    epoch             TEXT NOT NULL,
    seq               INTEGER NOT NULL,
    at_ms             INTEGER NOT NULL,
    principal_id      TEXT,
    user_name         TEXT,
    source            TEXT,
    action            TEXT NOT NULL,
    resource          TEXT NOT NULL,
    decision          TEXT NOT NULL,
    stored_ms         INTEGER NOT NULL,
    -- The whole record as the node wrote it (JSON).
    record            TEXT NOT NULL,
    UNIQUE (node, epoch, seq)
) STRICT;
CREATE INDEX decisions_by_time ON decisions (at_ms);
CREATE INDEX decisions_by_principal ON decisions (principal_id, at_ms);
CREATE INDEX decisions_by_user_name ON decisions (user_name, at_ms);
CREATE INDEX decisions_by_resource ON decisions (resource, at_ms);

-- Per node and records directory, the number after the highest record ever stored: where the
-- node resumes shipping. Retention leaves it alone, so nothing deleted is shipped again.
CREATE TABLE shipped (
    node     TEXT NOT NULL,
    epoch    TEXT NOT NULL,
    next_seq INTEGER NOT NULL,
    PRIMARY KEY (node, epoch)
) STRICT;
