//! IT staging in the admin window: thin commands over
//! `tapkiosk_core::key_staging`, which sets up a security key for someone
//! (with its PIN) before their first day, or an admin's own key for the
//! pane. One key at a time; the admin window asks for the status a few
//! times a second while it runs.

use crate::commands::admin::{email, signed_in_admin, still_unlocked, unlocked};
use crate::{AppState, UiError};
use tapkiosk_core::Directory;
use tapkiosk_core::fido::RelyingParty;
use tapkiosk_core::fido::ceremony::PinProblem;
use tapkiosk_core::key_staging::{KeyStaging, KeyStagingView};
use tapkiosk_core::user::MethodSummary;
use tauri::State;
use zeroize::Zeroizing;

type Answer<T> = Result<T, UiError>;

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

fn relying_party(state: &AppState) -> Answer<std::sync::Arc<RelyingParty>> {
    state
        .relying_party
        .clone()
        .ok_or_else(|| UiError::new("keys_off"))
}

/// Starts setting up a key for `email`; their keys are excluded.
#[tauri::command]
pub async fn admin_stage_key(state: State<'_, AppState>, email: String) -> Answer<KeyStagingView> {
    let directory = unlocked_staging(&state).await?;
    let email = self::email(&email)?;
    let rp = relying_party(&state)?;
    let staging = KeyStaging::for_person(&directory, &rp, &state.keys, &email).await?;
    begin(&state, staging).await
}

/// Starts setting up a security key for the signed-in admin, with which
/// they then sign in to the pane; their keys are excluded.
#[tauri::command]
pub async fn admin_stage_own_key(state: State<'_, AppState>) -> Answer<KeyStagingView> {
    let directory = unlocked_staging(&state).await?;
    let name = signed_in_admin(&state)?;
    let rp = relying_party(&state)?;
    let staging = KeyStaging::for_admin(&directory, &rp, &state.keys, &name).await?;
    begin(&state, staging).await
}

async fn begin(state: &AppState, staging: KeyStaging) -> Answer<KeyStagingView> {
    let shown = staging.view();
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
pub async fn admin_stage_status(state: State<'_, AppState>) -> Answer<KeyStagingView> {
    let directory = still_staging(&state).await?;
    let rp = relying_party(&state)?;
    let mut guard = state.staging.lock().await;
    let staging = guard.as_mut().ok_or_else(none_running)?;
    let polled = staging.poll(&directory, &rp).await;
    if polled.is_err() {
        *guard = None;
    }
    Ok(polled?)
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
    pin_taken(staging.give_pin(&pin, again.as_deref().map(String::as_str)))
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
    let rp = relying_party(&state)?;
    let mut guard = state.staging.lock().await;
    let staging = guard.as_mut().ok_or_else(none_running)?;
    Ok(staging.retry(&rp)?)
}

/// Registers the checked key to the person under `label`.
#[tauri::command]
pub async fn admin_stage_name(state: State<'_, AppState>, label: String) -> Answer<MethodSummary> {
    let directory = unlocked_staging(&state).await?;
    let mut guard = state.staging.lock().await;
    let staging = guard.as_mut().ok_or_else(none_running)?;
    Ok(staging.name(&directory, &label).await?)
}

/// Stops setting up a key (the key's conversation ends with it).
#[tauri::command]
pub async fn admin_stage_cancel(state: State<'_, AppState>) -> Answer<()> {
    unlocked_staging(&state).await?;
    *state.staging.lock().await = None;
    Ok(())
}
