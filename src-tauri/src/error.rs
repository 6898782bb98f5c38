//! The errors commands return: a stable code and the parameters a
//! translated message needs. No Rust error text reaches a person; details go
//! to the log.

use serde::Serialize;
use tapkiosk_core::admin_session::Locked;
use tapkiosk_core::directory::{AdminError, DirectoryError};
use tapkiosk_core::key_staging::KeyStagingError;
use tapkiosk_core::kiosk::KioskError;
use tapkiosk_core::policy::PolicyFormError;

/// An error as the UI receives it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UiError {
    /// Stable code, the key of a message in ui/i18n/*.json.
    pub code: &'static str,
    /// Parameters of the message.
    #[serde(skip_serializing_if = "serde_json::Value::is_null")]
    pub params: serde_json::Value,
}

impl UiError {
    /// An error without parameters.
    pub fn new(code: &'static str) -> Self {
        Self {
            code,
            params: serde_json::Value::Null,
        }
    }

    /// An error with parameters.
    pub fn with(code: &'static str, params: serde_json::Value) -> Self {
        Self { code, params }
    }
}

impl From<KioskError> for UiError {
    fn from(error: KioskError) -> Self {
        match error {
            KioskError::WrongStep { .. } => {
                tracing::warn!(%error, "command on the wrong step");
                Self::new("wrong_step")
            }
            KioskError::Directory(e) => e.into(),
        }
    }
}

impl From<Locked> for UiError {
    fn from(_: Locked) -> Self {
        Self::new("admin_locked")
    }
}

impl From<KeyStagingError> for UiError {
    fn from(error: KeyStagingError) -> Self {
        use KeyStagingError as E;
        match error {
            E::Disabled(email) => {
                Self::with("user_disabled", serde_json::json!({ "email": email }))
            }
            E::KeyRefused => Self::new("key_refused"),
            E::NotRunning => Self::new("staging_not_running"),
            E::LabelRules { max } => {
                Self::with("key_name_rules", serde_json::json!({ "max": max }))
            }
            E::Directory(e) => e.into(),
            E::Admin(e) => e.into(),
        }
    }
}

impl From<PolicyFormError> for UiError {
    fn from(error: PolicyFormError) -> Self {
        use PolicyFormError as E;
        let code = match &error {
            E::Lifetime { value } => ("bad_lifetime", value),
            E::KeyModel { value } => ("bad_key", value),
            E::Length { value } => ("bad_length", value),
            E::Group { value } => ("bad_group", value),
            E::Rule(rule) => {
                return Self::with("policy", serde_json::json!({ "message": rule.to_string() }));
            }
        };
        Self::with(code.0, serde_json::json!({ "value": code.1 }))
    }
}

/// Since when the directory has not answered, while it does not. The
/// journal (systemd keeps the kiosk's standard error) is how IT hears of an
/// outage: one line when it starts and one when it ends, not one for each
/// command that meets it.
static OUTAGE: std::sync::Mutex<Option<std::time::Instant>> = std::sync::Mutex::new(None);

fn outage_met(error: &DirectoryError) {
    let mut outage = OUTAGE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if outage.is_none() {
        *outage = Some(std::time::Instant::now());
        tracing::error!(%error, "the directory is out of reach: the kiosk is out of service until it answers");
    }
}

/// The directory answered again.
pub fn outage_over() {
    let mut outage = OUTAGE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(since) = outage.take() {
        let seconds = since.elapsed().as_secs();
        tracing::warn!(
            seconds,
            "the directory answers again: the kiosk is back in service"
        );
    }
}

impl From<DirectoryError> for UiError {
    fn from(error: DirectoryError) -> Self {
        use DirectoryError as E;
        if error.is_unavailable() {
            outage_met(&error);
            return Self::new("out_of_service");
        }
        match &error {
            E::Email(_) => Self::new("invalid_email"),
            E::Invalid(message) => Self::with("invalid", serde_json::json!({ "message": message })),
            E::UserExists(email) => {
                Self::with("user_exists", serde_json::json!({ "email": email }))
            }
            E::UserNotFound(email) => {
                Self::with("user_not_found", serde_json::json!({ "email": email }))
            }
            E::UserDisabled(email) => {
                Self::with("user_disabled", serde_json::json!({ "email": email }))
            }
            E::NotTargeted(email) => {
                Self::with("not_targeted", serde_json::json!({ "email": email }))
            }
            E::LivePassExists { email, status } => Self::with(
                "live_pass_exists",
                serde_json::json!({ "email": email, "status": status }),
            ),
            E::PolicyChanged => Self::new("policy_moved"),
            E::NoLivePass(email) => {
                Self::with("no_live_pass", serde_json::json!({ "email": email }))
            }
            E::StartInPast(_) => Self::new("start_in_past"),
            E::Policy(rule) => {
                Self::with("policy", serde_json::json!({ "message": rule.to_string() }))
            }
            E::Rows(rows) => Self::with("rows", serde_json::json!({ "message": rows.to_string() })),
            E::ClaimLost => Self::new("session_ended"),
            E::KeyNotAllowed { .. } => Self::new("key_not_allowed"),
            // Only IT staging a key meets this one (the kiosk says "not
            // allowed"): point it at the likely cause.
            E::KeyUnproven { .. } => Self::new("key_unproven"),
            E::KeyRegistered => Self::new("key_registered"),
            E::KeyCloned => Self::new("key_cloned"),
            E::Tampered(_) => {
                tracing::error!(%error, "directory tampered with");
                Self::new("directory_tampered")
            }
            E::Database(_)
            | E::Migrate(_)
            | E::NotInitialised(_)
            | E::WrongKey(_)
            | E::SchemaOutdated(_) => {
                tracing::error!(%error, "directory failure");
                Self::new("directory_unavailable")
            }
        }
    }
}

impl From<AdminError> for UiError {
    fn from(error: AdminError) -> Self {
        match error {
            AdminError::BadName => Self::new("admin_name_rules"),
            AdminError::Format => Self::new("admin_pin_format"),
            AdminError::Exists(name) => {
                Self::with("admin_exists", serde_json::json!({ "name": name }))
            }
            AdminError::NotFound(name) => {
                Self::with("admin_not_found", serde_json::json!({ "name": name }))
            }
            AdminError::LastAdmin(name) => {
                Self::with("admin_last", serde_json::json!({ "name": name }))
            }
            AdminError::Wrong => Self::new("admin_wrong"),
            AdminError::PinsDiffer => Self::new("admin_pins_differ"),
            AdminError::LockedOut { until } => {
                Self::with("admin_locked_out", serde_json::json!({ "until": until }))
            }
            AdminError::Directory(e) => e.into(),
        }
    }
}
