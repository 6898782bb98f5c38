//! `tapctl user …` and `tapctl policy …`.

use crate::cli::{OneTimeArg, PolicyCommand, TargetArg, UserCommand};
use crate::print;
use crate::print::say;
use anyhow::{Context, Result, bail};
use std::collections::BTreeSet;
use std::process::ExitCode;
use tapkiosk_core::policy::{KeyRestriction, Lifetime, OneTime, Target};
use tapkiosk_core::user::{NewUser, check_group};
use tapkiosk_core::{Directory, Email, import};

pub async fn user(directory: &Directory, command: UserCommand) -> Result<ExitCode> {
    match command {
        UserCommand::Add {
            email,
            name,
            groups,
            json,
        } => {
            let user = NewUser::new(Email::parse(&email)?, name.as_deref(), &groups)?;
            directory.add_user(&user).await?;
            let detail = directory.show_user(&user.email).await?;
            print::user_detail(&detail, json.json, &format!("Added {}.", user.email))?;
        }
        UserCommand::List(json) => print::users(&directory.list_users().await?, json.json)?,
        UserCommand::Show { email, json } => {
            let detail = directory.show_user(&Email::parse(&email)?).await?;
            print::user_detail(&detail, json.json, "")?;
        }
        UserCommand::RemoveMethod { email, method } => {
            let email = Email::parse(&email)?;
            directory.remove_method_of(&email, &method).await?;
            say!("Removed that method of {email}.");
        }
        UserCommand::Unlock { email } => {
            let email = Email::parse(&email)?;
            if directory.lift_lockout(&email).await? {
                say!("Lifted the lockout of {email}: they can sign in again.");
            } else {
                say!("{email} was not locked out.");
            }
        }
        UserCommand::Disable { email } => {
            let email = Email::parse(&email)?;
            directory.set_user_enabled(&email, false).await?;
            say!("Disabled {email}: their passes no longer work.");
        }
        UserCommand::Enable { email } => {
            let email = Email::parse(&email)?;
            directory.set_user_enabled(&email, true).await?;
            say!("Enabled {email}.");
        }
        UserCommand::Remove { email } => {
            let email = Email::parse(&email)?;
            directory.remove_user(&email).await?;
            say!("Removed {email} with their passes and methods.");
        }
        UserCommand::Import { file, json } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let users = import::parse_users(&text)?;
            let added = directory.import_users(&users).await?;
            if json.json {
                print::json(&serde_json::json!({ "imported": added }))?;
            } else {
                let people = if added == 1 { "person" } else { "people" };
                say!("Imported {added} {people} from {}.", file.display());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `roots_configured`: whether `webauthn.attestation_roots` names a file,
/// without which a key allow-list trusts the model each key reports.
pub async fn policy(
    directory: &Directory,
    command: PolicyCommand,
    roots_configured: bool,
) -> Result<ExitCode> {
    match command {
        PolicyCommand::Show(json) => print::policy(&directory.policy().await?, json.json)?,
        PolicyCommand::Set {
            enabled,
            target,
            groups,
            min_lifetime,
            max_lifetime,
            default_lifetime,
            length,
            one_time,
            any_key,
            allow_keys,
            json,
        } => {
            // Everything is read and checked before the directory is touched.
            let target = match (target, groups.is_empty()) {
                (Some(TargetArg::All), true) => Some(Target::AllUsers),
                (Some(TargetArg::All), false) => {
                    bail!("--group only makes sense with --target groups")
                }
                (Some(TargetArg::Groups), true) => {
                    bail!("--target groups needs at least one --group")
                }
                (_, false) => {
                    let groups: BTreeSet<String> =
                        groups.iter().map(|g| g.trim().to_string()).collect();
                    for group in &groups {
                        check_group(group)?;
                    }
                    Some(Target::Groups(groups))
                }
                (None, true) => None,
            };
            let lifetime = |text: Option<String>| text.as_deref().map(Lifetime::parse).transpose();
            let (min, max, default) = (
                lifetime(min_lifetime)?,
                lifetime(max_lifetime)?,
                lifetime(default_lifetime)?,
            );
            let keys = match (any_key, allow_keys.is_empty()) {
                (true, _) => Some(KeyRestriction::AnyKey),
                (false, false) => Some(KeyRestriction::AllowList(allow_keys.into_iter().collect())),
                (false, true) => None,
            };
            let one_time = one_time.map(|rule| match rule {
                OneTimeArg::Required => OneTime::Required,
                OneTimeArg::Optional => OneTime::Optional,
            });
            let policy = directory
                .update_policy(|policy| {
                    policy.enabled = enabled.unwrap_or(policy.enabled);
                    policy.target = target.unwrap_or_else(|| policy.target.clone());
                    policy.min_lifetime = min.unwrap_or(policy.min_lifetime);
                    policy.max_lifetime = max.unwrap_or(policy.max_lifetime);
                    policy.default_lifetime = default.unwrap_or(policy.default_lifetime);
                    policy.length = length.unwrap_or(policy.length);
                    policy.one_time = one_time.unwrap_or(policy.one_time);
                    policy.keys = keys.unwrap_or_else(|| policy.keys.clone());
                    Ok(())
                })
                .await?;
            print::policy(&policy, json.json)?;
            if matches!(policy.keys, KeyRestriction::AllowList(_)) && !roots_configured {
                eprintln!(
                    "tapctl: warning: no webauthn.attestation_roots are configured, so the allow-list \
                     trusts the model each key reports, and a key can claim any model"
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
