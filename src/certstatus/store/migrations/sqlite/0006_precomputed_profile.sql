-- The signing profile of each pre-signed row (certstatus.config.CaSettings.signing_profile):
-- a number naming the settings a response was signed under (validity, responderID, the
-- policies that add extensions) and the release's response format. The request path serves
-- a row only when it matches the CA's current profile, and the generator re-signs the others
-- first (it makes them due when it takes a CA on). Rows written before this version have 0,
-- which matches no profile: they are signed again before they are served.
ALTER TABLE precomputed ADD COLUMN profile INTEGER NOT NULL DEFAULT 0;
