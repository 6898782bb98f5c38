//! IT's own credentials for the admin pane: one per person, created only
//! with `tapctl` (which holds the directory key), never by the app.
//!
//! `tapctl admin add NAME` gives a one-time enrolment code; with it the
//! person chooses their PIN at the pane. The PIN is keyed by the directory
//! key before Argon2id, so a copy of the database verifies nothing, and each
//! row carries a MAC, so write access to the database cannot plant a PIN or
//! an enrolment code. Wrong PINs lock out that admin only.

use super::{Directory, DirectoryError, Tx};
use crate::audit::Event;
use crate::clock::from_seconds;
use crate::pass::PassCode;
use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use chrono::{DateTime, TimeDelta, Utc};
use rand::rngs::OsRng;
use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;
use std::fmt;
use subtle::ConstantTimeEq;
use thiserror::Error;
use zeroize::Zeroizing;

/// Digits in an admin PIN.
pub const PIN_DIGITS: std::ops::RangeInclusive<usize> = 6..=12;
/// How long an enrolment code works.
pub const ENROL_LIFETIME: TimeDelta = TimeDelta::hours(24);
/// Characters in an enrolment code (80 bits).
const ENROL_CODE_LENGTH: usize = 16;

/// An administrator's name, as typed at the pane and written in the audit
/// log: 1 to 64 lowercase letters, digits, `.`, `_`, `-` or `@`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct AdminName(String);

impl AdminName {
    /// Reads a name, ignoring case and surrounding spaces.
    pub fn parse(text: &str) -> Result<Self, AdminError> {
        let name = text.trim().to_lowercase();
        let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-@".contains(c);
        if (1..=64).contains(&name.len()) && name.chars().all(allowed) {
            Ok(Self(name))
        } else {
            Err(AdminError::BadName)
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AdminName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why an admin credential was refused or could not be changed.
#[derive(Debug, Error)]
pub enum AdminError {
    /// A name that breaks the rules.
    #[error(
        "an admin name has 1 to 64 characters: lowercase letters, digits, '.', '_', '-' or '@'"
    )]
    BadName,
    /// Not 6–12 digits.
    #[error("an admin PIN has 6 to 12 digits")]
    Format,
    /// Adding a name already taken.
    #[error("there is already an admin called {0}")]
    Exists(AdminName),
    /// No admin by that name.
    #[error("there is no admin called {0}")]
    NotFound(AdminName),
    /// Removing the only admin would lock everyone out of the pane.
    #[error("{0} is the only admin: add another before removing them")]
    LastAdmin(AdminName),
    /// A new PIN typed twice, differently.
    #[error("the two PINs differ")]
    PinsDiffer,
    /// A wrong name, PIN or enrolment code (deliberately the same, so that
    /// the pane does not tell which names exist).
    #[error("wrong name, PIN or enrolment code")]
    Wrong,
    /// Too many wrong PINs or codes for this admin.
    #[error("too many wrong tries: this admin can try again after {until}")]
    LockedOut {
        /// When it ends.
        until: DateTime<Utc>,
    },
    /// The directory failed, or the record was tampered with.
    #[error(transparent)]
    Directory(#[from] DirectoryError),
}

impl From<sqlx::Error> for AdminError {
    fn from(error: sqlx::Error) -> Self {
        Self::Directory(error.into())
    }
}

/// An admin as listed: never the PIN or the code.
#[derive(Debug, Clone, Serialize)]
pub struct AdminSummary {
    /// The name.
    pub name: AdminName,
    /// Whether they have chosen a PIN.
    pub enrolled: bool,
    /// Until when their enrolment code works, if one is waiting.
    pub enrol_until: Option<DateTime<Utc>>,
    /// Until when wrong PINs lock them out, while they do.
    pub locked_until: Option<DateTime<Utc>>,
    /// When they were added.
    pub created_at: DateTime<Utc>,
    /// How many security keys they sign in with.
    pub keys: i64,
}

/// A one-time enrolment code, to be given to the new admin once.
pub type EnrolCode = PassCode;

/// An enrolment code and the end of its life.
pub struct Enrolment {
    /// The code.
    pub code: EnrolCode,
    /// Until when it works.
    pub valid_until: DateTime<Utc>,
}

fn check_pin(pin: &str) -> Result<(), AdminError> {
    if PIN_DIGITS.contains(&pin.len()) && pin.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(AdminError::Format)
    }
}

/// A new admin PIN, typed twice: both the same and within the rules.
pub fn check_new_pin(pin: &str, again: &str) -> Result<(), AdminError> {
    check_pin(pin)?;
    if pin != again {
        return Err(AdminError::PinsDiffer);
    }
    Ok(())
}

/// One admin row, as read (and vouched for by its MAC).
pub(super) struct AdminRow {
    pub(super) id: String,
    pub(super) name: AdminName,
    pin_hash: Option<String>,
    enrol_mac: Option<Vec<u8>>,
    enrol_until: Option<i64>,
    failures: i64,
    level: i64,
    locked_until: Option<i64>,
    created_at: i64,
    keys: i64,
}

impl AdminRow {
    fn read(row: &AnyRow) -> Result<Self, sqlx::Error> {
        Ok(Self {
            id: row.try_get("id")?,
            name: AdminName(row.try_get("name")?),
            pin_hash: row.try_get("pin_hash")?,
            enrol_mac: row.try_get("enrol_mac")?,
            enrol_until: row.try_get("enrol_until")?,
            failures: row.try_get("failures")?,
            level: row.try_get("level")?,
            locked_until: row.try_get("locked_until")?,
            created_at: row.try_get("created_at")?,
            keys: row.try_get("keys")?,
        })
    }

    fn summary(&self, now: DateTime<Utc>) -> AdminSummary {
        AdminSummary {
            name: self.name.clone(),
            enrolled: self.pin_hash.is_some(),
            enrol_until: self.enrol_until.map(from_seconds),
            locked_until: self.locked_until.map(from_seconds).filter(|u| *u > now),
            created_at: from_seconds(self.created_at),
            keys: self.keys,
        }
    }
}

/// The fields an admin row's MAC covers: who it is and what opens it.
fn mac_parts<'a>(
    id: &'a str,
    name: &'a str,
    pin_hash: Option<&'a str>,
    enrol_mac: Option<&'a [u8]>,
    enrol_until: &'a [u8; 8],
) -> [&'a [u8]; 5] {
    [
        id.as_bytes(),
        name.as_bytes(),
        pin_hash.map_or(b"-".as_slice(), str::as_bytes),
        enrol_mac.unwrap_or(b"-"),
        enrol_until,
    ]
}

const SELECT_ADMIN: &str = "SELECT id, name, pin_hash, enrol_mac, enrol_until, failures, level, \
     locked_until, created_at, mac, \
     (SELECT COUNT(*) FROM admin_keys WHERE admin_id = admins.id) AS keys FROM admins";

impl Directory {
    /// The same directory, writing `actor` into the audit log (an admin
    /// acting in the pane, say).
    pub fn acting_as(&self, actor: String) -> Self {
        let mut directory = self.clone();
        directory.settings.actor = actor;
        directory
    }

    /// Every admin, by name.
    pub async fn admins(&self) -> Result<Vec<AdminSummary>, AdminError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!("{SELECT_ADMIN} ORDER BY name")))
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| Ok(self.checked(row)?.summary(self.now())))
            .collect()
    }

    /// Adds an admin with no PIN yet; returns their one-time enrolment code.
    pub async fn add_admin(&self, name: &AdminName) -> Result<Enrolment, AdminError> {
        let mut tx = self.write().await?;
        if self.find_admin(&mut tx, name).await?.is_some() {
            return Err(AdminError::Exists(name.clone()));
        }
        let id = uuid::Uuid::new_v4().to_string();
        let now = self.now().timestamp();
        sqlx::query(
            "INSERT INTO admins (id, name, failures, level, created_at, mac) VALUES ($1, $2, 0, 0, $3, $4)",
        )
        .bind(&id)
        .bind(name.as_str())
        .bind(now)
        .bind(self.admin_mac(&id, name.as_str(), None, None, None))
        .execute(&mut *tx)
        .await?;
        let code = self.new_enrol_code(&mut tx, &id, name).await?;
        let event = Event::new("admin_added").with("admin", name);
        self.audit(&mut tx, event).await?;
        self.commit(tx).await?;
        Ok(code)
    }

    /// Forgets an admin's PIN, security keys and lockout and gives a new
    /// enrolment code (a forgotten PIN, a lost key, a lockout IT must lift
    /// at once).
    pub async fn reset_admin(&self, name: &AdminName) -> Result<Enrolment, AdminError> {
        let mut tx = self.write().await?;
        let admin = self.require_admin(&mut tx, name).await?;
        sqlx::query("DELETE FROM admin_keys WHERE admin_id = $1")
            .bind(&admin.id)
            .execute(&mut *tx)
            .await?;
        let code = self.new_enrol_code(&mut tx, &admin.id, name).await?;
        self.audit(&mut tx, Event::new("admin_reset").with("admin", name))
            .await?;
        self.commit(tx).await?;
        Ok(code)
    }

    /// Removes an admin; refused for the only one.
    pub async fn remove_admin(&self, name: &AdminName) -> Result<(), AdminError> {
        let mut tx = self.write().await?;
        let admin = self.require_admin(&mut tx, name).await?;
        let count: i64 = sqlx::query("SELECT COUNT(*) AS n FROM admins")
            .fetch_one(&mut *tx)
            .await?
            .try_get("n")?;
        if count <= 1 {
            return Err(AdminError::LastAdmin(name.clone()));
        }
        sqlx::query("DELETE FROM admins WHERE id = $1")
            .bind(&admin.id)
            .execute(&mut *tx)
            .await?;
        self.audit(&mut tx, Event::new("admin_removed").with("admin", name))
            .await?;
        self.commit(tx).await?;
        Ok(())
    }

    /// Sets an admin's PIN directly (`tapctl`, which holds the key).
    pub async fn set_admin_pin(&self, name: &AdminName, pin: &str) -> Result<(), AdminError> {
        check_pin(pin)?;
        let not_found = || AdminError::NotFound(name.clone());
        let seen = self.read_admin(name).await?.ok_or_else(not_found)?;
        let hash = self.hash_pin(&seen.id, pin).await?;
        let mut tx = self.write().await?;
        let admin = self.require_admin(&mut tx, name).await?;
        if admin.id != seen.id {
            // Removed and added again while the PIN was hashed for the first.
            return Err(not_found());
        }
        self.store_hash(&mut tx, &admin, &hash).await?;
        self.audit(&mut tx, Event::new("admin_pin_set").with("admin", name))
            .await?;
        self.commit(tx).await?;
        Ok(())
    }

    /// Chooses a PIN at the pane with the enrolment code from `tapctl`.
    /// A wrong code counts towards the admin's lockout like a wrong PIN.
    pub async fn enrol_admin(
        &self,
        name: &AdminName,
        code: &str,
        pin: &str,
    ) -> Result<(), AdminError> {
        check_pin(pin)?;
        // The new PIN is hashed before the write opens, for the admin as
        // read now; the write goes on only if their code is still the one
        // checked.
        let seen = self.read_admin(name).await?.ok_or(AdminError::Wrong)?;
        self.refuse_if_locked(&seen)?;
        let hash = match self.enrol_code_right(&seen, code) {
            true => Some(self.hash_pin(&seen.id, pin).await?),
            false => None,
        };
        let mut tx = self.write().await?;
        let admin = self.admin_for_attempt(&mut tx, name).await?;
        if admin.id != seen.id || admin.enrol_mac != seen.enrol_mac {
            // Reset or removed meanwhile: this try proves nothing.
            return Err(AdminError::Wrong);
        }
        let Some(hash) = hash.filter(|_| self.enrol_code_right(&admin, code)) else {
            let outcome = self.count_wrong(&mut tx, &admin).await;
            self.commit(tx).await?;
            return outcome;
        };
        self.store_hash(&mut tx, &admin, &hash).await?;
        self.audit(&mut tx, Event::new("admin_enrolled").with("admin", name))
            .await?;
        self.commit(tx).await?;
        Ok(())
    }

    /// Checks an admin's PIN at the pane. An unknown name takes the same
    /// Argon2 work and gets the same answer as a wrong PIN.
    pub async fn sign_in_admin(&self, name: &AdminName, pin: &str) -> Result<(), AdminError> {
        // Argon2 runs before the write opens, on the admin as read now; the
        // write then counts the try, or signs in, only if their PIN is
        // still the one checked.
        let seen = self.read_admin(name).await?;
        if let Some(seen) = &seen {
            self.refuse_if_locked(seen)?;
        }
        let right = self.pin_matches(seen.as_ref(), pin).await?;
        let seen = seen.ok_or(AdminError::Wrong)?;
        let mut tx = self.write().await?;
        let admin = self.admin_for_attempt(&mut tx, name).await?;
        if admin.id != seen.id || admin.pin_hash != seen.pin_hash {
            // Reset, removed or given a new PIN meanwhile.
            return Err(AdminError::Wrong);
        }
        if !right {
            let outcome = self.count_wrong(&mut tx, &admin).await;
            self.commit(tx).await?;
            return outcome;
        }
        self.admin_signed_in(&mut tx, &admin, "pin").await?;
        self.commit(tx).await?;
        Ok(())
    }

    /// Ends `admin`'s count of wrong tries and logs their sign-in with
    /// `method` (`pin` or `security_key`).
    pub(super) async fn admin_signed_in(
        &self,
        tx: &mut Tx,
        admin: &AdminRow,
        method: &str,
    ) -> Result<(), AdminError> {
        sqlx::query("UPDATE admins SET failures = 0, level = 0, locked_until = NULL WHERE id = $1")
            .bind(&admin.id)
            .execute(&mut **tx)
            .await?;
        let event = Event::new("admin_signed_in")
            .with("admin", &admin.name)
            .with("method", method);
        self.audit(tx, event).await?;
        Ok(())
    }

    /// The admin row for a sign-in or enrolment attempt: `Wrong` for an
    /// unknown name, `LockedOut` while locked.
    pub(super) async fn admin_for_attempt(
        &self,
        tx: &mut Tx,
        name: &AdminName,
    ) -> Result<AdminRow, AdminError> {
        let admin = self.find_admin(tx, name).await?.ok_or(AdminError::Wrong)?;
        self.refuse_if_locked(&admin)?;
        Ok(admin)
    }

    fn refuse_if_locked(&self, admin: &AdminRow) -> Result<(), AdminError> {
        match admin.locked_until.map(from_seconds) {
            Some(until) if until > self.now() => Err(AdminError::LockedOut { until }),
            _ => Ok(()),
        }
    }

    /// Whether `code` is `admin`'s enrolment code, still valid.
    fn enrol_code_right(&self, admin: &AdminRow, code: &str) -> bool {
        let now = self.now().timestamp();
        match (&admin.enrol_mac, admin.enrol_until, PassCode::parse(code)) {
            (Some(stored), Some(until), Ok(code)) if until > now => {
                bool::from(self.enrol_mac(&admin.id, &code).ct_eq(stored.as_slice()))
            }
            _ => false,
        }
    }

    /// Counts a wrong PIN or code for `admin`; always an error.
    pub(super) async fn count_wrong(
        &self,
        tx: &mut Tx,
        admin: &AdminRow,
    ) -> Result<(), AdminError> {
        let settings = self.settings.lockout;
        if admin.failures + 1 < i64::from(settings.threshold) {
            sqlx::query("UPDATE admins SET failures = failures + 1 WHERE id = $1")
                .bind(&admin.id)
                .execute(&mut **tx)
                .await?;
            let event = Event::new("admin_pin_wrong").with("admin", &admin.name);
            self.audit(tx, event).await?;
            return Err(AdminError::Wrong);
        }
        let level = u32::try_from(admin.level).unwrap_or(u32::MAX);
        let until = self.now() + settings.lock_for(level);
        sqlx::query(
            "UPDATE admins SET failures = 0, level = level + 1, locked_until = $1 WHERE id = $2",
        )
        .bind(until.timestamp())
        .bind(&admin.id)
        .execute(&mut **tx)
        .await?;
        let event = Event::new("admin_locked_out")
            .with("admin", &admin.name)
            .with("until", until);
        self.audit(tx, event).await?;
        Err(AdminError::LockedOut { until })
    }

    /// Stores `hash`, a new PIN's, for `admin`, ending any enrolment code
    /// and lockout.
    async fn store_hash(
        &self,
        tx: &mut Tx,
        admin: &AdminRow,
        hash: &str,
    ) -> Result<(), AdminError> {
        let mac = self.admin_mac(&admin.id, admin.name.as_str(), Some(hash), None, None);
        sqlx::query(
            "UPDATE admins SET pin_hash = $1, enrol_mac = NULL, enrol_until = NULL, failures = 0, \
             level = 0, locked_until = NULL, mac = $2 WHERE id = $3",
        )
        .bind(hash)
        .bind(mac)
        .bind(&admin.id)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// Draws an enrolment code for the admin `id`, forgetting their PIN.
    async fn new_enrol_code(
        &self,
        tx: &mut Tx,
        id: &str,
        name: &AdminName,
    ) -> Result<Enrolment, AdminError> {
        let code = PassCode::generate(ENROL_CODE_LENGTH, &mut OsRng);
        let valid_until = self.now() + ENROL_LIFETIME;
        let until = valid_until.timestamp();
        let enrol_mac = self.enrol_mac(id, &code);
        let mac = self.admin_mac(id, name.as_str(), None, Some(&enrol_mac), Some(until));
        sqlx::query(
            "UPDATE admins SET pin_hash = NULL, enrol_mac = $1, enrol_until = $2, failures = 0, \
             level = 0, locked_until = NULL, mac = $3 WHERE id = $4",
        )
        .bind(enrol_mac.to_vec())
        .bind(until)
        .bind(mac)
        .bind(id)
        .execute(&mut **tx)
        .await?;
        Ok(Enrolment { code, valid_until })
    }

    pub(super) async fn find_admin(
        &self,
        tx: &mut Tx,
        name: &AdminName,
    ) -> Result<Option<AdminRow>, AdminError> {
        self.fetch_admin(tx, name).await
    }

    /// The admin `name` as they are now, outside any write.
    async fn read_admin(&self, name: &AdminName) -> Result<Option<AdminRow>, AdminError> {
        let mut conn = self.pool.acquire().await.map_err(DirectoryError::from)?;
        self.fetch_admin(&mut conn, name).await
    }

    async fn fetch_admin(
        &self,
        conn: &mut sqlx::AnyConnection,
        name: &AdminName,
    ) -> Result<Option<AdminRow>, AdminError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{SELECT_ADMIN} WHERE name = $1"
        )))
        .bind(name.as_str())
        .fetch_optional(conn)
        .await?;
        row.map(|row| self.checked(&row)).transpose()
    }

    pub(super) async fn require_admin(
        &self,
        tx: &mut Tx,
        name: &AdminName,
    ) -> Result<AdminRow, AdminError> {
        self.find_admin(tx, name)
            .await?
            .ok_or_else(|| AdminError::NotFound(name.clone()))
    }

    /// Reads an admin row, refusing one whose MAC does not match.
    fn checked(&self, row: &AnyRow) -> Result<AdminRow, AdminError> {
        let admin = AdminRow::read(row)?;
        let stored: Vec<u8> = row.try_get("mac")?;
        let until = admin.enrol_until.unwrap_or(0).to_be_bytes();
        let parts = mac_parts(
            &admin.id,
            admin.name.as_str(),
            admin.pin_hash.as_deref(),
            admin.enrol_mac.as_deref(),
            &until,
        );
        if self.key.record_matches("admin", &parts, &stored) {
            Ok(admin)
        } else {
            Err(DirectoryError::Tampered("an admin's credential").into())
        }
    }

    fn admin_mac(
        &self,
        id: &str,
        name: &str,
        pin_hash: Option<&str>,
        enrol_mac: Option<&[u8]>,
        enrol_until: Option<i64>,
    ) -> Vec<u8> {
        let until = enrol_until.unwrap_or(0).to_be_bytes();
        let parts = mac_parts(id, name, pin_hash, enrol_mac, &until);
        self.key.record_mac("admin", &parts).to_vec()
    }

    fn enrol_mac(&self, id: &str, code: &PassCode) -> [u8; 32] {
        self.key.record_mac(
            "admin enrolment code",
            &[id.as_bytes(), code.expose().as_bytes()],
        )
    }

    /// The PIN as Argon2 sees it: keyed by the directory key first, so that
    /// a copy of the database alone cannot test a single guess.
    fn keyed_pin(&self, id: &str, pin: &str) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(
            self.key
                .record_mac("admin pin", &[id.as_bytes(), pin.as_bytes()]),
        )
    }

    /// Argon2id of a new PIN for the admin with `id`, on a thread of its
    /// own: tens of milliseconds of CPU that must hold up neither a write
    /// nor the async workers.
    async fn hash_pin(&self, id: &str, pin: &str) -> Result<String, AdminError> {
        let keyed = self.keyed_pin(id, pin);
        let hashed = tokio::task::spawn_blocking(move || {
            Argon2::default()
                .hash_password(keyed.as_ref(), &SaltString::generate(&mut OsRng))
                .map(|hash| hash.to_string())
                .map_err(|e| e.to_string())
        });
        let hash = hashed
            .await
            .map_err(|e| DirectoryError::Invalid(e.to_string()))?;
        Ok(hash.map_err(DirectoryError::Invalid)?)
    }

    /// Whether `pin` is `admin`'s (an unknown admin's check takes the same
    /// work), on a thread of its own as [`hash_pin`](Self::hash_pin).
    async fn pin_matches(&self, admin: Option<&AdminRow>, pin: &str) -> Result<bool, AdminError> {
        let (id, stored) = admin.map_or((String::new(), None), |a| {
            (a.id.clone(), a.pin_hash.clone())
        });
        let keyed = self.keyed_pin(&id, pin);
        let checked = tokio::task::spawn_blocking(move || {
            crate::crash::point("checking_admin_pin");
            verify_keyed_pin(stored.as_deref(), &keyed)
        });
        Ok(checked
            .await
            .map_err(|e| DirectoryError::Invalid(e.to_string()))?)
    }
}

/// Checks a keyed PIN against its stored Argon2 hash. Without one (an
/// unknown name, an admin not yet enrolled), a throwaway hash keeps the
/// work the same.
fn verify_keyed_pin(stored: Option<&str>, keyed: &[u8; 32]) -> bool {
    static THROWAWAY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let stored = stored.unwrap_or_else(|| {
        THROWAWAY.get_or_init(|| {
            Argon2::default()
                .hash_password(b"no pin", &SaltString::generate(&mut OsRng))
                .map(|h| h.to_string())
                .unwrap_or_default()
        })
    });
    PasswordHash::new(stored)
        .is_ok_and(|hash| Argon2::default().verify_password(keyed, &hash).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_pin_is_typed_twice_the_same_and_within_the_rules() {
        assert!(check_new_pin("135792", "135792").is_ok());
        assert!(matches!(
            check_new_pin("135792", "135729"),
            Err(AdminError::PinsDiffer)
        ));
        // The rules come first: a short PIN typed twice the same is refused.
        assert!(matches!(
            check_new_pin("1357", "1357"),
            Err(AdminError::Format)
        ));
        assert!(matches!(
            check_new_pin("13579a", "13579a"),
            Err(AdminError::Format)
        ));
    }
}
