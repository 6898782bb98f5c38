//! Configuration: one TOML file in the OS config directory, overridden by
//! `TAPKIOSK_*` environment variables, overridden by command-line flags.
//! Unknown keys and bad values are refused with where they came from, the
//! key and the reason; `tapctl config show` prints each effective value with
//! its origin.

use crate::directory::Location;
use crate::duration;
use crate::lockout::LockoutSettings;
use chrono::TimeDelta;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// The environment variable that names the configuration file.
pub const CONFIG_FILE_ENV: &str = "TAPKIOSK_CONFIG";
/// Languages the kiosk speaks.
pub const LANGUAGES: [&str; 2] = ["en", "fr"];

/// Every key the file may hold, with its documentation.
pub const KEYS: [(&str, &str); 32] = [
    (
        "organisation",
        "organisation name shown to people and used as the authenticator issuer",
    ),
    (
        "directory",
        "SQLite file path, or a postgres:// URL for a shared directory",
    ),
    ("kiosk_name", "this kiosk's name in the audit log"),
    ("webauthn.rp_id", "WebAuthn relying party ID (a domain)"),
    (
        "webauthn.rp_name",
        "WebAuthn relying party name shown on keys",
    ),
    (
        "webauthn.origin",
        "WebAuthn origin, https://<rp_id or a subdomain>",
    ),
    (
        "webauthn.attestation_roots",
        "PEM file of key vendors' attestation roots; with a key allow-list, keys must chain to one",
    ),
    (
        "idle_timeout",
        "idle time before the kiosk resets (30s … 30m)",
    ),
    ("languages", "kiosk languages, from: en, fr"),
    (
        "audit.checkpoint_file",
        "file the kiosk appends audit checkpoints to, besides its log (none by default)",
    ),
    (
        "lockout.threshold",
        "wrong passes that lock an email (1 … 100)",
    ),
    ("lockout.window", "window in which wrong passes are counted"),
    (
        "lockout.duration",
        "first lockout's length; each further one doubles",
    ),
    (
        "lockout.max_duration",
        "longest lockout; a quiet time this long forgets the escalation",
    ),
    (
        "lockout.kiosk_threshold",
        "wrong passes at one kiosk, any emails, within lockout.window that throttle it (1 … 1000)",
    ),
    (
        "session.limit",
        "longest kiosk session (1m … 8h); never beyond the pass",
    ),
    (
        "session.claim_lease",
        "how long a one-time pass stays claimed by a session that stops answering (1m … 1h)",
    ),
    (
        "database.connect_timeout",
        "longest wait for a connection to the directory (1s … 5m)",
    ),
    (
        "database.statement_timeout",
        "longest a PostgreSQL statement may run (1s … 10m)",
    ),
    (
        "database.lock_timeout",
        "longest wait for a row or the SQLite file another writer holds (1s … 5m)",
    ),
    (
        "database.idle_in_transaction_timeout",
        "PostgreSQL ends a session that leaves its transaction open this long, freeing its locks (5s … 1h)",
    ),
    (
        "database.keepalive",
        "PostgreSQL probes a silent kiosk's connection after this long and drops it after three unanswered probes (5s … 10m)",
    ),
    (
        "entra.tenant",
        "Microsoft Entra tenant (id or domain); set, the kiosk works on that tenant",
    ),
    (
        "entra.client_id",
        "the kiosk's app registration in the tenant (application id)",
    ),
    (
        "entra.certificate_file",
        "PEM file (0600) with the app's private key and certificate (preferred credential)",
    ),
    (
        "entra.certificate",
        "PEM file with the app's certificate alone, its private key kept in the OS credential store (tapctl entra set-key)",
    ),
    (
        "entra.client_secret_file",
        "file (0600) holding the app's client secret; without a certificate or this, the secret in the OS credential store (tapctl entra set-secret)",
    ),
    (
        "entra.authority",
        "sign-in authority (https; http only for loopback), for national clouds",
    ),
    (
        "entra.graph",
        "Microsoft Graph base URL (https; http only for loopback), for national clouds",
    ),
    (
        "entra.redirect_uri",
        "the app registration's redirect URI (https; http only for loopback); the kiosk catches it",
    ),
    (
        "entra.security_info",
        "the tenant's own Security info page (for Microsoft Authenticator), shown in the signed-in kiosk window",
    ),
    (
        "entra.sign_in_hosts",
        "hosts besides the authority's that the sign-in page may go to (federation), comma-separated",
    ),
];

/// Where a value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Built in.
    Default,
    /// The configuration file.
    File(PathBuf),
    /// An environment variable.
    Env(String),
    /// A command-line flag.
    Flag(String),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Default => f.write_str("default"),
            Self::File(path) => write!(f, "config file {}", path.display()),
            Self::Env(name) => write!(f, "environment variable {name}"),
            Self::Flag(name) => write!(f, "flag {name}"),
        }
    }
}

/// Configuration that cannot be used.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("config file {path}: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A key we do not know (often a typo).
    #[error("{origin}: unknown key `{key}`; known keys are: {known}")]
    UnknownKey {
        /// Where.
        origin: Source,
        /// The key.
        key: String,
        /// The keys we know.
        known: String,
    },
    /// A value that breaks its key's rule.
    #[error("{origin}: key `{key}`: {reason}")]
    Invalid {
        /// Where.
        origin: Source,
        /// The key.
        key: String,
        /// Why.
        reason: String,
    },
}

/// WebAuthn relying-party settings, used when security keys are enrolled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebAuthnSettings {
    /// The RP ID.
    pub rp_id: String,
    /// The RP name.
    pub rp_name: String,
    /// The origin.
    pub origin: String,
    /// Vendors' attestation root certificates (PEM), when configured.
    pub attestation_roots: Option<PathBuf>,
}

/// Microsoft Entra ID: the tenant the kiosk works on, and how it signs in
/// to Microsoft Graph as its app registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntraSettings {
    /// Tenant id or domain.
    pub tenant: String,
    /// The app registration's application (client) id.
    pub client_id: String,
    /// The sign-in authority, e.g. `https://login.microsoftonline.com`.
    pub authority: url::Url,
    /// Microsoft Graph, e.g. `https://graph.microsoft.com`.
    pub graph: url::Url,
    /// The app's credential.
    pub credential: EntraCredential,
    /// Where the sign-in page sends the person back (registered with the
    /// app; the kiosk window catches it and never loads it).
    pub redirect_uri: url::Url,
    /// Hosts besides the authority's that the sign-in window may show: the
    /// organisation's federation (AD FS, another identity provider).
    pub sign_in_hosts: Vec<String>,
    /// The tenant's own Security info page, where people add what Graph
    /// cannot register (Microsoft Authenticator).
    pub security_info: url::Url,
}

/// Where the app registration's credential is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntraCredential {
    /// A PEM file with the private key and its certificate.
    CertificateFile(PathBuf),
    /// A PEM file with the certificate; its private key in the OS
    /// credential store.
    CertificateInOsStore(PathBuf),
    /// A file holding a client secret.
    SecretFile(PathBuf),
    /// A client secret in the OS credential store.
    SecretInOsStore,
}

/// The public cloud's sign-in authority.
pub const ENTRA_AUTHORITY: &str = "https://login.microsoftonline.com";
/// The public cloud's Microsoft Graph.
pub const ENTRA_GRAPH: &str = "https://graph.microsoft.com";
/// Microsoft's Security info page, in the public cloud.
pub const ENTRA_SECURITY_INFO: &str = "https://mysignins.microsoft.com/security-info";
/// The redirect URI the kiosk's app is registered with, unless configured.
pub const ENTRA_REDIRECT_URI: &str = "http://localhost/tapkiosk/signed-in";

/// Kiosk session settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionSettings {
    /// The longest session.
    pub limit: TimeDelta,
    /// How long an unanswered claim on a one-time pass lasts.
    pub claim_lease: TimeDelta,
}

impl Default for SessionSettings {
    fn default() -> Self {
        Self {
            limit: TimeDelta::minutes(15),
            claim_lease: TimeDelta::minutes(15),
        }
    }
}

/// How long the directory's database may keep the kiosk waiting. Without
/// these, a kiosk that loses its network inside a PostgreSQL transaction
/// holds its locks until TCP gives up (hours), and every other kiosk waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DatabaseTimeouts {
    /// Connecting (and waiting for a pooled connection).
    pub connect: TimeDelta,
    /// One statement (PostgreSQL).
    pub statement: TimeDelta,
    /// Waiting for a lock: a row on PostgreSQL, the file on SQLite.
    pub lock: TimeDelta,
    /// A transaction left open and idle (PostgreSQL ends the session).
    pub idle_in_transaction: TimeDelta,
    /// Silence on a connection before PostgreSQL sends TCP keepalive
    /// probes: a kiosk whose network is cut while a statement runs (where
    /// the idle-in-transaction timeout does not apply) is dropped, and its
    /// locks freed, within about twice this.
    pub keepalive: TimeDelta,
}

impl Default for DatabaseTimeouts {
    fn default() -> Self {
        Self {
            connect: TimeDelta::seconds(10),
            statement: TimeDelta::seconds(30),
            lock: TimeDelta::seconds(10),
            idle_in_transaction: TimeDelta::seconds(60),
            keepalive: TimeDelta::seconds(30),
        }
    }
}

/// The effective configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Organisation name.
    pub organisation: String,
    /// The directory.
    pub directory: Location,
    /// This kiosk's name.
    pub kiosk_name: String,
    /// WebAuthn settings.
    pub webauthn: WebAuthnSettings,
    /// Idle timeout.
    pub idle_timeout: TimeDelta,
    /// Kiosk languages.
    pub languages: Vec<String>,
    /// Where the kiosk appends audit checkpoints, if anywhere.
    pub audit_checkpoint_file: Option<PathBuf>,
    /// Lockout rules.
    pub lockout: LockoutSettings,
    /// Session rules.
    pub session: SessionSettings,
    /// The database's timeouts.
    pub database: DatabaseTimeouts,
    /// The Entra tenant, when the kiosk works on one.
    pub entra: Option<EntraSettings>,
    /// Each key's effective value (as text) and origin, for `config show`.
    pub shown: BTreeMap<&'static str, (String, Source)>,
}

/// A value before it is parsed.
#[derive(Debug, Clone)]
enum Raw {
    Toml(toml::Value),
    Text(String),
}

impl Raw {
    fn text(&self) -> Result<String, String> {
        match self {
            Self::Text(text) | Self::Toml(toml::Value::String(text)) => Ok(text.clone()),
            Self::Toml(toml::Value::Integer(n)) => Ok(n.to_string()),
            Self::Toml(other) => Err(format!("expected text, found {}", other.type_str())),
        }
    }

    fn list(&self) -> Result<Vec<String>, String> {
        match self {
            Self::Toml(toml::Value::Array(items)) => items
                .iter()
                .map(|item| {
                    item.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| "expected a list of text".to_string())
                })
                .collect(),
            other => Ok(other
                .text()?
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()),
        }
    }
}

/// What the configuration is built from: the file (if any), the
/// environment, and flags as `(key, flag name, value)`.
#[derive(Debug, Default)]
pub struct Inputs {
    /// The file named by `--config` or `TAPKIOSK_CONFIG`; otherwise the
    /// default path, read only if it exists.
    pub file: Option<PathBuf>,
    /// Environment variables (all of them; only `TAPKIOSK_*` are read).
    pub env: BTreeMap<String, String>,
    /// Flags given on the command line.
    pub flags: Vec<(&'static str, &'static str, String)>,
}

impl Inputs {
    /// Inputs from this process's environment.
    pub fn from_process() -> Self {
        let env: BTreeMap<String, String> = std::env::vars()
            .filter(|(k, _)| k.starts_with("TAPKIOSK_"))
            .collect();
        let file = env
            .get(CONFIG_FILE_ENV)
            .filter(|p| !p.is_empty())
            .map(PathBuf::from);
        Self {
            file,
            env,
            flags: Vec::new(),
        }
    }
}

/// The environment variable that overrides `key`.
pub fn env_name(key: &str) -> String {
    format!("TAPKIOSK_{}", key.replace('.', "_").to_uppercase())
}

fn project_dirs() -> Option<directories::ProjectDirs> {
    directories::ProjectDirs::from("", "", "tapkiosk")
}

/// The configuration file used when none is named.
pub fn default_file() -> Option<PathBuf> {
    project_dirs().map(|dirs| dirs.config_dir().join("config.toml"))
}

/// The embedded directory used when none is named.
pub fn default_directory() -> PathBuf {
    project_dirs()
        .map(|dirs| dirs.data_dir().join("directory.sqlite3"))
        .unwrap_or_else(|| PathBuf::from("tapkiosk-directory.sqlite3"))
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_string())
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "kiosk".to_string())
}

fn read_file(path: &Path, explicit: bool) -> Result<Vec<(String, Raw)>, ConfigError> {
    let error = |reason: String| ConfigError::File {
        path: path.to_path_buf(),
        reason,
    };
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => return Ok(Vec::new()),
        Err(e) => return Err(error(e.to_string())),
    };
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| error(e.message().to_string()))?;
    let mut values = Vec::new();
    flatten("", table, &mut values);
    check_file_mode(path, &values).map_err(error)?;
    Ok(values)
}

/// The configuration decides which directory a kiosk trusts and how hard
/// guessing is: whoever may write the file may weaken both. A file holding
/// a database password must not be readable by others either.
fn check_file_mode(path: &Path, values: &[(String, Raw)]) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)
        .map_err(|e| e.to_string())?
        .permissions()
        .mode();
    let shown = path.display();
    if mode & 0o022 != 0 {
        return Err(format!(
            "group or others can change it: run `chmod go-w {shown}`"
        ));
    }
    let has_password = values.iter().any(|(key, raw)| {
        key == "directory"
            && raw.text().is_ok_and(|text| {
                url::Url::parse(text.trim()).is_ok_and(|url| {
                    url.password().is_some() || url.query_pairs().any(|(k, _)| k == "password")
                })
            })
    });
    if has_password && mode & 0o044 != 0 {
        return Err(format!(
            "it holds a database password that group or others can read: run `chmod 600 {shown}`"
        ));
    }
    Ok(())
}

fn flatten(prefix: &str, table: toml::Table, out: &mut Vec<(String, Raw)>) {
    for (key, value) in table {
        let key = if prefix.is_empty() {
            key
        } else {
            format!("{prefix}.{key}")
        };
        match value {
            toml::Value::Table(inner) => flatten(&key, inner, out),
            value => out.push((key, Raw::Toml(value))),
        }
    }
}

impl Config {
    /// Resolves the configuration from `inputs`.
    pub fn resolve(inputs: &Inputs) -> Result<Self, ConfigError> {
        let mut raw: BTreeMap<&'static str, (Raw, Source)> = BTreeMap::new();
        let known = |key: &str| KEYS.iter().find(|(k, _)| *k == key).map(|(k, _)| *k);
        let file = inputs
            .file
            .clone()
            .map(|p| (p, true))
            .or_else(|| default_file().map(|p| (p, false)));
        if let Some((path, explicit)) = file {
            for (key, value) in read_file(&path, explicit)? {
                let source = Source::File(path.clone());
                let Some(key) = known(&key) else {
                    let known = KEYS.iter().map(|(k, _)| *k).collect::<Vec<_>>().join(", ");
                    return Err(ConfigError::UnknownKey {
                        origin: source,
                        key,
                        known,
                    });
                };
                raw.insert(key, (value, source));
            }
        }
        check_env_names(&inputs.env)?;
        for (key, _) in KEYS {
            let name = env_name(key);
            if let Some(value) = inputs.env.get(&name) {
                raw.insert(key, (Raw::Text(value.clone()), Source::Env(name)));
            }
        }
        for (key, flag, value) in &inputs.flags {
            raw.insert(
                key,
                (Raw::Text(value.clone()), Source::Flag((*flag).to_string())),
            );
        }
        Builder {
            raw,
            shown: BTreeMap::new(),
        }
        .build()
    }
}

/// Refuses `TAPKIOSK_*` variables that name no setting: a misspelt
/// override must not be silently ignored.
fn check_env_names(env: &BTreeMap<String, String>) -> Result<(), ConfigError> {
    let known = |name: &str| {
        name == CONFIG_FILE_ENV
            || name == crate::keys::KEY_FILE_ENV
            || KEYS.iter().any(|(k, _)| env_name(k) == name)
    };
    match env
        .keys()
        .find(|name| name.starts_with("TAPKIOSK_") && !known(name))
    {
        Some(name) => Err(ConfigError::UnknownKey {
            origin: Source::Env(name.clone()),
            key: name.clone(),
            known: KEYS
                .iter()
                .map(|(k, _)| env_name(k))
                .chain([CONFIG_FILE_ENV.into(), crate::keys::KEY_FILE_ENV.into()])
                .collect::<Vec<_>>()
                .join(", "),
        }),
        None => Ok(()),
    }
}

struct Builder {
    raw: BTreeMap<&'static str, (Raw, Source)>,
    shown: BTreeMap<&'static str, (String, Source)>,
}

impl Builder {
    fn get<T>(
        &mut self,
        key: &'static str,
        default: T,
        parse: impl Fn(&Raw) -> Result<T, String>,
        show: impl Fn(&T) -> String,
    ) -> Result<T, ConfigError> {
        let (value, source) = match self.raw.get(key) {
            Some((raw, source)) => {
                let value = parse(raw).map_err(|reason| ConfigError::Invalid {
                    origin: source.clone(),
                    key: key.to_string(),
                    reason,
                })?;
                (value, source.clone())
            }
            None => (default, Source::Default),
        };
        self.shown.insert(key, (show(&value), source));
        Ok(value)
    }

    fn text(&mut self, key: &'static str, default: &str) -> Result<String, ConfigError> {
        self.get(
            key,
            default.to_string(),
            |raw| non_empty(raw.text()?),
            Clone::clone,
        )
    }

    fn span(
        &mut self,
        key: &'static str,
        default: TimeDelta,
        min: TimeDelta,
        max: TimeDelta,
    ) -> Result<TimeDelta, ConfigError> {
        let parse = |raw: &Raw| {
            let value = duration::parse(&raw.text()?).map_err(|e| e.to_string())?;
            if value < min || value > max {
                return Err(format!(
                    "must be between {} and {}",
                    duration::format(min),
                    duration::format(max)
                ));
            }
            Ok(value)
        };
        self.get(key, default, parse, |d| duration::format(*d))
    }

    fn build(mut self) -> Result<Config, ConfigError> {
        let organisation = self.get(
            "organisation",
            "tapkiosk".to_string(),
            |raw| {
                let name = non_empty(raw.text()?)?;
                crate::totp::check_issuer(&name).map_err(|e| e.to_string())?;
                Ok(name)
            },
            Clone::clone,
        )?;
        let directory = self.get(
            "directory",
            Location::Sqlite(default_directory()),
            |raw| Location::parse(&raw.text()?).map_err(|e| e.to_string()),
            Location::to_string,
        )?;
        let kiosk_name = self.text("kiosk_name", &hostname())?;
        let rp_id = self.get(
            "webauthn.rp_id",
            "localhost".to_string(),
            |raw| rp_id(&raw.text()?),
            Clone::clone,
        )?;
        let rp_name = self.text("webauthn.rp_name", &organisation)?;
        let default_origin = format!("https://{rp_id}");
        let origin = self.get(
            "webauthn.origin",
            default_origin,
            |raw| origin(&raw.text()?, &rp_id),
            Clone::clone,
        )?;
        let attestation_roots = self.get(
            "webauthn.attestation_roots",
            None,
            |raw| attestation_roots(&raw.text()?).map(Some),
            |path| {
                path.as_ref()
                    .map_or("none".into(), |p| p.display().to_string())
            },
        )?;
        let idle_timeout = self.span(
            "idle_timeout",
            TimeDelta::seconds(120),
            TimeDelta::seconds(30),
            TimeDelta::minutes(30),
        )?;
        let languages = self.get(
            "languages",
            LANGUAGES.map(String::from).to_vec(),
            languages,
            |l| l.join(", "),
        )?;
        let audit_checkpoint_file = self.get(
            "audit.checkpoint_file",
            None,
            |raw| Ok(Some(PathBuf::from(raw.text()?))),
            |path| {
                path.as_ref()
                    .map_or("none".into(), |p| p.display().to_string())
            },
        )?;
        let lockout = self.lockout()?;
        let session = SessionSettings {
            limit: self.span(
                "session.limit",
                TimeDelta::minutes(15),
                TimeDelta::minutes(1),
                TimeDelta::hours(8),
            )?,
            claim_lease: self.span(
                "session.claim_lease",
                TimeDelta::minutes(15),
                TimeDelta::minutes(1),
                TimeDelta::hours(1),
            )?,
        };
        let defaults = DatabaseTimeouts::default();
        let database = DatabaseTimeouts {
            connect: self.span(
                "database.connect_timeout",
                defaults.connect,
                TimeDelta::seconds(1),
                TimeDelta::minutes(5),
            )?,
            statement: self.span(
                "database.statement_timeout",
                defaults.statement,
                TimeDelta::seconds(1),
                TimeDelta::minutes(10),
            )?,
            lock: self.span(
                "database.lock_timeout",
                defaults.lock,
                TimeDelta::seconds(1),
                TimeDelta::minutes(5),
            )?,
            idle_in_transaction: self.span(
                "database.idle_in_transaction_timeout",
                defaults.idle_in_transaction,
                TimeDelta::seconds(5),
                TimeDelta::hours(1),
            )?,
            keepalive: self.span(
                "database.keepalive",
                defaults.keepalive,
                TimeDelta::seconds(5),
                TimeDelta::minutes(10),
            )?,
        };
        Ok(Config {
            organisation,
            directory,
            kiosk_name,
            webauthn: WebAuthnSettings {
                rp_id,
                rp_name,
                origin,
                attestation_roots,
            },
            idle_timeout,
            languages,
            audit_checkpoint_file,
            lockout,
            session,
            database,
            entra: self.entra()?,
            shown: self.shown,
        })
    }

    fn optional_text(
        &mut self,
        key: &'static str,
        parse: impl Fn(&str) -> Result<String, String>,
    ) -> Result<Option<String>, ConfigError> {
        self.get(
            key,
            None,
            |raw| parse(&non_empty(raw.text()?)?).map(Some),
            |value| value.clone().unwrap_or_else(|| "none".into()),
        )
    }

    fn entra(&mut self) -> Result<Option<EntraSettings>, ConfigError> {
        let tenant = self.optional_text("entra.tenant", tenant)?;
        let client_id = self.optional_text("entra.client_id", guid)?;
        let certificate = self.optional_text("entra.certificate_file", |t| Ok(t.to_string()))?;
        let stored_key = self.optional_text("entra.certificate", |t| Ok(t.to_string()))?;
        let secret = self.optional_text("entra.client_secret_file", |t| Ok(t.to_string()))?;
        let mut endpoint = |key, default: &str| {
            self.get(
                key,
                default.to_string(),
                |raw| endpoint(&raw.text()?),
                Clone::clone,
            )
        };
        let authority = endpoint("entra.authority", ENTRA_AUTHORITY)?;
        let graph = endpoint("entra.graph", ENTRA_GRAPH)?;
        let redirect_uri = endpoint("entra.redirect_uri", ENTRA_REDIRECT_URI)?;
        let security_info = endpoint("entra.security_info", ENTRA_SECURITY_INFO)?;
        let sign_in_hosts = self.get("entra.sign_in_hosts", Vec::new(), hosts, |hosts| {
            hosts.join(", ")
        })?;
        let Some(tenant) = tenant else {
            return Ok(None);
        };
        let invalid = |key: &str, reason: &str| ConfigError::Invalid {
            origin: self
                .shown
                .get(key)
                .map_or(Source::Default, |(_, s)| s.clone()),
            key: key.to_string(),
            reason: reason.to_string(),
        };
        let client_id =
            client_id.ok_or_else(|| invalid("entra.client_id", "is needed with entra.tenant"))?;
        let credential = match (certificate, stored_key, secret) {
            (Some(path), None, None) => EntraCredential::CertificateFile(path.into()),
            (None, Some(path), None) => EntraCredential::CertificateInOsStore(path.into()),
            (None, None, Some(path)) => EntraCredential::SecretFile(path.into()),
            (None, None, None) => EntraCredential::SecretInOsStore,
            _ => {
                return Err(invalid(
                    "entra.client_secret_file",
                    "give one of entra.certificate_file, entra.certificate and entra.client_secret_file, not both",
                ));
            }
        };
        let url =
            |text: String| url::Url::parse(&text).map_err(|e| invalid("entra", &e.to_string()));
        Ok(Some(EntraSettings {
            tenant,
            client_id,
            authority: url(authority)?,
            graph: url(graph)?,
            credential,
            redirect_uri: url(redirect_uri)?,
            sign_in_hosts,
            security_info: url(security_info)?,
        }))
    }

    fn lockout(&mut self) -> Result<LockoutSettings, ConfigError> {
        let defaults = LockoutSettings::default();
        let threshold = self.get(
            "lockout.threshold",
            defaults.threshold,
            |raw| match raw.text()?.trim().parse::<u32>() {
                Ok(n) if (1..=100).contains(&n) => Ok(n),
                _ => Err("must be a whole number from 1 to 100".to_string()),
            },
            u32::to_string,
        )?;
        let (minute, month) = (TimeDelta::minutes(1), TimeDelta::days(30));
        let window = self.span(
            "lockout.window",
            defaults.window,
            minute,
            TimeDelta::hours(24),
        )?;
        let duration = self.span(
            "lockout.duration",
            defaults.duration,
            minute,
            TimeDelta::hours(24),
        )?;
        let max_duration =
            self.span("lockout.max_duration", defaults.max_duration, minute, month)?;
        if max_duration < duration {
            return Err(ConfigError::Invalid {
                origin: self
                    .shown
                    .get("lockout.max_duration")
                    .map_or(Source::Default, |(_, s)| s.clone()),
                key: "lockout.max_duration".into(),
                reason: "must not be shorter than lockout.duration".into(),
            });
        }
        let kiosk_threshold = self.get(
            "lockout.kiosk_threshold",
            defaults.kiosk_threshold,
            |raw| match raw.text()?.trim().parse::<u32>() {
                Ok(n) if (1..=1000).contains(&n) => Ok(n),
                _ => Err("must be a whole number from 1 to 1000".to_string()),
            },
            u32::to_string,
        )?;
        Ok(LockoutSettings {
            threshold,
            window,
            duration,
            max_duration,
            kiosk_threshold,
        })
    }
}

fn non_empty(text: String) -> Result<String, String> {
    let trimmed = text.trim();
    // Characters, not bytes: "Société Générale" is 16 long.
    if trimmed.is_empty() || trimmed.chars().count() > 200 {
        Err("must be between 1 and 200 characters".into())
    } else {
        Ok(trimmed.to_string())
    }
}

/// A tenant: its id (a GUID) or one of its domains.
fn tenant(text: &str) -> Result<String, String> {
    guid(text)
        .or_else(|_| rp_id(text))
        .map_err(|_| format!("`{text}` is neither a tenant id (a GUID) nor a domain name"))
}

fn guid(text: &str) -> Result<String, String> {
    uuid::Uuid::parse_str(text)
        .map(|id| id.hyphenated().to_string())
        .map_err(|_| format!("`{text}` is not an id like 00000000-0000-0000-0000-000000000000"))
}

/// An Entra or Graph base URL: https, or http to a loopback address (a
/// test tenant on this machine).
fn endpoint(text: &str) -> Result<String, String> {
    let url = url::Url::parse(text).map_err(|e| format!("`{text}` is not a URL: {e}"))?;
    let loopback = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => name == "localhost",
        None => false,
    };
    let secure = url.scheme() == "https" || (url.scheme() == "http" && loopback);
    if !secure || url.host().is_none() {
        return Err("must use https (http only for a loopback address)".into());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("must have no query or fragment".into());
    }
    Ok(text.trim_end_matches('/').to_string())
}

fn rp_id(text: &str) -> Result<String, String> {
    let valid = !text.is_empty()
        && text.len() <= 253
        && text.split('.').all(|label| {
            !label.is_empty()
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !label.starts_with('-')
        });
    if valid {
        Ok(text.to_ascii_lowercase())
    } else {
        Err(format!("`{text}` is not a domain name"))
    }
}

/// A readable PEM file with at least one certificate.
fn attestation_roots(text: &str) -> Result<PathBuf, String> {
    let path = PathBuf::from(text);
    read_roots(&path)?;
    Ok(path)
}

/// The certificates of a PEM file of attestation roots (at least one).
pub fn read_roots(path: &std::path::Path) -> Result<Vec<openssl::x509::X509>, String> {
    let shown = path.display();
    let pem = std::fs::read(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
    match openssl::x509::X509::stack_from_pem(&pem) {
        Ok(roots) if !roots.is_empty() => Ok(roots),
        _ => Err(format!("{shown} holds no PEM certificate")),
    }
}

fn origin(text: &str, rp_id: &str) -> Result<String, String> {
    let url = url::Url::parse(text).map_err(|e| format!("`{text}` is not a URL: {e}"))?;
    let host = url.host_str().unwrap_or_default();
    let secure = url.scheme() == "https" || (url.scheme() == "http" && host == "localhost");
    if !secure {
        return Err("must use https (http only for localhost)".into());
    }
    if host != rp_id && !host.ends_with(&format!(".{rp_id}")) {
        return Err(format!(
            "the host {host} must be webauthn.rp_id ({rp_id}) or a subdomain of it"
        ));
    }
    Ok(text.trim_end_matches('/').to_string())
}

fn hosts(raw: &Raw) -> Result<Vec<String>, String> {
    raw.list()?.iter().map(|host| rp_id(host)).collect()
}

fn languages(raw: &Raw) -> Result<Vec<String>, String> {
    let list = raw.list()?;
    if list.is_empty() {
        return Err("name at least one language".into());
    }
    match list.iter().find(|l| !LANGUAGES.contains(&l.as_str())) {
        Some(unknown) => Err(format!(
            "`{unknown}` is not a kiosk language; choose from {}",
            LANGUAGES.join(", ")
        )),
        None => Ok(list),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(file_text: Option<&str>, env: &[(&str, &str)]) -> (tempfile::TempDir, Inputs) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        if let Some(text) = file_text {
            std::fs::write(&path, text).unwrap();
        }
        let env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        (
            dir,
            Inputs {
                file: Some(path),
                env,
                flags: Vec::new(),
            },
        )
    }

    const TENANT: &str = "[entra]\ntenant = \"contoso.onmicrosoft.com\"\n";

    fn entra(extra: &str) -> Result<Option<EntraSettings>, String> {
        let (_dir, inputs) = inputs(Some(&format!("{TENANT}{extra}")), &[]);
        Config::resolve(&inputs)
            .map(|c| c.entra)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn entra_is_off_until_a_tenant_is_named_and_then_needs_its_app() {
        let (_dir, plain) = inputs(Some(""), &[]);
        assert_eq!(Config::resolve(&plain).unwrap().entra, None);
        let missing = entra("").unwrap_err();
        assert!(
            missing.contains("entra.client_id") && missing.contains("needed"),
            "{missing}"
        );
        let settings = entra("client_id = \"11111111-2222-3333-4444-555555555555\"\n")
            .unwrap()
            .unwrap();
        assert_eq!(settings.tenant, "contoso.onmicrosoft.com");
        assert_eq!(
            settings.authority.as_str(),
            "https://login.microsoftonline.com/"
        );
        assert_eq!(settings.graph.as_str(), "https://graph.microsoft.com/");
        assert_eq!(settings.credential, EntraCredential::SecretInOsStore);
    }

    #[test]
    fn entra_endpoints_need_https_but_for_loopback_and_one_credential() {
        let app = "client_id = \"11111111-2222-3333-4444-555555555555\"\n";
        let national = entra(&format!(
            "{app}authority = \"https://login.microsoftonline.us\"\ngraph = \"https://graph.microsoft.us/\"\n"
        ));
        let national = national.unwrap().unwrap();
        assert_eq!(national.graph.host_str(), Some("graph.microsoft.us"));
        for (url, ok) in [
            ("http://login.example.com", false),
            ("http://127.0.0.1:8080", true),
            ("http://[::1]:8080", true),
            ("http://localhost:9", true),
            ("https://login.example.com/?x=1", false),
            ("ftp://login.example.com", false),
        ] {
            let result = entra(&format!("{app}authority = \"{url}\"\n"));
            assert_eq!(result.is_ok(), ok, "{url}: {result:?}");
        }
        let both = entra(&format!(
            "{app}certificate_file = \"a.pem\"\nclient_secret_file = \"s\"\n"
        ));
        assert!(both.unwrap_err().contains("not both"));
        let certificate = entra(&format!("{app}certificate_file = \"app.pem\"\n"))
            .unwrap()
            .unwrap();
        assert_eq!(
            certificate.credential,
            EntraCredential::CertificateFile("app.pem".into())
        );
        let stored = entra(&format!("{app}certificate = \"app.crt\"\n"))
            .unwrap()
            .unwrap();
        assert_eq!(
            stored.credential,
            EntraCredential::CertificateInOsStore("app.crt".into())
        );
        let two = entra(&format!(
            "{app}certificate = \"a.crt\"\ncertificate_file = \"a.pem\"\n"
        ));
        assert!(two.unwrap_err().contains("not both"));
        assert!(
            entra("client_id = \"not an id\"\n")
                .unwrap_err()
                .contains("not an id")
        );
        let (_dir, bad_tenant) = inputs(Some("[entra]\ntenant = \"not a tenant!\"\n"), &[]);
        assert!(Config::resolve(&bad_tenant).is_err());
    }

    #[test]
    fn the_sign_in_page_comes_back_to_a_safe_redirect_and_goes_only_to_named_hosts() {
        let app = "client_id = \"11111111-2222-3333-4444-555555555555\"\n";
        let plain = entra(app).unwrap().unwrap();
        assert_eq!(plain.redirect_uri.as_str(), ENTRA_REDIRECT_URI);
        assert!(plain.sign_in_hosts.is_empty());
        assert_eq!(plain.security_info.as_str(), ENTRA_SECURITY_INFO);
        let federated = entra(&format!(
            "{app}redirect_uri = \"https://kiosk.contoso.com/signed-in\"\nsign_in_hosts = [\"ADFS.contoso.com\"]\n"
        ))
        .unwrap()
        .unwrap();
        assert_eq!(federated.redirect_uri.host_str(), Some("kiosk.contoso.com"));
        assert_eq!(federated.sign_in_hosts, ["adfs.contoso.com"]);
        for bad in [
            "redirect_uri = \"http://kiosk.contoso.com/signed-in\"\n",
            "redirect_uri = \"https://kiosk.contoso.com/?a=1\"\n",
            "sign_in_hosts = [\"https://adfs.contoso.com\"]\n",
            "security_info = \"http://mysignins.microsoft.com/security-info\"\n",
        ] {
            assert!(entra(&format!("{app}{bad}")).is_err(), "{bad}");
        }
    }

    #[test]
    fn flags_beat_environment_beats_file_beats_default() {
        let (_dir, mut inputs) = inputs(
            Some(
                "organisation = \"Example Ltd\"\nkiosk_name = \"lobby\"\n[lockout]\nthreshold = 7\n",
            ),
            &[("TAPKIOSK_KIOSK_NAME", "desk-2")],
        );
        inputs
            .flags
            .push(("lockout.threshold", "--lockout-threshold", "3".into()));
        let config = Config::resolve(&inputs).unwrap();
        assert_eq!(config.organisation, "Example Ltd");
        assert_eq!(config.kiosk_name, "desk-2");
        assert_eq!(config.lockout.threshold, 3);
        assert_eq!(config.idle_timeout, TimeDelta::seconds(120));
        assert!(matches!(config.shown["organisation"].1, Source::File(_)));
        assert_eq!(
            config.shown["kiosk_name"].1,
            Source::Env("TAPKIOSK_KIOSK_NAME".into())
        );
        assert_eq!(
            config.shown["lockout.threshold"].1,
            Source::Flag("--lockout-threshold".into())
        );
        assert_eq!(
            config.shown["idle_timeout"],
            ("2m".to_string(), Source::Default)
        );
    }

    #[test]
    fn text_values_are_measured_in_characters() {
        let kiosk_name = |name: &str| {
            let (_dir, given) = inputs(Some(&format!("kiosk_name = \"{name}\"\n")), &[]);
            Config::resolve(&given).map(|c| c.kiosk_name)
        };
        let accented = "é".repeat(200);
        assert_eq!(kiosk_name(&accented).unwrap(), accented);
        let message = kiosk_name(&format!("{accented}é")).unwrap_err().to_string();
        assert!(
            message.contains("between 1 and 200 characters"),
            "{message}"
        );
    }

    #[test]
    fn the_organisation_must_fit_in_authenticator_apps() {
        let organisation = |name: &str| {
            let (_dir, given) = inputs(Some(&format!("organisation = \"{name}\"\n")), &[]);
            Config::resolve(&given).map(|c| c.organisation)
        };
        let message = organisation("Example: Paris").unwrap_err().to_string();
        assert!(message.contains("must not contain ':'"), "{message}");
        let message = organisation(&"é".repeat(200)).unwrap_err().to_string();
        assert!(message.contains("too long for the QR code"), "{message}");
        let long = "Société Générale".repeat(6);
        assert_eq!(organisation(&long).unwrap(), long);
    }

    #[test]
    fn attestation_roots_must_be_a_readable_pem_file() {
        let (dir, inputs) = inputs(
            Some("[webauthn]\nattestation_roots = \"/nowhere/roots.pem\"\n"),
            &[],
        );
        let message = Config::resolve(&inputs).unwrap_err().to_string();
        assert!(
            message.contains("cannot read /nowhere/roots.pem"),
            "{message}"
        );
        let text = dir.path().join("roots.txt");
        std::fs::write(&text, "not a certificate").unwrap();
        let (_dir, inputs) = inputs_env(&[(
            "TAPKIOSK_WEBAUTHN_ATTESTATION_ROOTS",
            text.to_str().unwrap(),
        )]);
        let message = Config::resolve(&inputs).unwrap_err().to_string();
        assert!(message.contains("holds no PEM certificate"), "{message}");
        assert_eq!(
            Config::resolve(&inputs_env(&[]).1)
                .unwrap()
                .webauthn
                .attestation_roots,
            None
        );
    }

    #[test]
    fn unknown_keys_are_refused_with_file_and_key() {
        let (_dir, inputs) = inputs(Some("[lockout]\nthreshhold = 7\n"), &[]);
        let message = Config::resolve(&inputs).unwrap_err().to_string();
        assert!(message.contains("config.toml"), "{message}");
        assert!(
            message.contains("unknown key `lockout.threshhold`"),
            "{message}"
        );
    }

    #[test]
    fn bad_values_are_refused_with_origin_key_and_reason() {
        let (_dir, inputs) = inputs(Some("idle_timeout = \"5s\"\n"), &[]);
        let message = Config::resolve(&inputs).unwrap_err().to_string();
        assert!(
            message.contains("key `idle_timeout`: must be between 30s and 30m"),
            "{message}"
        );

        let (_dir, inputs2) = inputs_env(&[("TAPKIOSK_LANGUAGES", "en,de")]);
        let message = Config::resolve(&inputs2).unwrap_err().to_string();
        assert!(
            message.starts_with("environment variable TAPKIOSK_LANGUAGES: key `languages`"),
            "{message}"
        );

        let (_dir, inputs3) = inputs_env(&[
            ("TAPKIOSK_WEBAUTHN_RP_ID", "example.com"),
            ("TAPKIOSK_WEBAUTHN_ORIGIN", "https://evil.test"),
        ]);
        assert!(
            Config::resolve(&inputs3)
                .unwrap_err()
                .to_string()
                .contains("subdomain")
        );
    }

    fn inputs_env(env: &[(&str, &str)]) -> (tempfile::TempDir, Inputs) {
        inputs(None, env).0.close().ok();
        let (dir, mut inputs) = inputs(Some(""), env);
        inputs.file = Some(dir.path().join("config.toml"));
        (dir, inputs)
    }

    #[test]
    fn misspelt_environment_variables_are_refused() {
        let (_dir, misspelt) = inputs(Some(""), &[("TAPKIOSK_LOCKOUT_TRESHOLD", "3")]);
        let message = Config::resolve(&misspelt).unwrap_err().to_string();
        assert!(
            message.starts_with("environment variable TAPKIOSK_LOCKOUT_TRESHOLD: unknown key"),
            "{message}"
        );
        let (_dir2, known) = inputs(
            Some(""),
            &[
                ("TAPKIOSK_KEY_FILE", "/k"),
                ("TAPKIOSK_LOCKOUT_THRESHOLD", "3"),
            ],
        );
        assert_eq!(Config::resolve(&known).unwrap().lockout.threshold, 3);
    }

    #[test]
    fn a_named_file_must_exist() {
        let (_dir, inputs) = inputs(None, &[]);
        assert!(matches!(
            Config::resolve(&inputs),
            Err(ConfigError::File { .. })
        ));
    }

    #[test]
    fn postgres_passwords_are_not_shown() {
        let (_dir, inputs) = inputs(
            Some("directory = \"postgres://tap:s3cret@db.example.com/tapkiosk\"\n"),
            &[],
        );
        set_mode(&inputs, 0o600);
        let config = Config::resolve(&inputs).unwrap();
        assert!(!config.shown["directory"].0.contains("s3cret"));
    }

    fn set_mode(inputs: &Inputs, mode: u32) {
        use std::os::unix::fs::PermissionsExt;
        let path = inputs.file.as_ref().unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn a_file_others_may_change_or_read_a_password_in_is_refused() {
        let plain = "organisation = \"Example Ltd\"\n";
        let secret = "directory = \"postgres://tap@db.example.com/tap?password=s3cret\"\n";
        for (text, mode, refused) in [
            (plain, 0o644, None),
            (plain, 0o664, Some("chmod go-w")),
            (plain, 0o646, Some("chmod go-w")),
            (secret, 0o600, None),
            (secret, 0o640, Some("chmod 600")),
            (secret, 0o604, Some("chmod 600")),
        ] {
            let (_dir, inputs) = inputs(Some(text), &[]);
            set_mode(&inputs, mode);
            match (Config::resolve(&inputs), refused) {
                (Ok(_), None) => {}
                (Err(e), Some(fix)) => assert!(e.to_string().contains(fix), "{mode:o}: {e}"),
                (other, _) => panic!("{mode:o} {text}: {:?}", other.map(|_| ())),
            }
        }
    }
}
