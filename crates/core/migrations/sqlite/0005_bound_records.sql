-- Records bound to the directory key: a pass row's MAC covers its id,
-- owner, start, lifetime and one-time flag as well as the value (see
-- DirectoryKey::bind_pass), and the policy carries a MAC of its settings.
-- Rows written before this migration are bound once, by the first program
-- that opens the directory with its key; `records_sealed` says it is done.
ALTER TABLE directory_meta ADD COLUMN records_sealed INTEGER NOT NULL DEFAULT 0;
ALTER TABLE policy ADD COLUMN mac BLOB;
-- Redeem looks up a pass's history (used, revoked) in the audit log, so
-- that a row edited back to "live" is caught.
CREATE INDEX audit_events_by_pass ON audit_events (pass_id);
