-- Pre-signed responses (precomputed and cached modes), one per (issuer,
-- serial, CertID hash algorithm); the same table as SQLite's (see
-- certstatus.store.sqlite_precomputed). The PostgreSQL store does not read or
-- write it yet: certstatus refuses mode = "precomputed"/"cached" with a
-- postgresql:// database until it does.
CREATE TABLE precomputed (
    issuer_id integer NOT NULL,
    serial bytea NOT NULL,
    hash_algorithm text NOT NULL,
    der bytea NOT NULL,
    this_update timestamptz NOT NULL,
    next_update timestamptz NOT NULL,
    renew_at timestamptz NOT NULL,
    signed_seq bigint NOT NULL,
    changed_seq bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (issuer_id, serial, hash_algorithm)
);
CREATE INDEX precomputed_renew ON precomputed(issuer_id, renew_at, serial);
CREATE INDEX precomputed_changed ON precomputed(issuer_id, serial) WHERE changed_seq > signed_seq;
