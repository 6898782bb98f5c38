//! The admin pane's Entra pass batch: an HR file's passes issued in the
//! tenant, 20 to a call, each call's results kept in the directory as it
//! answers (core's `entra_batch`). Run again with the same file, it goes on
//! where it stopped. The letters of the passes issued stay until IT says
//! they are printed.

use super::admin::{Letter, unlocked};
use super::entra::{letter, refused, tenant};
use crate::{AppState, UiError};
use serde::Serialize;
use tapkiosk_core::entra_batch::{self, BatchError, BatchReport, RowState};
use tapkiosk_core::tenant::UNKNOWN_ACCOUNT;
use tauri::State;

type Answer<T> = Result<T, UiError>;

impl From<BatchError> for UiError {
    fn from(error: BatchError) -> Self {
        match error {
            BatchError::Rows(rows) => {
                UiError::with("rows", serde_json::json!({ "message": rows.to_string() }))
            }
            BatchError::Policy(_) => UiError::with(
                "entra_batch_policy",
                serde_json::json!({ "message": error.to_string() }),
            ),
            BatchError::Tenant(error) => refused(error),
            BatchError::Directory(error) => error.into(),
        }
    }
}

/// A row as the pane lists it.
#[derive(Serialize)]
struct RowView {
    line: u64,
    email: String,
    /// `issued`, `issued_earlier`, `refused`, `unknown_account`, `lost` or
    /// `not_sent`.
    state: &'static str,
    reason: Option<String>,
}

/// A run of the batch as the pane shows it.
#[derive(Serialize)]
pub struct BatchView {
    batch: String,
    issued: usize,
    refused: usize,
    earlier: usize,
    /// Why the tenant stopped answering: the rows not sent go with the next
    /// run of the same file.
    stopped: Option<String>,
    rows: Vec<RowView>,
    /// The letters of the passes still held, by line.
    letters: Vec<Letter>,
}

fn view(state: &AppState, report: BatchReport) -> BatchView {
    let mut letters = Vec::new();
    let rows = report
        .rows
        .iter()
        .map(|row| {
            let email = row.email.to_string();
            let (state_word, reason) = match &row.state {
                RowState::Issued { pass, earlier } => {
                    if pass.value.is_some() {
                        letters.push(letter(state, &email, pass));
                    }
                    (if *earlier { "issued_earlier" } else { "issued" }, None)
                }
                // The one refusal with words of the pane's own, in its language.
                RowState::Refused(reason) if reason == UNKNOWN_ACCOUNT => ("unknown_account", None),
                RowState::Refused(reason) => ("refused", Some(reason.clone())),
                RowState::Lost => ("lost", None),
                RowState::NotSent => ("not_sent", None),
            };
            RowView {
                line: row.line,
                email,
                state: state_word,
                reason,
            }
        })
        .collect();
    BatchView {
        batch: report.batch,
        issued: report.issued,
        refused: report.refused,
        earlier: report.earlier,
        stopped: report.stopped.map(|e| e.to_string()),
        rows,
        letters,
    }
}

/// Issues the passes of the HR file `file` (its text) called `name`, or
/// goes on with them.
#[tauri::command]
pub async fn admin_entra_batch(
    state: State<'_, AppState>,
    file: String,
    name: String,
) -> Answer<BatchView> {
    let directory = unlocked(&state)?;
    let tenant = tenant(&state)?;
    let report = entra_batch::issue_passes(&directory, tenant.as_ref(), &name, &file).await?;
    if let Some(error) = &report.stopped {
        tracing::warn!(%error, "the tenant stopped answering in a pass batch");
    }
    Ok(view(&state, report))
}

/// Forgets the passes the batch `batch` holds for its letters, once they
/// are printed: how many.
#[tauri::command]
pub async fn admin_entra_batch_forget(state: State<'_, AppState>, batch: String) -> Answer<u64> {
    let directory = unlocked(&state)?;
    Ok(directory.forget_entra_batch_passes(&batch).await?)
}
