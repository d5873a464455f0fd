-- The publisher reads what changed since the revision it last compiled.
CREATE INDEX identity_events_by_revision ON identity_events (revision);
