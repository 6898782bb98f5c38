-- Flags are 0/1 integers and times are whole seconds since the Unix epoch (one code path serves both
-- backends through sqlx::Any, which carries only basic types).

CREATE TABLE directory_meta (
    id BIGINT PRIMARY KEY CHECK (id = 1),
    key_check BYTEA NOT NULL,
    -- Every write transaction bumps this first, so that writers take turns
    -- (the audit chain is one sequence) and SQLite takes its write lock
    -- before reading rather than failing to upgrade later.
    write_turn BIGINT NOT NULL DEFAULT 0,
    audit_head_seq BIGINT NOT NULL DEFAULT 0,
    audit_head_mac BYTEA NOT NULL,
    -- Keyed over (seq, mac): rolling the head back to an earlier event
    -- needs a tag that was overwritten long ago.
    audit_head_tag BYTEA NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE users (
    id TEXT PRIMARY KEY,
    email TEXT NOT NULL UNIQUE,
    display_name TEXT,
    enabled BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE user_groups (
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    group_name TEXT NOT NULL,
    PRIMARY KEY (user_id, group_name)
);

CREATE TABLE policy (
    id BIGINT PRIMARY KEY CHECK (id = 1),
    settings TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE passes (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    value_mac BYTEA NOT NULL,
    created_at BIGINT NOT NULL,
    start_at BIGINT NOT NULL,
    lifetime_minutes BIGINT NOT NULL,
    one_time BIGINT NOT NULL,
    revoked_at BIGINT,
    used_at BIGINT,
    claimed_by TEXT,
    claim_until BIGINT
);
CREATE INDEX passes_by_user ON passes (user_id, created_at);

CREATE TABLE methods (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind TEXT NOT NULL CHECK (kind IN ('totp', 'fido2')),
    label TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT,
    credential BYTEA NOT NULL
);
CREATE INDEX methods_by_user ON methods (user_id);

CREATE TABLE sign_in_failures (
    email TEXT NOT NULL,
    failed_at BIGINT NOT NULL
);
CREATE INDEX sign_in_failures_by_email ON sign_in_failures (email, failed_at);

CREATE TABLE lockouts (
    email TEXT PRIMARY KEY,
    locked_until BIGINT NOT NULL,
    level BIGINT NOT NULL
);

CREATE TABLE audit_events (
    seq BIGINT PRIMARY KEY,
    at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    kiosk TEXT NOT NULL,
    kind TEXT NOT NULL,
    user_email TEXT,
    pass_id TEXT,
    detail TEXT NOT NULL,
    prev_mac BYTEA NOT NULL,
    mac BYTEA NOT NULL
);
CREATE INDEX audit_events_by_user ON audit_events (user_email, seq);

-- Append-only. The keyed hash chain still catches whoever drops these.
CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'the audit log is append-only'; END;
$$;
CREATE TRIGGER audit_events_no_change BEFORE UPDATE OR DELETE ON audit_events
FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();
