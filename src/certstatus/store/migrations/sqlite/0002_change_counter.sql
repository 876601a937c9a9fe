-- A per-issuer counter bumped by every write, so that other processes see
-- which issuer changed (they poll it; PostgreSQL also sends a notification).
ALTER TABLE issuers ADD COLUMN change_counter INTEGER NOT NULL DEFAULT 0;
