//! The admin pane's Entra tab: a person's Temporary Access Pass in the
//! tenant (its state, a new one with its welcome letter, revoking it).
//! Each command needs an unlocked admin session and a configured tenant;
//! each change is in the local audit log under the admin's name, with
//! Graph's request id.

use super::admin::{Letter, email as user, terms, unlocked};
use crate::{AppState, UiError};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use tapkiosk_core::directory::entra::EntraChange;
use tapkiosk_core::policy::Lifetime;
use tapkiosk_core::tenant::{PassTerms, Tenant, TenantError, TenantPass};
use tauri::State;

type Answer<T> = Result<T, UiError>;

/// A pass in the tenant, as the pane shows it (never its value).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PassView {
    start: Option<chrono::DateTime<chrono::Utc>>,
    lifetime_minutes: i64,
    one_time: bool,
    usable: bool,
    /// Graph's `methodUsabilityReason`.
    reason: String,
}

impl From<&TenantPass> for PassView {
    fn from(pass: &TenantPass) -> Self {
        Self {
            start: pass.start,
            lifetime_minutes: pass.lifetime_minutes,
            one_time: pass.one_time,
            usable: pass.usable,
            reason: pass.reason.clone(),
        }
    }
}

/// What the admin asks for.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EntraPassRequest {
    user: String,
    start: Option<String>,
    lifetime: Option<String>,
    one_time: Option<bool>,
    replace: bool,
}

pub(crate) fn tenant(state: &AppState) -> Answer<Arc<dyn Tenant>> {
    state
        .tenant
        .clone()
        .ok_or_else(|| UiError::new("entra_off"))
}

/// The words for what the tenant refused.
pub(crate) fn refused(error: TenantError) -> UiError {
    tracing::warn!(%error, "the tenant refused the pane's request");
    let reason = serde_json::json!({ "reason": error.to_string() });
    match error {
        TenantError::UnknownAccount => UiError::new("entra_unknown_account"),
        TenantError::Unavailable(_) => UiError::with("entra_unavailable", reason),
        _ => UiError::with("entra_refused", reason),
    }
}

#[tauri::command]
pub async fn admin_entra_pass(
    state: State<'_, AppState>,
    user: String,
) -> Answer<Option<PassView>> {
    unlocked(&state)?;
    let pass = tenant(&state)?
        .pass_of(&self::user(&user)?)
        .await
        .map_err(refused)?;
    Ok(pass.as_ref().map(PassView::from))
}

#[tauri::command]
pub async fn admin_entra_issue_pass(
    state: State<'_, AppState>,
    request: EntraPassRequest,
) -> Answer<Letter> {
    let directory = unlocked(&state)?;
    let (start, lifetime) = terms(request.start.as_deref(), request.lifetime.as_deref())?;
    let terms = PassTerms {
        start,
        lifetime_minutes: lifetime.map(Lifetime::minutes),
        one_time: request.one_time,
    };
    let email = user(&request.user)?;
    let issued = tenant(&state)?
        .issue_pass(&email, &terms, request.replace)
        .await
        .map_err(refused)?;
    let request_id = issued.pass.request_id.as_deref();
    if let Some(old) = &issued.replaced {
        directory
            .record_entra_change(EntraChange::PassRevoked, email.as_str(), old, request_id)
            .await?;
    }
    directory
        .record_entra_change(
            EntraChange::PassIssued,
            email.as_str(),
            &issued.pass.id,
            request_id,
        )
        .await?;
    Ok(letter(&state, email.as_str(), &issued.pass))
}

/// The welcome letter of a pass the tenant just issued.
pub(crate) fn letter(state: &AppState, email: &str, pass: &TenantPass) -> Letter {
    let starts = pass.start.unwrap_or_else(|| state.now());
    Letter {
        organisation: state.config.organisation.clone(),
        email: email.to_string(),
        name: None,
        pass: pass.value.as_deref().cloned().unwrap_or_default(),
        starts,
        ends: starts + chrono::TimeDelta::minutes(pass.lifetime_minutes),
        one_time: pass.one_time,
        entra: true,
    }
}

#[tauri::command]
pub async fn admin_entra_revoke_pass(state: State<'_, AppState>, user: String) -> Answer<()> {
    let directory = unlocked(&state)?;
    let email = self::user(&user)?;
    let revoked = tenant(&state)?.revoke_pass(&email).await.map_err(refused)?;
    directory
        .record_entra_change(
            EntraChange::PassRevoked,
            email.as_str(),
            &revoked.id,
            revoked.request_id.as_deref(),
        )
        .await?;
    Ok(())
}
