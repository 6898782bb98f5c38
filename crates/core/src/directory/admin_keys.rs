//! Admins' own security keys: an admin who registered one signs in to the
//! pane with it (touch and the key's PIN) instead of their PIN. The kiosk
//! asks the key (see `fido::ceremony`); this module keeps the credentials,
//! sealed under the directory key and bound to their admin, and checks a
//! sign-in's answer against them under the admin's lockout.

use super::Tx;
use super::admins::{AdminError, AdminName, AdminRow};
use crate::Directory;
use crate::audit::Event;
use crate::clock::from_seconds;
use crate::fido::{AuthenticationResult, KeyError, NewKey, Passkey};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use rand::rngs::OsRng;
use serde::Serialize;
use sqlx::Row as _;

/// An admin's key as listed.
#[derive(Debug, Clone, Serialize)]
pub struct AdminKey {
    /// Its id.
    pub id: String,
    /// The name the admin gave it.
    pub label: String,
    /// When it was registered.
    pub created_at: DateTime<Utc>,
    /// When it last signed in.
    pub last_used_at: Option<DateTime<Utc>>,
}

/// A stored key with its credential opened.
struct StoredAdminKey {
    key: AdminKey,
    passkey: Passkey,
}

fn context(admin_id: &str, key_id: &str) -> Vec<u8> {
    format!("admin-fido2/{admin_id}/{key_id}").into_bytes()
}

impl Directory {
    /// The keys of the admin `name`.
    pub async fn admin_keys(&self, name: &AdminName) -> Result<Vec<AdminKey>, AdminError> {
        let mut tx = self.pool.begin().await?;
        let admin = self.require_admin(&mut tx, name).await?;
        let keys = self.stored_admin_keys(&mut tx, &admin.id, None).await?;
        Ok(keys.into_iter().map(|k| k.key).collect())
    }

    /// The credentials a sign-in as `name` may answer with: none for an
    /// unknown name, so that the caller asks with a decoy and the key says
    /// "not registered", as it does for another admin's key.
    pub async fn admin_passkeys(&self, name: &AdminName) -> Result<Vec<Passkey>, AdminError> {
        let mut tx = self.pool.begin().await?;
        let Some(admin) = self.find_admin(&mut tx, name).await? else {
            return Ok(Vec::new());
        };
        let keys = self.stored_admin_keys(&mut tx, &admin.id, None).await?;
        Ok(keys.into_iter().map(|k| k.passkey).collect())
    }

    /// Registers a checked key to the admin `name` under `label`.
    pub async fn add_admin_key(
        &self,
        name: &AdminName,
        label: &str,
        key: &NewKey,
    ) -> Result<AdminKey, AdminError> {
        let label = super::methods::check_label(label)?;
        let mut tx = self.write().await?;
        let admin = self.require_admin(&mut tx, name).await?;
        let id = uuid::Uuid::new_v4().to_string();
        let now = self.now();
        let credential_id = URL_SAFE_NO_PAD.encode(key.passkey.cred_id().as_slice());
        let taken = sqlx::query("SELECT id FROM admin_keys WHERE credential_id = $1")
            .bind(&credential_id)
            .fetch_optional(&mut *tx)
            .await?;
        if taken.is_some() {
            return Err(super::DirectoryError::Invalid(
                "that key is already registered to an admin".into(),
            )
            .into());
        }
        sqlx::query(
            "INSERT INTO admin_keys (id, admin_id, label, credential_id, credential, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&id)
        .bind(&admin.id)
        .bind(&label)
        .bind(&credential_id)
        .bind(self.seal_admin_passkey(&admin.id, &id, &key.passkey)?)
        .bind(now.timestamp())
        .execute(&mut *tx)
        .await?;
        let event = Event::new("admin_key_added")
            .with("admin", name)
            .with("key", &id);
        self.audit(&mut tx, event).await?;
        self.commit(tx).await?;
        Ok(AdminKey {
            id,
            label,
            created_at: now,
            last_used_at: None,
        })
    }

    /// Removes the key `key_id` of the admin `name`.
    pub async fn remove_admin_key(&self, name: &AdminName, key_id: &str) -> Result<(), AdminError> {
        let mut tx = self.write().await?;
        let admin = self.require_admin(&mut tx, name).await?;
        let removed = sqlx::query("DELETE FROM admin_keys WHERE id = $1 AND admin_id = $2")
            .bind(key_id)
            .bind(&admin.id)
            .execute(&mut *tx)
            .await?;
        if removed.rows_affected() == 0 {
            let missing = format!("{name} has no security key {key_id}");
            return Err(super::DirectoryError::Invalid(missing).into());
        }
        let event = Event::new("admin_key_removed")
            .with("admin", name)
            .with("key", key_id);
        self.audit(&mut tx, event).await?;
        self.commit(tx).await?;
        Ok(())
    }

    /// Signs the admin `name` in with the outcome of checking their key's
    /// answer (`RelyingParty::finish_authentication`). A refused answer,
    /// or a key that is not theirs, counts towards their lockout like a
    /// wrong PIN; the key's signature counter must move on.
    pub async fn sign_in_admin_with_key(
        &self,
        name: &AdminName,
        checked: Result<AuthenticationResult, KeyError>,
    ) -> Result<(), AdminError> {
        let mut tx = self.write().await?;
        let admin = self.admin_for_attempt(&mut tx, name).await?;
        let verified = match checked {
            Ok(result) => self.admin_key_used(&mut tx, &admin, &result).await?,
            Err(e) => {
                tracing::warn!(%e, admin = %name, "an admin key's answer was refused");
                false
            }
        };
        if !verified {
            let outcome = self.count_wrong(&mut tx, &admin).await;
            self.commit(tx).await?;
            return outcome;
        }
        self.admin_signed_in(&mut tx, &admin, "security_key")
            .await?;
        self.commit(tx).await?;
        Ok(())
    }

    /// Records a sign-in with one of `admin`'s keys: whether the key is
    /// theirs and its counter moved on (then stored).
    async fn admin_key_used(
        &self,
        tx: &mut Tx,
        admin: &AdminRow,
        result: &AuthenticationResult,
    ) -> Result<bool, AdminError> {
        let credential_id = URL_SAFE_NO_PAD.encode(result.cred_id().as_slice());
        let keys = self
            .stored_admin_keys(tx, &admin.id, Some(&credential_id))
            .await?;
        let Some(mut stored) = keys.into_iter().next() else {
            return Ok(false);
        };
        let counter = crate::fido::counter(&stored.passkey);
        if (result.counter() != 0 || counter != 0) && result.counter() <= counter {
            let event = Event::new("key_clone_suspected")
                .with("admin", &admin.name)
                .with("key", &stored.key.id)
                .with("counter", result.counter())
                .with("stored_counter", counter);
            self.audit(tx, event).await?;
            return Ok(false);
        }
        stored.passkey.update_credential(result);
        sqlx::query("UPDATE admin_keys SET credential = $1, last_used_at = $2 WHERE id = $3")
            .bind(self.seal_admin_passkey(&admin.id, &stored.key.id, &stored.passkey)?)
            .bind(self.now().timestamp())
            .bind(&stored.key.id)
            .execute(&mut **tx)
            .await?;
        Ok(true)
    }

    /// The keys of the admin `admin_id`, or only the one with
    /// `credential_id` (base64url) when given.
    async fn stored_admin_keys(
        &self,
        tx: &mut Tx,
        admin_id: &str,
        credential_id: Option<&str>,
    ) -> Result<Vec<StoredAdminKey>, AdminError> {
        const SELECT: &str = "SELECT id, label, credential, created_at, last_used_at FROM admin_keys \
             WHERE admin_id = $1";
        let rows = match credential_id {
            Some(credential_id) => {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "{SELECT} AND credential_id = $2"
                )))
                .bind(admin_id)
                .bind(credential_id)
                .fetch_all(&mut **tx)
                .await?
            }
            None => {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "{SELECT} ORDER BY created_at, id"
                )))
                .bind(admin_id)
                .fetch_all(&mut **tx)
                .await?
            }
        };
        rows.iter()
            .map(|row| {
                let id: String = row.try_get("id")?;
                let sealed: Vec<u8> = row.try_get("credential")?;
                let passkey = self.open_admin_passkey(admin_id, &id, &sealed)?;
                let key = AdminKey {
                    id,
                    label: row.try_get("label")?,
                    created_at: from_seconds(row.try_get("created_at")?),
                    last_used_at: row
                        .try_get::<Option<i64>, _>("last_used_at")?
                        .map(from_seconds),
                };
                Ok(StoredAdminKey { key, passkey })
            })
            .collect()
    }

    fn open_admin_passkey(
        &self,
        admin_id: &str,
        key_id: &str,
        sealed: &[u8],
    ) -> Result<Passkey, AdminError> {
        self.key
            .open(&context(admin_id, key_id), sealed)
            .and_then(|json| serde_json::from_slice(&json).ok())
            .ok_or(AdminError::Directory(super::DirectoryError::Tampered(
                "an admin's security key",
            )))
    }

    fn seal_admin_passkey(
        &self,
        admin_id: &str,
        key_id: &str,
        passkey: &Passkey,
    ) -> Result<Vec<u8>, AdminError> {
        let json = serde_json::to_vec(passkey)
            .map_err(|e| super::DirectoryError::Invalid(e.to_string()))?;
        Ok(self.key.seal(&context(admin_id, key_id), &json, &mut OsRng))
    }
}
