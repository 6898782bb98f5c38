//! IT staging in the admin window: setting up a security key for someone
//! (with its PIN) before their first day, or an admin's own key for the
//! pane. One key at a time; the admin window asks for the status a few
//! times a second while it runs.

use crate::commands::admin::{email, signed_in_admin, still_unlocked, unlocked};
use crate::{AppState, UiError};
use serde::Serialize;
use tapkiosk_core::directory::methods::{MAX_LABEL_CHARS, check_label};
use tapkiosk_core::directory::{AdminName, DirectoryError};
use tapkiosk_core::fido::ceremony::{Phase, PinProblem};
use tapkiosk_core::fido::enrolment::Enrolment;
use tapkiosk_core::fido::{NewKey, Uuid, model_name};
use tapkiosk_core::user::MethodSummary;
use tapkiosk_core::{Directory, Email};
use tauri::State;
use zeroize::Zeroizing;

type Answer<T> = Result<T, UiError>;

/// Whose key is being set up.
#[derive(Debug)]
enum Owner {
    /// A person's, for the kiosk.
    Person { user_id: String, email: Email },
    /// The signed-in admin's own, for the pane.
    Admin(AdminName),
}

impl Owner {
    fn shown(&self) -> String {
        match self {
            Self::Person { email, .. } => email.to_string(),
            Self::Admin(name) => name.to_string(),
        }
    }
}

/// A key being set up for someone.
#[derive(Debug)]
pub struct Staging {
    owner: Owner,
    enrolment: Enrolment,
    /// Checked and waiting for its name.
    key: Option<NewKey>,
    /// Registered.
    done: Option<MethodSummary>,
}

/// What the admin window shows.
#[derive(Debug, Serialize)]
pub struct StagingStatus {
    /// The person's email, or the admin's name.
    owner: String,
    key: Phase,
    /// Set once the key answered: the name to offer.
    suggested: Option<String>,
    done: Option<MethodSummary>,
}

fn status(staging: &Staging) -> StagingStatus {
    StagingStatus {
        owner: staging.owner.shown(),
        key: staging.enrolment.phase(),
        suggested: staging
            .key
            .as_ref()
            .map(|k| k.aaguid.and_then(model_name).unwrap_or("").to_string()),
        done: staging.done.clone(),
    }
}

/// The admin session must still be open; once it is not, a key being
/// staged is dropped with it, so that its conversation does not hold the
/// key from the kiosk and its answer cannot be saved after the next unlock.
async fn unlocked_staging(state: &AppState) -> Answer<Directory> {
    drop_staging_unless(state, unlocked(state)).await
}

/// As [`unlocked_staging`], for the pane's status poll, which does not
/// extend the admin session.
async fn still_staging(state: &AppState) -> Answer<Directory> {
    drop_staging_unless(state, still_unlocked(state)).await
}

async fn drop_staging_unless(state: &AppState, open: Answer<Directory>) -> Answer<Directory> {
    if open.is_err() {
        *state.staging.lock().await = None;
    }
    open
}

fn none_running() -> UiError {
    UiError::new("staging_not_running")
}

/// Starts setting up a key for `email`; their keys are excluded.
#[tauri::command]
pub async fn admin_stage_key(state: State<'_, AppState>, email: String) -> Answer<StagingStatus> {
    let directory = unlocked_staging(&state).await?;
    let email = self::email(&email)?;
    let rp = state
        .relying_party
        .clone()
        .ok_or_else(|| UiError::new("keys_off"))?;
    let person = directory.show_user(&email).await?;
    let keys = directory.keys_of(&email).await?;
    let (user_id, keys) =
        keys.ok_or_else(|| UiError::with("user_disabled", serde_json::json!({ "email": email })))?;
    let passkeys: Vec<_> = keys.into_iter().map(|k| k.passkey).collect();
    let handle = Uuid::parse_str(&user_id).unwrap_or_else(|_| Uuid::new_v4());
    let name = person
        .summary
        .display_name
        .unwrap_or_else(|| email.to_string());
    let policy = directory.policy().await?;
    let person = (handle, email.as_str(), name.as_str());
    let enrolment = Enrolment::start(
        &rp,
        &state.keys,
        person,
        &passkeys,
        policy.keys.allow_list(),
    )
    .map_err(refused_start)?;
    begin(&state, Owner::Person { user_id, email }, enrolment).await
}

fn refused_start(e: tapkiosk_core::fido::KeyError) -> UiError {
    tracing::error!(%e, "cannot start setting up a key");
    UiError::new("key_refused")
}

/// Starts setting up a security key for the signed-in admin, with which
/// they then sign in to the pane; their keys are excluded.
#[tauri::command]
pub async fn admin_stage_own_key(state: State<'_, AppState>) -> Answer<StagingStatus> {
    let directory = unlocked_staging(&state).await?;
    let name = signed_in_admin(&state)?;
    let rp = state
        .relying_party
        .clone()
        .ok_or_else(|| UiError::new("keys_off"))?;
    let passkeys = directory.admin_passkeys(&name).await?;
    let policy = directory.policy().await?;
    let admin = (Uuid::new_v4(), name.as_str(), name.as_str());
    let enrolment = Enrolment::start(&rp, &state.keys, admin, &passkeys, policy.keys.allow_list())
        .map_err(refused_start)?;
    begin(&state, Owner::Admin(name), enrolment).await
}

async fn begin(state: &AppState, owner: Owner, enrolment: Enrolment) -> Answer<StagingStatus> {
    let staging = Staging {
        owner,
        enrolment,
        key: None,
        done: None,
    };
    let shown = status(&staging);
    let mut slot = state.staging.lock().await;
    // Asked again under the lock `admin_lock` takes after closing the
    // session: a lock while the key was being looked up wins, and the key
    // is not held for a pane nobody can see.
    still_unlocked(state)?;
    *slot = Some(staging);
    Ok(shown)
}

/// Where the key is; checks its answer once it came.
#[tauri::command]
pub async fn admin_stage_status(state: State<'_, AppState>) -> Answer<StagingStatus> {
    let directory = still_staging(&state).await?;
    let mut guard = state.staging.lock().await;
    let staging = guard.as_mut().ok_or_else(none_running)?;
    if let Some(rp) = &state.relying_party
        && let Some(checked) = staging.enrolment.finish(rp)
    {
        match checked {
            Ok(key) => staging.key = Some(key),
            Err(e) => {
                tracing::warn!(%e, "a staged key's answer was refused");
                let refused = match &staging.owner {
                    Owner::Person { email, .. } => directory.refuse_key(email, e.into()).await,
                    Owner::Admin(_) => e.into(),
                };
                *guard = None;
                return Err(match refused {
                    DirectoryError::Invalid(_) => UiError::new("key_refused"),
                    other => other.into(),
                });
            }
        }
    }
    Ok(status(staging))
}

/// The key's PIN, or a new one typed twice.
#[tauri::command]
pub async fn admin_stage_pin(
    state: State<'_, AppState>,
    pin: Zeroizing<String>,
    again: Option<Zeroizing<String>>,
) -> Answer<()> {
    unlocked_staging(&state).await?;
    let guard = state.staging.lock().await;
    let staging = guard.as_ref().ok_or_else(none_running)?;
    pin_taken(
        staging
            .enrolment
            .give_pin(&pin, again.as_deref().map(String::as_str)),
    )
}

/// What the pane is told of a PIN given to a key being staged.
pub(crate) fn pin_taken(given: Result<(), PinProblem>) -> Answer<()> {
    match given {
        // A second press of Enter: the first PIN is already on its way.
        Ok(()) | Err(PinProblem::NotAsked) => Ok(()),
        Err(PinProblem::PinsDiffer) => Err(UiError::new("pins_differ")),
        Err(PinProblem::PinRules { min }) => Err(UiError::with(
            "pin_rules",
            serde_json::json!({ "min": min }),
        )),
    }
}

/// Asks the key again after it failed.
#[tauri::command]
pub async fn admin_stage_retry(state: State<'_, AppState>) -> Answer<()> {
    unlocked_staging(&state).await?;
    let mut guard = state.staging.lock().await;
    let staging = guard.as_mut().ok_or_else(none_running)?;
    match &state.relying_party {
        Some(rp) if staging.enrolment.retry(rp) => Ok(()),
        _ => Err(UiError::new("staging_not_running")),
    }
}

/// Registers the checked key to the person under `label`.
#[tauri::command]
pub async fn admin_stage_name(state: State<'_, AppState>, label: String) -> Answer<MethodSummary> {
    let directory = unlocked_staging(&state).await?;
    let mut guard = state.staging.lock().await;
    let staging = guard.as_mut().ok_or_else(none_running)?;
    // Save pressed twice: the key is already the person's.
    if let Some(done) = &staging.done {
        return Ok(done.clone());
    }
    let key = staging.key.as_ref().ok_or_else(none_running)?;
    if check_label(&label).is_err() {
        let max = serde_json::json!({ "max": MAX_LABEL_CHARS });
        return Err(UiError::with("key_name_rules", max));
    }
    let method = match &staging.owner {
        Owner::Person { user_id, email } => {
            directory
                .add_security_key_for((user_id, email), &label, key)
                .await?
        }
        Owner::Admin(name) => {
            let added = directory.add_admin_key(name, &label, key).await?;
            MethodSummary {
                id: added.id,
                kind: "fido2".into(),
                label: added.label,
                created_at: added.created_at,
                last_used_at: None,
            }
        }
    };
    staging.done = Some(method.clone());
    Ok(method)
}

/// Stops setting up a key (the key's conversation ends with it).
#[tauri::command]
pub async fn admin_stage_cancel(state: State<'_, AppState>) -> Answer<()> {
    unlocked_staging(&state).await?;
    *state.staging.lock().await = None;
    Ok(())
}
