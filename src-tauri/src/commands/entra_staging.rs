//! The admin pane's staging of security keys into the tenant: a queue of
//! people from a CSV file, one key after another (the flow is core's
//! `staging::StagingQueue`; these commands only hand it the tenant, the
//! key reader and the directory). Locking the pane drops the queue, and
//! with it the PIN letter shown.

use super::admin::{still_unlocked, unlocked};
use super::entra::tenant;
use crate::{AppState, UiError};
use serde_json::Value;
use tapkiosk_core::staging::{StagingError, StagingQueue, StagingTerms};
use tapkiosk_core::tenant::UNKNOWN_ACCOUNT;
use tauri::State;
use zeroize::Zeroizing;

type Answer<T> = Result<T, UiError>;

impl From<StagingError> for UiError {
    fn from(error: StagingError) -> Self {
        match error {
            StagingError::MinPinLength => UiError::new("min_pin_length"),
            StagingError::PinRules { min } => {
                UiError::with("pin_rules", serde_json::json!({ "min": min }))
            }
            StagingError::Rows(rows) => {
                UiError::with("rows", serde_json::json!({ "message": rows.to_string() }))
            }
            StagingError::Empty => UiError::new("staging_empty"),
            StagingError::NotNow => UiError::new("staging_not_running"),
            StagingError::Random(reason) => {
                tracing::error!(%reason, "no random PIN");
                UiError::new("staging_random")
            }
            StagingError::Directory(e) => e.into(),
        }
    }
}

/// What the pane draws: the queue's view, taken under its lock. A row
/// failed for an unknown account is marked so, for the pane's own words in
/// its language.
fn view(queue: &StagingQueue) -> Answer<Value> {
    let mut view = serde_json::to_value(queue.view()).map_err(|e| {
        tracing::error!(%e, "cannot show the staging queue");
        UiError::new("staging_not_running")
    })?;
    let rows = view.get_mut("rows").and_then(Value::as_array_mut);
    for row in rows.into_iter().flatten() {
        let state = &mut row["state"];
        if state["reason"] == UNKNOWN_ACCOUNT {
            state["unknown_account"] = true.into();
        }
    }
    Ok(view)
}

/// Queues the people of `file` (`email,label`) and starts the first one's
/// key. IT's `pin` for every key, or a random one each; the minimum PIN
/// length the keys then ask of their owners.
#[tauri::command]
pub async fn admin_entra_staging_start(
    state: State<'_, AppState>,
    file: String,
    pin: Option<Zeroizing<String>>,
    min_pin_length: Option<u32>,
) -> Answer<Value> {
    unlocked(&state)?;
    let tenant = tenant(&state)?;
    let pin = pin.filter(|p| !p.is_empty());
    let mut queue = StagingQueue::new(&file, StagingTerms::new(pin, min_pin_length)?)?;
    let mut slot = state.entra_staging.lock().await;
    // Under the lock `lock` takes: a pane locked meanwhile gets no queue.
    still_unlocked(&state)?;
    queue.next(&*tenant, &state.keys).await?;
    let shown = view(&queue);
    *slot = Some(queue);
    shown
}

/// Moves the key in hand on and says where the queue is; the pane asks a
/// few times a second (without extending its session).
#[tauri::command]
pub async fn admin_entra_staging_status(state: State<'_, AppState>) -> Answer<Value> {
    let directory = match still_unlocked(&state) {
        Ok(directory) => directory,
        Err(locked) => {
            *state.entra_staging.lock().await = None;
            return Err(locked);
        }
    };
    let tenant = tenant(&state)?;
    let mut slot = state.entra_staging.lock().await;
    let queue = slot
        .as_mut()
        .ok_or_else(|| UiError::new("staging_not_running"))?;
    queue.tick(&*tenant, &state.keys, &directory).await?;
    view(queue)
}

/// The PIN of a key that has one already.
#[tauri::command]
pub async fn admin_entra_staging_pin(
    state: State<'_, AppState>,
    pin: Zeroizing<String>,
) -> Answer<()> {
    unlocked(&state)?;
    let mut slot = state.entra_staging.lock().await;
    let queue = slot
        .as_mut()
        .ok_or_else(|| UiError::new("staging_not_running"))?;
    super::staging::pin_taken(queue.give_pin(pin))
}

/// The step IT asks for: `next` person (dropping the letter shown),
/// `retry` the key in hand, `skip` it, or `stop` the queue.
#[tauri::command]
pub async fn admin_entra_staging_step(state: State<'_, AppState>, step: String) -> Answer<Value> {
    unlocked(&state)?;
    let tenant = tenant(&state)?;
    let mut slot = state.entra_staging.lock().await;
    if step == "stop" {
        *slot = None;
        return Ok(Value::Null);
    }
    let queue = slot
        .as_mut()
        .ok_or_else(|| UiError::new("staging_not_running"))?;
    match step.as_str() {
        "next" => queue.next(&*tenant, &state.keys).await?,
        "retry" => queue.retry(&*tenant, &state.keys, state.now()).await?,
        "skip" => queue.skip()?,
        _ => return Err(UiError::new("staging_not_running")),
    }
    view(queue)
}
