-- Admins may sign in to the pane with their own FIDO2 security key (touch
-- and the key's PIN) instead of their PIN.
CREATE TABLE admin_keys (
    id TEXT PRIMARY KEY,
    admin_id TEXT NOT NULL REFERENCES admins(id) ON DELETE CASCADE,
    label TEXT NOT NULL,
    credential_id TEXT NOT NULL UNIQUE,
    -- The credential (public key, counter), sealed under the directory key
    -- and bound to the admin's id and this row's id: moved to another
    -- admin, it does not open.
    credential BYTEA NOT NULL,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT
);
CREATE INDEX admin_keys_by_admin ON admin_keys (admin_id);
