//! The command line, as clap reads it.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// Administer a tapkiosk directory: people, the pass policy, temporary
/// access passes, the audit log and the directory key.
#[derive(Debug, Parser)]
#[command(name = "tapctl", version, about, max_term_width = 100)]
pub struct Cli {
    /// The directory: an SQLite file path or a postgres:// URL (overrides
    /// TAPKIOSK_DIRECTORY and the config file).
    #[arg(long, global = true, value_name = "PATH|URL")]
    pub directory: Option<String>,
    /// Override one configuration key, e.g. --set lockout.threshold=3 (repeatable;
    /// beats the environment and the file).
    #[arg(long = "set", global = true, value_name = "KEY=VALUE")]
    pub settings: Vec<String>,
    /// The configuration file (default: the OS config folder's tapkiosk/config.toml).
    #[arg(long, global = true, value_name = "FILE", env = "TAPKIOSK_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create the directory and its key, or check an existing one.
    Init {
        /// While the directory has no admin, add this one and print their
        /// enrolment code for the admin pane.
        #[arg(long, value_name = "NAME")]
        admin: Option<String>,
    },
    /// Upgrade the directory's schema, as its owner (kiosks never do).
    Migrate,
    /// The database itself: the PostgreSQL role kiosks connect as.
    #[command(subcommand)]
    Db(DbCommand),
    /// IT's own credentials for the kiosk's admin pane: add, list, reset,
    /// remove, set a PIN.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Show the effective configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Add, list, show, disable, enable, remove or import people.
    #[command(subcommand)]
    User(UserCommand),
    /// Show or change the pass policy.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Issue, revoke and inspect temporary access passes.
    #[command(subcommand)]
    Pass(PassCommand),
    /// Read or verify the audit log.
    Audit(AuditArgs),
    /// Move the directory key between kiosks of a fleet.
    #[command(subcommand)]
    Key(KeyCommand),
    /// The Microsoft Entra tenant of the `[entra]` configuration.
    Entra(EntraArgs),
}

/// When a pass starts, how long it works, and how often: what the issuer
/// leaves out, the policy decides.
#[derive(Debug, Args)]
pub struct PassTerms {
    /// When it starts: RFC 3339 (2026-12-07T09:00:00+01:00) or local (2026-12-07 09:00). Default: now.
    #[arg(long, value_name = "TIME")]
    pub start: Option<String>,
    /// How long it works, e.g. 90m, 8h, 3d. Default: the policy's.
    #[arg(long, value_name = "DURATION")]
    pub lifetime: Option<String>,
    /// One sign-in uses it up.
    #[arg(long, conflicts_with = "multi_use")]
    pub one_time: bool,
    /// It works until it expires (if the policy allows).
    #[arg(long)]
    pub multi_use: bool,
}

impl PassTerms {
    /// One-time (`Some(true)`), multi-use (`Some(false)`), or the policy's rule.
    pub fn one_time(&self) -> Option<bool> {
        (self.one_time || self.multi_use).then_some(self.one_time)
    }
}

#[derive(Debug, Subcommand)]
pub enum EntraPassCommand {
    /// Issue a pass in the tenant and print it (shown once). Entra's policy
    /// sets what is left out and refuses what it does not allow.
    Issue {
        /// The person's user principal name (their work email).
        user: String,
        #[command(flatten)]
        terms: PassTerms,
        /// Replace the person's pass (a person has at most one; a refused
        /// request leaves the old one).
        #[arg(long)]
        replace: bool,
    },
    /// Issue passes in the tenant for everyone in a CSV file
    /// (email,start,lifetime,one_time), 20 to a Graph call. Each row's result
    /// (the pass, or why not) is added to --out as Graph answers; after an
    /// interruption run the same command again: rows issued are skipped,
    /// and no one gets two passes.
    IssueBatch {
        /// The CSV file; empty cells take the tenant policy's defaults.
        file: PathBuf,
        /// The results file (CSV, created readable only by you), kept
        /// between runs.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Show a person's pass (never its value).
    Show {
        /// The person's user principal name.
        user: String,
    },
    /// Remove a person's pass.
    Revoke {
        /// The person's user principal name.
        user: String,
    },
}

#[derive(Debug, Args)]
pub struct EntraArgs {
    /// Act as an IT administrator who signs in on any browser with a code
    /// (device code) instead of as the kiosk's app, so that this machine
    /// needs no app credential. The app registration must allow public
    /// client flows. Not for `check`, which checks the app's own sign-in.
    #[arg(long, global = true)]
    pub device_code: bool,
    #[command(subcommand)]
    pub command: EntraCommand,
}

#[derive(Debug, Subcommand)]
pub enum EntraCommand {
    /// Sign in as the kiosk's app and say what the tenant still lacks:
    /// consent, permissions, the pass and FIDO2 policies, and whether a
    /// person is within their targets. Exits 1 if anything is missing.
    Check {
        /// Also check this person (email or user principal name).
        #[arg(long, value_name = "EMAIL")]
        user: Option<String>,
    },
    /// The tenant's own Temporary Access Passes: issue, show, revoke (each
    /// change also in the local audit log).
    #[command(subcommand)]
    Pass(EntraPassCommand),
    /// Stage security keys into the tenant for the people of a CSV file
    /// (`email,label`), one key after another: each new key gets a random
    /// PIN, is registered with its model and the label, is told to ask for
    /// its owner's own PIN at first use where it can (CTAP 2.1), and its
    /// PIN letter is printed once. Exits 1 if anyone was not staged.
    Stage {
        /// The CSV file: a header `email,label`, a row per person.
        file: PathBuf,
        /// The fewest characters the owner's own PIN may have (4 to 63).
        #[arg(long, value_name = "N")]
        min_pin_length: Option<u32>,
    },
    /// Keep the app's client secret in the OS credential store (asked on a
    /// terminal, else standard input's first line).
    SetSecret {
        /// Read the secret from this file instead.
        #[arg(long, value_name = "FILE")]
        secret_file: Option<PathBuf>,
    },
    /// Keep the private key of the app's certificate (`entra.certificate`)
    /// in the OS credential store: a PEM private key, read from the file
    /// or from standard input. Delete the file afterwards.
    SetKey {
        /// The PEM file with the private key (it may hold the certificate
        /// too).
        #[arg(long, value_name = "FILE")]
        key_file: Option<PathBuf>,
    },
}

#[derive(Debug, Args)]
pub struct Json {
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Whether the directory's database answers, and the limits it applies
    /// to this program's connections (timeouts, keepalives), as it reports
    /// them.
    Status(Json),
    /// Give an existing PostgreSQL role what a kiosk needs: rows, but no
    /// schema changes and no changing or deleting audit events.
    GrantKiosk {
        /// The role (created beforehand: CREATE ROLE name LOGIN PASSWORD '…').
        role: String,
        /// Print the GRANT statements instead of running them.
        #[arg(long)]
        print: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Add an admin and print their one-time enrolment code (valid 24 h),
    /// with which they choose their PIN at the pane.
    Add {
        /// Their name at the pane and in the audit log (lowercase letters,
        /// digits, '.', '_', '-', '@').
        name: String,
        #[command(flatten)]
        json: Json,
    },
    /// List the admins (never a PIN or code).
    List(Json),
    /// Forget an admin's PIN, security keys and lockout, and print a new enrolment code.
    Reset {
        /// The admin.
        name: String,
        #[command(flatten)]
        json: Json,
    },
    /// Remove an admin (never the last one).
    Remove {
        /// The admin.
        name: String,
    },
    /// Set an admin's PIN here: asked twice on a terminal, else the first
    /// line of standard input.
    SetPin {
        /// The admin.
        name: String,
        /// Read the PIN from this file instead.
        #[arg(long, value_name = "FILE")]
        pin_file: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print each setting, its value and where it came from.
    Show(Json),
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a person.
    Add {
        /// Work email.
        email: String,
        /// Name shown at the kiosk.
        #[arg(long)]
        name: Option<String>,
        /// A group (repeat for more).
        #[arg(long = "group", value_name = "GROUP")]
        groups: Vec<String>,
        #[command(flatten)]
        json: Json,
    },
    /// List everyone.
    List(Json),
    /// Show one person with their passes and methods.
    Show {
        /// Work email.
        email: String,
        #[command(flatten)]
        json: Json,
    },
    /// Lift the sign-in lockout of an email at once (and forget its wrong
    /// passes).
    Unlock {
        /// Work email.
        email: String,
    },
    /// Stop a person from signing in.
    Disable {
        /// Work email.
        email: String,
    },
    /// Let a disabled person sign in again.
    Enable {
        /// Work email.
        email: String,
    },
    /// Remove one of a person's sign-in methods (a lost security key, an
    /// old phone); `user show` lists them with their ids.
    RemoveMethod {
        /// Work email.
        email: String,
        /// The method's id.
        method: String,
    },
    /// Remove a person with their passes and methods.
    Remove {
        /// Work email.
        email: String,
    },
    /// Add everyone in a CSV file (email,display_name,groups), or no one.
    Import {
        /// The CSV file; groups separated by `;`.
        file: PathBuf,
        #[command(flatten)]
        json: Json,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum TargetArg {
    /// Everyone.
    All,
    /// Members of the groups named with --group.
    Groups,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum OneTimeArg {
    /// Every pass is one-time.
    Required,
    /// The issuer chooses.
    Optional,
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Print the policy.
    Show(Json),
    /// Change some settings; the rest stay as they are.
    Set {
        /// Turn passes on or off.
        #[arg(long, value_name = "true|false")]
        enabled: Option<bool>,
        /// Whom passes work for.
        #[arg(long)]
        target: Option<TargetArg>,
        /// A target group (repeat for more; implies --target groups).
        #[arg(long = "group", value_name = "GROUP")]
        groups: Vec<String>,
        /// Shortest lifetime, e.g. 1h.
        #[arg(long, value_name = "DURATION")]
        min_lifetime: Option<String>,
        /// Longest lifetime, e.g. 8h.
        #[arg(long, value_name = "DURATION")]
        max_lifetime: Option<String>,
        /// Lifetime when none is asked for.
        #[arg(long, value_name = "DURATION")]
        default_lifetime: Option<String>,
        /// Characters in a pass (8–48).
        #[arg(long)]
        length: Option<usize>,
        /// Whether passes must be one-time.
        #[arg(long)]
        one_time: Option<OneTimeArg>,
        /// Allow security keys of any model.
        #[arg(long, conflicts_with = "allow_keys")]
        any_key: bool,
        /// Allow only security keys of this model, by AAGUID (repeat for
        /// more); replaces the allow-list.
        #[arg(long = "allow-key", value_name = "AAGUID")]
        allow_keys: Vec<uuid::Uuid>,
        #[command(flatten)]
        json: Json,
    },
}

#[derive(Debug, Subcommand)]
pub enum PassCommand {
    /// Issue a pass and print its value, once.
    Issue {
        /// Work email.
        email: String,
        #[command(flatten)]
        terms: PassTerms,
        /// Revoke the person's live pass first.
        #[arg(long)]
        replace: bool,
        #[command(flatten)]
        json: Json,
    },
    /// Revoke a person's live pass.
    Revoke {
        /// Work email.
        email: String,
        #[command(flatten)]
        json: Json,
    },
    /// Show a person's passes and their states.
    Status {
        /// Work email.
        email: String,
        #[command(flatten)]
        json: Json,
    },
    /// Issue passes for everyone in a CSV file (email,start,lifetime,one_time), or for no one.
    IssueBatch {
        /// The CSV file; empty cells take the defaults.
        file: PathBuf,
        /// Where to write the values for the welcome letters (.csv or .json; created readable only by you).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// Revoke live passes first.
        #[arg(long)]
        replace: bool,
        #[command(flatten)]
        json: Json,
    },
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct AuditArgs {
    #[command(subcommand)]
    pub command: Option<AuditCommand>,
    /// Only events about this person.
    #[arg(long, value_name = "EMAIL")]
    pub user: Option<String>,
    /// Only events since a time (2026-12-01 09:00) or for a duration back (24h).
    #[arg(long, value_name = "TIME|DURATION")]
    pub since: Option<String>,
    #[command(flatten)]
    pub json: Json,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the hash chain; exits 1 if it is broken.
    Verify {
        /// Also check the log against the checkpoints in this file (or a
        /// system log excerpt): a log rolled back behind one fails.
        #[arg(long, value_name = "FILE")]
        checkpoint: Option<PathBuf>,
        #[command(flatten)]
        json: Json,
    },
    /// Print a checkpoint of the log (its length and newest MAC, tagged
    /// with the directory key) to keep somewhere the database's writers
    /// cannot reach.
    Checkpoint {
        /// Append it to this file too (created 0600).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Write the directory key, wrapped under a passphrase, to a file.
    Export {
        /// The file to create.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// Read the passphrase from this file instead of asking.
        #[arg(long, value_name = "FILE")]
        passphrase_file: Option<PathBuf>,
    },
    /// Store a key exported on another kiosk of the fleet.
    Import {
        /// The exported key.
        file: PathBuf,
        /// Read the passphrase from this file instead of asking.
        #[arg(long, value_name = "FILE")]
        passphrase_file: Option<PathBuf>,
    },
}
