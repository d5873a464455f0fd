-- Portcullis control-plane store, schema version 2: keep the `display` a client sends for a
-- group member (SCIM `members.display` is readWrite), so it round-trips.
ALTER TABLE group_members ADD COLUMN display TEXT;
