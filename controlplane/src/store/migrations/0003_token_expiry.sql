-- Portcullis control-plane store, schema version 3: SCIM tokens can expire, so a rotation
-- keeps the previous token valid for an overlap window.
ALTER TABLE scim_tokens ADD COLUMN expires_ms INTEGER;
