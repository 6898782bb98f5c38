-- PostgreSQL's writers leave their events here until they are chained
-- just after commit. SQLite has one writer, which chains its events as it
-- writes them, so this table stays empty; it is here so that both
-- backends have the same tables.
CREATE TABLE audit_pending (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at INTEGER NOT NULL,
    actor TEXT NOT NULL,
    kiosk TEXT NOT NULL,
    kind TEXT NOT NULL,
    user_email TEXT,
    pass_id TEXT,
    detail TEXT NOT NULL,
    mac BLOB NOT NULL
);
CREATE INDEX audit_pending_by_pass ON audit_pending (pass_id);
