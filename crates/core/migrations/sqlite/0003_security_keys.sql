-- Security keys: the model the key reported (its AAGUID) and the credential
-- ID, which no two methods may share (one key credential, one person).
ALTER TABLE methods ADD COLUMN aaguid TEXT;
ALTER TABLE methods ADD COLUMN credential_id TEXT;
CREATE UNIQUE INDEX methods_by_credential_id ON methods (credential_id);
