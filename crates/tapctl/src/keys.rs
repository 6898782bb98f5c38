//! `tapctl init` and `tapctl key …`: creating the directory and carrying
//! its key to the other kiosks of a fleet.

use crate::cli::KeyCommand;
use crate::print::say;
use anyhow::{Context, Result, bail};
use rand::rngs::OsRng;
use std::io::{BufRead, IsTerminal, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use tapkiosk_core::config::Config;
use tapkiosk_core::directory::DirectoryError;
use tapkiosk_core::keys::{export, import};
use tapkiosk_core::{Directory, DirectoryKey, KeyStore, Location, SystemClock};
use zeroize::Zeroizing;

/// Creates the key (if this machine has none) and the directory (if it is
/// new), or checks that they belong together.
pub async fn init(config: &Config, admin: Option<&str>) -> Result<ExitCode> {
    let store = KeyStore::from_env();
    let key = match store.load()? {
        Some(key) => key,
        None => {
            let key = DirectoryKey::generate(&mut OsRng);
            refuse_existing(config, key.clone()).await?;
            store.save(&key)?;
            say!("Created a new directory key in {}.", store.describe());
            key
        }
    };
    let (directory, created) = Directory::init(
        &config.directory,
        key,
        Arc::new(SystemClock),
        crate::settings(config),
    )
    .await
    .with_context(|| format!("cannot initialise the directory {}", config.directory))?;
    if created {
        say!("Initialised the directory {}.", config.directory);
    } else {
        say!(
            "The directory {} is ready; its key matches.",
            config.directory
        );
    }
    let result = crate::admins::first_admin(&directory, admin).await;
    directory.close().await;
    result?;
    Ok(ExitCode::SUCCESS)
}

/// `tapctl migrate`: upgrades the schema and binds older records to the key.
pub async fn migrate(config: &Config) -> Result<ExitCode> {
    let key = KeyStore::from_env().require()?;
    let directory = Directory::migrate(
        &config.directory,
        key,
        Arc::new(SystemClock),
        crate::settings(config),
    )
    .await
    .with_context(|| format!("cannot upgrade the directory {}", config.directory))?;
    directory.close().await;
    say!("The directory {} is up to date.", config.directory);
    Ok(ExitCode::SUCCESS)
}

/// Whether `key` opens the configured directory.
enum Fit {
    /// The directory does not exist yet.
    NewDirectory,
    /// The key opens it.
    Opens,
    /// The directory exists with another key.
    OtherKey(String),
}

async fn fit(config: &Config, key: DirectoryKey) -> Result<Fit> {
    // Looking must not create an empty SQLite file.
    if let Location::Sqlite(path) = &config.directory
        && !path.exists()
    {
        return Ok(Fit::NewDirectory);
    }
    match Directory::open(
        &config.directory,
        key,
        Arc::new(SystemClock),
        crate::settings(config),
    )
    .await
    {
        Ok(directory) => {
            directory.close().await;
            Ok(Fit::Opens)
        }
        Err(DirectoryError::NotInitialised(_)) => Ok(Fit::NewDirectory),
        // The key was checked before the schema.
        Err(DirectoryError::SchemaOutdated(_)) => Ok(Fit::Opens),
        Err(DirectoryError::WrongKey(location)) => Ok(Fit::OtherKey(location)),
        Err(e) => Err(e.into()),
    }
}

/// A new key must not be stored for a directory that already has one.
async fn refuse_existing(config: &Config, key: DirectoryKey) -> Result<()> {
    match fit(config, key).await? {
        Fit::NewDirectory => Ok(()),
        Fit::OtherKey(location) => bail!(
            "the directory {location} already exists with its own key: bring that key here with `tapctl key import`"
        ),
        Fit::Opens => bail!("a freshly drawn key opened an existing directory; refusing to go on"),
    }
}

pub async fn run(config: &Config, command: KeyCommand) -> Result<ExitCode> {
    match command {
        KeyCommand::Export {
            out,
            passphrase_file,
        } => {
            let key = KeyStore::from_env().require()?;
            let passphrase = passphrase(passphrase_file.as_deref(), true)?;
            let text = export(&key, &passphrase, &mut OsRng)?;
            write_private(&out, text.as_bytes())?;
            say!(
                "Wrote the directory key, wrapped under the passphrase, to {}.",
                out.display()
            );
            say!(
                "Carry it to the next kiosk and run `tapctl key import {}` there.",
                out.display()
            );
        }
        KeyCommand::Import {
            file,
            passphrase_file,
        } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let passphrase = passphrase(passphrase_file.as_deref(), false)?;
            let key = import(&text, &passphrase)?;
            check_belongs(config, key.clone()).await?;
            let store = KeyStore::from_env();
            store.save(&key)?;
            say!("Stored the directory key in {}.", store.describe());
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Refuses a key that does not open the configured directory, when that
/// directory exists already.
async fn check_belongs(config: &Config, key: DirectoryKey) -> Result<()> {
    match fit(config, key).await? {
        Fit::NewDirectory | Fit::Opens => Ok(()),
        Fit::OtherKey(location) => bail!("this key does not belong to the directory {location}"),
    }
}

/// Creates `path` readable only by its owner; never overwrites.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    let written = file.write_all(bytes).and_then(|()| file.sync_all());
    if written.is_err() {
        let _ = std::fs::remove_file(path);
    }
    written.with_context(|| format!("cannot write {}", path.display()))
}

/// The passphrase from a file, the terminal (asked twice for a new one) or
/// the first line of standard input.
fn passphrase(file: Option<&Path>, new: bool) -> Result<Zeroizing<String>> {
    secret(file, new, "Passphrase")
}

/// A secret (`what`: "Passphrase", "PIN") from a file, the terminal (asked
/// twice for a new one) or the first line of standard input.
pub fn secret(file: Option<&Path>, new: bool, what: &str) -> Result<Zeroizing<String>> {
    if let Some(path) = file {
        let text = Zeroizing::new(
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?,
        );
        return Ok(Zeroizing::new(
            text.trim_end_matches(['\r', '\n']).to_string(),
        ));
    }
    if std::io::stdin().is_terminal() {
        let first = Zeroizing::new(rpassword::prompt_password(format!("{what}: "))?);
        if new {
            let again = Zeroizing::new(rpassword::prompt_password(format!("{what} again: "))?);
            if first != again {
                bail!("the two {}s differ", what.to_lowercase());
            }
        }
        return Ok(first);
    }
    let mut line = Zeroizing::new(String::new());
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(Zeroizing::new(
        line.trim_end_matches(['\r', '\n']).to_string(),
    ))
}
