-- How far each SIEM sink has delivered each stream: the identity event log's `seq`, or the
-- decision store's row id. Delivery resumes from here after an outage or a restart.
CREATE TABLE siem_cursors (
    sink       TEXT NOT NULL,
    stream     TEXT NOT NULL,
    position   INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL,
    PRIMARY KEY (sink, stream)
) STRICT;
