-- The kiosk: authenticator-app steps, sessions that go on after their first
-- change, and the admin PIN.

-- The last TOTP time step accepted, so that a code is never accepted twice.
ALTER TABLE methods ADD COLUMN last_step INTEGER;

-- The kiosk session that used up a one-time pass; it may go on committing
-- changes until it ends.
ALTER TABLE passes ADD COLUMN used_by TEXT;

CREATE TABLE admin_pin (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    pin_hash TEXT NOT NULL,
    failures INTEGER NOT NULL,
    level INTEGER NOT NULL,
    locked_until INTEGER,
    changed_at INTEGER NOT NULL
);
