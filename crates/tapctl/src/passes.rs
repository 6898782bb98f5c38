//! `tapctl pass …`.

use crate::cli::PassCommand;
use crate::keys::write_private;
use crate::print;
use crate::print::say;
use anyhow::{Context, Result};
use serde::Serialize;
use std::path::Path;
use std::process::ExitCode;
use tapkiosk_core::clock::parse_time;
use tapkiosk_core::directory::{IssueRequest, IssuedPass};
use tapkiosk_core::policy::Lifetime;
use tapkiosk_core::{Directory, Email, import};

pub async fn run(directory: &Directory, command: PassCommand) -> Result<ExitCode> {
    match command {
        PassCommand::Issue {
            email,
            terms,
            replace,
            json,
        } => {
            let request = IssueRequest {
                email: Email::parse(&email)?,
                start: terms.start.as_deref().map(parse_time).transpose()?,
                lifetime: terms.lifetime.as_deref().map(Lifetime::parse).transpose()?,
                one_time: terms.one_time(),
                replace,
            };
            directory
                .issue_pass_and(&request, |issued| print::issued(issued, json.json))
                .await?;
        }
        PassCommand::Revoke { email, json } => {
            let email = Email::parse(&email)?;
            let id = directory.revoke_pass(&email).await?;
            if json.json {
                print::json(&serde_json::json!({ "id": id, "revoked": true }))?;
            } else {
                say!("Revoked the pass of {email}.");
            }
        }
        PassCommand::Status { email, json } => {
            let email = Email::parse(&email)?;
            print::passes(&email, &directory.passes(&email).await?, json.json)?;
        }
        PassCommand::IssueBatch {
            file,
            out,
            replace,
            json,
        } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let requests: Vec<(u64, IssueRequest)> = import::parse_batch(&text)?
                .into_iter()
                .map(|(line, row)| (line, row.into_request(replace)))
                .collect();
            let mut written = false;
            let issued = directory
                .issue_batch(&requests, |passes| {
                    write_letters(&out, passes)?;
                    written = true;
                    Ok::<(), String>(())
                })
                .await;
            let issued = match issued {
                Ok(issued) => issued,
                Err(e) => {
                    // Written but never committed: the values open nothing
                    // and must not lie around looking valid.
                    if written {
                        let _ = std::fs::remove_file(&out);
                    }
                    return Err(e.into());
                }
            };
            if json.json {
                print::json(&serde_json::json!({ "issued": issued.len(), "out": out }))?;
            } else {
                say!(
                    "Issued {} passes. The values are in {} (readable only by you):",
                    issued.len(),
                    out.display()
                );
                say!("print the welcome letters, then delete the file.");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// One welcome-letter row: the person and their pass, Graph field names.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Letter {
    email: String,
    display_name: String,
    #[serde(flatten)]
    pass: tapkiosk_core::pass::GraphPass,
    end_date_time: chrono::DateTime<chrono::Utc>,
}

fn write_letters(out: &Path, passes: &[IssuedPass]) -> Result<(), String> {
    let letters: Vec<Letter> = passes
        .iter()
        .map(|issued| Letter {
            email: issued.email.to_string(),
            display_name: issued.display_name.clone().unwrap_or_default(),
            pass: issued.pass.to_graph(issued.status, Some(&issued.code)),
            end_date_time: issued.pass.end_at(),
        })
        .collect();
    let bytes = if out
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"))
    {
        serde_json::to_vec_pretty(&letters).map_err(|e| e.to_string())?
    } else {
        letters_csv(&letters).map_err(|e| e.to_string())?
    };
    write_private(out, &bytes).map_err(|e| format!("{e:#}"))
}

fn letters_csv(letters: &[Letter]) -> Result<Vec<u8>, csv::Error> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.write_record([
        "email",
        "displayName",
        "temporaryAccessPass",
        "startDateTime",
        "endDateTime",
        "lifetimeInMinutes",
        "isUsableOnce",
    ])?;
    for letter in letters {
        writer.write_record([
            letter.email.clone(),
            letter.display_name.clone(),
            letter
                .pass
                .temporary_access_pass
                .clone()
                .unwrap_or_default(),
            letter.pass.start_date_time.to_rfc3339(),
            letter.end_date_time.to_rfc3339(),
            letter.pass.lifetime_in_minutes.to_string(),
            letter.pass.is_usable_once.to_string(),
        ])?;
    }
    writer.into_inner().map_err(|e| e.into_error().into())
}
