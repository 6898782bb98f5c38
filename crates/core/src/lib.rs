//! The tapkiosk domain: a directory of people, the temporary access passes
//! IT issues to them, the policy those passes obey, redemption at a kiosk and
//! a tamper-evident audit log.
//!
//! Nothing here knows about Tauri, clap or HTML: the kiosk app, the `tapctl`
//! command line and the tests all drive the same functions.

pub mod admin_session;
pub mod audit;
pub mod checkpoint;
pub mod clock;
pub mod config;
pub mod crash;
pub mod directory;
pub mod duration;
pub mod email;
pub mod entra_batch;
pub mod fido;
pub mod import;
pub mod key_staging;
pub mod keys;
pub mod kiosk;
pub mod lockout;
pub mod pass;
pub mod policy;
pub mod redeem;
pub mod staging;
pub mod tenant;
pub mod totp;
pub mod user;

#[cfg(test)]
mod robustness;

pub use clock::{Clock, ManualClock, SystemClock};
pub use directory::{Directory, DirectoryError, Location};
pub use email::Email;
pub use keys::{DirectoryKey, KeyStore};
pub use pass::{PassCode, PassStatus};
pub use policy::Policy;
