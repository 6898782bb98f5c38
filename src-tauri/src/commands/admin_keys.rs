//! An admin's own security keys: signing in to the pane with one (touch
//! and the key's PIN, instead of the admin PIN), listing and removing them.
//! Adding one runs through staging (`admin_stage_own_key`). The pane asks
//! for the sign-in's status a few times a second while the key works.

use crate::commands::admin::{admin_name, signed_in_admin, unlock, unlocked};
use crate::{AppState, UiError};
use serde::Serialize;
use tapkiosk_core::directory::AdminName;
use tapkiosk_core::directory::admin_keys::AdminKey;
use tapkiosk_core::fido::Authentication;
use tapkiosk_core::fido::ceremony::{Ceremony, Phase, PinProblem};
use tauri::State;
use zeroize::Zeroizing;

type Answer<T> = Result<T, UiError>;

/// A sign-in with a key under way at the locked pane.
#[derive(Debug)]
pub struct KeySignIn {
    name: AdminName,
    /// `None` when the name has no keys: the key was asked with a decoy,
    /// which it cannot answer.
    challenge: Option<Authentication>,
    ceremony: Ceremony,
}

/// Where a sign-in with a key is.
#[derive(Debug, Serialize)]
pub struct KeySignInStatus {
    key: Phase,
    /// Set once the key's answer signed the admin in.
    signed_in: bool,
}

fn none_running() -> UiError {
    UiError::new("staging_not_running")
}

/// Asks the plugged-in key to sign `name` in. An unknown name, or one
/// without keys, is asked with a decoy: the key then says it is not
/// registered, as another admin's key would, so names are not told apart.
#[tauri::command]
pub async fn admin_key_sign_in(
    state: State<'_, AppState>,
    name: String,
) -> Answer<KeySignInStatus> {
    let name = admin_name(&name)?;
    let rp = state
        .relying_party
        .clone()
        .ok_or_else(|| UiError::new("keys_off"))?;
    let passkeys = state.admin_directory.admin_passkeys(&name).await?;
    let (request, challenge) = if passkeys.is_empty() {
        (rp.decoy_authentication(), None)
    } else {
        let (request, challenge) = rp.start_authentication(&passkeys).map_err(|e| {
            tracing::error!(%e, "cannot start an admin's key sign-in");
            UiError::new("key_refused")
        })?;
        (request, Some(challenge))
    };
    let ceremony = Ceremony::authenticate(&state.keys, rp.origin().clone(), request);
    let status = KeySignInStatus {
        key: ceremony.phase(),
        signed_in: false,
    };
    *state.key_sign_in.lock().await = Some(KeySignIn {
        name,
        challenge,
        ceremony,
    });
    Ok(status)
}

/// Where the key is; once it answered, checks the answer and signs the
/// admin in (a refused answer counts as a wrong PIN).
#[tauri::command]
pub async fn admin_key_sign_in_status(state: State<'_, AppState>) -> Answer<KeySignInStatus> {
    let mut guard = state.key_sign_in.lock().await;
    let running = guard.as_ref().ok_or_else(none_running)?;
    let key = running.ceremony.phase();
    let Some(answer) = running.ceremony.take_assertion() else {
        return Ok(KeySignInStatus {
            key,
            signed_in: false,
        });
    };
    let running = guard.take().ok_or_else(none_running)?;
    drop(guard);
    let rp = state
        .relying_party
        .as_ref()
        .ok_or_else(|| UiError::new("keys_off"))?;
    let checked = match running.challenge {
        Some(challenge) => rp.finish_authentication(&answer, challenge),
        None => Err(tapkiosk_core::fido::KeyError::Settings(
            "an answer to a decoy".into(),
        )),
    };
    state
        .admin_directory
        .sign_in_admin_with_key(&running.name, checked)
        .await?;
    unlock(&state, &running.name);
    Ok(KeySignInStatus {
        key,
        signed_in: true,
    })
}

/// The key's PIN, while it asks for it.
#[tauri::command]
pub async fn admin_key_sign_in_pin(
    state: State<'_, AppState>,
    pin: Zeroizing<String>,
) -> Answer<()> {
    let guard = state.key_sign_in.lock().await;
    let running = guard.as_ref().ok_or_else(none_running)?;
    match running.ceremony.give_pin(&pin, None) {
        Ok(()) | Err(PinProblem::NotAsked) => Ok(()),
        Err(PinProblem::PinRules { min }) => Err(UiError::with(
            "pin_rules",
            serde_json::json!({ "min": min }),
        )),
        Err(PinProblem::PinsDiffer) => Err(UiError::new("pins_differ")),
    }
}

/// Stops a sign-in with a key.
#[tauri::command]
pub async fn admin_key_sign_in_cancel(state: State<'_, AppState>) -> Answer<()> {
    *state.key_sign_in.lock().await = None;
    Ok(())
}

/// The signed-in admin's own keys.
#[tauri::command]
pub async fn admin_my_keys(state: State<'_, AppState>) -> Answer<Vec<AdminKey>> {
    let directory = unlocked(&state)?;
    let name = signed_in_admin(&state)?;
    Ok(directory.admin_keys(&name).await?)
}

/// Removes one of the signed-in admin's own keys.
#[tauri::command]
pub async fn admin_remove_my_key(state: State<'_, AppState>, id: String) -> Answer<()> {
    let directory = unlocked(&state)?;
    let name = signed_in_admin(&state)?;
    Ok(directory.remove_admin_key(&name, &id).await?)
}
