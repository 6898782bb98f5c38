//! Signing in at a kiosk with a pass.
//!
//! The rules: an unknown email and a wrong pass look the same to the person
//! (and both count towards the lockout of the email typed); only a correct
//! pass may say that it expired, has not started, was used or revoked; a
//! one-time pass is claimed atomically, so two kiosks can never both sign in
//! with it, and the claim is a lease: a session that dies without
//! committing gives the pass back when the lease runs out.

use crate::audit::Event;
use crate::clock::from_seconds;
use crate::directory::{Directory, DirectoryError, Tx, pass_from_row, select_passes};
use crate::email::Email;
use crate::pass::{PassCode, PassStatus};
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::Row;
use thiserror::Error;

/// A person signed in at a kiosk with a pass.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KioskSession {
    /// Identifies the session (and its claim on a one-time pass).
    pub id: String,
    /// The person.
    pub user_id: String,
    /// Their email.
    pub email: Email,
    /// Their display name.
    pub display_name: Option<String>,
    /// The pass that opened the session.
    pub pass_id: String,
    /// Whether that pass is one-time.
    pub one_time: bool,
    /// When the session started.
    pub started_at: DateTime<Utc>,
    /// When it must end: the session limit, and never after the pass ends.
    pub ends_at: DateTime<Utc>,
}

/// Why a sign-in with a pass did not open a session.
#[derive(Debug, Error)]
pub enum RedeemError {
    /// The email is unknown or the pass is wrong (deliberately the same).
    #[error("the email or the pass is not right")]
    InvalidCredentials,
    /// Too many wrong passes for this email.
    #[error("too many wrong passes: try again after {until}")]
    LockedOut {
        /// When the lockout ends.
        until: DateTime<Utc>,
    },
    /// A correct pass whose start is ahead.
    #[error("this pass starts working at {starts}")]
    NotYetValid {
        /// When it starts.
        starts: DateTime<Utc>,
    },
    /// A correct pass whose lifetime is over.
    #[error("this pass has expired")]
    Expired,
    /// A correct one-time pass already used.
    #[error("this pass has already been used")]
    Used,
    /// A correct pass that was revoked or replaced.
    #[error("this pass has been revoked")]
    Revoked,
    /// A correct pass that the policy does not allow now.
    #[error("passes are turned off for this account by policy")]
    DisabledByPolicy,
    /// A correct pass of a disabled account.
    #[error("this account is disabled")]
    AccountDisabled,
    /// A correct one-time pass held by a session at another kiosk.
    #[error("this pass is in use at another kiosk until {until}")]
    InUse {
        /// When that claim lapses if the other session stops answering.
        until: DateTime<Utc>,
    },
    /// The directory failed.
    #[error(transparent)]
    Directory(#[from] DirectoryError),
}

impl From<sqlx::Error> for RedeemError {
    fn from(error: sqlx::Error) -> Self {
        Self::Directory(error.into())
    }
}

/// A user id no one has, for the look-ups made for unknown emails.
const NO_USER: &str = "00000000-0000-0000-0000-000000000000";
/// The row compared with when fewer than [`RECENT_PASSES`] exist.
fn no_pass() -> crate::pass::Pass {
    crate::pass::Pass {
        id: String::new(),
        user_id: NO_USER.to_string(),
        created_at: DateTime::UNIX_EPOCH,
        start_at: DateTime::UNIX_EPOCH,
        lifetime_minutes: 0,
        one_time: false,
        revoked_at: None,
        used_at: None,
    }
}

/// How many passes a typed pass is compared with: the live one first, then the
/// newest. Older ones have long expired and count as any wrong pass.
const RECENT_PASSES: usize = 10;

/// What happened, for the audit log and the answer.
enum Outcome {
    Session(KioskSession),
    /// A wrong guess: counts towards the lockout.
    Failed(&'static str),
    /// A correct pass that cannot be used now: does not count.
    Refused(RedeemError, &'static str),
}

impl Directory {
    /// Signs a person in with their email and pass.
    pub async fn redeem(
        &self,
        typed_email: &str,
        typed_pass: &str,
    ) -> Result<KioskSession, RedeemError> {
        let mut tx = self.write_people().await?;
        let lock_key = self.typed_identity(typed_email);
        self.lock_key(&mut tx, &lock_key).await?;
        let kiosk_key = self.kiosk_identity();
        let now = self.now();
        for (key, reason) in [(&kiosk_key, "kiosk_throttled"), (&lock_key, "locked_out")] {
            if let Some(until) = self.locked_until(&mut tx, key).await? {
                let refused = self.count_refusal(&mut tx, key).await?;
                if refused.count_ones() == 1 {
                    let event = Event::new("sign_in_failed")
                        .who(&lock_key)
                        .with("reason", reason)
                        .with("refused_in_lockout", refused);
                    self.audit(&mut tx, event).await?;
                }
                self.commit(tx).await?;
                return Err(RedeemError::LockedOut { until });
            }
        }
        let result = match self
            .check_pass(&mut tx, typed_email, typed_pass, now)
            .await?
        {
            Outcome::Session(session) => {
                self.clear_failures(&mut tx, &lock_key).await?;
                let event = Event::new("pass_redeemed")
                    .user(&session.email)
                    .pass(&session.pass_id)
                    .with("session", &session.id)
                    .with("one_time", session.one_time);
                self.audit(&mut tx, event).await?;
                Ok(session)
            }
            Outcome::Refused(error, reason) => {
                let event = Event::new("sign_in_failed")
                    .who(&lock_key)
                    .with("reason", reason);
                self.audit(&mut tx, event).await?;
                Err(error)
            }
            Outcome::Failed(reason) => {
                let event = Event::new("sign_in_failed")
                    .who(&lock_key)
                    .with("reason", reason);
                self.audit(&mut tx, event).await?;
                let settings = self.settings.lockout;
                let email_lock = self
                    .record_failure(&mut tx, &lock_key, settings.threshold)
                    .await?;
                let kiosk_lock = self
                    .record_failure(&mut tx, &kiosk_key, settings.kiosk_threshold)
                    .await?;
                match email_lock.max(kiosk_lock) {
                    Some(until) => Err(RedeemError::LockedOut { until }),
                    None => Err(RedeemError::InvalidCredentials),
                }
            }
        };
        self.commit(tx).await?;
        if result.is_ok() {
            crate::crash::point("claimed");
        }
        result
    }

    async fn check_pass(
        &self,
        tx: &mut Tx,
        typed_email: &str,
        typed_pass: &str,
        now: DateTime<Utc>,
    ) -> Result<Outcome, RedeemError> {
        let Ok(code) = PassCode::parse(typed_pass) else {
            return Ok(Outcome::Failed("malformed_pass"));
        };
        let user = match Email::parse(typed_email) {
            Ok(email) => self.lock_user(tx, &email).await?,
            Err(_) => None,
        };
        // The same queries and the same number of HMACs whether or not the
        // person exists, so that timing does not tell an unknown email from
        // a wrong pass.
        let user_id = user.as_ref().map_or(NO_USER, |u| u.id.as_str());
        if user.is_none() {
            crate::directory::groups_of(tx, NO_USER).await?;
        }
        let rows = sqlx::query(select_passes!(
            "WHERE user_id = $1 AND pending_until IS NULL \
             ORDER BY (revoked_at IS NULL AND used_at IS NULL) DESC, created_at DESC LIMIT 10"
        ))
        .bind(user_id)
        .fetch_all(&mut **tx)
        .await?;
        let value_mac = self.key.pass_mac(&code);
        let mut matched = None;
        for i in 0..RECENT_PASSES {
            // Rows beyond those found are compared as an empty row, so that
            // the number of HMACs does not depend on the rows.
            let (pass, stored) = match rows.get(i) {
                Some(row) => (pass_from_row(row)?, row.try_get("value_mac")?),
                None => (no_pass(), Vec::new()),
            };
            if self.key.pass_matches(&value_mac, &pass.binding(), &stored) && matched.is_none() {
                matched = rows.get(i);
            }
        }
        let Some(user) = user else {
            return Ok(Outcome::Failed("unknown_email"));
        };
        let Some(row) = matched else {
            return Ok(Outcome::Failed("wrong_pass"));
        };
        let pass = pass_from_row(row)?;
        if pass.status(true, now).is_live() && self.pass_has_ended(tx, &pass.id).await? {
            return Ok(Outcome::Refused(RedeemError::Revoked, "pass_tampered"));
        }
        if !user.enabled {
            return Ok(Outcome::Refused(
                RedeemError::AccountDisabled,
                "account_disabled",
            ));
        }
        let policy = self.policy_in(tx).await?;
        let refused = |error, reason| Ok(Outcome::Refused(error, reason));
        match pass.status(policy.allows(&user.groups), now) {
            PassStatus::Usable => {}
            PassStatus::NotYetValid => {
                return refused(
                    RedeemError::NotYetValid {
                        starts: pass.start_at,
                    },
                    "not_yet_valid",
                );
            }
            PassStatus::Expired => return refused(RedeemError::Expired, "expired"),
            PassStatus::Used => return refused(RedeemError::Used, "used"),
            PassStatus::Revoked => return refused(RedeemError::Revoked, "revoked"),
            PassStatus::DisabledByPolicy => {
                return refused(RedeemError::DisabledByPolicy, "disabled_by_policy");
            }
        }
        let session_id = uuid::Uuid::new_v4().to_string();
        if pass.one_time {
            let claim_until = (now + self.settings.session.claim_lease).timestamp();
            let claimed = sqlx::query(
                "UPDATE passes SET claimed_by = $1, claim_until = $2 WHERE id = $3 AND used_at IS NULL \
                 AND revoked_at IS NULL AND (claimed_by IS NULL OR claim_until <= $4) RETURNING id",
            )
            .bind(&session_id)
            .bind(claim_until)
            .bind(&pass.id)
            .bind(now.timestamp())
            .fetch_optional(&mut **tx)
            .await?;
            if claimed.is_none() {
                let until = row
                    .try_get::<Option<i64>, _>("claim_until")?
                    .map_or(now, from_seconds);
                return refused(RedeemError::InUse { until }, "in_use_elsewhere");
            }
        }
        Ok(Outcome::Session(KioskSession {
            id: session_id,
            user_id: user.id,
            email: user.email,
            display_name: user.display_name,
            pass_id: pass.id.clone(),
            one_time: pass.one_time,
            started_at: now,
            ends_at: (now + self.settings.session.limit).min(pass.end_at()),
        }))
    }

    /// Whether the audit log says the pass was used up, revoked or
    /// replaced: a row edited back to "live" in the database is caught here.
    async fn pass_has_ended(&self, tx: &mut Tx, pass_id: &str) -> Result<bool, DirectoryError> {
        let ended: i64 = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM audit_events WHERE pass_id = $1 \
             AND kind IN ('pass_used', 'pass_revoked', 'pass_replaced')) \
             + (SELECT COUNT(*) FROM audit_pending WHERE pass_id = $1 \
             AND kind IN ('pass_used', 'pass_revoked', 'pass_replaced')) AS n",
        )
        .bind(pass_id)
        .fetch_one(&mut **tx)
        .await?
        .try_get("n")?;
        Ok(ended > 0)
    }

    async fn locked_until(
        &self,
        tx: &mut Tx,
        key: &str,
    ) -> Result<Option<DateTime<Utc>>, DirectoryError> {
        let row = sqlx::query("SELECT locked_until FROM lockouts WHERE email = $1")
            .bind(key)
            .fetch_optional(&mut **tx)
            .await?;
        let now = self.now();
        Ok(row
            .map(|r| r.try_get::<i64, _>("locked_until"))
            .transpose()?
            .map(from_seconds)
            .filter(|until| *until > now))
    }

    /// Counts a sign-in refused because `key` is locked; returns how many
    /// this lockout has refused. Only the 1st, 2nd, 4th, 8th… are audited
    /// (each with this count): a million tries at a locked email add about
    /// twenty events, not a million.
    async fn count_refusal(&self, tx: &mut Tx, key: &str) -> Result<i64, DirectoryError> {
        Ok(sqlx::query(
            "UPDATE lockouts SET refused = refused + 1 WHERE email = $1 RETURNING refused",
        )
        .bind(key)
        .fetch_one(&mut **tx)
        .await?
        .try_get("refused")?)
    }

    /// Counts a wrong guess; returns the end of the lockout it triggers.
    async fn record_failure(
        &self,
        tx: &mut Tx,
        key: &str,
        threshold: u32,
    ) -> Result<Option<DateTime<Utc>>, RedeemError> {
        let settings = self.settings.lockout;
        let now = self.now();
        let window_start = (now - settings.window).timestamp();
        sqlx::query("DELETE FROM sign_in_failures WHERE email = $1 AND failed_at <= $2")
            .bind(key)
            .bind(window_start)
            .execute(&mut **tx)
            .await?;
        sqlx::query("INSERT INTO sign_in_failures (email, failed_at) VALUES ($1, $2)")
            .bind(key)
            .bind(now.timestamp())
            .execute(&mut **tx)
            .await?;
        let failures: i64 =
            sqlx::query("SELECT COUNT(*) AS n FROM sign_in_failures WHERE email = $1")
                .bind(key)
                .fetch_one(&mut **tx)
                .await?
                .try_get("n")?;
        if failures < i64::from(threshold) {
            return Ok(None);
        }
        let level = self.lockout_level(tx, key).await?;
        let until = now + settings.lock_for(u32::try_from(level).unwrap_or(u32::MAX));
        sqlx::query(
            "INSERT INTO lockouts (email, locked_until, level) VALUES ($1, $2, $3) \
             ON CONFLICT (email) DO UPDATE SET locked_until = excluded.locked_until, level = excluded.level, refused = 0",
        )
        .bind(key)
        .bind(until.timestamp())
        .bind(level + 1)
        .execute(&mut **tx)
        .await?;
        sqlx::query("DELETE FROM sign_in_failures WHERE email = $1")
            .bind(key)
            .execute(&mut **tx)
            .await?;
        let event = Event::new("locked_out")
            .who(key)
            .with("until", until)
            .with("failures", failures);
        self.audit(tx, event).await?;
        Ok(Some(until))
    }

    /// How many lockouts came before for `key`. The escalation decays: a
    /// lockout that ended longer ago than the longest lockout is forgotten,
    /// so a person who mistyped twice last month starts again at the first.
    async fn lockout_level(&self, tx: &mut Tx, key: &str) -> Result<i64, DirectoryError> {
        let row = sqlx::query("SELECT level, locked_until FROM lockouts WHERE email = $1")
            .bind(key)
            .fetch_optional(&mut **tx)
            .await?;
        let Some(row) = row else { return Ok(0) };
        let ended = from_seconds(row.try_get("locked_until")?);
        if ended + self.settings.lockout.max_duration <= self.now() {
            return Ok(0);
        }
        Ok(row.try_get("level")?)
    }

    async fn clear_failures(&self, tx: &mut Tx, key: &str) -> Result<(), DirectoryError> {
        sqlx::query("DELETE FROM sign_in_failures WHERE email = $1")
            .bind(key)
            .execute(&mut **tx)
            .await?;
        sqlx::query("DELETE FROM lockouts WHERE email = $1")
            .bind(key)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// Records that the session made its change: a one-time pass is used
    /// up by its session's first change (later changes of the same session
    /// go on until the session ends). Fails with
    /// [`DirectoryError::ClaimLost`] once the session's pass no longer works.
    pub async fn commit_session(&self, session: &KioskSession) -> Result<(), DirectoryError> {
        let mut tx = self.session_change(session).await?;
        let event = Event::new("session_committed")
            .user(&session.email)
            .pass(&session.pass_id)
            .with("session", &session.id);
        self.audit(&mut tx, event).await?;
        self.commit(tx).await?;
        Ok(())
    }

    /// Opens a write transaction for a change made in `session`, after
    /// checking that the session may still change things, and uses up its
    /// one-time pass on the first change. The caller writes the change and
    /// commits, so the change and the use of the pass land together or not
    /// at all.
    pub(crate) async fn session_change(
        &self,
        session: &KioskSession,
    ) -> Result<Tx, DirectoryError> {
        let mut tx = self.write_person(&session.user_id).await?;
        let now = self.now();
        if now >= session.ends_at {
            return Err(DirectoryError::ClaimLost);
        }
        let used_by_this_session = self.ensure_usable(&mut tx, session, true).await?;
        if session.one_time && !used_by_this_session {
            let used = sqlx::query(
                "UPDATE passes SET used_at = $1, used_by = $2, claimed_by = NULL, claim_until = NULL \
                 WHERE id = $3 AND claimed_by = $2 AND claim_until > $1 AND used_at IS NULL AND revoked_at IS NULL",
            )
            .bind(now.timestamp())
            .bind(&session.id)
            .bind(&session.pass_id)
            .execute(&mut *tx)
            .await?;
            if used.rows_affected() != 1 {
                return Err(DirectoryError::ClaimLost);
            }
            let event = Event::new("pass_used")
                .user(&session.email)
                .pass(&session.pass_id)
                .with("session", &session.id);
            self.audit(&mut tx, event).await?;
        }
        Ok(tx)
    }

    /// Checks, inside `tx`, that the session's pass still works for its
    /// holder: not revoked or expired, the holder still there and enabled,
    /// the policy still allowing them. A one-time pass this same session
    /// used up still counts (returns `true` then). `in_write`: `conn` is a
    /// write's transaction, which then holds the policy to its commit.
    async fn ensure_usable(
        &self,
        conn: &mut sqlx::AnyConnection,
        session: &KioskSession,
        in_write: bool,
    ) -> Result<bool, DirectoryError> {
        let user = self.find_user(conn, &session.email).await?;
        let Some(user) = user.filter(|u| u.id == session.user_id && u.enabled) else {
            return Err(DirectoryError::ClaimLost);
        };
        let row = sqlx::query(select_passes!("WHERE id = $1"))
            .bind(&session.pass_id)
            .fetch_optional(&mut *conn)
            .await?
            .ok_or(DirectoryError::ClaimLost)?;
        let used_by: Option<String> = row.try_get("used_by")?;
        let policy = self.read_policy(conn, in_write).await?;
        match pass_from_row(&row)?.status(policy.allows(&user.groups), self.now()) {
            PassStatus::Usable => Ok(false),
            PassStatus::Used if used_by.as_deref() == Some(session.id.as_str()) => Ok(true),
            _ => Err(DirectoryError::ClaimLost),
        }
    }

    /// Fails with [`DirectoryError::ClaimLost`] once the session's pass or
    /// holder stops working: revoked, expired, disabled, removed, or no
    /// longer allowed by the policy. Reads only; any kind of pass.
    pub async fn check_session(&self, session: &KioskSession) -> Result<(), DirectoryError> {
        let mut conn = self.pool.acquire().await?;
        self.ensure_usable(&mut conn, session, false)
            .await
            .map(drop)
    }

    /// Extends a session's claim on its one-time pass by another lease
    /// (nothing to do once the session used the pass up).
    pub async fn renew_claim(&self, session: &KioskSession) -> Result<(), DirectoryError> {
        if !session.one_time {
            return Ok(());
        }
        let mut tx = self.write_person(&session.user_id).await?;
        if self.ensure_usable(&mut tx, session, true).await? {
            // Used up by this session's first change: no claim is left to
            // keep, and the session goes on until it ends.
            return Ok(());
        }
        let now = self.now();
        let renewed = sqlx::query(
            "UPDATE passes SET claim_until = $1 WHERE id = $2 AND claimed_by = $3 AND claim_until > $4 AND revoked_at IS NULL",
        )
        .bind((now + self.settings.session.claim_lease).timestamp())
        .bind(&session.pass_id)
        .bind(&session.id)
        .bind(now.timestamp())
        .execute(&mut *tx)
        .await?;
        if renewed.rows_affected() != 1 {
            return Err(DirectoryError::ClaimLost);
        }
        self.commit(tx).await?;
        Ok(())
    }

    /// Ends a session without a change (reset, timeout, person walked
    /// away): a one-time pass is given back at once.
    pub async fn release_session(&self, session: &KioskSession) -> Result<(), DirectoryError> {
        let mut tx = self.write_person(&session.user_id).await?;
        let released = sqlx::query("UPDATE passes SET claimed_by = NULL, claim_until = NULL WHERE id = $1 AND claimed_by = $2")
            .bind(&session.pass_id)
            .bind(&session.id)
            .execute(&mut *tx)
            .await?;
        let event = Event::new("session_released")
            .user(&session.email)
            .pass(&session.pass_id)
            .with("session", &session.id)
            .with("claim_released", released.rows_affected() == 1);
        self.audit(&mut tx, event).await?;
        self.commit(tx).await?;
        Ok(())
    }
}

impl Directory {
    /// This kiosk in the lockouts table: wrong passes across all emails are
    /// counted here too, so that one kiosk cannot be used to try a few
    /// passes on each of many people.
    fn kiosk_identity(&self) -> String {
        format!("kiosk:{}", self.settings.kiosk)
    }

    /// Lifts the lockout of an email (and forgets its wrong passes and its
    /// escalation), for IT helping someone who is locked out. Returns
    /// whether it was locked.
    pub async fn lift_lockout(&self, email: &Email) -> Result<bool, DirectoryError> {
        let mut tx = self.write_people().await?;
        let key = email.to_string();
        self.lock_key(&mut tx, &key).await?;
        let locked = self.locked_until(&mut tx, &key).await?.is_some();
        self.clear_failures(&mut tx, &key).await?;
        let event = Event::new("lockout_lifted")
            .who(&key)
            .with("was_locked", locked);
        self.audit(&mut tx, event).await?;
        self.commit(tx).await?;
        Ok(locked)
    }

    /// How the email typed at a kiosk is stored in lockouts and the audit
    /// log: normalised when it is an email, otherwise a keyed hash, because
    /// people do type their pass into the email field.
    pub fn typed_identity(&self, typed: &str) -> String {
        match Email::parse(typed) {
            Ok(email) => email.to_string(),
            Err(_) => format!("not-an-email:{}", self.key.opaque_id(typed.trim())),
        }
    }
}
