-- Events a transaction writes wait here until they are chained: a writer
-- on PostgreSQL no longer holds the audit head (one row every writer
-- needs) from its first statement to its commit. Just after the commit,
-- whichever kiosk gets the head first chains every waiting event, in the
-- order of `id`, into audit_events and deletes it here. `mac` is keyed
-- like the chain, so that a row put here by anyone without the directory
-- key is not chained as an event.
CREATE TABLE audit_pending (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    kiosk TEXT NOT NULL,
    kind TEXT NOT NULL,
    user_email TEXT,
    pass_id TEXT,
    detail TEXT NOT NULL,
    mac BYTEA NOT NULL
);
CREATE INDEX audit_pending_by_pass ON audit_pending (pass_id);
