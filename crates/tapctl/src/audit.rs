//! `tapctl audit`, `tapctl audit verify` and `tapctl audit checkpoint`.

use crate::cli::{AuditArgs, AuditCommand};
use crate::print;
use crate::print::say;
use anyhow::{Context, Result, anyhow, bail};
use chrono::{DateTime, Utc};
use std::path::Path;
use std::process::ExitCode;
use tapkiosk_core::audit::Filter;
use tapkiosk_core::checkpoint::Checkpoint;
use tapkiosk_core::clock::parse_time;
use tapkiosk_core::{Directory, Email, duration};

pub async fn run(directory: &Directory, args: AuditArgs) -> Result<ExitCode> {
    match args.command {
        Some(AuditCommand::Verify { checkpoint, json }) => {
            verify(directory, checkpoint.as_deref(), json.json).await
        }
        Some(AuditCommand::Checkpoint { out }) => {
            let checkpoint = directory.audit_checkpoint().await?;
            if let Some(path) = out {
                checkpoint
                    .append_to(&path)
                    .with_context(|| format!("cannot write {}", path.display()))?;
            }
            say!("{checkpoint}");
            Ok(ExitCode::SUCCESS)
        }
        None => {
            let filter = Filter {
                user: args.user.as_deref().map(Email::parse).transpose()?,
                since: args
                    .since
                    .as_deref()
                    .map(|text| since(text, directory.now()))
                    .transpose()?,
            };
            print::audit(&directory.audit_log(&filter).await?, args.json.json)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn verify(directory: &Directory, checkpoints: Option<&Path>, json: bool) -> Result<ExitCode> {
    let verification = directory.verify_audit().await?;
    let mut problems = Vec::new();
    if let Some(path) = checkpoints {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let found: Vec<Checkpoint> = text
            .lines()
            .filter(|line| line.contains("tapkiosk-audit-checkpoint"))
            .map(Checkpoint::parse)
            .collect::<Result<_, _>>()
            .map_err(|e| anyhow!("{}: {e}", path.display()))?;
        if found.is_empty() {
            bail!("{} holds no audit checkpoint", path.display());
        }
        for checkpoint in &found {
            if let Some(problem) = directory.check_audit_checkpoint(checkpoint).await? {
                problems.push(problem);
            }
        }
    }
    let intact = verification.broken.is_none() && problems.is_empty();
    if json {
        print::json(&serde_json::json!({
            "events": verification.events,
            "broken": verification.broken,
            "checkpointProblems": problems,
        }))?;
    } else {
        if let Some(broken) = &verification.broken {
            say!(
                "The audit log is BROKEN at event {}: {}.",
                broken.seq,
                broken.reason
            );
        } else {
            say!(
                "The audit log is intact: {} events, each linked to the one before.",
                verification.events
            );
        }
        for problem in &problems {
            say!("A checkpoint does NOT match: {problem}.");
        }
        if checkpoints.is_some() && problems.is_empty() {
            say!("Every checkpoint matches the log.");
        }
    }
    Ok(if intact {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// A time, or a duration back from now.
fn since(text: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>> {
    parse_time(text)
        .or_else(|_| duration::parse(text).map(|back| now - back))
        .map_err(|_| anyhow!("`{text}` is neither a time (2026-12-01 09:00) nor a duration (24h)"))
}
