//! Checkpoints of the audit log kept outside the database.
//!
//! The chain and its keyed head catch any change made inside the database,
//! but not a restore of a whole older copy of it: the copy's head is
//! genuine, only old. A checkpoint states "the log had N events, the newest
//! with this MAC" under a tag made with the directory key; kept in the
//! system log or a file the database's writers cannot reach, it shows a log
//! rolled back behind it.

use crate::directory::{Directory, DirectoryError};
use chrono::{DateTime, Utc};
use sqlx::Row;
use std::fmt;

const PREFIX: &str = "tapkiosk-audit-checkpoint-v1";

/// The audit log's length and newest MAC at a moment, tagged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// Events in the log then.
    pub events: i64,
    /// The newest event's MAC, in hex.
    pub head: String,
    /// When it was taken.
    pub at: DateTime<Utc>,
    /// The tag over the rest, in hex.
    pub tag: String,
}

impl fmt::Display for Checkpoint {
    /// One line: `tapkiosk-audit-checkpoint-v1 events=N head=HEX at=RFC3339 tag=HEX`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{PREFIX} events={} head={} at={} tag={}",
            self.events,
            self.head,
            self.at.to_rfc3339(),
            self.tag
        )
    }
}

impl Checkpoint {
    /// Reads a line written by [`Display`](fmt::Display); other text before
    /// the checkpoint (a syslog prefix) is ignored.
    pub fn parse(line: &str) -> Result<Self, String> {
        let start = line
            .find(PREFIX)
            .ok_or_else(|| format!("no {PREFIX} in the line"))?;
        let mut fields = std::collections::BTreeMap::new();
        for part in line[start + PREFIX.len()..].split_whitespace() {
            let (name, value) = part
                .split_once('=')
                .ok_or_else(|| format!("`{part}` is not name=value"))?;
            fields.insert(name, value);
        }
        let field = |name: &str| {
            fields
                .get(name)
                .copied()
                .ok_or_else(|| format!("the checkpoint has no {name}"))
        };
        Ok(Self {
            events: field("events")?
                .parse()
                .map_err(|_| "events is not a number".to_string())?,
            head: field("head")?.to_string(),
            at: DateTime::parse_from_rfc3339(field("at")?)
                .map_err(|e| format!("at: {e}"))?
                .with_timezone(&Utc),
            tag: field("tag")?.to_string(),
        })
    }

    /// Appends the checkpoint's line to `path`, creating the file readable
    /// by its owner only.
    pub fn append_to(&self, path: &std::path::Path) -> std::io::Result<()> {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)?;
        writeln!(file, "{self}")
    }

    fn tagged_parts(&self) -> [Vec<u8>; 3] {
        [
            self.events.to_be_bytes().to_vec(),
            self.head.as_bytes().to_vec(),
            self.at.timestamp().to_be_bytes().to_vec(),
        ]
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Directory {
    /// A checkpoint of the audit log as it is now.
    pub async fn audit_checkpoint(&self) -> Result<Checkpoint, DirectoryError> {
        self.seal_audit(true).await?;
        let row =
            sqlx::query("SELECT audit_head_seq, audit_head_mac FROM directory_meta WHERE id = 1")
                .fetch_one(&self.pool)
                .await?;
        let head: Vec<u8> = row.try_get("audit_head_mac")?;
        let mut checkpoint = Checkpoint {
            events: row.try_get("audit_head_seq")?,
            head: hex(&head),
            at: self.now(),
            tag: String::new(),
        };
        checkpoint.tag = self.checkpoint_tag(&checkpoint);
        Ok(checkpoint)
    }

    /// Checks the log against a checkpoint taken earlier: the checkpoint
    /// must be this directory's, and the log must still hold its newest
    /// event unchanged. Returns why not, if not.
    pub async fn check_audit_checkpoint(
        &self,
        checkpoint: &Checkpoint,
    ) -> Result<Option<String>, DirectoryError> {
        if self.checkpoint_tag(checkpoint) != checkpoint.tag {
            return Ok(Some(
                "the checkpoint was not made with this directory's key, or was changed".into(),
            ));
        }
        let head_seq: i64 = sqlx::query("SELECT audit_head_seq FROM directory_meta WHERE id = 1")
            .fetch_one(&self.pool)
            .await?
            .try_get("audit_head_seq")?;
        if head_seq < checkpoint.events {
            return Ok(Some(format!(
                "the log has {head_seq} events, fewer than the {} it had at {}: it was rolled back",
                checkpoint.events, checkpoint.at
            )));
        }
        if checkpoint.events == 0 {
            return Ok(None);
        }
        let mac: Option<Vec<u8>> = sqlx::query("SELECT mac FROM audit_events WHERE seq = $1")
            .bind(checkpoint.events)
            .fetch_optional(&self.pool)
            .await?
            .map(|row| row.try_get("mac"))
            .transpose()?;
        if mac.as_deref().map(hex).as_deref() != Some(checkpoint.head.as_str()) {
            return Ok(Some(format!(
                "event {} is not the one the checkpoint of {} saw: the log was replaced",
                checkpoint.events, checkpoint.at
            )));
        }
        Ok(None)
    }

    fn checkpoint_tag(&self, checkpoint: &Checkpoint) -> String {
        let parts = checkpoint.tagged_parts();
        let parts: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
        hex(&self.key.record_mac("audit checkpoint", &parts))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoints_read_back_from_their_line_even_inside_a_syslog_line() {
        let checkpoint = Checkpoint {
            events: 42,
            head: "ab".repeat(32),
            at: DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default(),
            tag: "cd".repeat(32),
        };
        let line = format!("Dec  1 09:00:00 kiosk tapkiosk[12]: INFO {checkpoint}");
        assert_eq!(Checkpoint::parse(&line), Ok(checkpoint));
        assert!(Checkpoint::parse("nothing here").is_err());
        assert!(Checkpoint::parse(&format!("{PREFIX} events=x")).is_err());
    }
}
