-- The fingerprint of the bytes a source was last imported from
-- (certstatus.sources.importer.source_fingerprint): a restart, reload or
-- file poll that finds the same bytes skips parsing them. NULL (rows written
-- before this version, or by a writer that does not know the column) means
-- "unknown": the source is imported as before.
ALTER TABLE sources ADD COLUMN fingerprint TEXT;
