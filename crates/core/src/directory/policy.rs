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
        let settings: String = sqlx::query("SELECT settings FROM policy WHERE id = 1")
            .fetch_one(&mut *conn)
            .await?
            .try_get("settings")?;
        serde_json::from_str(&settings)
            .map_err(|e| DirectoryError::Invalid(format!("the stored policy cannot be read: {e}")))
    }

    /// Replaces the policy after checking its rules. It applies to new
    /// passes; existing passes keep their lifetime but stop working if the
    /// policy is turned off or no longer targets their holder.
    pub async fn set_policy(&self, policy: &Policy) -> Result<(), DirectoryError> {
        let replacement = policy.clone();
        self.update_policy(move |current| {
            *current = replacement;
            Ok(())
        })
        .await
        .map(drop)
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
        let settings =
            serde_json::to_string(&policy).map_err(|e| DirectoryError::Invalid(e.to_string()))?;
        sqlx::query("UPDATE policy SET settings = $1, updated_at = $2 WHERE id = 1")
            .bind(settings)
            .bind(self.now().timestamp())
            .execute(&mut *tx)
            .await?;
        let event = Event::new("policy_changed")
            .with("before", &before)
            .with("after", &policy);
        self.audit(&mut tx, event).await?;
        tx.commit().await?;
        Ok(policy)
    }
}
