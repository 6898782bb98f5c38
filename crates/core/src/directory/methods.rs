//! Registered ways to sign in: adding an authenticator app, checking its
//! codes, removing a method.

use super::{Directory, DirectoryError};
use crate::audit::Event;
use crate::clock::from_seconds;
use crate::redeem::KioskSession;
use crate::totp::{CodeRejected, TotpSecret};
use crate::user::MethodSummary;
use rand::rngs::OsRng;
use sqlx::Row;

/// What a sealed secret is bound to: its holder and its method.
fn context(user_id: &str, method_id: &str) -> Vec<u8> {
    format!("totp/{user_id}/{method_id}").into_bytes()
}

/// The longest name a method may have.
pub const MAX_LABEL_CHARS: usize = 64;

impl Directory {
    /// Registers an authenticator app in `session` whose first code was
    /// accepted at time step `step`. The secret is stored sealed; the
    /// session's one-time pass is used up in the same transaction.
    pub async fn add_totp_method(
        &self,
        session: &KioskSession,
        label: &str,
        secret: &TotpSecret,
        step: u64,
    ) -> Result<MethodSummary, DirectoryError> {
        let label = check_label(label)?;
        let mut tx = self.session_change(session).await?;
        let id = uuid::Uuid::new_v4().to_string();
        let sealed = self
            .key
            .seal(&context(&session.user_id, &id), secret.expose(), &mut OsRng);
        let now = self.now();
        sqlx::query(
            "INSERT INTO methods (id, user_id, kind, label, created_at, last_used_at, credential, last_step) \
             VALUES ($1, $2, 'totp', $3, $4, $4, $5, $6)",
        )
        .bind(&id)
        .bind(&session.user_id)
        .bind(&label)
        .bind(now.timestamp())
        .bind(sealed)
        .bind(i64::try_from(step).unwrap_or(i64::MAX))
        .execute(&mut *tx)
        .await?;
        let event = Event::new("method_added")
            .user(&session.email)
            .with("method", &id)
            .with("kind", "totp");
        self.audit(
            &mut tx,
            event.with("label", &label).with("session", &session.id),
        )
        .await?;
        crate::crash::point("storing_app");
        self.commit(tx).await?;
        Ok(MethodSummary {
            id,
            kind: "totp".into(),
            label,
            created_at: now,
            last_used_at: Some(now),
        })
    }

    /// Signs in with an authenticator app: checks `code` against the
    /// method's secret at the directory's time, accepting each time step at
    /// most once, even when two kiosks check the same code at once.
    pub async fn check_totp(
        &self,
        user_id: &str,
        method_id: &str,
        code: &str,
    ) -> Result<(), TotpCheck> {
        let mut tx = self.write_person(user_id).await?;
        let row = sqlx::query("SELECT credential, last_step FROM methods WHERE id = $1 AND user_id = $2 AND kind = 'totp'")
            .bind(method_id)
            .bind(user_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(DirectoryError::from)?
            .ok_or(TotpCheck::NoSuchMethod)?;
        let sealed: Vec<u8> = row.try_get("credential").map_err(DirectoryError::from)?;
        let last_step: Option<i64> = row.try_get("last_step").map_err(DirectoryError::from)?;
        let secret = self
            .key
            .open(&context(user_id, method_id), &sealed)
            .and_then(|bytes| TotpSecret::from_bytes(&bytes))
            .ok_or(TotpCheck::NoSuchMethod)?;
        let now = self.now();
        let last = last_step.and_then(|s| u64::try_from(s).ok());
        let step = secret
            .check(code, now.timestamp(), last)
            .map_err(TotpCheck::Rejected)?;
        sqlx::query("UPDATE methods SET last_step = $1, last_used_at = $2 WHERE id = $3")
            .bind(i64::try_from(step).unwrap_or(i64::MAX))
            .bind(now.timestamp())
            .bind(method_id)
            .execute(&mut *tx)
            .await
            .map_err(DirectoryError::from)?;
        self.commit(tx).await?;
        Ok(())
    }

    /// The methods of the session's holder.
    pub async fn methods(&self, user_id: &str) -> Result<Vec<MethodSummary>, DirectoryError> {
        let rows = sqlx::query(
            "SELECT id, kind, label, created_at, last_used_at FROM methods WHERE user_id = $1 ORDER BY created_at, id",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(MethodSummary {
                    id: row.try_get("id")?,
                    kind: row.try_get("kind")?,
                    label: row.try_get("label")?,
                    created_at: from_seconds(row.try_get("created_at")?),
                    last_used_at: row
                        .try_get::<Option<i64>, _>("last_used_at")?
                        .map(from_seconds),
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }

    /// Removes one of the session holder's methods (the lost-key case).
    pub async fn remove_method(
        &self,
        session: &KioskSession,
        method_id: &str,
    ) -> Result<(), DirectoryError> {
        let mut tx = self.session_change(session).await?;
        delete_method(&mut tx, &session.user_id, method_id).await?;
        let event = Event::new("method_removed")
            .user(&session.email)
            .with("method", method_id);
        self.audit(&mut tx, event.with("session", &session.id))
            .await?;
        self.commit(tx).await?;
        Ok(())
    }
}

impl Directory {
    /// Removes one of a person's methods on an administrator's behalf.
    pub async fn remove_method_of(
        &self,
        email: &crate::email::Email,
        method_id: &str,
    ) -> Result<(), DirectoryError> {
        let mut tx = self.write_person_by_email(email).await?;
        let user = self.require_user(&mut tx, email).await?;
        delete_method(&mut tx, &user.id, method_id).await?;
        self.audit(
            &mut tx,
            Event::new("method_removed")
                .user(email)
                .with("method", method_id),
        )
        .await?;
        self.commit(tx).await?;
        Ok(())
    }
}

/// Why an authenticator code did not sign in.
#[derive(Debug, thiserror::Error)]
pub enum TotpCheck {
    /// The code is wrong or was used before.
    #[error(transparent)]
    Rejected(CodeRejected),
    /// No such authenticator app for this person.
    #[error("no such authenticator app")]
    NoSuchMethod,
    /// The directory failed.
    #[error(transparent)]
    Directory(#[from] DirectoryError),
}

/// Deletes one of `user_id`'s methods, refusing anyone else's.
async fn delete_method(
    tx: &mut super::Tx,
    user_id: &str,
    method_id: &str,
) -> Result<(), DirectoryError> {
    let removed = sqlx::query("DELETE FROM methods WHERE id = $1 AND user_id = $2")
        .bind(method_id)
        .bind(user_id)
        .execute(&mut **tx)
        .await?;
    if removed.rows_affected() != 1 {
        return Err(DirectoryError::Invalid(
            "that method is not registered to this person".into(),
        ));
    }
    Ok(())
}

/// Checks a method's name: 1 to [`MAX_LABEL_CHARS`] characters, no
/// control characters. Returns it trimmed.
pub fn check_label(label: &str) -> Result<String, DirectoryError> {
    let label = label.trim();
    if label.is_empty()
        || label.chars().count() > MAX_LABEL_CHARS
        || label.chars().any(char::is_control)
    {
        return Err(DirectoryError::Invalid(format!(
            "a method's name has 1 to {MAX_LABEL_CHARS} characters and no control characters"
        )));
    }
    Ok(label.to_string())
}
