//! The audit log: append-only and hash-chained.
//!
//! Each event carries the MAC of the one before it, keyed with a key derived
//! from the directory key, and the directory keeps the MAC of the newest
//! event. [`Directory::verify_audit`] recomputes the chain, so a changed,
//! inserted or deleted row shows even if someone with database access drops
//! the append-only triggers. The true reason of every failed sign-in is
//! recorded here, never shown at the kiosk.

use crate::clock::from_seconds;
use crate::directory::{Directory, DirectoryError, Tx, bulk};
use crate::email::Email;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;
use subtle::ConstantTimeEq;

/// Something to record.
#[derive(Debug, Clone)]
pub struct Event {
    /// What happened, e.g. `pass_issued`.
    pub kind: &'static str,
    /// Whom it concerns: the email as typed or stored.
    pub user: Option<String>,
    /// The pass it concerns.
    pub pass_id: Option<String>,
    /// Details (never a secret).
    pub detail: serde_json::Value,
}

impl Event {
    /// An event of `kind` with no details yet.
    pub fn new(kind: &'static str) -> Self {
        Self {
            kind,
            user: None,
            pass_id: None,
            detail: serde_json::Value::Object(Default::default()),
        }
    }

    /// Names the person.
    pub fn user(mut self, email: &Email) -> Self {
        self.user = Some(email.to_string());
        self
    }

    /// Names the person by an identity already made safe to store (see
    /// [`Directory::typed_identity`]).
    pub fn who(mut self, identity: &str) -> Self {
        self.user = Some(identity.to_string());
        self
    }

    /// Names the pass.
    pub fn pass(mut self, id: &str) -> Self {
        self.pass_id = Some(id.to_string());
        self
    }

    /// Adds a detail.
    pub fn with(mut self, name: &str, value: impl Serialize) -> Self {
        if let serde_json::Value::Object(map) = &mut self.detail {
            map.insert(
                name.to_string(),
                serde_json::to_value(value).unwrap_or(serde_json::Value::Null),
            );
        }
        self
    }
}

/// A recorded event.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Record {
    /// Position in the chain, from 1.
    pub seq: i64,
    /// When.
    pub at: DateTime<Utc>,
    /// Who (an administrator, `tapctl:<user>`, or `kiosk`).
    pub actor: String,
    /// Which kiosk or machine.
    pub kiosk: String,
    /// What happened.
    pub kind: String,
    /// Whom it concerns.
    pub user: Option<String>,
    /// Which pass.
    pub pass_id: Option<String>,
    /// Details.
    pub detail: serde_json::Value,
}

/// The bytes that are MACed: every field, in a fixed order.
#[derive(Serialize)]
struct Chained<'a> {
    seq: i64,
    at: i64,
    actor: &'a str,
    kiosk: &'a str,
    kind: &'a str,
    user: Option<&'a str>,
    pass_id: Option<&'a str>,
    detail: &'a str,
}

impl Chained<'_> {
    fn bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// Which events to list.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Only events about this person.
    pub user: Option<Email>,
    /// Only events at or after this time.
    pub since: Option<DateTime<Utc>>,
}

/// One page of the log, newest first.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Page {
    /// The events, newest first.
    pub records: Vec<Record>,
    /// Where the next, older page starts (its `before`), if there is one.
    pub older: Option<i64>,
}

/// The outcome of checking the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verification {
    /// Events checked.
    pub events: i64,
    /// The first problem found, if any.
    pub broken: Option<Break>,
}

/// Where and how the chain is broken.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Break {
    /// The event at which the chain stops holding.
    pub seq: i64,
    /// What is wrong there.
    pub reason: String,
}

const PAGE: i64 = 1000;

/// Waiting events chained in one transaction.
const SEAL_ROWS: i64 = 20_000;

impl Directory {
    /// Appends `event` inside `tx` (see [`audit_all`](Self::audit_all)).
    pub(crate) async fn audit(&self, tx: &mut Tx, event: Event) -> Result<(), DirectoryError> {
        self.audit_all(tx, std::slice::from_ref(&event)).await
    }

    /// Appends `events`, in order, inside `tx`. On SQLite, whose one
    /// writer `tx` is, they are chained at once. On PostgreSQL they wait in
    /// `audit_pending`, each with its own keyed MAC, and
    /// [`commit`](Self::commit) chains them just after the commit: chaining
    /// here would make every writer hold the audit head, one row, from here
    /// to its commit, and so wait on every other writer.
    pub(crate) async fn audit_all(
        &self,
        tx: &mut Tx,
        events: &[Event],
    ) -> Result<(), DirectoryError> {
        if events.is_empty() {
            return Ok(());
        }
        // One line an event for a single change; a batch's thousands of
        // events are one line, not a flood of emails in the app's log.
        match events {
            [event] => tracing::info!(kind = event.kind, user = event.user.as_deref(), "audit"),
            _ => tracing::info!(events = events.len(), "audit, in bulk"),
        }
        let at = self.now().timestamp();
        let entries: Vec<Entry> = events.iter().map(|event| self.entry(event, at)).collect();
        if self.shared() {
            self.hold(tx, &entries).await
        } else {
            self.chain(tx, &entries).await
        }
    }

    /// Chains `entries` after the head, which `tx` must hold: the head read
    /// once, the events written a thousand to a statement, the head written
    /// once.
    ///
    /// A head whose tag does not hold (rolled back by someone with write
    /// access to the database) is refused: chaining onto it would give the
    /// rolled-back log a good tag again.
    async fn chain(&self, tx: &mut Tx, entries: &[Entry]) -> Result<(), DirectoryError> {
        let head = sqlx::query(
            "SELECT audit_head_seq, audit_head_mac, audit_head_tag FROM directory_meta WHERE id = 1",
        )
        .fetch_one(&mut **tx)
        .await?;
        let mut seq = head.try_get::<i64, _>("audit_head_seq")?;
        let mut prev: Vec<u8> = head.try_get("audit_head_mac")?;
        let tag: Vec<u8> = head.try_get("audit_head_tag")?;
        if !bool::from(self.key.audit_head_tag(seq, &prev).ct_eq(tag.as_slice())) {
            return Err(DirectoryError::Tampered("the audit log's newest event"));
        }
        let mut chained = Vec::with_capacity(entries.len());
        for entry in entries {
            seq += 1;
            let mac = self.key.audit_mac(&prev, &entry.body(seq).bytes()).to_vec();
            let prev_mac = std::mem::replace(&mut prev, mac.clone());
            chained.push((seq, entry, prev_mac, mac));
        }
        let marks = bulk::Marks::of(tx);
        for chunk in chained.chunks(bulk::ROWS) {
            let sql = format!(
                "INSERT INTO audit_events (seq, at, actor, kiosk, kind, user_email, pass_id, detail, prev_mac, mac) \
                 VALUES {}",
                marks.rows(10, chunk.len())
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for (seq, entry, prev_mac, mac) in chunk {
                query = entry
                    .bind(query.bind(*seq))
                    .bind(prev_mac.as_slice())
                    .bind(mac.as_slice());
            }
            query.execute(&mut **tx).await?;
        }
        sqlx::query(
            "UPDATE directory_meta SET audit_head_seq = $1, audit_head_mac = $2, audit_head_tag = $3 \
             WHERE id = 1",
        )
        .bind(seq)
        .bind(prev.clone())
        .bind(self.key.audit_head_tag(seq, &prev).to_vec())
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// Leaves `entries` in `audit_pending` for [`seal_audit`](Self::seal_audit).
    async fn hold(&self, tx: &mut Tx, entries: &[Entry]) -> Result<(), DirectoryError> {
        let marks = bulk::Marks::of(tx);
        for chunk in entries.chunks(bulk::ROWS) {
            let sql = format!(
                "INSERT INTO audit_pending (at, actor, kiosk, kind, user_email, pass_id, detail, mac) \
                 VALUES {}",
                marks.rows(8, chunk.len())
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for entry in chunk {
                query = entry.bind(query).bind(self.pending_mac(entry).to_vec());
            }
            query.execute(&mut **tx).await?;
        }
        Ok(())
    }

    fn pending_mac(&self, entry: &Entry) -> [u8; 32] {
        self.key.audit_mac(b"pending", &entry.body(0).bytes())
    }

    /// Chains the events waiting in `audit_pending` (PostgreSQL's), oldest
    /// first. Without `wait`, a kiosk that finds the head taken leaves its
    /// events to the one holding it, which looks again once it has let the
    /// head go, and so finds them: nobody waits on the head to finish their
    /// own write. With `wait` (before the log is read), it waits its turn.
    pub(crate) async fn seal_audit(&self, wait: bool) -> Result<(), DirectoryError> {
        if !self.shared() {
            return Ok(());
        }
        let lock = if wait {
            "FOR UPDATE"
        } else {
            "FOR UPDATE SKIP LOCKED"
        };
        loop {
            let mut tx = self.pool.begin().await?;
            let head = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT id FROM directory_meta WHERE id = 1 {lock}"
            )))
            .fetch_optional(&mut *tx)
            .await?;
            if head.is_none() {
                return Ok(());
            }
            let rows = sqlx::query(
                "SELECT id, at, actor, kiosk, kind, user_email, pass_id, detail, mac \
                 FROM audit_pending ORDER BY id LIMIT $1",
            )
            .bind(SEAL_ROWS)
            .fetch_all(&mut *tx)
            .await?;
            if rows.is_empty() {
                // At once, not when the pool gets round to it: until then
                // the head stays locked, and the next writer's seal skips
                // it and leaves its events waiting.
                tx.rollback().await?;
            } else {
                self.chain_waiting(tx, &rows).await?;
            }
            // A kiosk that committed while this one held the head left its
            // events to this one: look once more, the head let go.
            if rows.len() < SEAL_ROWS as usize && self.nothing_waits().await? {
                return Ok(());
            }
        }
    }

    /// Chains the waiting `rows` and deletes them, committing `tx`, which
    /// holds the head.
    async fn chain_waiting(&self, mut tx: Tx, rows: &[AnyRow]) -> Result<(), DirectoryError> {
        let mut ids = Vec::with_capacity(rows.len());
        let mut entries = Vec::with_capacity(rows.len());
        for row in rows {
            let id: i64 = row.try_get("id")?;
            let entry = Entry::from_row(row)?;
            let mac: Vec<u8> = row.try_get("mac")?;
            entries.push(if self.pending_mac(&entry).ct_eq(mac.as_slice()).into() {
                entry
            } else {
                tracing::error!(
                    id,
                    kind = entry.kind,
                    "a waiting audit event's MAC does not match (not written by a kiosk with this \
                     directory's key): recorded as audit_entry_rejected instead"
                );
                self.forged(&entry, id)
            });
            ids.push(id);
        }
        self.chain(&mut tx, &entries).await?;
        let marks = bulk::Marks::of(&tx);
        for chunk in ids.chunks(bulk::ROWS) {
            let sql = format!(
                "DELETE FROM audit_pending WHERE id IN ({})",
                marks.list(1, chunk.len())
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for id in chunk {
                query = query.bind(*id);
            }
            query.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Chains what waits before the log is read. A log that cannot be
    /// chained onto (its head tampered with) is still read, so that its
    /// reader sees why.
    async fn seal_before_reading(&self) {
        if let Err(error) = self.seal_audit(true).await {
            tracing::error!(%error, "audit events wait to be chained");
        }
    }

    async fn nothing_waits(&self) -> Result<bool, DirectoryError> {
        let waiting: Option<i64> = sqlx::query_scalar("SELECT id FROM audit_pending LIMIT 1")
            .fetch_optional(&self.pool)
            .await?;
        Ok(waiting.is_none())
    }

    /// `event` as this kiosk writes it at `at`.
    fn entry(&self, event: &Event, at: i64) -> Entry {
        Entry {
            at,
            actor: self.settings.actor.clone(),
            kiosk: self.settings.kiosk.clone(),
            kind: event.kind.to_string(),
            user: event.user.clone(),
            pass_id: event.pass_id.clone(),
            detail: event.detail.to_string(),
        }
    }

    /// What is chained in place of a waiting row whose MAC does not hold:
    /// the fact, not the row's claims.
    fn forged(&self, entry: &Entry, id: i64) -> Entry {
        let event = Event::new("audit_entry_rejected")
            .with("pending_id", id)
            .with("claimed_kind", &entry.kind);
        self.entry(&event, self.now().timestamp())
    }

    /// Lists events, oldest first.
    pub async fn audit_log(&self, filter: &Filter) -> Result<Vec<Record>, DirectoryError> {
        self.seal_before_reading().await;
        let rows = sqlx::query(
            "SELECT seq, at, actor, kiosk, kind, user_email, pass_id, detail FROM audit_events \
             WHERE ($1 IS NULL OR user_email = $1) AND at >= $2 ORDER BY seq",
        )
        .bind(filter.user.as_ref().map(Email::to_string))
        .bind(filter.since.map_or(i64::MIN, |t| t.timestamp()))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(record_from_row)
            .collect::<Result<_, _>>()
            .map_err(Into::into)
    }

    /// At most `limit` events that `filter` lets through, newest first,
    /// and only those before the event `before` if given: the admin pane
    /// reads a log of millions a page at a time.
    pub async fn audit_page(
        &self,
        filter: &Filter,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Page, DirectoryError> {
        self.seal_before_reading().await;
        let rows = sqlx::query(
            "SELECT seq, at, actor, kiosk, kind, user_email, pass_id, detail FROM audit_events \
             WHERE ($1 IS NULL OR user_email = $1) AND at >= $2 AND seq < $3 \
             ORDER BY seq DESC LIMIT $4",
        )
        .bind(filter.user.as_ref().map(Email::to_string))
        .bind(filter.since.map_or(i64::MIN, |t| t.timestamp()))
        .bind(before.unwrap_or(i64::MAX))
        .bind(i64::from(limit) + 1)
        .fetch_all(&self.pool)
        .await?;
        let mut records = rows
            .iter()
            .map(record_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        let more = records.len() > limit as usize;
        records.truncate(limit as usize);
        let older = if more {
            records.last().map(|r| r.seq)
        } else {
            None
        };
        Ok(Page { records, older })
    }

    /// Recomputes the chain up to the stored head. The head is read first,
    /// so events appended meanwhile by other kiosks are not mistaken for
    /// tampering.
    pub async fn verify_audit(&self) -> Result<Verification, DirectoryError> {
        self.seal_before_reading().await;
        let head = sqlx::query(
            "SELECT audit_head_seq, audit_head_mac, audit_head_tag FROM directory_meta WHERE id = 1",
        )
        .fetch_one(&self.pool)
        .await?;
        let head_seq: i64 = head.try_get("audit_head_seq")?;
        let head_mac: Vec<u8> = head.try_get("audit_head_mac")?;
        let head_tag: Vec<u8> = head.try_get("audit_head_tag")?;
        let broken = |events: i64, seq: i64, reason: &str| Verification {
            events,
            broken: Some(Break {
                seq,
                reason: reason.to_string(),
            }),
        };
        if self.key.audit_head_tag(head_seq, &head_mac) != head_tag.as_slice() {
            return Ok(broken(
                0,
                head_seq,
                "the record of the newest event was changed",
            ));
        }
        let mut expected_prev = vec![0u8; 32];
        let mut expected_seq = 1;
        while expected_seq <= head_seq {
            let rows = sqlx::query(
                "SELECT seq, at, actor, kiosk, kind, user_email, pass_id, detail, prev_mac, mac \
                 FROM audit_events WHERE seq >= $1 AND seq <= $2 ORDER BY seq LIMIT $3",
            )
            .bind(expected_seq)
            .bind(head_seq)
            .bind(PAGE)
            .fetch_all(&self.pool)
            .await?;
            if rows.is_empty() {
                break;
            }
            for row in &rows {
                let events = expected_seq - 1;
                if row.try_get::<i64, _>("seq")? != expected_seq {
                    return Ok(broken(events, expected_seq, "an event is missing here"));
                }
                let prev: Vec<u8> = row.try_get("prev_mac")?;
                let mac: Vec<u8> = row.try_get("mac")?;
                if prev != expected_prev {
                    let reason = "the link to the previous event does not match";
                    return Ok(broken(events, expected_seq, reason));
                }
                if self.key.audit_mac(&prev, &chained_bytes(row)?) != mac.as_slice() {
                    let reason = "the event was changed after it was written";
                    return Ok(broken(events, expected_seq, reason));
                }
                expected_prev = mac;
                expected_seq += 1;
            }
        }
        let events = expected_seq - 1;
        if events != head_seq || expected_prev != head_mac {
            return Ok(broken(
                events,
                events + 1,
                "events at the end of the log were deleted",
            ));
        }
        Ok(Verification {
            events,
            broken: None,
        })
    }
}

fn chained_bytes(row: &AnyRow) -> Result<Vec<u8>, sqlx::Error> {
    Ok(Entry::from_row(row)?.body(row.try_get("seq")?).bytes())
}

/// An event as it is written, in either table.
struct Entry {
    at: i64,
    actor: String,
    kiosk: String,
    kind: String,
    user: Option<String>,
    pass_id: Option<String>,
    detail: String,
}

impl Entry {
    fn from_row(row: &AnyRow) -> Result<Self, sqlx::Error> {
        Ok(Self {
            at: row.try_get("at")?,
            actor: row.try_get("actor")?,
            kiosk: row.try_get("kiosk")?,
            kind: row.try_get("kind")?,
            user: row.try_get("user_email")?,
            pass_id: row.try_get("pass_id")?,
            detail: row.try_get("detail")?,
        })
    }

    /// What is MACed at position `seq` (0 while it waits).
    fn body(&self, seq: i64) -> Chained<'_> {
        Chained {
            seq,
            at: self.at,
            actor: &self.actor,
            kiosk: &self.kiosk,
            kind: &self.kind,
            user: self.user.as_deref(),
            pass_id: self.pass_id.as_deref(),
            detail: &self.detail,
        }
    }

    /// Binds at, actor, kiosk, kind, user_email, pass_id and detail, in
    /// that order.
    fn bind<'q>(
        &'q self,
        query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
    ) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
        query
            .bind(self.at)
            .bind(self.actor.as_str())
            .bind(self.kiosk.as_str())
            .bind(self.kind.as_str())
            .bind(self.user.as_deref())
            .bind(self.pass_id.as_deref())
            .bind(self.detail.as_str())
    }
}

fn record_from_row(row: &AnyRow) -> Result<Record, sqlx::Error> {
    let detail: String = row.try_get("detail")?;
    Ok(Record {
        seq: row.try_get("seq")?,
        at: from_seconds(row.try_get("at")?),
        actor: row.try_get("actor")?,
        kiosk: row.try_get("kiosk")?,
        kind: row.try_get("kind")?,
        user: row.try_get("user_email")?,
        pass_id: row.try_get("pass_id")?,
        detail: serde_json::from_str(&detail).unwrap_or(serde_json::Value::String(detail)),
    })
}
