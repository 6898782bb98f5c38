//! What IT changed in a Microsoft Entra tenant, in the local audit log: the
//! tenant keeps its own log, but the kiosk's chain says who did what from
//! here (never a pass's value).

use super::{Directory, DirectoryError};
use crate::audit::Event;

/// A change made in the tenant through Graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntraChange {
    /// A Temporary Access Pass was issued.
    PassIssued,
    /// A Temporary Access Pass was removed.
    PassRevoked,
    /// A security key was registered at the kiosk.
    KeyRegistered,
    /// A (lost) security key was removed at the kiosk.
    KeyRemoved,
    /// IT staged a security key for someone in the admin pane.
    KeyStaged,
}

impl Directory {
    /// Records `change` to the tenant's user `user` (their user principal
    /// name), on the method `method` (its id in Entra), made by Graph's
    /// request `request_id` (for Microsoft's support).
    pub async fn record_entra_change(
        &self,
        change: EntraChange,
        user: &str,
        method: &str,
        request_id: Option<&str>,
    ) -> Result<(), DirectoryError> {
        let event = change_event(change, user, method, request_id);
        let mut tx = self.write_people().await?;
        self.audit(&mut tx, event).await?;
        self.commit(tx).await?;
        Ok(())
    }
}

/// The audit event of `change`.
pub(crate) fn change_event(
    change: EntraChange,
    user: &str,
    method: &str,
    request_id: Option<&str>,
) -> Event {
    let event = match change {
        EntraChange::PassIssued => Event::new("entra_pass_issued"),
        EntraChange::PassRevoked => Event::new("entra_pass_revoked"),
        EntraChange::KeyRegistered => Event::new("entra_key_registered"),
        EntraChange::KeyRemoved => Event::new("entra_key_removed"),
        EntraChange::KeyStaged => Event::new("entra_key_staged"),
    };
    let event = event.with("entra_user", user).with("method", method);
    match request_id {
        Some(request_id) => event.with("request_id", request_id),
        None => event,
    }
}
