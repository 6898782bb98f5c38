//! `tapctl entra`: the tenant of the `[entra]` configuration.

use crate::cli::{EntraArgs, EntraCommand, EntraPassCommand};
use crate::print::say;
use anyhow::{Context as _, Result, bail};
use std::process::ExitCode;
use std::sync::Arc;
use tapkiosk_core::clock::parse_time;
use tapkiosk_core::config::{Config, EntraCredential, EntraSettings};
use tapkiosk_core::directory::entra::EntraChange;
use tapkiosk_core::policy::Lifetime;
use tapkiosk_core::{Directory, SystemClock};
use tapkiosk_entra::passes::{self, PassRequest};
use tapkiosk_entra::{Credential, Graph};
use zeroize::Zeroizing;

pub async fn run(config: &Config, args: EntraArgs) -> Result<ExitCode> {
    let Some(settings) = &config.entra else {
        bail!("no Entra tenant is configured: set entra.tenant and entra.client_id");
    };
    let admin_may = matches!(
        args.command,
        EntraCommand::Pass(_) | EntraCommand::Stage { .. }
    );
    if args.device_code && !admin_may {
        bail!(
            "--device-code is for `entra pass` and `entra stage`: `check`, `set-secret` and `set-key` are about the app's own credential"
        );
    }
    match args.command {
        EntraCommand::Check { user } => check(settings, user.as_deref()).await,
        EntraCommand::SetSecret { secret_file } => set_secret(settings, secret_file.as_deref()),
        EntraCommand::SetKey { key_file } => set_key(settings, key_file.as_deref()),
        EntraCommand::Pass(command) => {
            let (graph, directory) = connect(config, settings, args.device_code).await?;
            let result = pass(&Arc::new(graph), &directory, command).await;
            directory.close().await;
            explained(result, args.device_code)
        }
        EntraCommand::Stage {
            file,
            min_pin_length,
        } => {
            let (graph, directory) = connect(config, settings, args.device_code).await?;
            let tenant = tapkiosk_entra::EntraTenant::new(Arc::new(graph));
            let result =
                crate::entra_stage::stage(&tenant, &directory, &file, min_pin_length).await;
            directory.close().await;
            explained(result, args.device_code)
        }
    }
}

/// Graph, as the app or as the administrator who signs in with a code,
/// and the directory acting as whoever that is.
async fn connect(
    config: &Config,
    settings: &EntraSettings,
    device_code: bool,
) -> Result<(Graph, Directory)> {
    let mut acting = crate::settings(config);
    let graph = if device_code {
        let (graph, admin) = signed_in_admin(settings).await?;
        // The audit log names the administrator, not only the machine's
        // account they typed the command from.
        acting.actor = format!("{admin} via {}", acting.actor);
        graph
    } else {
        graph(settings)?
    };
    Ok((graph, crate::open_with(config, acting).await?))
}

fn explained(result: Result<ExitCode>, device_code: bool) -> Result<ExitCode> {
    if device_code {
        result.map_err(explain_admin_refusal)
    } else {
        result
    }
}

fn graph(settings: &EntraSettings) -> Result<Graph> {
    let credential = Credential::load(&settings.credential, &settings.client_id)?;
    Ok(Graph::new(
        settings.clone(),
        credential,
        Arc::new(SystemClock),
    )?)
}

/// Graph as an IT administrator, who signs in with the code shown (on
/// standard error, so that output piped elsewhere still shows it), and
/// their user principal name.
async fn signed_in_admin(settings: &EntraSettings) -> Result<(Graph, String)> {
    let graph = Graph::new(
        settings.clone(),
        Credential::Delegated,
        Arc::new(SystemClock),
    )?;
    let code = graph
        .start_device_code()
        .await
        .context("the tenant gave no sign-in code")?;
    eprintln!("{}", code.message);
    graph
        .finish_device_code(&code)
        .await
        .context("the administrator's sign-in did not finish")?;
    let admin = graph
        .signed_in_user()
        .await
        .context("cannot tell who signed in")?;
    eprintln!("Signed in as {admin}.");
    Ok((graph, admin))
}

/// Graph's 403 to a signed-in administrator is about their role more often
/// than about the app's consent: say what to look at.
fn explain_admin_refusal(error: anyhow::Error) -> anyhow::Error {
    let refused = error
        .chain()
        .filter_map(|e| e.downcast_ref::<tapkiosk_entra::EntraError>())
        .any(|e| matches!(e, tapkiosk_entra::EntraError::Graph { status: 403, .. }));
    if refused {
        error.context(
            "the administrator who signed in may not do this: they need the Authentication Administrator role, and the app the delegated permissions (see the README)",
        )
    } else {
        error
    }
}

async fn check(settings: &EntraSettings, user: Option<&str>) -> Result<ExitCode> {
    let graph = graph(settings)?;
    let findings = tapkiosk_entra::check(&graph, user)
        .await
        .context("the app cannot sign in to the tenant")?;
    for finding in &findings {
        say!(
            "{} {}",
            if finding.ok { "ok  " } else { "FIX " },
            finding.text
        );
    }
    let missing = findings.iter().filter(|f| !f.ok).count();
    if missing == 0 {
        say!("The tenant is ready for the kiosk.");
        return Ok(ExitCode::SUCCESS);
    }
    say!(
        "{missing} thing{} to fix before the kiosk can work on the tenant.",
        if missing == 1 { "" } else { "s" }
    );
    Ok(ExitCode::FAILURE)
}

fn set_key(settings: &EntraSettings, file: Option<&std::path::Path>) -> Result<ExitCode> {
    let EntraCredential::CertificateInOsStore(certificate) = &settings.credential else {
        bail!(
            "the configuration names no entra.certificate: the key goes to the OS credential store only for a certificate given alone"
        );
    };
    let pem = Zeroizing::new(match file {
        Some(path) => {
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?
        }
        None => {
            let mut text = Vec::new();
            std::io::Read::read_to_end(&mut std::io::stdin(), &mut text)
                .context("cannot read the key from standard input")?;
            text
        }
    });
    Credential::store_key(&settings.client_id, certificate, &pem)?;
    say!(
        "The private key of the certificate {} (app {}) is in the OS credential store.",
        certificate.display(),
        settings.client_id
    );
    if let Some(path) = file {
        say!("Delete {} now: it is no longer needed.", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

fn set_secret(settings: &EntraSettings, file: Option<&std::path::Path>) -> Result<ExitCode> {
    if settings.credential != EntraCredential::SecretInOsStore {
        bail!(
            "the configuration names a file for the app's credential (entra.certificate_file or entra.client_secret_file); the credential store is used only without them"
        );
    }
    let secret = crate::keys::secret(file, false, "Client secret")?;
    if secret.trim().is_empty() {
        bail!("the client secret is empty");
    }
    Credential::store_secret(&settings.client_id, secret.trim())?;
    say!(
        "The client secret of app {} is in the OS credential store.",
        settings.client_id
    );
    Ok(ExitCode::SUCCESS)
}

/// The user principal name of the account `user` names (its user
/// principal name, or its mail).
async fn user_principal_name(graph: &Graph, user: &str) -> Result<String> {
    let email = tapkiosk_core::Email::parse(user)
        .with_context(|| format!("`{user}` is not a user principal name or an email address"))?;
    match tapkiosk_entra::tenant::user_principal_name(graph, &email).await? {
        Some(user_name) => Ok(user_name),
        None => bail!("no account in the tenant has the user principal name or the mail {user}"),
    }
}

async fn pass(
    graph: &Arc<Graph>,
    directory: &Directory,
    command: EntraPassCommand,
) -> Result<ExitCode> {
    match command {
        EntraPassCommand::Issue {
            user,
            terms,
            replace,
        } => {
            let user = user_principal_name(graph, &user).await?;
            let request = PassRequest {
                start: terms.start.as_deref().map(parse_time).transpose()?,
                lifetime_minutes: terms
                    .lifetime
                    .as_deref()
                    .map(|l| Lifetime::parse(l).map(Lifetime::minutes))
                    .transpose()?,
                one_time: terms.one_time(),
            };
            if let Some(refusal) = passes::TapPolicy::read(graph).await?.refusal(&request) {
                bail!("the tenant would refuse this pass: {refusal}");
            }
            // Entra keeps one pass per person: a new one replaces the old
            // in the same request, so a refused request leaves the old one.
            let existing = passes::list(graph, &user).await?;
            if let Some(old) = existing.first()
                && !replace
            {
                bail!(
                    "{user} already has a pass in the tenant ({}): --replace replaces it",
                    old.reason
                );
            }
            let issued = passes::issue(graph, &user, &request).await?;
            let request_id = issued.request_id.as_deref();
            if let Some(old) = existing.first() {
                directory
                    .record_entra_change(EntraChange::PassRevoked, &user, &old.id, request_id)
                    .await?;
            }
            directory
                .record_entra_change(EntraChange::PassIssued, &user, &issued.id, request_id)
                .await?;
            let value = issued
                .value
                .as_deref()
                .map_or("(not shown by Entra)", String::as_str);
            say!("Temporary Access Pass for {user}: {value}");
            say!("{}", describe(&issued));
            say!("It is shown only this once.");
            Ok(ExitCode::SUCCESS)
        }
        EntraPassCommand::IssueBatch { file, out } => {
            let tenant = tapkiosk_entra::EntraTenant::new(graph.clone());
            crate::entra_batch::issue_batch(&tenant, directory, &file, &out).await
        }
        EntraPassCommand::Show { user } => {
            let user = user_principal_name(graph, &user).await?;
            let listed = passes::list(graph, &user).await?;
            match listed.first() {
                Some(pass) => say!("{}", describe(pass)),
                None => say!("{user} has no pass in the tenant."),
            }
            Ok(ExitCode::SUCCESS)
        }
        EntraPassCommand::Revoke { user } => {
            let user = user_principal_name(graph, &user).await?;
            let listed = passes::list(graph, &user).await?;
            let Some(pass) = listed.first() else {
                bail!("{user} has no pass in the tenant");
            };
            let request_id = passes::revoke(graph, &user, &pass.id).await?;
            directory
                .record_entra_change(
                    EntraChange::PassRevoked,
                    &user,
                    &pass.id,
                    request_id.as_deref(),
                )
                .await?;
            say!("Removed {user}'s pass from the tenant.");
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn describe(pass: &passes::EntraPass) -> String {
    let start = pass.start.map_or_else(
        || "now".to_string(),
        |s| s.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    );
    format!(
        "{}: from {start} for {} min, {} ({})",
        if pass.usable { "usable" } else { "not usable" },
        pass.lifetime_minutes,
        if pass.one_time {
            "one-time"
        } else {
            "multi-use"
        },
        pass.reason
    )
}
