//! The kiosk window's commands: the sign-in flow. Each returns the screen
//! to draw.

use crate::{AppState, UiError};
use tapkiosk_core::kiosk::{Language, Screen};
use tauri::{AppHandle, Manager as _, Runtime, State};
use zeroize::Zeroizing;

type Answer = Result<Screen, UiError>;

#[tauri::command]
pub async fn screen(state: State<'_, AppState>) -> Answer {
    Ok(state.kiosk.lock().await.screen())
}

#[tauri::command]
pub async fn start(state: State<'_, AppState>, language: Language) -> Answer {
    Ok(state.kiosk.lock().await.start(language).await?)
}

/// On a tenant, a good email sends the window to the tenant's sign-in page.
#[tauri::command]
pub async fn submit_email<R: Runtime>(
    window: tauri::WebviewWindow<R>,
    state: State<'_, AppState>,
    email: String,
) -> Answer {
    let screen = state.kiosk.lock().await.submit_email(&email).await?;
    crate::signin::open_page_if_asked(&window, &state).await;
    Ok(screen)
}

#[tauri::command]
pub async fn submit_pass(state: State<'_, AppState>, pass: String) -> Answer {
    Ok(state.kiosk.lock().await.submit_pass(&pass).await?)
}

#[tauri::command]
pub async fn add_authenticator(state: State<'_, AppState>) -> Answer {
    Ok(state.kiosk.lock().await.add_authenticator().await?)
}

#[tauri::command]
pub async fn confirm_authenticator(state: State<'_, AppState>, code: String) -> Answer {
    Ok(state
        .kiosk
        .lock()
        .await
        .confirm_authenticator(&code)
        .await?)
}

#[tauri::command]
pub async fn test_authenticator(state: State<'_, AppState>, code: String) -> Answer {
    Ok(state.kiosk.lock().await.test_authenticator(&code).await?)
}

#[tauri::command]
pub async fn start_key_check(state: State<'_, AppState>, language: Language) -> Answer {
    Ok(state.kiosk.lock().await.start_key_check(language).await?)
}

#[tauri::command]
pub async fn check_key_email(state: State<'_, AppState>, email: String) -> Answer {
    Ok(state.kiosk.lock().await.check_key_email(&email).await?)
}

#[tauri::command]
pub async fn add_security_key(state: State<'_, AppState>) -> Answer {
    Ok(state.kiosk.lock().await.add_security_key().await?)
}

#[tauri::command]
pub async fn key_pin(
    state: State<'_, AppState>,
    pin: Zeroizing<String>,
    again: Option<Zeroizing<String>>,
) -> Answer {
    let mut kiosk = state.kiosk.lock().await;
    Ok(kiosk
        .key_pin(&pin, again.as_deref().map(String::as_str))
        .await?)
}

#[tauri::command]
pub async fn retry_key(state: State<'_, AppState>) -> Answer {
    Ok(state.kiosk.lock().await.retry_key().await?)
}

#[tauri::command]
pub async fn name_key(state: State<'_, AppState>, label: String) -> Answer {
    Ok(state.kiosk.lock().await.name_key(&label).await?)
}

#[tauri::command]
pub async fn open_security_info(state: State<'_, AppState>) -> Answer {
    Ok(state.kiosk.lock().await.open_security_info().await?)
}

/// On a tenant, sends the window to the tenant's own Security info page.
#[tauri::command]
pub async fn open_tenant_security_page<R: Runtime>(
    window: tauri::WebviewWindow<R>,
    state: State<'_, AppState>,
) -> Answer {
    let screen = state.kiosk.lock().await.open_tenant_security_page().await?;
    crate::signin::open_page_if_asked(&window, &state).await;
    Ok(screen)
}

#[tauri::command]
pub async fn remove_method(state: State<'_, AppState>, method: String) -> Answer {
    Ok(state.kiosk.lock().await.remove_method(&method).await?)
}

#[tauri::command]
pub async fn back(state: State<'_, AppState>) -> Answer {
    Ok(state.kiosk.lock().await.back().await?)
}

/// Back on Welcome, the window forgets the person's session at the tenant.
#[tauri::command]
pub async fn reset<R: Runtime>(app: AppHandle<R>, state: State<'_, AppState>) -> Answer {
    let screen = state.kiosk.lock().await.reset().await?;
    crate::signin::forget_tenant_session(&app, &state, &screen);
    Ok(screen)
}

/// As [`reset`] when the kiosk resets itself (idle, Done).
#[tauri::command]
pub async fn tick<R: Runtime>(app: AppHandle<R>, state: State<'_, AppState>) -> Answer {
    let screen = state.kiosk.lock().await.tick().await?;
    crate::signin::forget_tenant_session(&app, &state, &screen);
    Ok(screen)
}

#[tauri::command]
pub async fn keep_alive(state: State<'_, AppState>) -> Answer {
    Ok(state.kiosk.lock().await.keep_alive().await?)
}

/// Opens the admin window, which asks for the admin PIN itself.
#[tauri::command]
pub async fn open_admin<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, AppState>,
) -> Result<(), UiError> {
    crate::admin_window(&app, state.dev).map(drop).map_err(|e| {
        tracing::error!(%e, "cannot open the admin window");
        UiError::new("admin_window")
    })
}

/// Whether the kiosk can work: its directory is open and answers. The
/// out-of-service screen asks until it can; before the directory could be
/// opened at all (it was down at start) there is no state yet.
#[tauri::command]
pub async fn directory_health<R: Runtime>(app: AppHandle<R>) -> Result<(), UiError> {
    let Some(state) = app.try_state::<AppState>() else {
        return Err(UiError::new("out_of_service"));
    };
    state.directory.ping().await?;
    crate::error::outage_over();
    Ok(())
}
