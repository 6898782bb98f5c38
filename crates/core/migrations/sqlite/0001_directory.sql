-- Flags are 0/1 integers and times are whole seconds since the Unix epoch (one code path serves both
-- backends through sqlx::Any, which carries only basic types).

CREATE TABLE directory_meta (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    key_check BLOB NOT NULL,
    -- Every write transaction bumps this first, so that writers take turns
    -- (the audit chain is one sequence) and SQLite takes its write lock
    -- before reading rather than failing to upgrade later.
    write_turn INTEGER NOT NULL DEFAULT 0,
    audit_head_seq INTEGER NOT NULL DEFAULT 0,
    audit_head_mac BLOB NOT NULL,
    -- Keyed over (seq, mac): rolling the head back to an earlier event
    -- needs a tag that was overwritten long ago.
    audit_head_tag BLOB NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE users (
    id TEXT PRIMARY KEY,
    email TEXT NOT NULL UNIQUE,
    display_name TEXT,
    enabled INTEGER NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE user_groups (
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    group_name TEXT NOT NULL,
    PRIMARY KEY (user_id, group_name)
);

CREATE TABLE policy (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    settings TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE TABLE passes (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    value_mac BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    start_at INTEGER NOT NULL,
    lifetime_minutes INTEGER NOT NULL,
    one_time INTEGER NOT NULL,
    revoked_at INTEGER,
    used_at INTEGER,
    claimed_by TEXT,
    claim_until INTEGER
);
CREATE INDEX passes_by_user ON passes (user_id, created_at);

CREATE TABLE methods (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind TEXT NOT NULL CHECK (kind IN ('totp', 'fido2')),
    label TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    last_used_at INTEGER,
    credential BLOB NOT NULL
);
CREATE INDEX methods_by_user ON methods (user_id);

CREATE TABLE sign_in_failures (
    email TEXT NOT NULL,
    failed_at INTEGER NOT NULL
);
CREATE INDEX sign_in_failures_by_email ON sign_in_failures (email, failed_at);

CREATE TABLE lockouts (
    email TEXT PRIMARY KEY,
    locked_until INTEGER NOT NULL,
    level INTEGER NOT NULL
);

CREATE TABLE audit_events (
    seq INTEGER PRIMARY KEY,
    at INTEGER NOT NULL,
    actor TEXT NOT NULL,
    kiosk TEXT NOT NULL,
    kind TEXT NOT NULL,
    user_email TEXT,
    pass_id TEXT,
    detail TEXT NOT NULL,
    prev_mac BLOB NOT NULL,
    mac BLOB NOT NULL
);
CREATE INDEX audit_events_by_user ON audit_events (user_email, seq);

-- Append-only. The keyed hash chain still catches whoever drops these.
CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
