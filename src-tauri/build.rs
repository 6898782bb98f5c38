//! Builds the app against the root tauri.conf.json and turns every command
//! into a permission (allow-<command>), so that each window's capability
//! grants only its own commands.

const KIOSK_COMMANDS: &[&str] = &[
    "screen",
    "start",
    "submit_email",
    "submit_pass",
    "add_authenticator",
    "confirm_authenticator",
    "test_authenticator",
    "start_key_check",
    "check_key_email",
    "add_security_key",
    "key_pin",
    "retry_key",
    "name_key",
    "open_security_info",
    "open_tenant_security_page",
    "remove_method",
    "back",
    "reset",
    "tick",
    "keep_alive",
    "open_admin",
    "directory_health",
];

const ADMIN_COMMANDS: &[&str] = &[
    "admin_status",
    "admin_unlock",
    "admin_enrol",
    "admin_admins",
    "admin_lift_lockout",
    "admin_add_admin",
    "admin_reset_admin",
    "admin_remove_admin",
    "admin_lock",
    "admin_quit",
    "admin_close",
    "admin_users",
    "admin_user",
    "admin_add_user",
    "admin_import_users",
    "admin_issue_pass",
    "admin_revoke_pass",
    "admin_remove_method",
    "admin_policy",
    "admin_set_policy",
    "admin_audit",
    "admin_stage_key",
    "admin_stage_status",
    "admin_stage_pin",
    "admin_stage_retry",
    "admin_stage_name",
    "admin_stage_cancel",
    "admin_stage_own_key",
    "admin_key_sign_in",
    "admin_key_sign_in_status",
    "admin_key_sign_in_pin",
    "admin_key_sign_in_cancel",
    "admin_my_keys",
    "admin_remove_my_key",
    "admin_entra_pass",
    "admin_entra_issue_pass",
    "admin_entra_revoke_pass",
    "admin_entra_staging_start",
    "admin_entra_staging_status",
    "admin_entra_staging_pin",
    "admin_entra_staging_step",
    "admin_entra_batch",
    "admin_entra_batch_forget",
];

fn main() {
    let commands: &'static [&'static str] =
        Box::leak([KIOSK_COMMANDS, ADMIN_COMMANDS].concat().into_boxed_slice());
    let attributes = tauri_build::Attributes::new()
        .config_path("../tauri.conf.json")
        .app_manifest(tauri_build::AppManifest::new().commands(commands));
    if let Err(error) = tauri_build::try_build(attributes) {
        println!("cargo::error={error:#}");
    }
}
