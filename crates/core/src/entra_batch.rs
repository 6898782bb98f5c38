//! Entra passes for an HR file (`email,start,lifetime,one_time`), as the
//! admin pane and `tapctl` issue them. The tenant has no transaction, so
//! the batch cannot be all or nothing; it is resumable instead and never
//! issues a pass twice:
//!
//! - the whole file is read and checked against the tenant's policy first:
//!   a row it would refuse stops the batch before any pass is issued;
//! - the rows of each call to the tenant (20 rows) are marked sent in the
//!   directory before it, and its answers stored, with their audit events,
//!   before the next call;
//! - a run of the same file skips the rows issued before and tries again
//!   the rows refused before. A row still marked sent (a crash, or a call
//!   that failed, between the tenant's answer and the commit) is looked up
//!   in the tenant first: Graph's POST replaces a person's pass, so sending
//!   it again would silently void a pass that may be in a letter already.
//!   If the person has a pass, the row is "lost": its value never came
//!   back, and IT revokes it and issues one singly.

use crate::directory::entra_batches::{BatchRowResult, RowOutcome};
use crate::import::{self, BatchRow, ImportErrors};
use crate::tenant::{PASS_BATCH, PassTerms, Tenant, TenantError, TenantPass};
use crate::{Directory, DirectoryError, Email};
use std::collections::HashMap;
use thiserror::Error;

/// Why a batch did not start.
#[derive(Debug, Error)]
pub enum BatchError {
    /// Rows of the file cannot be read; nothing was sent.
    #[error(transparent)]
    Rows(#[from] ImportErrors),
    /// The tenant's policy would refuse these rows (line, reason); nothing
    /// was sent.
    #[error("the tenant's policy would refuse {} of the file's rows; nothing was sent:\n{}", .0.len(), lines(.0))]
    Policy(Vec<(u64, String)>),
    /// The tenant's policy could not be read; nothing was sent.
    #[error(transparent)]
    Tenant(TenantError),
    /// The directory failed.
    #[error(transparent)]
    Directory(#[from] DirectoryError),
}

fn lines(refused: &[(u64, String)]) -> String {
    let lines: Vec<String> = refused
        .iter()
        .map(|(line, reason)| format!("line {line}: {reason}"))
        .collect();
    lines.join("\n")
}

/// What became of a row of the file.
#[derive(Debug)]
pub enum RowState {
    /// Issued, by this run or (`earlier`) by one before; the value is
    /// there until the letters are printed.
    Issued {
        /// The pass.
        pass: TenantPass,
        /// Whether an earlier run issued it.
        earlier: bool,
    },
    /// Refused by the tenant, in its words.
    Refused(String),
    /// Issued while its answer was lost: IT revokes it and issues one
    /// singly.
    Lost,
    /// Not answered: the tenant stopped answering first.
    NotSent,
}

/// A row of the file and what became of it.
#[derive(Debug)]
pub struct RowReport {
    /// Its line in the file.
    pub line: u64,
    /// Whose it is.
    pub email: Email,
    /// What became of it.
    pub state: RowState,
}

/// What a run of a batch did.
#[derive(Debug)]
pub struct BatchReport {
    /// The batch's id in the directory.
    pub batch: String,
    /// Every row of the file, in its order.
    pub rows: Vec<RowReport>,
    /// Passes issued by this run.
    pub issued: usize,
    /// Rows the tenant refused in this run.
    pub refused: usize,
    /// Rows an earlier run issued, skipped.
    pub earlier: usize,
    /// Why the tenant stopped answering, if it did: the rows not sent are
    /// sent by the next run of the same file.
    pub stopped: Option<TenantError>,
}

fn terms_of(row: &BatchRow) -> PassTerms {
    PassTerms {
        start: row.start,
        lifetime_minutes: row.lifetime.map(|l| l.minutes()),
        one_time: row.one_time,
    }
}

/// Issues the passes of the HR file `text` (called `name`) in `tenant`,
/// going on from where an earlier run of the same file stopped.
pub async fn issue_passes(
    directory: &Directory,
    tenant: &dyn Tenant,
    name: &str,
    text: &str,
) -> Result<BatchReport, BatchError> {
    let rows = import::parse_batch(text)?;
    let terms: Vec<PassTerms> = rows.iter().map(|(_, row)| terms_of(row)).collect();
    let refusals = tenant
        .pass_refusals(&terms)
        .await
        .map_err(BatchError::Tenant)?;
    let refused: Vec<(u64, String)> = rows
        .iter()
        .zip(refusals)
        .filter_map(|((line, _), refusal)| Some((*line, refusal?)))
        .collect();
    if !refused.is_empty() {
        return Err(BatchError::Policy(refused));
    }
    let stored = directory.open_entra_batch(text, name, rows.len()).await?;
    let ran = run(directory, tenant, &stored.id, stored.rows, &rows, terms).await;
    // Another run may go on with the batch, however this one ended.
    directory.end_entra_batch_run(&stored.id).await?;
    let (earlier, now, stopped) = ran?;
    Ok(report(stored.id, &rows, earlier, now, stopped))
}

/// What an earlier run and this one made of the rows, and why the tenant
/// stopped answering, if it did.
type Outcomes = (
    HashMap<Email, RowOutcome>,
    HashMap<Email, RowOutcome>,
    Option<TenantError>,
);

/// Sends the rows not issued before, 20 to a call, each call's rows marked
/// sent before it and its answers stored after.
async fn run(
    directory: &Directory,
    tenant: &dyn Tenant,
    batch: &str,
    stored: Vec<BatchRowResult>,
    rows: &[(u64, BatchRow)],
    terms: Vec<PassTerms>,
) -> Result<Outcomes, BatchError> {
    let earlier = settle_sent(directory, tenant, batch, stored).await?;
    let pending: Vec<(u64, Email, PassTerms)> = rows
        .iter()
        .zip(terms)
        .filter(|((_, row), _)| {
            !matches!(
                earlier.get(&row.email),
                Some(RowOutcome::Issued(_) | RowOutcome::Lost(_))
            )
        })
        .map(|((line, row), terms)| (*line, row.email.clone(), terms))
        .collect();
    let mut now = HashMap::new();
    let mut stopped = None;
    for chunk in pending.chunks(PASS_BATCH) {
        let asked: Vec<(Email, PassTerms)> = chunk
            .iter()
            .map(|(_, email, terms)| (email.clone(), terms.clone()))
            .collect();
        let sent: Vec<(u64, Email)> = chunk
            .iter()
            .map(|(line, email, _)| (*line, email.clone()))
            .collect();
        directory.mark_entra_batch_sent(batch, &sent).await?;
        let answers = match tenant.issue_passes(&asked).await {
            Ok(answers) => answers,
            Err(error) => {
                stopped = Some(error);
                break;
            }
        };
        let results: Vec<BatchRowResult> = chunk
            .iter()
            .zip(answers)
            .map(|((line, email, _), answer)| BatchRowResult {
                line: *line,
                email: email.clone(),
                outcome: match answer {
                    Ok(pass) => RowOutcome::Issued(pass),
                    Err(error) => RowOutcome::Refused(error.to_string()),
                },
            })
            .collect();
        directory.record_entra_batch_rows(batch, &results).await?;
        now.extend(results.into_iter().map(|r| (r.email, r.outcome)));
    }
    Ok((earlier, now, stopped))
}

/// What earlier runs made of the rows, by person, once the tenant has
/// been asked about the rows they left marked sent: a person with a pass
/// now is "lost" (recorded so), one without is sent again.
async fn settle_sent(
    directory: &Directory,
    tenant: &dyn Tenant,
    batch: &str,
    stored: Vec<BatchRowResult>,
) -> Result<HashMap<Email, RowOutcome>, BatchError> {
    let (sent, mut earlier): (Vec<_>, Vec<_>) = stored
        .into_iter()
        .partition(|row| matches!(row.outcome, RowOutcome::Sent));
    let mut lost = Vec::new();
    for row in sent {
        match tenant.pass_of(&row.email).await {
            Ok(Some(pass)) => lost.push(BatchRowResult {
                outcome: RowOutcome::Lost(pass.id),
                ..row
            }),
            // Sent again: an unknown account is refused as it was meant to be.
            Ok(None) | Err(TenantError::UnknownAccount) => {}
            Err(error) => return Err(BatchError::Tenant(error)),
        }
    }
    directory.record_entra_batch_rows(batch, &lost).await?;
    earlier.extend(lost);
    Ok(earlier
        .into_iter()
        .map(|row| (row.email, row.outcome))
        .collect())
}

/// Every row of the file with what this run or an earlier one made of it.
fn report(
    batch: String,
    rows: &[(u64, BatchRow)],
    mut earlier: HashMap<Email, RowOutcome>,
    mut now: HashMap<Email, RowOutcome>,
    stopped: Option<TenantError>,
) -> BatchReport {
    let mut report = BatchReport {
        batch,
        rows: Vec::with_capacity(rows.len()),
        issued: 0,
        refused: 0,
        earlier: 0,
        stopped,
    };
    for (line, row) in rows {
        let state = match (now.remove(&row.email), earlier.remove(&row.email)) {
            (Some(RowOutcome::Issued(pass)), _) => {
                report.issued += 1;
                RowState::Issued {
                    pass,
                    earlier: false,
                }
            }
            (Some(RowOutcome::Refused(reason)), _) => {
                report.refused += 1;
                RowState::Refused(reason)
            }
            (None, Some(RowOutcome::Issued(pass))) => {
                report.earlier += 1;
                RowState::Issued {
                    pass,
                    earlier: true,
                }
            }
            (None, Some(RowOutcome::Lost(_))) => RowState::Lost,
            // Not answered in this run: the tenant stopped first.
            _ => RowState::NotSent,
        };
        report.rows.push(RowReport {
            line: *line,
            email: row.email.clone(),
            state,
        });
    }
    report
}
