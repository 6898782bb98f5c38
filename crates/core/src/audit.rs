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

impl Directory {
    /// Appends `event` inside `tx`, which must hold the write turn.
    pub(crate) async fn audit(&self, tx: &mut Tx, event: Event) -> Result<(), DirectoryError> {
        self.audit_all(tx, std::slice::from_ref(&event)).await
    }

    /// Appends `events`, in order, inside `tx`, which must hold the write
    /// turn: the head read once, the events chained in memory and written
    /// a thousand to a statement, the head written once.
    pub(crate) async fn audit_all(
        &self,
        tx: &mut Tx,
        events: &[Event],
    ) -> Result<(), DirectoryError> {
        if events.is_empty() {
            return Ok(());
        }
        let head =
            sqlx::query("SELECT audit_head_seq, audit_head_mac FROM directory_meta WHERE id = 1")
                .fetch_one(&mut **tx)
                .await?;
        let mut seq = head.try_get::<i64, _>("audit_head_seq")?;
        let mut prev: Vec<u8> = head.try_get("audit_head_mac")?;
        let at = self.now().timestamp();
        let mut chained = Vec::with_capacity(events.len());
        for event in events {
            seq += 1;
            let detail = event.detail.to_string();
            let body = Chained {
                seq,
                at,
                actor: &self.settings.actor,
                kiosk: &self.settings.kiosk,
                kind: event.kind,
                user: event.user.as_deref(),
                pass_id: event.pass_id.as_deref(),
                detail: &detail,
            };
            let mac = self.key.audit_mac(&prev, &body.bytes()).to_vec();
            let prev_mac = std::mem::replace(&mut prev, mac.clone());
            chained.push((seq, event, detail, prev_mac, mac));
        }
        // One line an event for a single change; a batch's thousands of
        // events are one line, not a flood of emails in the app's log.
        match events {
            [event] => tracing::info!(kind = event.kind, user = event.user.as_deref(), "audit"),
            _ => tracing::info!(events = events.len(), last_seq = seq, "audit, in bulk"),
        }
        let marks = bulk::Marks::of(tx);
        for chunk in chained.chunks(bulk::ROWS) {
            let sql = format!(
                "INSERT INTO audit_events (seq, at, actor, kiosk, kind, user_email, pass_id, detail, prev_mac, mac) \
                 VALUES {}",
                marks.rows(10, chunk.len())
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for (seq, event, detail, prev_mac, mac) in chunk {
                query = query
                    .bind(*seq)
                    .bind(at)
                    .bind(&self.settings.actor)
                    .bind(&self.settings.kiosk)
                    .bind(event.kind)
                    .bind(event.user.as_deref())
                    .bind(event.pass_id.as_deref())
                    .bind(detail.as_str())
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

    /// Lists events, oldest first.
    pub async fn audit_log(&self, filter: &Filter) -> Result<Vec<Record>, DirectoryError> {
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

    /// Recomputes the chain up to the stored head. The head is read first,
    /// so events appended meanwhile by other kiosks are not mistaken for
    /// tampering.
    pub async fn verify_audit(&self) -> Result<Verification, DirectoryError> {
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
    let (actor, kiosk, kind, detail): (String, String, String, String) = (
        row.try_get("actor")?,
        row.try_get("kiosk")?,
        row.try_get("kind")?,
        row.try_get("detail")?,
    );
    let (user, pass_id): (Option<String>, Option<String>) =
        (row.try_get("user_email")?, row.try_get("pass_id")?);
    Ok(Chained {
        seq: row.try_get("seq")?,
        at: row.try_get("at")?,
        actor: &actor,
        kiosk: &kiosk,
        kind: &kind,
        user: user.as_deref(),
        pass_id: pass_id.as_deref(),
        detail: &detail,
    }
    .bytes())
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
