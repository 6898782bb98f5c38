//! What the app holds while it runs: the directory, the one kiosk flow of
//! the kiosk window, and the admin session.

use anyhow::{Context, Result, bail};
use chrono::{DateTime, Utc};
use std::path::PathBuf;
use std::sync::Arc;
use tapkiosk_core::admin_session::AdminSession;
use tapkiosk_core::config::{Config, EntraSettings, Inputs};
use tapkiosk_core::directory::Settings;
use tapkiosk_core::fido::RelyingParty;
use tapkiosk_core::fido::ceremony::KeySource;
use tapkiosk_core::kiosk::{Kiosk, KioskSettings, Language};
use tapkiosk_core::tenant::Tenant;
use tapkiosk_core::{Clock, Directory, KeyStore, SystemClock};

/// Command-line options.
#[derive(Debug, Default, Clone)]
pub struct Options {
    /// A normal window with decorations (and devtools in debug builds).
    pub dev: bool,
    /// The configuration file.
    pub config: Option<PathBuf>,
    /// The directory, overriding the configuration.
    pub directory: Option<String>,
}

impl Options {
    /// Reads `--dev`, `--config FILE` and `--directory PATH|URL`.
    pub fn from_args(args: impl IntoIterator<Item = String>) -> Result<Self, String> {
        let mut options = Self::default();
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--dev" => options.dev = true,
                "--config" => {
                    options.config = Some(args.next().ok_or("--config needs a file")?.into())
                }
                "--directory" => {
                    options.directory = Some(args.next().ok_or("--directory needs a path or URL")?)
                }
                "--help" | "-h" => {
                    return Err(
                        "usage: tapkiosk [--dev] [--config FILE] [--directory PATH|URL]".into(),
                    );
                }
                other => return Err(format!("unknown argument `{other}`; try --help")),
            }
        }
        Ok(options)
    }
}

/// The app's shared state.
pub struct AppState {
    /// The directory, acting as this kiosk.
    pub directory: Directory,
    /// The same directory, acting as its administrator.
    pub admin_directory: Directory,
    /// The configuration in force.
    pub config: Config,
    /// The kiosk window's flow (one session at a time).
    pub kiosk: tokio::sync::Mutex<Kiosk>,
    /// The admin signed in at the pane, while it is unlocked.
    pub admin_session: std::sync::Mutex<AdminSession<Directory>>,
    /// The relying party for security keys, if they are on.
    pub relying_party: Option<Arc<RelyingParty>>,
    /// Where security keys are found (the kiosk's reader).
    pub keys: KeySource,
    /// A key IT is setting up for someone in the admin pane.
    pub staging: tokio::sync::Mutex<Option<tapkiosk_core::key_staging::KeyStaging>>,
    /// IT's queue of keys to stage into the tenant.
    pub entra_staging: tokio::sync::Mutex<Option<tapkiosk_core::staging::StagingQueue>>,
    /// An admin signing in to the pane with their security key.
    pub key_sign_in: tokio::sync::Mutex<Option<crate::commands::admin_keys::KeySignIn>>,
    /// The tenant people sign in to with its own pass, if configured.
    pub tenant: Option<Arc<dyn Tenant>>,
    /// Which of the tenant's pages the kiosk window shows, if any
    /// (`signin::Away` as a number, read by the navigation handler).
    pub away: std::sync::atomic::AtomicU8,
    /// Whether the window's browser may hold someone's session at the
    /// tenant (its cookies), to be forgotten when the kiosk is back on
    /// Welcome.
    pub tenant_session: std::sync::atomic::AtomicBool,
    /// The app's page to come back to from the tenant's.
    pub app_page: tokio::sync::Mutex<Option<tauri::Url>>,
    /// Windowed development mode.
    pub dev: bool,
    /// Set when an admin quits: the kiosk window may close then.
    pub quitting: std::sync::atomic::AtomicBool,
    clock: Arc<dyn Clock>,
}

impl AppState {
    /// Reads the configuration, finds the key and opens the directory.
    pub async fn open(options: &Options) -> Result<Self> {
        let (config, soft_key) = configuration(options)?;
        let key = KeyStore::from_env().require()?;
        let clock = clock();
        let settings = |actor: &str| Settings {
            actor: actor.to_string(),
            kiosk: config.kiosk_name.clone(),
            lockout: config.lockout,
            session: config.session,
            database: config.database,
        };
        let directory = Directory::open(
            &config.directory,
            key.clone(),
            clock.clone(),
            settings("kiosk"),
        )
        .await
        .with_context(|| format!("cannot open the directory {}", config.directory))?;
        let admin_directory = Directory::open(
            &config.directory,
            key,
            clock.clone(),
            settings("kiosk-admin"),
        )
        .await?;
        let languages: Vec<Language> = config
            .languages
            .iter()
            .map(|l| {
                if l == "fr" {
                    Language::Fr
                } else {
                    Language::En
                }
            })
            .collect();
        if languages.is_empty() {
            bail!("no kiosk language is configured");
        }
        let relying_party = relying_party(&config);
        let tenant = match &config.entra {
            Some(entra) => Some(entra_tenant(entra, clock.clone())?),
            None => None,
        };
        // Handed on only by a `test-keys` build (see above).
        let keys = KeySource::of_build(soft_key.as_deref());
        let kiosk = Kiosk::new(
            directory.clone(),
            KioskSettings {
                organisation: config.organisation.clone(),
                languages,
                idle_timeout: config.idle_timeout,
                relying_party: relying_party.clone(),
                keys: keys.clone(),
                tenant: tenant.clone(),
            },
        );
        Ok(Self {
            directory,
            admin_directory,
            config,
            kiosk: tokio::sync::Mutex::new(kiosk),
            admin_session: std::sync::Mutex::new(AdminSession::default()),
            relying_party,
            keys,
            staging: tokio::sync::Mutex::new(None),
            entra_staging: tokio::sync::Mutex::new(None),
            key_sign_in: tokio::sync::Mutex::new(None),
            tenant,
            away: std::sync::atomic::AtomicU8::new(0),
            tenant_session: std::sync::atomic::AtomicBool::new(false),
            app_page: tokio::sync::Mutex::new(None),
            dev: options.dev,
            quitting: std::sync::atomic::AtomicBool::new(false),
            clock,
        })
    }

    /// Now, on the app's clock.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }
}

/// The configuration in force, and the software key a `test-keys` build
/// is told to use.
fn configuration(options: &Options) -> Result<(Config, Option<String>)> {
    let mut inputs = Inputs::from_process();
    // Known only to test builds; a shipped build refuses it as unknown.
    #[cfg(feature = "test-clock")]
    for name in ["TAPKIOSK_TEST_CLOCK", "TAPKIOSK_TEST_LOG"] {
        inputs.env.remove(name);
    }
    #[cfg(feature = "crash-points")]
    inputs.env.remove(tapkiosk_core::crash::CRASH_AT_ENV);
    #[cfg(feature = "test-keys")]
    let soft_key = inputs.env.remove("TAPKIOSK_TEST_SOFT_KEY");
    #[cfg(not(feature = "test-keys"))]
    let soft_key: Option<String> = None;
    if let Some(config) = &options.config {
        inputs.file = Some(config.clone());
    }
    if let Some(directory) = &options.directory {
        inputs
            .flags
            .push(("directory", "--directory", directory.clone()));
    }
    Ok((Config::resolve(&inputs)?, soft_key))
}

/// The tenant of the configuration, for a kiosk window made before the
/// directory could be opened (it was out of reach at start): the window
/// needs the tenant's script from its first page.
pub fn tenant_of(options: &Options) -> Option<Arc<dyn Tenant>> {
    let (config, _) = configuration(options).ok()?;
    let entra = config.entra.as_ref()?;
    entra_tenant(entra, clock()).ok()
}

/// The relying party for security keys, or none (with the reason in the
/// log) when the WebAuthn settings cannot be used.
fn relying_party(config: &Config) -> Option<Arc<RelyingParty>> {
    RelyingParty::new(&config.webauthn)
        .map(Arc::new)
        .map_err(|e| tracing::error!(%e, "security keys are off"))
        .ok()
}

/// The Entra tenant of the configuration, through its app registration.
fn entra_tenant(settings: &EntraSettings, clock: Arc<dyn Clock>) -> Result<Arc<dyn Tenant>> {
    let credential = tapkiosk_entra::Credential::load(&settings.credential, &settings.client_id)
        .context("cannot use the Entra app's credential")?;
    let graph = tapkiosk_entra::Graph::new(settings.clone(), credential, clock)?;
    Ok(Arc::new(tapkiosk_entra::EntraTenant::new(Arc::new(graph))))
}

#[cfg(not(feature = "test-clock"))]
fn clock() -> Arc<dyn Clock> {
    Arc::new(SystemClock)
}

/// With the `test-clock` feature: the wall clock plus the offset (seconds)
/// in the file named by `TAPKIOSK_TEST_CLOCK`.
#[cfg(feature = "test-clock")]
fn clock() -> Arc<dyn Clock> {
    match std::env::var_os("TAPKIOSK_TEST_CLOCK") {
        Some(path) => Arc::new(OffsetClock { path: path.into() }),
        None => Arc::new(SystemClock),
    }
}

#[cfg(feature = "test-clock")]
#[derive(Debug)]
struct OffsetClock {
    path: PathBuf,
}

#[cfg(feature = "test-clock")]
impl Clock for OffsetClock {
    fn now(&self) -> DateTime<Utc> {
        let offset = std::fs::read_to_string(&self.path)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
        SystemClock.now() + chrono::TimeDelta::seconds(offset)
    }
}
