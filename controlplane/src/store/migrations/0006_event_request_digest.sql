-- Portcullis control-plane store, schema version 6: every identity event names the SCIM
-- request that caused it by the SHA-256 of its body (all events of one Bulk request share it).
ALTER TABLE identity_events ADD COLUMN request_sha256 TEXT;
