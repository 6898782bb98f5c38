//! The PostgreSQL role a kiosk connects as: it can do what a kiosk (and its
//! admin pane) does to the rows, and nothing to the schema. It does not own
//! the tables, so it cannot drop the audit log's append-only triggers, and
//! it may only add to the audit log, never change or delete an event (it
//! deletes an event from `audit_pending` only as it chains it).

use super::{Directory, DirectoryError, Location};
use crate::audit::Event;

/// Tables and what the kiosk role may do with each.
const GRANTS: &[(&str, &str)] = &[
    ("users", "SELECT, INSERT, UPDATE, DELETE"),
    ("user_groups", "SELECT, INSERT, UPDATE, DELETE"),
    ("passes", "SELECT, INSERT, UPDATE, DELETE"),
    ("methods", "SELECT, INSERT, UPDATE, DELETE"),
    ("sign_in_failures", "SELECT, INSERT, DELETE"),
    ("lockouts", "SELECT, INSERT, UPDATE, DELETE"),
    ("admins", "SELECT, INSERT, UPDATE, DELETE"),
    ("admin_keys", "SELECT, INSERT, UPDATE, DELETE"),
    ("entra_batches", "SELECT, INSERT, UPDATE"),
    ("entra_batch_rows", "SELECT, INSERT, UPDATE, DELETE"),
    ("policy", "SELECT, UPDATE"),
    ("directory_meta", "SELECT, UPDATE"),
    ("audit_events", "SELECT, INSERT"),
    // Events wait here for a moment, until the kiosk that wrote them (or
    // the next) chains them into audit_events.
    ("audit_pending", "SELECT, INSERT, DELETE"),
    ("_sqlx_migrations", "SELECT"),
];

/// A role name PostgreSQL takes unquoted: lowercase letters, digits and
/// underscores, starting with a letter, at most 63 bytes.
fn check_role(role: &str) -> Result<(), DirectoryError> {
    let mut chars = role.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_lowercase());
    let rest_ok = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if first_ok && rest_ok && role.len() <= 63 {
        Ok(())
    } else {
        Err(DirectoryError::Invalid(format!(
            "`{role}` is not a role name: lowercase letters, digits and _, starting with a letter"
        )))
    }
}

/// The statements that give `role` a kiosk's rights, for the README and
/// for a DBA who prefers to run them by hand.
pub fn kiosk_grants(role: &str) -> Result<Vec<String>, DirectoryError> {
    check_role(role)?;
    let mut statements = vec![format!("GRANT USAGE ON SCHEMA public TO {role}")];
    statements.extend(
        GRANTS
            .iter()
            .map(|(table, rights)| format!("GRANT {rights} ON {table} TO {role}")),
    );
    Ok(statements)
}

impl Directory {
    /// Records that an admin quit the kiosk app (its window closes only
    /// that way).
    pub async fn record_kiosk_quit(&self) -> Result<(), DirectoryError> {
        let mut tx = self.write_people().await?;
        self.audit(&mut tx, Event::new("kiosk_quit")).await?;
        self.commit(tx).await?;
        Ok(())
    }

    /// Gives the existing PostgreSQL role `role` what a kiosk needs, as the
    /// directory's owner (`tapctl db grant-kiosk`).
    pub async fn grant_kiosk_role(&self, role: &str) -> Result<(), DirectoryError> {
        let statements = kiosk_grants(role)?;
        if !matches!(self.location, Location::Postgres(_)) {
            return Err(DirectoryError::Invalid(
                "database roles are PostgreSQL's: an SQLite directory is protected by its file's permissions".into(),
            ));
        }
        let mut tx = self.write().await?;
        for statement in &statements {
            sqlx::query(sqlx::AssertSqlSafe(statement.clone()))
                .execute(&mut *tx)
                .await?;
        }
        self.audit(&mut tx, Event::new("kiosk_role_granted").with("role", role))
            .await?;
        self.commit(tx).await?;
        Ok(())
    }
}
