//! Entra pass batches, kept row by row. Graph has no transaction: a batch
//! of passes is made resumable instead. Each row's result (the pass for
//! its letter, or why the tenant refused it) is stored as soon as the
//! tenant answers, in the same transaction as its audit event, and a run of
//! the same file finds the rows issued before and skips them. A pass stays
//! sealed under the directory key until IT says the letters are printed.

use super::entra::{EntraChange, change_event};
use super::{Directory, DirectoryError};
use crate::Email;
use crate::audit::Event;
use crate::clock::from_seconds;
use crate::tenant::TenantPass;
use rand::rngs::OsRng;
use sqlx::Row as _;
use sqlx::any::AnyRow;
use zeroize::Zeroizing;

/// The result of one row of a batch.
#[derive(Debug)]
pub struct BatchRowResult {
    /// The row's line in the file.
    pub line: u64,
    /// Whose row it is.
    pub email: Email,
    /// What the tenant did.
    pub outcome: RowOutcome,
}

/// What the tenant did with a row.
#[derive(Debug)]
pub enum RowOutcome {
    /// It was asked, and its answer never stored (a crash, or a run still
    /// going): it may have issued the pass.
    Sent,
    /// It issued this pass; its value is held until the letters are
    /// printed, then forgotten.
    Issued(TenantPass),
    /// It refused, for this reason.
    Refused(String),
    /// It issued the pass `id` while its answer, with the value, was lost:
    /// IT revokes it and issues one singly.
    Lost(String),
}

/// A batch as the directory keeps it.
#[derive(Debug)]
pub struct StoredBatch {
    /// Its id.
    pub id: String,
    /// The results of its rows so far, by line.
    pub rows: Vec<BatchRowResult>,
}

/// How long a run holds its batch without a call to the tenant: longer
/// than one call with its retries and waits (five tries, two minutes at
/// most between them).
const RUN_HOLD_SECONDS: i64 = 15 * 60;

fn context(batch: &str, email: &Email) -> Vec<u8> {
    format!("entra-batch/{batch}/{email}").into_bytes()
}

const SELECT_ROWS: &str = "SELECT email, line, state, pass, pass_id, start_at, lifetime_minutes, \
     one_time, reason, request_id FROM entra_batch_rows WHERE batch_id = $1 ORDER BY line";

impl Directory {
    /// The batch of the file `text` (called `name`, `rows` rows): the one
    /// an earlier run started, with its results, or a new one.
    pub async fn open_entra_batch(
        &self,
        text: &str,
        name: &str,
        rows: usize,
    ) -> Result<StoredBatch, DirectoryError> {
        let digest = self.key.opaque_id(&format!("entra pass batch\n{text}"));
        let now = self.now().timestamp();
        let mut tx = self.write().await?;
        let found = sqlx::query(
            "SELECT id, running_until, running_by FROM entra_batches WHERE digest = $1",
        )
        .bind(&digest)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(found) = found {
            let id: String = found.try_get("id")?;
            if let Some(until) = found.try_get::<Option<i64>, _>("running_until")?
                && until > now
            {
                let by: Option<String> = found.try_get("running_by")?;
                let until = from_seconds(until).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
                return Err(DirectoryError::Invalid(format!(
                    "this file's passes are being issued by another run ({}): wait for it to end (a run that stopped lets go at {until})",
                    by.unwrap_or_default()
                )));
            }
            sqlx::query(
                "UPDATE entra_batches SET running_until = $1, running_by = $2 WHERE id = $3",
            )
            .bind(now + RUN_HOLD_SECONDS)
            .bind(&self.settings.actor)
            .bind(&id)
            .execute(&mut *tx)
            .await?;
            let rows = sqlx::query(SELECT_ROWS)
                .bind(&id)
                .fetch_all(&mut *tx)
                .await?;
            let rows = rows
                .iter()
                .map(|row| self.stored_row(&id, row))
                .collect::<Result<_, _>>()?;
            self.commit(tx).await?;
            return Ok(StoredBatch { id, rows });
        }
        let id = uuid::Uuid::new_v4().to_string();
        sqlx::query(
            "INSERT INTO entra_batches (id, digest, name, row_count, started_at, started_by, \
             running_until, running_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $6)",
        )
        .bind(&id)
        .bind(&digest)
        .bind(name)
        .bind(i64::try_from(rows).unwrap_or(i64::MAX))
        .bind(now)
        .bind(&self.settings.actor)
        .bind(now + RUN_HOLD_SECONDS)
        .execute(&mut *tx)
        .await?;
        let event = Event::new("entra_batch_started")
            .with("batch", &id)
            .with("file", name)
            .with("rows", rows.to_string());
        self.audit(&mut tx, event).await?;
        self.commit(tx).await?;
        Ok(StoredBatch {
            id,
            rows: Vec::new(),
        })
    }

    /// Marks `rows` (line, email) as sent, before the tenant is asked:
    /// a crash before their answers are stored leaves them so, and the next
    /// run looks in the tenant before sending them again.
    pub async fn mark_entra_batch_sent(
        &self,
        batch: &str,
        rows: &[(u64, Email)],
    ) -> Result<(), DirectoryError> {
        let mut tx = self.write().await?;
        let now = self.now().timestamp();
        // The run goes on: its hold too.
        sqlx::query("UPDATE entra_batches SET running_until = $1 WHERE id = $2")
            .bind(now + RUN_HOLD_SECONDS)
            .bind(batch)
            .execute(&mut *tx)
            .await?;
        for (line, email) in rows {
            sqlx::query("DELETE FROM entra_batch_rows WHERE batch_id = $1 AND email = $2")
                .bind(batch)
                .bind(email.as_str())
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "INSERT INTO entra_batch_rows (batch_id, email, line, state, sent_at) \
                 VALUES ($1, $2, $3, 'sent', $4)",
            )
            .bind(batch)
            .bind(email.as_str())
            .bind(i64::try_from(*line).unwrap_or(i64::MAX))
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        self.commit(tx).await?;
        Ok(())
    }

    /// Stores the tenant's answers for rows marked sent, each issued pass
    /// with its audit event, all in one transaction.
    pub async fn record_entra_batch_rows(
        &self,
        batch: &str,
        results: &[BatchRowResult],
    ) -> Result<(), DirectoryError> {
        let mut tx = self.write().await?;
        let now = self.now().timestamp();
        for result in results {
            let (state, pass, pass_id, reason) = match &result.outcome {
                RowOutcome::Sent => continue,
                RowOutcome::Issued(pass) => ("issued", Some(pass), Some(&pass.id), None),
                RowOutcome::Refused(reason) => ("refused", None, None, Some(reason)),
                RowOutcome::Lost(id) => ("lost", None, Some(id), None),
            };
            let sealed = pass.and_then(|pass| pass.value.as_ref()).map(|value| {
                self.key
                    .seal(&context(batch, &result.email), value.as_bytes(), &mut OsRng)
            });
            sqlx::query(
                "UPDATE entra_batch_rows SET state = $1, pass = $2, pass_id = $3, start_at = $4, \
                 lifetime_minutes = $5, one_time = $6, reason = $7, request_id = $8, answered_at = $9 \
                 WHERE batch_id = $10 AND email = $11",
            )
            .bind(state)
            .bind(sealed)
            .bind(pass_id.cloned())
            .bind(pass.and_then(|pass| pass.start).map(|s| s.timestamp()))
            .bind(pass.map(|pass| pass.lifetime_minutes))
            .bind(pass.map(|pass| i64::from(pass.one_time)))
            .bind(reason.cloned())
            .bind(pass.and_then(|pass| pass.request_id.clone()))
            .bind(now)
            .bind(batch)
            .bind(result.email.as_str())
            .execute(&mut *tx)
            .await?;
            if let Some(pass) = pass {
                let event = change_event(
                    EntraChange::PassIssued,
                    result.email.as_str(),
                    &pass.id,
                    pass.request_id.as_deref(),
                )
                .with("batch", batch);
                self.audit(&mut tx, event).await?;
            }
        }
        self.commit(tx).await?;
        Ok(())
    }

    /// Ends this run's hold on the batch: another run may go on with it.
    pub async fn end_entra_batch_run(&self, batch: &str) -> Result<(), DirectoryError> {
        let mut tx = self.write().await?;
        sqlx::query("UPDATE entra_batches SET running_until = NULL WHERE id = $1")
            .bind(batch)
            .execute(&mut *tx)
            .await?;
        self.commit(tx).await?;
        Ok(())
    }

    /// Forgets the passes the batch still holds for its letters, once IT
    /// has printed them: how many it held.
    pub async fn forget_entra_batch_passes(&self, batch: &str) -> Result<u64, DirectoryError> {
        let mut tx = self.write().await?;
        let forgotten = sqlx::query(
            "UPDATE entra_batch_rows SET pass = NULL WHERE batch_id = $1 AND pass IS NOT NULL",
        )
        .bind(batch)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let event = Event::new("entra_batch_letters_forgotten")
            .with("batch", batch)
            .with("passes", forgotten.to_string());
        self.audit(&mut tx, event).await?;
        self.commit(tx).await?;
        Ok(forgotten)
    }

    fn stored_row(&self, batch: &str, row: &AnyRow) -> Result<BatchRowResult, DirectoryError> {
        let email = Email::parse(&row.try_get::<String, _>("email")?)
            .map_err(|e| DirectoryError::Invalid(e.to_string()))?;
        let line = u64::try_from(row.try_get::<i64, _>("line")?).unwrap_or_default();
        let text = |field: &str| row.try_get::<Option<String>, _>(field);
        let outcome = match row.try_get::<String, _>("state")?.as_str() {
            "issued" => RowOutcome::Issued(self.stored_pass(batch, &email, row)?),
            "refused" => RowOutcome::Refused(text("reason")?.unwrap_or_default()),
            "lost" => RowOutcome::Lost(text("pass_id")?.unwrap_or_default()),
            _ => RowOutcome::Sent,
        };
        Ok(BatchRowResult {
            line,
            email,
            outcome,
        })
    }

    fn stored_pass(
        &self,
        batch: &str,
        email: &Email,
        row: &AnyRow,
    ) -> Result<TenantPass, DirectoryError> {
        let value = match row.try_get::<Option<Vec<u8>>, _>("pass")? {
            Some(sealed) => Some(self.open_batch_pass(batch, email, &sealed)?),
            None => None,
        };
        Ok(TenantPass {
            id: row
                .try_get::<Option<String>, _>("pass_id")?
                .unwrap_or_default(),
            value,
            start: row.try_get::<Option<i64>, _>("start_at")?.map(from_seconds),
            lifetime_minutes: row
                .try_get::<Option<i64>, _>("lifetime_minutes")?
                .unwrap_or_default(),
            one_time: row.try_get::<Option<i64>, _>("one_time")? == Some(1),
            usable: false,
            reason: String::new(),
            request_id: row.try_get("request_id")?,
        })
    }

    fn open_batch_pass(
        &self,
        batch: &str,
        email: &Email,
        sealed: &[u8],
    ) -> Result<Zeroizing<String>, DirectoryError> {
        self.key
            .open(&context(batch, email), sealed)
            .and_then(|bytes| String::from_utf8(bytes.to_vec()).ok())
            .map(Zeroizing::new)
            .ok_or_else(|| {
                DirectoryError::Invalid(format!(
                    "the pass of {email} in batch {batch} does not open under this directory's key"
                ))
            })
    }
}
