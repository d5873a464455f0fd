-- This store's lineage: version numbers it issues are comparable only with its own.
INSERT INTO meta (key, value) VALUES ('lineage', abs(random()) + 1);
