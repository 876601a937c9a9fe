-- Pre-signed responses (precomputed and cached modes), one per (issuer,
-- serial, CertID hash algorithm): the OCSPResponse DER, its thisUpdate and
-- nextUpdate, when the generator signs it again (renew_at), and the issuer's
-- change counter when its status was read (signed_seq) and when the serial's
-- status last changed (changed_seq): served only while changed_seq <= signed_seq.
-- Times are seconds since the epoch (UTC). See certstatus.store.sqlite_precomputed.
CREATE TABLE IF NOT EXISTS precomputed (
    issuer_id INTEGER NOT NULL REFERENCES issuers(id),
    serial BLOB NOT NULL,
    hash_algorithm TEXT NOT NULL,
    der BLOB NOT NULL,
    this_update INTEGER NOT NULL,
    next_update INTEGER NOT NULL,
    renew_at INTEGER NOT NULL,
    signed_seq INTEGER NOT NULL,
    changed_seq INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (issuer_id, serial, hash_algorithm)
);
CREATE INDEX IF NOT EXISTS precomputed_renew ON precomputed(issuer_id, renew_at, serial);
CREATE INDEX IF NOT EXISTS precomputed_changed ON precomputed(issuer_id, serial) WHERE changed_seq > signed_seq;
