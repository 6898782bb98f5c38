//! Cutting off guessing: after `threshold` wrong passes within `window`, the
//! email is locked for `duration`, doubling with each further lockout up to
//! `max_duration`. Lockouts are keyed by the email typed, not by a user row,
//! so that an unknown email locks out exactly like a known one and reveals
//! nothing.

use chrono::TimeDelta;
use serde::Serialize;

/// Lockout settings (configuration keys `lockout.*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LockoutSettings {
    /// Wrong passes that trigger a lockout.
    pub threshold: u32,
    /// The window in which they are counted.
    #[serde(with = "crate::duration::serde_delta")]
    pub window: TimeDelta,
    /// The first lockout's length.
    #[serde(with = "crate::duration::serde_delta")]
    pub duration: TimeDelta,
    /// The longest a lockout grows to; also the quiet time after a lockout
    /// ends that forgets its escalation.
    #[serde(with = "crate::duration::serde_delta")]
    pub max_duration: TimeDelta,
    /// Wrong passes at one kiosk, across all emails, within `window` that
    /// throttle the kiosk's sign-ins as a lockout would.
    pub kiosk_threshold: u32,
}

impl Default for LockoutSettings {
    /// 5 failures within 15 minutes lock for 5 minutes, then 10, 20… up to a
    /// day; 20 at one kiosk, whatever the emails, throttle that kiosk.
    fn default() -> Self {
        Self {
            threshold: 5,
            window: TimeDelta::minutes(15),
            duration: TimeDelta::minutes(5),
            max_duration: TimeDelta::hours(24),
            kiosk_threshold: 20,
        }
    }
}

impl LockoutSettings {
    /// The length of the lockout after `earlier` lockouts since the last
    /// successful sign-in.
    pub fn lock_for(&self, earlier: u32) -> TimeDelta {
        let factor = 1i32.checked_shl(earlier.min(30)).unwrap_or(i32::MAX);
        self.duration
            .checked_mul(factor)
            .map_or(self.max_duration, |d| d.min(self.max_duration))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lockouts_double_up_to_the_cap() {
        let settings = LockoutSettings::default();
        assert_eq!(settings.lock_for(0), TimeDelta::minutes(5));
        assert_eq!(settings.lock_for(1), TimeDelta::minutes(10));
        assert_eq!(settings.lock_for(3), TimeDelta::minutes(40));
        assert_eq!(settings.lock_for(9), TimeDelta::hours(24));
        assert_eq!(settings.lock_for(200), TimeDelta::hours(24));
    }
}
