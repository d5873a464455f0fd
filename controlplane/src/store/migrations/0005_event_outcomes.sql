-- Portcullis control-plane store, schema version 5: every authenticated SCIM write request is
-- an identity event, not only those that changed something. `outcome` is `applied` (the
-- identity revision moved), `unchanged` (accepted, nothing differed) or `rejected` (with the
-- HTTP status, the error detail and the request body as sent).
ALTER TABLE identity_events ADD COLUMN outcome TEXT NOT NULL DEFAULT 'applied';
ALTER TABLE identity_events ADD COLUMN status INTEGER;
ALTER TABLE identity_events ADD COLUMN detail TEXT;
ALTER TABLE identity_events ADD COLUMN request_json TEXT;
