//! `tapctl entra pass issue-batch`: Entra passes for an HR file, through
//! core's `entra_batch`, as the admin pane issues them: each row's result
//! is kept in the directory as the tenant answers, and a run of the same
//! file goes on where an earlier one (here or in the pane) stopped,
//! without issuing anyone a second pass. What this run did is appended to
//! the results file, the passes for the letters with it; once the file is
//! on the disk, the directory forgets them.

use crate::print::say;
use anyhow::{Context as _, Result};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;
use std::process::ExitCode;
use tapkiosk_core::Directory;
use tapkiosk_core::entra_batch::{self, BatchReport, RowState};
use tapkiosk_core::tenant::Tenant;

/// The results file's columns.
const HEADER: [&str; 8] = [
    "line",
    "email",
    "result",
    "temporaryAccessPass",
    "startDateTime",
    "lifetimeInMinutes",
    "isUsableOnce",
    "reason",
];

/// Issues the passes `file` asks for; results in `out`.
pub async fn issue_batch(
    tenant: &dyn Tenant,
    directory: &Directory,
    file: &Path,
    out: &Path,
) -> Result<ExitCode> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let name = file.file_name().map_or_else(
        || file.display().to_string(),
        |n| n.to_string_lossy().into(),
    );
    let report = entra_batch::issue_passes(directory, tenant, &name, &text).await?;
    write_results(out, &report)?;
    directory.forget_entra_batch_passes(&report.batch).await?;
    let lost = report
        .rows
        .iter()
        .filter(|row| matches!(row.state, RowState::Lost))
        .count();
    say!(
        "Issued {}; {} refused; {} issued by an earlier run and skipped. Results in {} (readable only by you): print the letters, then delete the file.",
        passes_word(report.issued),
        report.refused,
        report.earlier,
        out.display()
    );
    if lost > 0 {
        say!(
            "{lost} issued while the tenant's answer was lost (an earlier run was interrupted): revoke their passes and issue them one each with `tapctl entra pass issue`."
        );
    }
    if let Some(error) = &report.stopped {
        anyhow::bail!(
            "the tenant stopped the batch ({error}); what was done is kept: run the same command again to go on"
        );
    }
    Ok(if report.refused == 0 && lost == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn passes_word(count: usize) -> String {
    format!("{count} pass{}", if count == 1 { "" } else { "es" })
}

/// Appends what this run did to `out`, created readable only by its
/// owner, and puts it on the disk.
fn write_results(out: &Path, report: &BatchReport) -> Result<()> {
    let new = !out.exists();
    let file = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(out)
        .with_context(|| format!("cannot open {}", out.display()))?;
    let mut writer = csv::Writer::from_writer(file.try_clone()?);
    if new {
        writer.write_record(HEADER)?;
    }
    for row in &report.rows {
        let line = row.line.to_string();
        let email = row.email.as_str();
        match &row.state {
            RowState::Issued {
                pass,
                earlier: false,
            } => {
                let start = pass
                    .start
                    .map(|s| s.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                    .unwrap_or_default();
                let value = pass.value.as_deref().map_or("", String::as_str);
                writer.write_record([
                    line.as_str(),
                    email,
                    "issued",
                    value,
                    &start,
                    &pass.lifetime_minutes.to_string(),
                    &pass.one_time.to_string(),
                    "",
                ])?;
            }
            RowState::Refused(reason) => {
                writer.write_record([&line, email, "refused", "", "", "", "", reason])?;
            }
            RowState::Lost => {
                let reason = "issued, but the tenant's answer with the pass was lost: revoke it and issue one singly";
                writer.write_record([&line, email, "lost", "", "", "", "", reason])?;
            }
            RowState::Issued { earlier: true, .. } | RowState::NotSent => {}
        }
    }
    writer.flush()?;
    drop(writer);
    file.sync_data()?;
    Ok(())
}
