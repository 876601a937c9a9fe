-- The SHA-256 of an issued certificate's DER, when its source holds the certificate itself (an
-- issued list of certificates); NULL for a bare serial and for index.txt. A CA with cert_hash
-- answers with it in the CertHash singleExtension (Common PKI): a positive statement that the
-- responder knows the certificate.
ALTER TABLE issued ADD COLUMN cert_hash BLOB;
