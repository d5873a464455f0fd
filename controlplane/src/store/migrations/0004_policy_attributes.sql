-- Portcullis control-plane store, schema version 4: a policy version records the principal
-- attributes (from custom SCIM extensions) its schema declares, so a snapshot never carries an
-- attribute the live policy version was not validated against.
ALTER TABLE policy_versions ADD COLUMN attributes_json TEXT NOT NULL DEFAULT '[]';
