-- Pre-signed responses in the compact form (certstatus.store.sqlite_precomputed):
-- one row per (issuer, serial) holding the SHA-1 and the SHA-256 CertID
-- responses, which the generator always signs together at one time, and the
-- delegated responder certificates (the same in every response of a signer,
-- ~430 of ~750 bytes with ECDSA P-256) stored once in precomputed_certs
-- instead of in every response. certs_id NULL: sha1/sha256 hold complete
-- OCSPResponses (rows copied from version 3); otherwise they hold the
-- BasicOCSPResponse content up to the signature, and the reader appends the
-- certificates of certs_id and the outer headers.
CREATE TABLE precomputed_certs (
    id INTEGER PRIMARY KEY,
    der BLOB NOT NULL UNIQUE
);
CREATE TABLE precomputed_compact (
    issuer_id INTEGER NOT NULL REFERENCES issuers(id),
    serial BLOB NOT NULL,
    sha1 BLOB,
    sha256 BLOB,
    certs_id INTEGER REFERENCES precomputed_certs(id),
    this_update INTEGER NOT NULL,
    next_update INTEGER NOT NULL,
    renew_at INTEGER NOT NULL,
    signed_seq INTEGER NOT NULL,
    changed_seq INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (issuer_id, serial)
);
-- The version 3 rows keep serving: both responses of a serial move into one
-- row, unchanged (complete DER, certs_id NULL). The generator signed both at
-- one time; should their times differ, the row keeps the earlier nextUpdate
-- and renewal and the older status read, so it is re-signed no later than
-- either response would have been.
INSERT INTO precomputed_compact(issuer_id, serial, sha1, sha256, certs_id, this_update, next_update, renew_at, signed_seq, changed_seq)
SELECT issuer_id, serial,
       max(CASE WHEN hash_algorithm = 'sha1' THEN der END),
       max(CASE WHEN hash_algorithm = 'sha256' THEN der END),
       NULL, max(this_update), min(next_update), min(renew_at), min(signed_seq), max(changed_seq)
FROM precomputed WHERE hash_algorithm IN ('sha1', 'sha256')
GROUP BY issuer_id, serial;
DROP TABLE precomputed;
ALTER TABLE precomputed_compact RENAME TO precomputed;
CREATE INDEX precomputed_renew ON precomputed(issuer_id, renew_at, serial);
CREATE INDEX precomputed_changed ON precomputed(issuer_id, serial) WHERE changed_seq > signed_seq;
