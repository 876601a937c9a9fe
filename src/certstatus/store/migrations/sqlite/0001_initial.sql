-- The schema of the first release (IF NOT EXISTS: files made before versioned
-- migrations already have these tables).
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS issuers (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    certificate BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS revoked (
    issuer_id INTEGER NOT NULL REFERENCES issuers(id),
    serial BLOB NOT NULL,
    source TEXT NOT NULL,
    revocation_time INTEGER NOT NULL,
    reason INTEGER,
    invalidity_date INTEGER,
    PRIMARY KEY (issuer_id, serial, source)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS issued (
    issuer_id INTEGER NOT NULL REFERENCES issuers(id),
    serial BLOB NOT NULL,
    source TEXT NOT NULL,
    PRIMARY KEY (issuer_id, serial, source)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sources (
    issuer_id INTEGER NOT NULL REFERENCES issuers(id),
    kind TEXT NOT NULL,
    origin TEXT NOT NULL,
    imported_at INTEGER NOT NULL,
    entries INTEGER NOT NULL,
    this_update INTEGER,
    next_update INTEGER,
    crl_number TEXT,
    PRIMARY KEY (issuer_id, kind)
);
