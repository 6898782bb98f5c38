//! Security keys in the directory: registered in a kiosk session, listed,
//! used to sign in. The credential (webauthn-rs's `Passkey`, serialised) is
//! stored sealed under the directory key and bound to its holder and method,
//! so that write access to the database is not enough to slip in a key of
//! one's own, nor to move a key to another person.

use super::methods::check_label;
use super::{Directory, DirectoryError};
use crate::audit::Event;
use crate::clock::from_seconds;
use crate::fido::{AuthenticationResult, KeyError, NewKey, Passkey, Uuid};
use crate::redeem::KioskSession;
use crate::user::MethodSummary;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::rngs::OsRng;
use sqlx::Row;

/// A registered security key.
#[derive(Debug, Clone)]
pub struct StoredKey {
    /// The method as listed.
    pub method: MethodSummary,
    /// The credential.
    pub passkey: Passkey,
    /// The model the key reported when it was registered.
    pub aaguid: Option<Uuid>,
    /// The model a key allow-list goes by (see `NewKey::policy_model`).
    pub policy_model: Option<Uuid>,
}

impl From<KeyError> for DirectoryError {
    fn from(error: KeyError) -> Self {
        match error {
            KeyError::AlreadyRegistered => Self::KeyRegistered,
            KeyError::PossibleClone => Self::KeyCloned,
            KeyError::Unproven { aaguid } => Self::KeyUnproven { aaguid },
            other => Self::Invalid(other.to_string()),
        }
    }
}

fn context(user_id: &str, method_id: &str) -> Vec<u8> {
    format!("fido2/{user_id}/{method_id}").into_bytes()
}

fn credential_id(passkey: &Passkey) -> String {
    URL_SAFE_NO_PAD.encode(passkey.cred_id().as_slice())
}

impl Directory {
    /// The security keys of a person.
    pub async fn security_keys(&self, user_id: &str) -> Result<Vec<StoredKey>, DirectoryError> {
        let rows = sqlx::query(
            "SELECT id, label, created_at, last_used_at, credential, aaguid, policy_aaguid FROM methods \
             WHERE user_id = $1 AND kind = 'fido2' ORDER BY created_at, id",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| self.stored_key(user_id, row))
            .collect()
    }

    fn stored_key(
        &self,
        user_id: &str,
        row: &sqlx::any::AnyRow,
    ) -> Result<StoredKey, DirectoryError> {
        let id: String = row.try_get("id")?;
        let sealed: Vec<u8> = row.try_get("credential")?;
        let passkey = self.open_passkey(user_id, &id, &sealed)?;
        let uuid = |column| {
            let text: Option<String> = row.try_get(column)?;
            Ok::<_, DirectoryError>(text.and_then(|a| Uuid::parse_str(&a).ok()))
        };
        Ok(StoredKey {
            method: MethodSummary {
                id,
                kind: "fido2".into(),
                label: row.try_get("label")?,
                created_at: from_seconds(row.try_get("created_at")?),
                last_used_at: row
                    .try_get::<Option<i64>, _>("last_used_at")?
                    .map(from_seconds),
            },
            passkey,
            aaguid: uuid("aaguid")?,
            policy_model: uuid("policy_aaguid")?,
        })
    }

    fn open_passkey(
        &self,
        user_id: &str,
        method_id: &str,
        sealed: &[u8],
    ) -> Result<Passkey, DirectoryError> {
        self.key
            .open(&context(user_id, method_id), sealed)
            .and_then(|json| serde_json::from_slice(&json).ok())
            .ok_or_else(|| {
                DirectoryError::Invalid(format!(
                    "the security key {method_id} does not open under this directory's key"
                ))
            })
    }

    fn seal_passkey(
        &self,
        user_id: &str,
        method_id: &str,
        passkey: &Passkey,
    ) -> Result<Vec<u8>, DirectoryError> {
        let json =
            serde_json::to_vec(passkey).map_err(|e| DirectoryError::Invalid(e.to_string()))?;
        Ok(self
            .key
            .seal(&context(user_id, method_id), &json, &mut OsRng))
    }

    /// Registers a security key in `session`, if the policy allows its
    /// model; a refused key is audited. The session's one-time pass is used
    /// up in the same transaction as the registration.
    pub async fn add_security_key(
        &self,
        session: &KioskSession,
        label: &str,
        key: &NewKey,
    ) -> Result<MethodSummary, DirectoryError> {
        let label = check_label(label)?;
        let added = async {
            let mut tx = self.session_change(session).await?;
            self.check_model(&mut tx, key.policy_model, key.aaguid)
                .await?;
            let holder = (session.user_id.as_str(), &session.email);
            let method = self
                .insert_key(&mut tx, holder, &label, key, ("session", &session.id))
                .await?;
            crate::crash::point("storing_key");
            self.commit(tx).await?;
            Ok(method)
        };
        self.audit_refusal(&session.email, added.await).await
    }

    /// Registers a security key that IT set up for the person `user_id`
    /// with `email` (staging a key before someone's first day), if the
    /// policy allows its model and the person is still there and enabled.
    pub async fn add_security_key_for(
        &self,
        (user_id, email): (&str, &crate::Email),
        label: &str,
        key: &NewKey,
    ) -> Result<MethodSummary, DirectoryError> {
        let label = check_label(label)?;
        let added = async {
            let mut tx = self.write_person(user_id).await?;
            self.check_model(&mut tx, key.policy_model, key.aaguid)
                .await?;
            let user = self.require_user(&mut tx, email).await?;
            // Removed (and perhaps added again) since the key was set up.
            if user.id != user_id {
                return Err(DirectoryError::UserNotFound(email.clone()));
            }
            if !user.enabled {
                return Err(DirectoryError::UserDisabled(email.clone()));
            }
            let method = self
                .insert_key(&mut tx, (&user.id, email), &label, key, ("staged", "by IT"))
                .await?;
            self.commit(tx).await?;
            Ok(method)
        };
        self.audit_refusal(email, added.await).await
    }

    /// Writes down a refused key, once the transaction that refused it is
    /// gone (a second writer would wait for it on SQLite).
    async fn audit_refusal<T>(
        &self,
        email: &crate::Email,
        result: Result<T, DirectoryError>,
    ) -> Result<T, DirectoryError> {
        match result {
            Err(
                refused @ (DirectoryError::KeyNotAllowed { .. }
                | DirectoryError::KeyUnproven { .. }
                | DirectoryError::KeyRegistered),
            ) => Err(self.refuse_key(email, refused).await),
            other => other,
        }
    }

    async fn insert_key(
        &self,
        tx: &mut super::Tx,
        (user_id, email): (&str, &crate::Email),
        label: &str,
        key: &NewKey,
        (note, value): (&str, &str),
    ) -> Result<MethodSummary, DirectoryError> {
        let id = uuid::Uuid::new_v4().to_string();
        let now = self.now();
        let aaguid = key.aaguid.map(|a| a.to_string());
        sqlx::query(
            "INSERT INTO methods (id, user_id, kind, label, created_at, credential, aaguid, credential_id, policy_aaguid) \
             VALUES ($1, $2, 'fido2', $3, $4, $5, $6, $7, $8)",
        )
        .bind(&id)
        .bind(user_id)
        .bind(label)
        .bind(now.timestamp())
        .bind(self.seal_passkey(user_id, &id, &key.passkey)?)
        .bind(&aaguid)
        .bind(credential_id(&key.passkey))
        .bind(key.policy_model.map(|a| a.to_string()))
        .execute(&mut **tx)
        .await
        .map_err(|e| match &e {
            sqlx::Error::Database(d) if d.is_unique_violation() => DirectoryError::KeyRegistered,
            _ => e.into(),
        })?;
        let event = Event::new("method_added")
            .user(email)
            .with("method", &id)
            .with("kind", "fido2")
            .with("aaguid", &aaguid);
        self.audit(tx, event.with("label", label).with(note, value))
            .await?;
        Ok(MethodSummary {
            id,
            kind: "fido2".into(),
            label: label.to_string(),
            created_at: now,
            last_used_at: None,
        })
    }

    /// Whether the policy, as it is in this transaction, allows the model
    /// `trusted` (see `NewKey::policy_model`); the refusal names `reported`.
    async fn check_model(
        &self,
        tx: &mut super::Tx,
        trusted: Option<Uuid>,
        reported: Option<Uuid>,
    ) -> Result<(), DirectoryError> {
        if self.policy_in(tx).await?.keys.allows(trusted) {
            Ok(())
        } else {
            Err(DirectoryError::KeyNotAllowed { aaguid: reported })
        }
    }

    /// Writes down that a key or its answer was refused for `email`, and
    /// returns the refusal (or why it could not be written down).
    pub async fn refuse_key(
        &self,
        email: &crate::Email,
        refused: DirectoryError,
    ) -> DirectoryError {
        let event = match &refused {
            DirectoryError::KeyNotAllowed { aaguid } => Event::new("key_refused")
                .with("reason", "model")
                .with("aaguid", aaguid.map(|a| a.to_string())),
            DirectoryError::KeyUnproven { aaguid } => Event::new("key_refused")
                .with("reason", "unproven")
                .with("aaguid", aaguid.map(|a| a.to_string())),
            DirectoryError::KeyRegistered => {
                Event::new("key_refused").with("reason", "already_registered")
            }
            DirectoryError::KeyCloned => Event::new("key_clone_suspected"),
            DirectoryError::Invalid(why) => Event::new("key_refused")
                .with("reason", "answer")
                .with("detail", why),
            _ => return refused,
        };
        match self.audit_alone(event.user(email)).await {
            Ok(()) => refused,
            Err(e) => e,
        }
    }

    async fn audit_alone(&self, event: Event) -> Result<(), DirectoryError> {
        let mut tx = self.write_people().await?;
        self.audit(&mut tx, event).await?;
        self.commit(tx).await
    }

    /// The id and keys of an enabled person, for a sign-in check; `None`
    /// for an unknown or disabled person.
    pub async fn keys_of(
        &self,
        email: &crate::Email,
    ) -> Result<Option<(String, Vec<StoredKey>)>, DirectoryError> {
        let user = {
            let mut conn = self.pool.acquire().await?;
            self.find_user(&mut conn, email).await?
        };
        match user {
            Some(user) if user.enabled => {
                let keys = self.security_keys(&user.id).await?;
                Ok(Some((user.id, keys)))
            }
            _ => Ok(None),
        }
    }

    /// Records a verified sign-in with one of a person's keys: its new
    /// signature counter and when it was used, audited. A counter that is
    /// not ahead of the stored one (a cloned key, or another kiosk's
    /// sign-in with the same key in between) is refused.
    pub async fn record_key_sign_in(
        &self,
        user_id: &str,
        email: &crate::Email,
        result: &AuthenticationResult,
    ) -> Result<MethodSummary, DirectoryError> {
        let mut tx = self.write_person(user_id).await?;
        let row = sqlx::query(
            "SELECT id, label, created_at, last_used_at, credential, aaguid, policy_aaguid FROM methods \
             WHERE user_id = $1 AND kind = 'fido2' AND credential_id = $2",
        )
        .bind(user_id)
        .bind(URL_SAFE_NO_PAD.encode(result.cred_id().as_slice()))
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            // Removed while it was signing in, or never this person's.
            drop(tx);
            let unknown =
                DirectoryError::Invalid("that key is not registered to this person".into());
            return Err(self.refuse_key(email, unknown).await);
        };
        let mut key = self.stored_key(user_id, &row)?;
        let trusted = key.policy_model;
        if let Err(refused) = self.check_model(&mut tx, trusted, key.aaguid).await {
            // Restricted after it was registered, or never proven: it no
            // longer signs in.
            drop(tx);
            return Err(self.refuse_key(email, refused).await);
        }
        let stored = crate::fido::counter(&key.passkey);
        if (result.counter() != 0 || stored != 0) && result.counter() <= stored {
            drop(tx);
            let event = Event::new("key_clone_suspected")
                .user(email)
                .with("method", &key.method.id)
                .with("counter", result.counter())
                .with("stored_counter", stored);
            self.audit_alone(event).await?;
            return Err(DirectoryError::KeyCloned);
        }
        key.passkey.update_credential(result);
        let now = self.now();
        sqlx::query("UPDATE methods SET credential = $1, last_used_at = $2 WHERE id = $3")
            .bind(self.seal_passkey(user_id, &key.method.id, &key.passkey)?)
            .bind(now.timestamp())
            .bind(&key.method.id)
            .execute(&mut *tx)
            .await?;
        let event = Event::new("key_used")
            .user(email)
            .with("method", &key.method.id)
            .with("counter", result.counter());
        self.audit(&mut tx, event).await?;
        self.commit(tx).await?;
        key.method.last_used_at = Some(now);
        Ok(key.method)
    }
}
