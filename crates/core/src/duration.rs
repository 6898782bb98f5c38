//! Durations as people write them: `90m`, `8h`, `30d`, `1h 30m`.

use chrono::TimeDelta;
use thiserror::Error;

/// A duration that could not be read.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("`{text}` is not a duration: write it like 90m, 8h or 30d")]
pub struct DurationError {
    /// What was given.
    pub text: String,
}

/// Reads a duration such as `90m`, `8h`, `30d` or `1h 30m`, in whole
/// seconds: nothing here is timed finer, and a `2us` read as 2 µs would be
/// shown (and written back) as `0s`.
pub fn parse(text: &str) -> Result<TimeDelta, DurationError> {
    let error = || DurationError {
        text: text.to_string(),
    };
    let parsed = humantime::parse_duration(text.trim()).map_err(|_| error())?;
    if parsed.subsec_nanos() != 0 {
        return Err(error());
    }
    TimeDelta::from_std(parsed).map_err(|_| error())
}

/// Writes a duration in the largest unit that keeps it exact: `30d`, `8h`,
/// `90m`, `45s`.
pub fn format(duration: TimeDelta) -> String {
    let seconds = duration.num_seconds();
    const UNITS: [(i64, &str); 3] = [(86_400, "d"), (3_600, "h"), (60, "m")];
    for (size, unit) in UNITS {
        if seconds != 0 && seconds % size == 0 {
            return format!("{}{unit}", seconds / size);
        }
    }
    format!("{seconds}s")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_units_people_write() {
        assert_eq!(parse("90m"), Ok(TimeDelta::minutes(90)));
        assert_eq!(parse("8h"), Ok(TimeDelta::hours(8)));
        assert_eq!(parse("30d"), Ok(TimeDelta::days(30)));
        assert_eq!(parse(" 1h 30m "), Ok(TimeDelta::minutes(90)));
        assert!(parse("eight hours").is_err());
        assert!(parse("").is_err());
        assert!(parse("-5m").is_err());
        // Found by the fuzz target durations_and_times: read, then written
        // back as 0s.
        assert!(parse("2us").is_err());
        assert!(parse("1500ms").is_err());
        assert_eq!(parse("2000ms"), Ok(TimeDelta::seconds(2)));
    }

    #[test]
    fn writes_the_largest_exact_unit() {
        assert_eq!(format(TimeDelta::days(30)), "30d");
        assert_eq!(format(TimeDelta::hours(8)), "8h");
        assert_eq!(format(TimeDelta::minutes(90)), "90m");
        assert_eq!(format(TimeDelta::seconds(45)), "45s");
        assert_eq!(format(TimeDelta::zero()), "0s");
    }
}

/// Serialises a [`TimeDelta`] as its [`format`] text.
pub mod serde_delta {
    use chrono::TimeDelta;

    /// Writes `90m`, `8h`…
    pub fn serialize<S: serde::Serializer>(
        delta: &TimeDelta,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&super::format(*delta))
    }
}
