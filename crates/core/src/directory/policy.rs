//! Reading and changing the pass policy.

use super::{Directory, DirectoryError};
use crate::audit::Event;
use crate::policy::Policy;
use sqlx::Row;

impl Directory {
    /// The policy in force.
    pub async fn policy(&self) -> Result<Policy, DirectoryError> {
        let mut conn = self.pool.acquire().await?;
        self.policy_on(&mut conn).await
    }

    pub(crate) async fn policy_on(
        &self,
        conn: &mut sqlx::AnyConnection,
    ) -> Result<Policy, DirectoryError> {
        self.read_policy(conn, false).await
    }

    /// The policy as a write in `tx` must obey it: on PostgreSQL the row is
    /// held (shared) to the commit, so a change to it being made waits for
    /// this write, or this write for it, and never slips in between the
    /// check and the commit.
    pub(crate) async fn policy_in(&self, tx: &mut super::Tx) -> Result<Policy, DirectoryError> {
        self.read_policy(tx, true).await
    }

    /// The policy, held to the commit if `in_write` (see
    /// [`policy_in`](Self::policy_in)).
    pub(crate) async fn read_policy(
        &self,
        conn: &mut sqlx::AnyConnection,
        in_write: bool,
    ) -> Result<Policy, DirectoryError> {
        let lock = if in_write && self.shared() {
            " FOR SHARE"
        } else {
            ""
        };
        let sql = format!("SELECT settings, mac FROM policy WHERE id = 1{lock}");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_one(&mut *conn)
            .await?;
        let settings: String = row.try_get("settings")?;
        let mac: Option<Vec<u8>> = row.try_get("mac")?;
        if !mac.is_some_and(|mac| {
            self.key
                .record_matches("policy", &[settings.as_bytes()], &mac)
        }) {
            return Err(DirectoryError::Tampered("the pass policy"));
        }
        serde_json::from_str(&settings)
            .map_err(|e| DirectoryError::Invalid(format!("the stored policy cannot be read: {e}")))
    }

    /// The MAC stored beside the policy's settings.
    pub(crate) fn policy_mac(&self, settings: &str) -> Vec<u8> {
        self.key
            .record_mac("policy", &[settings.as_bytes()])
            .to_vec()
    }

    /// Replaces the policy after checking its rules. It applies to new
    /// passes; existing passes keep their lifetime but stop working if the
    /// policy is turned off or no longer targets their holder.
    pub async fn set_policy(&self, policy: &Policy) -> Result<(), DirectoryError> {
        policy.validate()?;
        let mut tx = self.write().await?;
        // Setting the whole policy is also how IT mends one that was
        // changed outside tapkiosk, so a stored policy that fails its MAC
        // is replaced rather than refused (and the log says so).
        let before = match self.policy_on(&mut tx).await {
            Ok(before) => Some(before),
            Err(DirectoryError::Tampered(_)) => None,
            Err(e) => return Err(e),
        };
        self.store_policy(&mut tx, before.as_ref(), policy).await?;
        self.commit(tx).await?;
        Ok(())
    }

    /// Replaces the policy with `policy` only if it is still `read` (what
    /// the caller showed before the change), so that a save does not
    /// silently undo another administrator's.
    pub async fn replace_policy(
        &self,
        read: &Policy,
        policy: &Policy,
    ) -> Result<(), DirectoryError> {
        let replacement = policy.clone();
        self.update_policy(move |current| {
            if current != read {
                return Err(DirectoryError::PolicyChanged);
            }
            *current = replacement;
            Ok(())
        })
        .await
        .map(drop)
    }

    /// Changes the policy in one transaction: `change` edits the current
    /// policy, and the result is checked and stored, so that two
    /// administrators changing different settings at once lose neither.
    pub async fn update_policy(
        &self,
        change: impl FnOnce(&mut Policy) -> Result<(), DirectoryError>,
    ) -> Result<Policy, DirectoryError> {
        let mut tx = self.write().await?;
        let before = self.policy_on(&mut tx).await?;
        let mut policy = before.clone();
        change(&mut policy)?;
        policy.validate()?;
        self.store_policy(&mut tx, Some(&before), &policy).await?;
        self.commit(tx).await?;
        Ok(policy)
    }

    async fn store_policy(
        &self,
        tx: &mut super::Tx,
        before: Option<&Policy>,
        policy: &Policy,
    ) -> Result<(), DirectoryError> {
        let settings =
            serde_json::to_string(policy).map_err(|e| DirectoryError::Invalid(e.to_string()))?;
        sqlx::query("UPDATE policy SET settings = $1, mac = $2, updated_at = $3 WHERE id = 1")
            .bind(&settings)
            .bind(self.policy_mac(&settings))
            .bind(self.now().timestamp())
            .execute(&mut **tx)
            .await?;
        let mut event = Event::new("policy_changed")
            .with("before", before)
            .with("after", policy);
        if before.is_none() {
            event = event.with("replaced_tampered", true);
        }
        self.audit(tx, event).await
    }
}
