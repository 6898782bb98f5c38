//! `tapctl audit` and `tapctl audit verify`.

use crate::cli::{AuditArgs, AuditCommand};
use crate::print;
use crate::print::say;
use anyhow::{Result, anyhow};
use chrono::{DateTime, Utc};
use std::process::ExitCode;
use tapkiosk_core::audit::Filter;
use tapkiosk_core::clock::parse_time;
use tapkiosk_core::{Directory, Email, duration};

pub async fn run(directory: &Directory, args: AuditArgs) -> Result<ExitCode> {
    if let Some(AuditCommand::Verify(json)) = args.command {
        let verification = directory.verify_audit().await?;
        if json.json {
            print::json(&verification)?;
        } else if let Some(broken) = &verification.broken {
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
        return Ok(if verification.broken.is_none() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
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

/// A time, or a duration back from now.
fn since(text: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>> {
    parse_time(text)
        .or_else(|_| duration::parse(text).map(|back| now - back))
        .map_err(|_| anyhow!("`{text}` is neither a time (2026-12-01 09:00) nor a duration (24h)"))
}
