-- A per-issuer counter bumped by every write; the writer sends it with
-- NOTIFY so that every responder process invalidates what it cached.
ALTER TABLE issuers ADD COLUMN change_counter bigint NOT NULL DEFAULT 0;
