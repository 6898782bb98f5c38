//! Issuing and revoking passes.

use super::{Directory, DirectoryError, Tx, UserRow, bulk, pass_from_row, select_passes};
use crate::audit::Event;
use crate::email::Email;
use crate::import::{ImportErrors, RowError};
use crate::pass::{Pass, PassCode, PassStatus};
use crate::policy::{Lifetime, Policy};
use chrono::{DateTime, TimeDelta, Utc};
use rand::rngs::OsRng;
use std::collections::HashMap;

/// A start this far in the past still counts as "now", so that a time typed
/// a moment ago is not refused.
const START_GRACE: TimeDelta = TimeDelta::minutes(1);

/// How long a new pass may wait, written but unusable, for its value to be
/// shown (printed, written to a file of letters) before it is issued. A
/// pass left waiting by a crash stops counting as the person's pass after
/// this, and never works.
pub const PENDING_LEASE: TimeDelta = TimeDelta::minutes(2);

/// What to issue.
#[derive(Debug, Clone)]
pub struct IssueRequest {
    /// To whom.
    pub email: Email,
    /// When it starts working; now if `None`.
    pub start: Option<DateTime<Utc>>,
    /// How long it works; the policy's default if `None`.
    pub lifetime: Option<Lifetime>,
    /// One-time or not; the policy's rule if `None`.
    pub one_time: Option<bool>,
    /// Whether to revoke a live pass the person already has.
    pub replace: bool,
}

impl IssueRequest {
    /// A request with every choice left to the policy.
    pub fn new(email: Email) -> Self {
        Self {
            email,
            start: None,
            lifetime: None,
            one_time: None,
            replace: false,
        }
    }
}

/// A newly issued pass with its value, to be shown exactly once.
#[derive(Debug, Clone)]
pub struct IssuedPass {
    /// To whom.
    pub email: Email,
    /// Their display name.
    pub display_name: Option<String>,
    /// The stored pass.
    pub pass: Pass,
    /// Its state now.
    pub status: PassStatus,
    /// The value. Not stored anywhere.
    pub code: PassCode,
    /// The pass it replaced.
    pub replaced: Option<String>,
}

impl Directory {
    /// Issues a pass. One live pass per person: a second fails unless
    /// `replace` is set, which revokes the first in the same transaction.
    pub async fn issue_pass(&self, request: &IssueRequest) -> Result<IssuedPass, DirectoryError> {
        self.issue_pass_and(request, |_| Ok::<(), String>(())).await
    }

    /// Issues a pass like [`issue_pass`](Self::issue_pass), handing it to
    /// `deliver` (to show its value) before it becomes usable: if the value
    /// cannot be shown, the pass is not issued, so no live pass exists
    /// whose value nobody saw. No transaction is open while `deliver` runs
    /// (a paused terminal holds up no one): the pass waits written but
    /// unusable, see [`PENDING_LEASE`].
    pub async fn issue_pass_and<E: std::fmt::Display>(
        &self,
        request: &IssueRequest,
        deliver: impl FnOnce(&IssuedPass) -> Result<(), E>,
    ) -> Result<IssuedPass, DirectoryError> {
        let mut tx = self.write_people().await?;
        let policy = self.policy_in(&mut tx).await?;
        let (users, mut plan) = self
            .plan_for(&mut tx, std::slice::from_ref(&request.email))
            .await?;
        self.plan_pass(&policy, &users, request, &mut plan)?;
        self.reserve(tx, &plan).await?;
        let mut issued = self
            .deliver_and_activate(plan, |issued| match issued {
                [one] => deliver(one).map_err(|e| e.to_string()),
                _ => Err("not one pass".to_string()),
            })
            .await?;
        issued
            .pop()
            .ok_or_else(|| DirectoryError::Invalid("nothing was issued".into()))
    }

    /// Issues every pass of a batch, or none. `deliver` receives the values
    /// before the passes become usable (to write the welcome letters),
    /// outside any transaction; if it fails, nothing is issued. The rows are
    /// checked as [`issue_pass`](Self::issue_pass) checks one (it is a
    /// batch of one), against the people and passes read in a few
    /// statements, and written in a few more (`bulk`).
    pub async fn issue_batch<E: std::fmt::Display>(
        &self,
        requests: &[(u64, IssueRequest)],
        deliver: impl FnOnce(&[IssuedPass]) -> Result<(), E>,
    ) -> Result<Vec<IssuedPass>, DirectoryError> {
        let mut tx = self.write_people().await?;
        let policy = self.policy_in(&mut tx).await?;
        let emails: Vec<Email> = requests.iter().map(|(_, r)| r.email.clone()).collect();
        let (users, mut plan) = self.plan_for(&mut tx, &emails).await?;
        let mut errors = Vec::new();
        for (line, request) in requests {
            if let Err(e) = self.plan_pass(&policy, &users, request, &mut plan) {
                errors.push(RowError {
                    line: *line,
                    message: e.to_string(),
                });
            }
        }
        if !errors.is_empty() {
            return Err(ImportErrors(errors).into());
        }
        self.reserve(tx, &plan).await?;
        crate::crash::point("issuing_batch");
        self.deliver_and_activate(plan, deliver).await
    }

    /// Shows a plan's passes with `deliver`, then makes them usable, in a
    /// transaction of their own, with the replaced passes revoked and the
    /// events logged; or, when they could not be shown, deletes them.
    async fn deliver_and_activate<E: std::fmt::Display>(
        &self,
        plan: BatchPlan,
        deliver: impl FnOnce(&[IssuedPass]) -> Result<(), E>,
    ) -> Result<Vec<IssuedPass>, DirectoryError> {
        if let Err(e) = deliver(&plan.issued) {
            if let Err(left) = self.cancel(&plan).await {
                // They stay unusable, and stop counting after the lease.
                tracing::warn!(%left, "passes that could not be shown are left pending");
            }
            return Err(DirectoryError::Invalid(format!("nothing was issued: {e}")));
        }
        self.activate(&plan).await?;
        Ok(plan.issued)
    }

    /// Makes a plan's pending passes usable, if they all still wait (not
    /// replaced meanwhile, nor left past the lease), and revokes the passes
    /// they replace.
    async fn activate(&self, plan: &BatchPlan) -> Result<(), DirectoryError> {
        let now = self.now().timestamp();
        let mut tx = self.write_people().await?;
        let ids: Vec<&str> = plan.issued.iter().map(|i| i.pass.id.as_str()).collect();
        let activated = bulk::for_ids(
            &mut tx,
            "UPDATE passes SET pending_until = NULL WHERE revoked_at IS NULL \
             AND pending_until > {now} AND id IN ({ids})",
            Some(now),
            &ids,
        )
        .await?;
        if activated != ids.len() as u64 {
            return Err(DirectoryError::Invalid(format!(
                "nothing was issued: the passes waited more than {} minutes to be shown, or were replaced meanwhile",
                PENDING_LEASE.num_minutes()
            )));
        }
        let revoked: Vec<&str> = plan.revoked.iter().map(String::as_str).collect();
        bulk::for_ids(
            &mut tx,
            "UPDATE passes SET revoked_at = {now}, claimed_by = NULL, claim_until = NULL \
             WHERE revoked_at IS NULL AND id IN ({ids})",
            Some(now),
            &revoked,
        )
        .await?;
        self.audit_all(&mut tx, &plan.events).await?;
        self.commit(tx).await
    }

    /// Deletes a plan's passes that could not be shown.
    async fn cancel(&self, plan: &BatchPlan) -> Result<(), DirectoryError> {
        let mut tx = self.write_people().await?;
        let ids: Vec<&str> = plan.issued.iter().map(|i| i.pass.id.as_str()).collect();
        bulk::for_ids(
            &mut tx,
            "DELETE FROM passes WHERE pending_until IS NOT NULL AND id IN ({ids})",
            None,
            &ids,
        )
        .await?;
        self.commit(tx).await
    }

    /// The people `emails` name, and an empty plan holding their passes
    /// neither revoked nor used.
    async fn plan_for(
        &self,
        tx: &mut Tx,
        emails: &[Email],
    ) -> Result<(HashMap<Email, UserRow>, BatchPlan), DirectoryError> {
        let users = bulk::users_by_email(tx, emails).await?;
        let ids: Vec<String> = users.values().map(|u| u.id.clone()).collect();
        let plan = BatchPlan {
            open: bulk::open_passes(tx, &ids, self.now().timestamp()).await?,
            ..BatchPlan::default()
        };
        Ok((users, plan))
    }

    /// Checks a request for a pass (one live pass per person: a second
    /// fails unless `replace`, which ends the first) and adds what it
    /// writes to `plan`.
    fn plan_pass(
        &self,
        policy: &Policy,
        users: &HashMap<Email, UserRow>,
        request: &IssueRequest,
        plan: &mut BatchPlan,
    ) -> Result<(), DirectoryError> {
        let now = self.now();
        let user = users
            .get(&request.email)
            .ok_or_else(|| DirectoryError::UserNotFound(request.email.clone()))?;
        if !user.enabled {
            return Err(DirectoryError::UserDisabled(user.email.clone()));
        }
        if !policy.allows(&user.groups) {
            return Err(DirectoryError::NotTargeted(user.email.clone()));
        }
        let (lifetime, one_time) = policy.settle(request.lifetime, request.one_time)?;
        let start = request.start.unwrap_or(now);
        if start < now - START_GRACE {
            return Err(DirectoryError::StartInPast(start.to_rfc3339()));
        }
        let open = plan.open.entry(user.id.clone()).or_default();
        let mut ended = Vec::new();
        for pass in open.iter() {
            let status = pass.status(true, now);
            if !status.is_live() {
                continue;
            }
            if !request.replace {
                return Err(DirectoryError::LivePassExists {
                    email: user.email.clone(),
                    status: status.describe(),
                });
            }
            ended.push(pass.id.clone());
        }
        open.retain(|pass| !ended.contains(&pass.id));
        let code = PassCode::generate(policy.length, &mut OsRng);
        let pass = Pass {
            id: uuid::Uuid::new_v4().to_string(),
            user_id: user.id.clone(),
            created_at: now,
            start_at: start.max(now),
            lifetime_minutes: lifetime.minutes(),
            one_time,
            revoked_at: None,
            used_at: None,
        };
        open.push(pass.clone());
        for id in &ended {
            plan.events
                .push(Event::new("pass_replaced").user(&user.email).pass(id));
        }
        let replaced = ended.last().cloned();
        plan.revoked.extend(ended);
        plan.events.push(
            Event::new("pass_issued")
                .user(&user.email)
                .pass(&pass.id)
                .with("start", pass.start_at)
                .with("lifetime", lifetime.to_string())
                .with("one_time", one_time)
                .with("replaces", &replaced),
        );
        plan.macs.push(
            self.key
                .bind_pass(&pass.binding(), &self.key.pass_mac(&code))
                .to_vec(),
        );
        let status = pass.status(true, now);
        plan.issued.push(IssuedPass {
            email: user.email.clone(),
            display_name: user.display_name.clone(),
            pass,
            status,
            code,
            replaced,
        });
        Ok(())
    }

    /// Writes a plan's new passes, pending (unusable until
    /// [`activate`](Self::activate)d), a thousand rows to a statement, and
    /// commits.
    async fn reserve(&self, mut tx: Tx, plan: &BatchPlan) -> Result<(), DirectoryError> {
        let pending_until = (self.now() + PENDING_LEASE).timestamp();
        let marks = bulk::Marks::of(&tx);
        let rows: Vec<(&IssuedPass, &Vec<u8>)> = plan.issued.iter().zip(&plan.macs).collect();
        for chunk in rows.chunks(bulk::ROWS) {
            let sql = format!(
                "INSERT INTO passes (id, user_id, value_mac, created_at, start_at, lifetime_minutes, one_time, pending_until) \
                 VALUES {}",
                marks.rows(8, chunk.len())
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for (issued, mac) in chunk {
                let pass = &issued.pass;
                query = query
                    .bind(&pass.id)
                    .bind(&pass.user_id)
                    .bind(mac.as_slice())
                    .bind(pass.created_at.timestamp())
                    .bind(pass.start_at.timestamp())
                    .bind(pass.lifetime_minutes)
                    .bind(i64::from(pass.one_time))
                    .bind(pending_until);
            }
            query.execute(&mut *tx).await?;
        }
        self.commit(tx).await
    }

    /// Revokes the person's live pass (the one that has not expired, been
    /// used or been revoked).
    pub async fn revoke_pass(&self, email: &Email) -> Result<String, DirectoryError> {
        let mut tx = self.write_person_by_email(email).await?;
        let policy = self.policy_in(&mut tx).await?;
        let user = self.require_user(&mut tx, email).await?;
        let revoked = self
            .end_live_passes(&mut tx, &user, &policy, true, "pass_revoked")
            .await?;
        let cut_short = self.end_sessions_of_used_passes(&mut tx, &user).await?;
        let id = revoked
            .or(cut_short)
            .ok_or_else(|| DirectoryError::NoLivePass(email.clone()))?;
        self.commit(tx).await?;
        Ok(id)
    }

    /// A one-time pass already used may still hold a kiosk session open,
    /// until the pass itself ends: if the wrong person typed it, IT must be
    /// able to stop them. Revoked, the pass ends that session at its next
    /// change or claim renewal.
    async fn end_sessions_of_used_passes(
        &self,
        tx: &mut Tx,
        user: &UserRow,
    ) -> Result<Option<String>, DirectoryError> {
        let now = self.now().timestamp();
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM passes WHERE user_id = $1 AND revoked_at IS NULL \
             AND used_at IS NOT NULL AND start_at + lifetime_minutes * 60 > $2",
        )
        .bind(&user.id)
        .bind(now)
        .fetch_all(&mut **tx)
        .await?;
        for id in &ids {
            sqlx::query("UPDATE passes SET revoked_at = $1 WHERE id = $2")
                .bind(now)
                .bind(id)
                .execute(&mut **tx)
                .await?;
            let event = Event::new("pass_revoked")
                .user(&user.email)
                .pass(id)
                .with("in_use", true);
            self.audit(tx, event).await?;
        }
        Ok(ids.into_iter().last())
    }

    /// The person's passes, newest first, with their states.
    pub async fn passes(&self, email: &Email) -> Result<Vec<(Pass, PassStatus)>, DirectoryError> {
        Ok(self.show_user(email).await?.passes)
    }

    /// Ends the person's live pass, if any, when `allowed`; otherwise a live
    /// pass is an error. Returns the ended pass's id.
    async fn end_live_passes(
        &self,
        tx: &mut Tx,
        user: &UserRow,
        policy: &Policy,
        allowed: bool,
        kind: &'static str,
    ) -> Result<Option<String>, DirectoryError> {
        let now = self.now();
        let rows = sqlx::query(select_passes!(
            "WHERE user_id = $1 AND revoked_at IS NULL AND used_at IS NULL AND pending_until IS NULL"
        ))
        .bind(&user.id)
        .fetch_all(&mut **tx)
        .await?;
        let allowed_by_policy = policy.allows(&user.groups) && user.enabled;
        let mut ended = None;
        for row in &rows {
            let pass = pass_from_row(row)?;
            let status = pass.status(allowed_by_policy, now);
            if !status.is_live() {
                continue;
            }
            if !allowed {
                return Err(DirectoryError::LivePassExists {
                    email: user.email.clone(),
                    status: status.describe(),
                });
            }
            sqlx::query("UPDATE passes SET revoked_at = $1, claimed_by = NULL, claim_until = NULL WHERE id = $2")
                .bind(now.timestamp())
                .bind(&pass.id)
                .execute(&mut **tx)
                .await?;
            self.audit(tx, Event::new(kind).user(&user.email).pass(&pass.id))
                .await?;
            ended = Some(pass.id);
        }
        Ok(ended)
    }
}

/// What a batch (or a single pass) writes, checked row by row before
/// anything is written.
#[derive(Default)]
struct BatchPlan {
    /// Each person's passes neither revoked nor used, as the batch leaves
    /// them so far.
    open: HashMap<String, Vec<Pass>>,
    /// Passes the batch replaces.
    revoked: Vec<String>,
    /// The new passes, and the MAC each is stored under.
    issued: Vec<IssuedPass>,
    macs: Vec<Vec<u8>>,
    /// Their audit events, in order.
    events: Vec<Event>,
}
