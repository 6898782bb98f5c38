//! Microsoft Entra ID for tapkiosk: the kiosk's app registration signs in
//! to Microsoft Graph (client credentials, with a certificate or a secret),
//! and `check` tells IT in plain words what the tenant still lacks.
//! Everything here follows Microsoft's published contract; the tests run
//! against `tapkiosk-fake-entra`, written to the same documents.

pub mod check;
pub mod credential;
pub mod device_code;
pub mod graph;
pub mod keys;
pub mod methods;
pub mod passes;
pub mod screen;
pub mod signin;
pub mod targets;
pub mod tenant;

pub use check::{Finding, check};
pub use credential::Credential;
pub use graph::{EntraError, Graph};
pub use tenant::EntraTenant;
