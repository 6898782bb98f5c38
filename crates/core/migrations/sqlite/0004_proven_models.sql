-- The model a key allow-list goes by: the AAGUID when the key proved it
-- against the attestation roots, or when no roots were configured (the
-- reported model was trusted then, so it is for keys registered before).
ALTER TABLE methods ADD COLUMN policy_aaguid TEXT;
UPDATE methods SET policy_aaguid = aaguid WHERE kind = 'fido2';
