//! The tapkiosk desktop shell: window and kiosk-mode setup, and thin
//! commands that call `tapkiosk-core`. The UI renders what the commands
//! return and decides nothing.

mod commands;
mod error;
mod signin;
mod state;

pub use error::UiError;
pub use state::{AppState, Options};

use std::sync::Arc;
use tapkiosk_core::tenant::Tenant;
use tauri::{Manager, Runtime, WebviewUrl, WebviewWindowBuilder};

/// Registers the commands and the state; `run` and the mock-runtime tests
/// share it.
pub fn builder<R: Runtime>(builder: tauri::Builder<R>) -> tauri::Builder<R> {
    builder.invoke_handler(tauri::generate_handler![
        commands::kiosk::screen,
        commands::kiosk::start,
        commands::kiosk::submit_email,
        commands::kiosk::submit_pass,
        commands::kiosk::add_authenticator,
        commands::kiosk::confirm_authenticator,
        commands::kiosk::test_authenticator,
        commands::kiosk::start_key_check,
        commands::kiosk::check_key_email,
        commands::kiosk::add_security_key,
        commands::kiosk::key_pin,
        commands::kiosk::retry_key,
        commands::kiosk::name_key,
        commands::kiosk::open_security_info,
        commands::kiosk::open_tenant_security_page,
        commands::kiosk::remove_method,
        commands::kiosk::back,
        commands::kiosk::reset,
        commands::kiosk::tick,
        commands::kiosk::keep_alive,
        commands::kiosk::open_admin,
        commands::kiosk::directory_health,
        commands::admin::admin_status,
        commands::admin::admin_unlock,
        commands::admin::admin_enrol,
        commands::admin::admin_admins,
        commands::admin::admin_lift_lockout,
        commands::admin::admin_add_admin,
        commands::admin::admin_reset_admin,
        commands::admin::admin_remove_admin,
        commands::admin::admin_lock,
        commands::admin::admin_quit,
        commands::admin::admin_close,
        commands::admin::admin_users,
        commands::admin::admin_user,
        commands::admin::admin_add_user,
        commands::admin::admin_import_users,
        commands::admin::admin_issue_pass,
        commands::admin::admin_revoke_pass,
        commands::admin::admin_remove_method,
        commands::admin::admin_policy,
        commands::admin::admin_set_policy,
        commands::admin::admin_audit,
        commands::staging::admin_stage_key,
        commands::staging::admin_stage_status,
        commands::staging::admin_stage_pin,
        commands::staging::admin_stage_retry,
        commands::staging::admin_stage_name,
        commands::staging::admin_stage_cancel,
        commands::staging::admin_stage_own_key,
        commands::admin_keys::admin_key_sign_in,
        commands::admin_keys::admin_key_sign_in_status,
        commands::admin_keys::admin_key_sign_in_pin,
        commands::admin_keys::admin_key_sign_in_cancel,
        commands::admin_keys::admin_my_keys,
        commands::admin_keys::admin_remove_my_key,
        commands::entra::admin_entra_pass,
        commands::entra::admin_entra_issue_pass,
        commands::entra::admin_entra_revoke_pass,
        commands::entra_staging::admin_entra_staging_start,
        commands::entra_staging::admin_entra_staging_status,
        commands::entra_staging::admin_entra_staging_pin,
        commands::entra_staging::admin_entra_staging_step,
        commands::entra_batch::admin_entra_batch,
        commands::entra_batch::admin_entra_batch_forget,
    ])
}

/// The kiosk window: fullscreen and undecorated unless `dev`, and it never
/// navigates away from the app.
pub fn kiosk_window<R: Runtime, M: Manager<R>>(
    manager: &M,
    dev: bool,
    tenant: Option<Arc<dyn Tenant>>,
) -> tauri::Result<tauri::WebviewWindow<R>> {
    let app = manager.app_handle().clone();
    let mut builder =
        WebviewWindowBuilder::new(manager, "kiosk", WebviewUrl::App("index.html".into()))
            .title("tapkiosk")
            .inner_size(1024.0, 768.0)
            .min_inner_size(800.0, 600.0)
            .fullscreen(!dev)
            .decorations(dev)
            .resizable(dev)
            .on_navigation(move |url| {
                signin::allow(&app, url).unwrap_or(false) || stays_in_app(url)
            });
    if let Some(tenant) = tenant {
        builder = builder.initialization_script(signin::cancel_bar(&*tenant));
    }
    let window = builder.build()?;
    if !dev {
        cover_screen(&window)?;
    }
    Ok(window)
}

/// Fullscreen needs a window manager to honour it; a bare X server (a
/// dedicated kiosk session, Xvfb) has none, so the window also takes the
/// whole monitor itself.
fn cover_screen<R: Runtime>(window: &tauri::WebviewWindow<R>) -> tauri::Result<()> {
    if let Some(monitor) = window.current_monitor()?.or(window.primary_monitor()?) {
        window.set_position(*monitor.position())?;
        window.set_size(*monitor.size())?;
    }
    Ok(())
}

/// The admin window, opened from the kiosk's discreet control.
pub fn admin_window<R: Runtime, M: Manager<R>>(
    manager: &M,
    dev: bool,
) -> tauri::Result<tauri::WebviewWindow<R>> {
    if let Some(window) = manager.get_webview_window("admin") {
        window.set_focus()?;
        return Ok(window);
    }
    let window = WebviewWindowBuilder::new(manager, "admin", WebviewUrl::App("admin.html".into()))
        .title("tapkiosk — administration")
        .inner_size(1100.0, 800.0)
        .fullscreen(!dev)
        .decorations(dev)
        .on_navigation(stays_in_app)
        .build()?;
    if !dev {
        cover_screen(&window)?;
    }
    Ok(window)
}

/// Whether a request to close the window `label` (Alt+F4, a window
/// manager's close) is let through: never for the kiosk window of a real
/// kiosk, which an admin leaves with Quit in the admin pane.
fn may_close(label: &str, dev: bool, quitting: bool) -> bool {
    label != "kiosk" || dev || quitting
}

/// The kiosk window stays unless an admin quits; however the admin window
/// goes (Alt+F4, a window manager), the admin session goes with it: the next
/// person to press the kiosk's control gets the PIN prompt, not an open pane.
fn on_window_event<R: Runtime>(window: &tauri::Window<R>, event: &tauri::WindowEvent, dev: bool) {
    // No state yet while the directory is out of reach at start.
    let state = window.app_handle().try_state::<AppState>();
    if let tauri::WindowEvent::CloseRequested { api, .. } = event {
        let quitting = state
            .as_ref()
            .is_some_and(|state| state.quitting.load(std::sync::atomic::Ordering::SeqCst));
        if !may_close(window.label(), dev, quitting) {
            tracing::info!("the kiosk window stays open: an admin quits from the admin pane");
            api.prevent_close();
        }
    }
    if window.label() == "admin" && matches!(event, tauri::WindowEvent::Destroyed) {
        let app = window.app_handle().clone();
        tauri::async_runtime::spawn(async move {
            commands::admin::lock(&app.state::<AppState>()).await;
        });
    }
}

/// Only the app's own pages: no link, form or script can take a kiosk to
/// the web.
fn stays_in_app(url: &tauri::Url) -> bool {
    let inside = matches!(url.scheme(), "tauri") || url.host_str() == Some("tauri.localhost");
    if !inside {
        // Scheme and host only: a path or query could carry anything.
        let host = url.host_str().unwrap_or("");
        tracing::warn!("refused to navigate to {}://{host}", url.scheme());
    }
    inside
}

/// Libraries that print PIN tokens and key material at debug and trace.
const SECRET_LOGGERS: [&str; 3] = [
    "webauthn_authenticator_rs",
    "webauthn_rs_core",
    "fido_hid_rs",
];

fn logs_secrets(target: &str) -> bool {
    SECRET_LOGGERS.iter().any(|crate_name| {
        target
            .strip_prefix(crate_name)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
    })
}

/// Logs as `RUST_LOG` says, except that [`SECRET_LOGGERS`] never log below
/// info, whatever `RUST_LOG` says of them or of their modules.
fn init_logging() {
    use tracing_subscriber::filter::{EnvFilter, FilterExt as _, filter_fn};
    use tracing_subscriber::{Layer as _, layer::SubscriberExt as _, util::SubscriberInitExt as _};
    let filter = || {
        let quiet =
            filter_fn(|meta| *meta.level() <= tracing::Level::INFO || !logs_secrets(meta.target()));
        EnvFilter::from_default_env().and(quiet)
    };
    let mut layers = vec![
        tracing_subscriber::fmt::layer()
            .with_filter(filter())
            .boxed(),
    ];
    if let Some(file) = test_log() {
        let copy = tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .with_writer(std::sync::Mutex::new(file));
        layers.push(copy.with_filter(filter()).boxed());
    }
    tracing_subscriber::registry().with(layers).init();
}

/// Test builds copy the log to the file named by `TAPKIOSK_TEST_LOG`, so
/// that the end-to-end tests can read all the app logged.
#[cfg(feature = "test-clock")]
fn test_log() -> Option<std::fs::File> {
    std::fs::File::create(std::env::var_os("TAPKIOSK_TEST_LOG")?).ok()
}

#[cfg(not(feature = "test-clock"))]
fn test_log() -> Option<std::fs::File> {
    None
}

/// How often the kiosk writes an audit checkpoint outside the database.
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// Writes a checkpoint of the audit log to the system log (the kiosk's
/// standard error, which systemd keeps in the journal) and, when configured,
/// to a file, at start and every [`CHECKPOINT_EVERY`]: a directory rolled
/// back to an older copy then fails `tapctl audit verify --checkpoint`.
/// The period is the kiosk's own pace, not a rule of time that a test
/// would move: tests check the checkpoint written at start.
#[allow(clippy::disallowed_methods)]
async fn write_checkpoints(directory: tapkiosk_core::Directory, file: Option<std::path::PathBuf>) {
    loop {
        match directory.audit_checkpoint().await {
            Ok(checkpoint) => {
                tracing::info!(target: "tapkiosk::audit", "{checkpoint}");
                if let Some(path) = &file
                    && let Err(e) = checkpoint.append_to(path)
                {
                    tracing::error!(%e, path = %path.display(), "cannot write the audit checkpoint");
                }
            }
            Err(e) => tracing::warn!(%e, "cannot take an audit checkpoint"),
        }
        tokio::time::sleep(CHECKPOINT_EVERY).await;
    }
}

/// The file whose lock the running kiosk holds: in the user's runtime
/// folder (`$XDG_RUNTIME_DIR/tapkiosk`), else their local data folder.
fn instance_lock_path() -> Option<std::path::PathBuf> {
    let dirs = directories::ProjectDirs::from("", "", "tapkiosk")?;
    let folder = dirs.runtime_dir().unwrap_or(dirs.data_local_dir());
    Some(folder.join("kiosk.lock"))
}

/// One kiosk at a time per user: a second start would put a second window
/// over the first, each with its own session state. Tauri's single-instance
/// plugin needs a D-Bus session bus, which a kiosk session may not have
/// (without one it lets a second instance start); a file lock needs
/// nothing, and the system drops it when the process ends, however it ends.
fn hold_instance_lock() -> Result<std::fs::File, String> {
    use std::io::{Read as _, Seek as _, Write as _};
    let path = instance_lock_path().ok_or("no home folder to keep the kiosk's lock in")?;
    let shown = path.display();
    if let Some(folder) = path.parent() {
        std::fs::create_dir_all(folder)
            .map_err(|e| format!("cannot create {}: {e}", folder.display()))?;
    }
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| format!("cannot open {shown}: {e}"))?;
    if file.try_lock().is_err() {
        let mut holder = String::new();
        let _ = file.read_to_string(&mut holder);
        let holder = holder.trim();
        return Err(format!(
            "the kiosk is already running (process {}, lock {shown})",
            if holder.is_empty() { "unknown" } else { holder }
        ));
    }
    let written = file
        .set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| writeln!(file, "{}", std::process::id()));
    written.map_err(|e| format!("cannot write {shown}: {e}"))?;
    Ok(file)
}

/// Starts the kiosk. Exit code 0 on a normal quit.
pub fn main() -> std::process::ExitCode {
    init_logging();
    let options = match Options::from_args(std::env::args().skip(1)) {
        Ok(options) => options,
        Err(message) => {
            eprintln!("tapkiosk: {message}");
            return std::process::ExitCode::from(2);
        }
    };
    let _instance = match hold_instance_lock() {
        Ok(lock) => lock,
        Err(message) => {
            eprintln!("tapkiosk: {message}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("tapkiosk: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let state = match runtime.block_on(AppState::open(&options)) {
        Ok(state) => Some(state),
        Err(e) if out_of_reach(&e) => {
            tracing::error!("{e:#}: the kiosk is out of service until the directory answers");
            None
        }
        Err(e) => {
            eprintln!("tapkiosk: {e:#}");
            return std::process::ExitCode::FAILURE;
        }
    };
    tauri::async_runtime::set(runtime.handle().clone());
    let dev = options.dev;
    let app = builder(tauri::Builder::default())
        .on_window_event(move |window, event| on_window_event(window, event, dev))
        .setup(move |app| {
            let tenant = match state {
                Some(state) => {
                    let tenant = state.tenant.clone();
                    app.manage(state);
                    in_service(app.handle());
                    tenant
                }
                None => {
                    let tenant = state::tenant_of(&options);
                    let opening = open_when_reachable(app.handle().clone(), options);
                    tauri::async_runtime::spawn(opening);
                    tenant
                }
            };
            kiosk_window(app, dev, tenant)?;
            Ok(())
        })
        .run(tauri::generate_context!("../tauri.conf.json"));
    match app {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tapkiosk: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Whether the app could not start only because its directory's database
/// does not answer (down, restarting, cut off): worth waiting for.
fn out_of_reach(error: &anyhow::Error) -> bool {
    error
        .downcast_ref::<tapkiosk_core::DirectoryError>()
        .is_some_and(tapkiosk_core::DirectoryError::is_unavailable)
}

/// How often a kiosk that started without its directory tries again.
const OPEN_EVERY: std::time::Duration = std::time::Duration::from_secs(3);

/// The directory was out of reach at start: the kiosk window shows its
/// out-of-service screen, and this opens the directory as soon as it
/// answers, with no restart. The pace is the kiosk's own, not a rule of
/// time a test would move.
#[allow(clippy::disallowed_methods)]
async fn open_when_reachable<R: Runtime>(app: tauri::AppHandle<R>, options: Options) {
    let state = loop {
        tokio::time::sleep(OPEN_EVERY).await;
        match AppState::open(&options).await {
            Ok(state) => break state,
            Err(e) if out_of_reach(&e) => continue,
            Err(e) => {
                tracing::error!("{e:#}");
                app.exit(1);
                return;
            }
        }
    };
    app.manage(state);
    tracing::warn!("the directory answers: the kiosk is in service");
    in_service(&app);
}

/// What a kiosk with an open directory runs beside its windows.
fn in_service<R: Runtime>(app: &tauri::AppHandle<R>) {
    let state = app.state::<AppState>();
    let checkpoints = write_checkpoints(
        state.directory.clone(),
        state.config.audit_checkpoint_file.clone(),
    );
    tauri::async_runtime::spawn(checkpoints);
}

#[cfg(test)]
mod tests {
    use super::logs_secrets;

    #[test]
    fn only_an_admin_closes_a_real_kiosk_window() {
        use super::may_close;
        assert!(!may_close("kiosk", false, false), "Alt+F4 at a kiosk");
        assert!(may_close("kiosk", false, true), "Quit in the admin pane");
        assert!(may_close("kiosk", true, false), "a developer's window");
        assert!(
            may_close("admin", false, false),
            "the admin window locks as it goes"
        );
    }

    #[test]
    fn the_webauthn_crates_and_their_modules_are_kept_quiet() {
        assert!(logs_secrets("webauthn_authenticator_rs"));
        assert!(logs_secrets("webauthn_authenticator_rs::ctap2::ctap20"));
        assert!(logs_secrets("fido_hid_rs::linux"));
        assert!(!logs_secrets("webauthn_authenticator_rs_extra"));
        assert!(!logs_secrets("tapkiosk::commands"));
    }
}
