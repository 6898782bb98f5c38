//! Time as an input. Every rule that depends on time (expiry, delayed start,
//! lockout windows, claim leases) reads a [`Clock`], so tests move time
//! instead of sleeping.

use chrono::{DateTime, TimeZone, Utc};
use std::fmt::Debug;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

/// A source of the current time, truncated to whole seconds (the resolution
/// the directory stores).
pub trait Clock: Send + Sync + Debug {
    /// The current time.
    fn now(&self) -> DateTime<Utc>;
}

/// The wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)] // the one place that reads the wall clock
    fn now(&self) -> DateTime<Utc> {
        from_seconds(Utc::now().timestamp())
    }
}

/// A clock that only moves when told to: for tests and benchmarks.
#[derive(Debug, Clone)]
pub struct ManualClock {
    seconds: Arc<AtomicI64>,
}

impl ManualClock {
    /// A clock stopped at `at`.
    pub fn new(at: DateTime<Utc>) -> Self {
        Self {
            seconds: Arc::new(AtomicI64::new(at.timestamp())),
        }
    }

    /// Moves the clock forward (or back, with a negative duration).
    pub fn advance(&self, by: chrono::TimeDelta) {
        self.seconds.fetch_add(by.num_seconds(), Ordering::SeqCst);
    }

    /// Sets the clock to `at`.
    pub fn set(&self, at: DateTime<Utc>) {
        self.seconds.store(at.timestamp(), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        from_seconds(self.seconds.load(Ordering::SeqCst))
    }
}

/// Converts the directory's stored epoch seconds back to a time.
pub fn from_seconds(seconds: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(seconds, 0)
        .single()
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let start = from_seconds(1_800_000_000);
        let clock = ManualClock::new(start);
        assert_eq!(clock.now(), start);
        clock.advance(chrono::TimeDelta::minutes(90));
        assert_eq!(clock.now(), start + chrono::TimeDelta::minutes(90));
        let shared = clock.clone();
        shared.set(start);
        assert_eq!(clock.now(), start);
    }
}

/// A time that could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "`{0}` is not a date and time: write 2026-12-07T09:00:00+01:00, or 2026-12-07 09:00 for local time"
)]
pub struct TimeError(pub String);

/// Reads an RFC 3339 time, or a local date-time `YYYY-MM-DD HH:MM[:SS]`
/// (a `T` also separates), in this machine's time zone.
pub fn parse_time(text: &str) -> Result<DateTime<Utc>, TimeError> {
    let text = text.trim();
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Ok(time.with_timezone(&Utc));
    }
    let formats = [
        "%Y-%m-%d %H:%M",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%dT%H:%M:%S",
    ];
    formats
        .iter()
        .find_map(|format| chrono::NaiveDateTime::parse_from_str(text, format).ok())
        .and_then(|local| chrono::Local.from_local_datetime(&local).single())
        .map(|time| time.with_timezone(&Utc))
        .ok_or_else(|| TimeError(text.to_string()))
}

impl ManualClock {
    /// The clock's time plus `by`, without moving it.
    pub fn now_plus(&self, by: chrono::TimeDelta) -> DateTime<Utc> {
        self.now() + by
    }
}
