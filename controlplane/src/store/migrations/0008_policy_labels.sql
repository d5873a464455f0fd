-- Resource labels (declared in the bindings) that a policy version's schema declares.
ALTER TABLE policy_versions ADD COLUMN labels_json TEXT NOT NULL DEFAULT '[]';
