-- The kiosk: authenticator-app steps, sessions that go on after their first
-- change, and the admin PIN.

-- The last TOTP time step accepted, so that a code is never accepted twice.
ALTER TABLE methods ADD COLUMN last_step BIGINT;

-- The kiosk session that used up a one-time pass; it may go on committing
-- changes until it ends.
ALTER TABLE passes ADD COLUMN used_by TEXT;

CREATE TABLE admin_pin (
    id BIGINT PRIMARY KEY CHECK (id = 1),
    pin_hash TEXT NOT NULL,
    failures BIGINT NOT NULL,
    level BIGINT NOT NULL,
    locked_until BIGINT,
    changed_at BIGINT NOT NULL
);
