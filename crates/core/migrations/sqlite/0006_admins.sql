-- Each IT person has their own admin credential, created with tapctl only.
-- The shared admin PIN goes: it was set by whoever opened the pane first,
-- and its hash could be searched offline. `tapctl admin add` replaces it.
DROP TABLE admin_pin;

CREATE TABLE admins (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    -- Argon2id of the PIN keyed by the directory key; NULL until enrolled.
    pin_hash TEXT,
    -- HMAC of the one-time enrolment code, and until when it works.
    enrol_mac BLOB,
    enrol_until INTEGER,
    failures INTEGER NOT NULL,
    level INTEGER NOT NULL,
    locked_until INTEGER,
    created_at INTEGER NOT NULL,
    -- Keyed MAC over id, name, pin_hash, enrol_mac and enrol_until.
    mac BLOB NOT NULL
);
