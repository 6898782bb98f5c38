//! The admin PIN that opens the kiosk's admin pane: Argon2id, set on first
//! start, locked out on guessing like a pass.

use super::{Directory, DirectoryError};
use crate::audit::Event;
use crate::clock::from_seconds;
use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use chrono::{DateTime, Utc};
use rand::rngs::OsRng;
use sqlx::Row;
use thiserror::Error;

/// Digits in an admin PIN.
pub const PIN_DIGITS: std::ops::RangeInclusive<usize> = 6..=12;

/// Why the admin pane stays closed.
#[derive(Debug, Error)]
pub enum AdminPinError {
    /// No PIN yet: the first start must set one.
    #[error("no admin PIN is set yet")]
    NotSet,
    /// A PIN is already set (setting it again needs the current one).
    #[error("an admin PIN is already set")]
    AlreadySet,
    /// Not 6–12 digits.
    #[error("an admin PIN has 6 to 12 digits")]
    Format,
    /// Wrong PIN.
    #[error("wrong admin PIN: {left} tries left before a lockout")]
    Wrong {
        /// Tries before the lockout.
        left: u32,
    },
    /// Too many wrong PINs.
    #[error("too many wrong PINs: try again after {until}")]
    LockedOut {
        /// When it ends.
        until: DateTime<Utc>,
    },
    /// The directory failed.
    #[error(transparent)]
    Directory(#[from] DirectoryError),
}

impl From<sqlx::Error> for AdminPinError {
    fn from(error: sqlx::Error) -> Self {
        Self::Directory(error.into())
    }
}

fn check_format(pin: &str) -> Result<(), AdminPinError> {
    if PIN_DIGITS.contains(&pin.len()) && pin.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(AdminPinError::Format)
    }
}

impl Directory {
    /// Whether an admin PIN has been set.
    pub async fn admin_pin_is_set(&self) -> Result<bool, DirectoryError> {
        Ok(sqlx::query("SELECT 1 FROM admin_pin WHERE id = 1")
            .fetch_optional(&self.pool)
            .await?
            .is_some())
    }

    /// Sets the first admin PIN. Refused once one is set.
    pub async fn set_admin_pin(&self, pin: &str) -> Result<(), AdminPinError> {
        check_format(pin)?;
        let hash = Argon2::default()
            .hash_password(pin.as_bytes(), &SaltString::generate(&mut OsRng))
            .map_err(|e| DirectoryError::Invalid(e.to_string()))?
            .to_string();
        let mut tx = self.write().await?;
        let inserted = sqlx::query(
            "INSERT INTO admin_pin (id, pin_hash, failures, level, changed_at) VALUES (1, $1, 0, 0, $2) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(hash)
        .bind(self.now().timestamp())
        .execute(&mut *tx)
        .await?;
        if inserted.rows_affected() == 0 {
            return Err(AdminPinError::AlreadySet);
        }
        self.audit(&mut tx, Event::new("admin_pin_set")).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Checks an admin PIN. Wrong PINs count towards a lockout that
    /// follows the pass lockout settings; the right one resets the count.
    pub async fn check_admin_pin(&self, pin: &str) -> Result<(), AdminPinError> {
        let mut tx = self.write().await?;
        let row = sqlx::query(
            "SELECT pin_hash, failures, level, locked_until FROM admin_pin WHERE id = 1",
        )
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(AdminPinError::NotSet)?;
        let now = self.now();
        if let Some(until) = row
            .try_get::<Option<i64>, _>("locked_until")?
            .map(from_seconds)
            .filter(|u| *u > now)
        {
            return Err(AdminPinError::LockedOut { until });
        }
        let stored: String = row.try_get("pin_hash")?;
        let right = PasswordHash::new(&stored).is_ok_and(|hash| {
            Argon2::default()
                .verify_password(pin.as_bytes(), &hash)
                .is_ok()
        });
        let settings = self.settings.lockout;
        let (failures, level): (i64, i64) = (row.try_get("failures")?, row.try_get("level")?);
        let outcome = if right {
            sqlx::query(
                "UPDATE admin_pin SET failures = 0, level = 0, locked_until = NULL WHERE id = 1",
            )
            .execute(&mut *tx)
            .await?;
            self.audit(&mut tx, Event::new("admin_signed_in")).await?;
            Ok(())
        } else if failures + 1 >= i64::from(settings.threshold) {
            let until = now + settings.lock_for(u32::try_from(level).unwrap_or(u32::MAX));
            sqlx::query("UPDATE admin_pin SET failures = 0, level = level + 1, locked_until = $1 WHERE id = 1")
                .bind(until.timestamp())
                .execute(&mut *tx)
                .await?;
            self.audit(&mut tx, Event::new("admin_locked_out").with("until", until))
                .await?;
            Err(AdminPinError::LockedOut { until })
        } else {
            sqlx::query("UPDATE admin_pin SET failures = failures + 1 WHERE id = 1")
                .execute(&mut *tx)
                .await?;
            self.audit(&mut tx, Event::new("admin_pin_wrong")).await?;
            let left = i64::from(settings.threshold) - failures - 1;
            Err(AdminPinError::Wrong {
                left: u32::try_from(left).unwrap_or(0),
            })
        };
        tx.commit().await?;
        outcome
    }
}
