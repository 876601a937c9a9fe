-- The notAfter of an issued certificate, when its source gives it (an index.txt expiry field, a
-- certificate in an issued list); NULL for a bare serial. A CA with archive_cutoff keeps a
-- revocation that drops off a later CRL unless the certificate is known to be still valid then.
ALTER TABLE issued ADD COLUMN not_after timestamptz;
