//! `tapctl`: the administrator's command line for a tapkiosk directory.
//! A thin adapter: it parses arguments, calls one `tapkiosk-core` function
//! and prints the result as text or JSON. Exit code 0 only on success.

mod admins;
mod audit;
mod cli;
mod entra;
mod entra_batch;
mod entra_stage;
mod keys;
mod passes;
mod people;
mod print;

use anyhow::{Context as _, Result, bail};
use clap::Parser;
use cli::{Cli, Command, ConfigCommand, DbCommand};
use std::process::ExitCode;
use std::sync::Arc;
use tapkiosk_core::config::{Config, Inputs, KEYS};
use tapkiosk_core::directory::Settings;
use tapkiosk_core::{Directory, KeyStore, SystemClock};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return fail(&e.into()),
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => fail(&e),
    }
}

/// Prints the error on one line (row-by-row reports keep their rows).
fn fail(error: &anyhow::Error) -> ExitCode {
    let message = error.chain().map(ToString::to_string).collect::<Vec<_>>();
    eprintln!("tapctl: {}", message.join(": "));
    ExitCode::FAILURE
}

async fn run(cli: Cli) -> Result<ExitCode> {
    let config = load_config(&cli)?;
    match cli.command {
        Command::Init { admin } => keys::init(&config, admin.as_deref()).await,
        Command::Config(ConfigCommand::Show(json)) => print::config(&config, json.json),
        Command::Key(command) => keys::run(&config, command).await,
        Command::Migrate => keys::migrate(&config).await,
        Command::Entra(command) => entra::run(&config, command).await,
        Command::Db(DbCommand::GrantKiosk { role, print: true }) => {
            for statement in tapkiosk_core::directory::roles::kiosk_grants(&role)? {
                print::say!("{statement};");
            }
            Ok(ExitCode::SUCCESS)
        }
        command => {
            let directory = open(&config).await?;
            let result = match command {
                Command::User(command) => people::user(&directory, command).await,
                Command::Policy(command) => {
                    let roots = config.webauthn.attestation_roots.is_some();
                    people::policy(&directory, command, roots).await
                }
                Command::Pass(command) => passes::run(&directory, command).await,
                Command::Audit(args) => audit::run(&directory, args).await,
                Command::Admin(command) => admins::run(&directory, command).await,
                Command::Db(DbCommand::Status(json)) => {
                    let report = directory.session_report().await?;
                    print::database(directory.location(), &report, json.json)
                }
                Command::Db(DbCommand::GrantKiosk { role, .. }) => {
                    directory.grant_kiosk_role(&role).await?;
                    print::say!(
                        "{role} can now do what a kiosk does, and nothing to the schema or the audit log."
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Command::Init { .. }
                | Command::Config(_)
                | Command::Key(_)
                | Command::Migrate
                | Command::Entra(_) => {
                    unreachable!("handled above")
                }
            };
            // Closing checkpoints SQLite's write-ahead log into the file.
            directory.close().await;
            result
        }
    }
}

fn load_config(cli: &Cli) -> Result<Config> {
    let mut inputs = Inputs::from_process();
    // Read by `entra stage` itself (see `entra_stage::key_source`).
    #[cfg(feature = "test-keys")]
    inputs.env.remove("TAPKIOSK_TEST_SOFT_KEY");
    if let Some(path) = &cli.config {
        inputs.file = Some(path.clone());
    }
    for setting in &cli.settings {
        let Some((name, value)) = setting.split_once('=') else {
            bail!("--set takes KEY=VALUE, e.g. --set lockout.threshold=3; `{setting}` has no `=`");
        };
        let Some((key, _)) = KEYS.iter().find(|(key, _)| *key == name.trim()) else {
            let known = KEYS
                .iter()
                .map(|(key, _)| *key)
                .collect::<Vec<_>>()
                .join(", ");
            bail!("--set: unknown key `{name}`; known keys are: {known}");
        };
        inputs.flags.push((key, "--set", value.to_string()));
    }
    if let Some(directory) = &cli.directory {
        inputs
            .flags
            .push(("directory", "--directory", directory.clone()));
    }
    Ok(Config::resolve(&inputs)?)
}

/// The directory settings for this invocation: who acts is the OS user.
pub fn settings(config: &Config) -> Settings {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| account_name());
    Settings {
        actor: format!("tapctl:{user}"),
        kiosk: config.kiosk_name.clone(),
        lockout: config.lockout,
        session: config.session,
        database: config.database,
    }
}

async fn open(config: &Config) -> Result<Directory> {
    open_with(config, settings(config)).await
}

/// The directory, acting under `settings` (another actor's name, say).
pub async fn open_with(config: &Config, settings: Settings) -> Result<Directory> {
    let key = KeyStore::from_env().require()?;
    let directory = Directory::open(&config.directory, key, Arc::new(SystemClock), settings)
        .await
        .with_context(|| format!("cannot open the directory {}", config.directory))?;
    Ok(directory)
}

/// The OS account running us, from /etc/passwd, when USER is not set
/// (cron, systemd, containers).
fn account_name() -> String {
    use std::os::unix::fs::MetadataExt;
    let Ok(uid) = std::fs::metadata("/proc/self").map(|m| m.uid()) else {
        return "unknown".into();
    };
    std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|passwd| {
            passwd.lines().find_map(|line| {
                let fields: Vec<&str> = line.split(':').collect();
                (fields.get(2) == Some(&uid.to_string().as_str())).then(|| fields[0].to_string())
            })
        })
        .unwrap_or_else(|| format!("uid {uid}"))
}
