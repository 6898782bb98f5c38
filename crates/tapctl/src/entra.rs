//! `tapctl entra`: the tenant of the `[entra]` configuration.

use crate::cli::EntraCommand;
use crate::print::say;
use anyhow::{Context as _, Result, bail};
use std::process::ExitCode;
use std::sync::Arc;
use tapkiosk_core::SystemClock;
use tapkiosk_core::config::{Config, EntraCredential, EntraSettings};
use tapkiosk_entra::{Credential, Graph};

pub async fn run(config: &Config, command: EntraCommand) -> Result<ExitCode> {
    let Some(settings) = &config.entra else {
        bail!("no Entra tenant is configured: set entra.tenant and entra.client_id");
    };
    match command {
        EntraCommand::Check { user } => check(settings, user.as_deref()).await,
        EntraCommand::SetSecret { secret_file } => set_secret(settings, secret_file.as_deref()),
    }
}

async fn check(settings: &EntraSettings, user: Option<&str>) -> Result<ExitCode> {
    let credential = Credential::load(&settings.credential, &settings.client_id)?;
    let graph = Graph::new(settings.clone(), credential, Arc::new(SystemClock))?;
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
