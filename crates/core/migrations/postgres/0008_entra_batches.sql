-- Entra pass batches from an HR file. Graph has no transaction, so a
-- batch is resumable instead: each row's result is kept here as soon as
-- the tenant answers, and a run of the same file skips the rows issued
-- before, so that nobody is issued a pass twice.
CREATE TABLE entra_batches (
    id TEXT PRIMARY KEY,
    -- A keyed hash of the file's text: the same file is the same batch.
    digest TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    row_count BIGINT NOT NULL,
    started_at BIGINT NOT NULL,
    started_by TEXT NOT NULL,
    -- A run of the batch holds it until then (renewed as it goes), so that
    -- two runs of the same file never send the same rows; a crashed run's
    -- hold runs out.
    running_until BIGINT,
    running_by TEXT
);
CREATE TABLE entra_batch_rows (
    batch_id TEXT NOT NULL REFERENCES entra_batches(id) ON DELETE CASCADE,
    email TEXT NOT NULL,
    line BIGINT NOT NULL,
    -- 'sent' while the tenant is asked (a row left so by a crash may have
    -- been issued: the next run looks before sending it again), then
    -- 'issued', 'refused', or 'lost' (issued, but the answer with its
    -- value never came back).
    state TEXT NOT NULL CHECK (state IN ('sent', 'issued', 'refused', 'lost')),
    sent_at BIGINT NOT NULL,
    -- The pass for its letter, sealed under the directory key and bound to
    -- the batch and the email, until IT says the letters are printed.
    pass BYTEA,
    pass_id TEXT,
    start_at BIGINT,
    lifetime_minutes BIGINT,
    one_time BIGINT,
    -- Why the tenant refused the row.
    reason TEXT,
    request_id TEXT,
    answered_at BIGINT,
    PRIMARY KEY (batch_id, email)
);
