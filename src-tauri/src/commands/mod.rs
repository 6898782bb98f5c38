//! Commands, grouped by the window allowed to call them (see
//! src-tauri/capabilities/). Each is a few lines: arguments, state, one core
//! call.

pub mod admin;
pub mod admin_keys;
pub mod entra;
pub mod entra_batch;
pub mod entra_staging;
pub mod kiosk;
pub mod staging;
