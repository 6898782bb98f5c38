//! Output: text for people, JSON for scripts. Passes use Microsoft Graph's
//! field names so that scripts written for Entra read them unchanged; times
//! are local for people and UTC (RFC 3339) in JSON.

use anyhow::Result;
use chrono::{DateTime, Local, Utc};
use serde::Serialize;
use std::process::ExitCode;
use tapkiosk_core::audit::Record;
use tapkiosk_core::config::{Config, KEYS};
use tapkiosk_core::directory::IssuedPass;
use tapkiosk_core::directory::admins::AdminSummary;
use tapkiosk_core::pass::{Pass, PassStatus};
use tapkiosk_core::policy::{KeyRestriction, OneTime, Policy, Target};
use tapkiosk_core::user::{UserDetail, UserSummary};
use tapkiosk_core::{Email, Location};

/// `say!` for tapctl's output. When standard output is a closed pipe
/// (`tapctl user list | head`) the program ends quietly with 141, as a Unix
/// tool killed by SIGPIPE does, instead of panicking; any change the command
/// made is already committed by then. (`pass issue` writes its value before
/// committing, through `issued`, and rolls back instead.)
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::print::line(format_args!($($arg)*))
    };
}
pub(crate) use say;

pub fn line(args: std::fmt::Arguments<'_>) {
    use std::io::Write as _;
    if let Err(e) = writeln!(std::io::stdout().lock(), "{args}") {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(141);
        }
        eprintln!("tapctl: cannot write the output: {e}");
        std::process::exit(1);
    }
}

pub fn json(value: &impl Serialize) -> Result<()> {
    say!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

pub fn local(time: DateTime<Utc>) -> String {
    time.with_timezone(&Local)
        .format("%Y-%m-%d %H:%M %:z")
        .to_string()
}

pub fn config(config: &Config, as_json: bool) -> Result<ExitCode> {
    if as_json {
        let map: serde_json::Map<String, serde_json::Value> = config
            .shown
            .iter()
            .map(|(key, (value, source))| {
                (
                    (*key).to_string(),
                    serde_json::json!({ "value": value, "source": source.to_string() }),
                )
            })
            .collect();
        json(&map)?;
    } else {
        for (key, _) in KEYS {
            if let Some((value, source)) = config.shown.get(key) {
                say!("{key:<22} {value:<40} ({source})");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `db status`: the directory answered, and what its database enforces.
pub fn database(
    location: &Location,
    report: &[(String, String)],
    as_json: bool,
) -> Result<ExitCode> {
    if as_json {
        let settings: serde_json::Map<String, serde_json::Value> = report
            .iter()
            .map(|(name, value)| (name.clone(), value.clone().into()))
            .collect();
        json(&serde_json::json!({ "directory": location.to_string(), "settings": settings }))?;
    } else {
        say!("The directory {location} answers. Its database reports, for this connection:");
        for (name, value) in report {
            say!("  {name:<36} {value}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn users(users: &[UserSummary], as_json: bool) -> Result<()> {
    if as_json {
        return json(&users);
    }
    if users.is_empty() {
        say!(
            "The directory has nobody yet: add people with `tapctl user add` or `tapctl user import`."
        );
    }
    for user in users {
        let pass = user.pass_status.map_or("no pass", PassStatus::describe);
        let state = if user.enabled { "" } else { "  DISABLED" };
        let name = user.display_name.as_deref().unwrap_or("");
        say!(
            "{:<32} {:<24} pass: {:<18} methods: {}{state}",
            user.email,
            name,
            pass,
            user.methods
        );
    }
    Ok(())
}

pub fn admins(admins: &[AdminSummary], as_json: bool) -> Result<()> {
    if as_json {
        return json(&admins);
    }
    if admins.is_empty() {
        say!("No admin can open the admin pane yet: add one with `tapctl admin add NAME`.");
    }
    for admin in admins {
        let state = match (admin.enrolled, admin.enrol_until) {
            (true, _) => "PIN set".to_string(),
            (false, Some(until)) => format!("enrolment code valid until {}", local(until)),
            (false, None) => "no PIN, no code: `tapctl admin reset`".to_string(),
        };
        let keys = match admin.keys {
            0 => String::new(),
            1 => ", 1 security key".to_string(),
            n => format!(", {n} security keys"),
        };
        let locked = admin
            .locked_until
            .map(|until| format!("  LOCKED until {}", local(until)))
            .unwrap_or_default();
        say!("{:<24} {state}{keys}{locked}", admin.name);
    }
    Ok(())
}

pub fn user_detail(detail: &UserDetail, as_json: bool, headline: &str) -> Result<()> {
    let user = &detail.summary;
    if as_json {
        let passes: Vec<_> = detail
            .passes
            .iter()
            .map(|(pass, status)| pass.to_graph(*status, None))
            .collect();
        return json(&serde_json::json!({
            "email": user.email,
            "displayName": user.display_name,
            "groups": user.groups,
            "enabled": user.enabled,
            "createdDateTime": detail.created_at,
            "temporaryAccessPassMethods": passes,
            "methods": detail.methods,
        }));
    }
    if !headline.is_empty() {
        say!("{headline}");
    }
    say!(
        "{}{}",
        user.email,
        user.display_name
            .as_ref()
            .map(|n| format!(" ({n})"))
            .unwrap_or_default()
    );
    say!("  enabled:  {}", if user.enabled { "yes" } else { "no" });
    say!(
        "  groups:   {}",
        if user.groups.is_empty() {
            "-".into()
        } else {
            user.groups.join(", ")
        }
    );
    say!("  added:    {}", local(detail.created_at));
    match detail.passes.first() {
        Some((pass, status)) => say!("  pass:     {}", describe(pass, *status)),
        None => say!("  pass:     none"),
    }
    if detail.methods.is_empty() {
        say!("  methods:  none registered");
    }
    for method in &detail.methods {
        let kind = if method.kind == "fido2" {
            "security key"
        } else {
            "authenticator app"
        };
        let used = method.last_used_at.map_or("never used".to_string(), |at| {
            format!("last used {}", local(at))
        });
        say!(
            "  method:   {kind} \"{}\" added {}, {used} (id {})",
            method.label,
            local(method.created_at),
            method.id
        );
    }
    Ok(())
}

fn describe(pass: &Pass, status: PassStatus) -> String {
    let use_kind = if pass.one_time {
        "one-time"
    } else {
        "multi-use"
    };
    format!(
        "{} — {use_kind}, valid {} until {}",
        status.describe(),
        local(pass.start_at),
        local(pass.end_at())
    )
}

pub fn policy(policy: &Policy, as_json: bool) -> Result<()> {
    if as_json {
        return json(policy);
    }
    let target = match &policy.target {
        Target::AllUsers => "all users".to_string(),
        Target::Groups(groups) => format!(
            "groups {}",
            groups.iter().cloned().collect::<Vec<_>>().join(", ")
        ),
    };
    say!(
        "enabled:           {}",
        if policy.enabled { "yes" } else { "no" }
    );
    say!("target:            {target}");
    say!("minimum lifetime:  {}", policy.min_lifetime);
    say!("maximum lifetime:  {}", policy.max_lifetime);
    say!("default lifetime:  {}", policy.default_lifetime);
    say!("length:            {} characters", policy.length);
    say!(
        "one-time use:      {}",
        if policy.one_time == OneTime::Required {
            "required"
        } else {
            "optional"
        }
    );
    match &policy.keys {
        KeyRestriction::AnyKey => say!("security keys:     any model"),
        KeyRestriction::AllowList(models) => say!(
            "security keys:     only models {}",
            models
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
    Ok(())
}

/// Shows a new pass. Written and flushed in one go, and an error (a closed
/// pipe, say) is returned rather than a panic: the caller then does not
/// commit the pass.
pub fn issued(issued: &IssuedPass, as_json: bool) -> std::io::Result<()> {
    use std::io::Write;
    let text = if as_json {
        let graph = issued.pass.to_graph(issued.status, Some(&issued.code));
        serde_json::to_string_pretty(&graph).map_err(std::io::Error::other)? + "\n"
    } else {
        let name = issued
            .display_name
            .as_ref()
            .map(|n| format!(" ({n})"))
            .unwrap_or_default();
        let replaced = if issued.replaced.is_some() {
            "The previous pass is revoked.\n"
        } else {
            ""
        };
        format!(
            "Temporary access pass for {}{name}:\n\n    {}\n\n{}\n{replaced}This is the only time the pass is shown: it is not stored anywhere.\n",
            issued.email,
            issued.code.grouped(),
            describe(&issued.pass, issued.status),
        )
    };
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.flush()
}

pub fn passes(email: &Email, passes: &[(Pass, PassStatus)], as_json: bool) -> Result<()> {
    if as_json {
        let value: Vec<_> = passes
            .iter()
            .map(|(pass, status)| pass.to_graph(*status, None))
            .collect();
        return json(&serde_json::json!({ "value": value }));
    }
    if passes.is_empty() {
        say!("{email} has no passes.");
    }
    for (pass, status) in passes {
        say!("{}  {}", pass.id, describe(pass, *status));
    }
    Ok(())
}

pub fn audit(records: &[Record], as_json: bool) -> Result<()> {
    if as_json {
        return json(&records);
    }
    for record in records {
        let user = record.user.as_deref().unwrap_or("-");
        let detail = match &record.detail {
            serde_json::Value::Object(map) if map.is_empty() => String::new(),
            other => other.to_string(),
        };
        say!(
            "{:>6}  {}  {:<20} {:<28} {} @ {}  {detail}",
            record.seq,
            local(record.at),
            record.kind,
            user,
            record.actor,
            record.kiosk
        );
    }
    Ok(())
}
