//! Temporary access pass values and their states.
//!
//! A value is Crockford base32 (no I, L, O or U), shown in groups of four and
//! forgiving on input: case, spaces, dashes and the look-alikes I/L → 1 and
//! O → 0 are normalised away. It is never stored: the directory keeps only
//! an HMAC of it (see [`crate::keys::DirectoryKey::pass_mac`]).

use chrono::{DateTime, TimeDelta, Utc};
use rand::{CryptoRng, Rng};
use serde::Serialize;
use std::fmt;
use thiserror::Error;
use zeroize::Zeroizing;

/// The 32 symbols of Crockford's base32, in value order.
pub const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
/// The shortest pass the policy may ask for (Entra's bound).
pub const MIN_LENGTH: usize = 8;
/// The longest pass the policy may ask for (Entra's bound).
pub const MAX_LENGTH: usize = 48;

/// A pass value in normalised form. Its `Debug` never shows the value and
/// the memory is wiped when it is dropped.
#[derive(Clone, PartialEq, Eq)]
pub struct PassCode(Zeroizing<String>);

/// Why typed text cannot be a pass.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum PassFormatError {
    /// A character outside Crockford base32 (after normalising look-alikes).
    #[error("a pass has only letters and digits; `{0}` is not one of them")]
    Character(char),
    /// Too short or too long to be any pass the policy allows.
    #[error("a pass has between {MIN_LENGTH} and {MAX_LENGTH} characters; this one has {0}")]
    Length(usize),
}

impl PassCode {
    /// Draws a new value of `length` symbols, 5 bits each, from `rng`.
    pub fn generate(length: usize, rng: &mut (impl Rng + CryptoRng)) -> Self {
        let value: String = (0..length)
            .map(|_| char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())]))
            .collect();
        Self(Zeroizing::new(value))
    }

    /// Normalises what a person typed: drops spaces and dashes, upper-cases,
    /// reads I and L as 1 and O as 0.
    pub fn parse(typed: &str) -> Result<Self, PassFormatError> {
        let mut value = Zeroizing::new(String::with_capacity(typed.len()));
        for c in typed.chars() {
            if c.is_whitespace() || c == '-' {
                continue;
            }
            let c = match c.to_ascii_uppercase() {
                'I' | 'L' => '1',
                'O' => '0',
                c if c.is_ascii() && ALPHABET.contains(&(c as u8)) => c,
                _ => return Err(PassFormatError::Character(c)),
            };
            value.push(c);
        }
        let length = value.chars().count();
        if !(MIN_LENGTH..=MAX_LENGTH).contains(&length) {
            return Err(PassFormatError::Length(length));
        }
        Ok(Self(value))
    }

    /// The normalised value, as hashed.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The value as shown to people: groups of four joined by dashes.
    pub fn grouped(&self) -> String {
        let chars: Vec<char> = self.0.chars().collect();
        chars
            .chunks(4)
            .map(|group| group.iter().collect::<String>())
            .collect::<Vec<_>>()
            .join("-")
    }
}

impl fmt::Debug for PassCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PassCode(<redacted>)")
    }
}

/// Whether a pass can be used now, after Microsoft Graph's
/// `methodUsabilityReason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PassStatus {
    /// Its start time is still ahead.
    NotYetValid,
    /// It can be redeemed now.
    Usable,
    /// Its lifetime is over.
    Expired,
    /// A one-time pass that has been used.
    Used,
    /// An administrator revoked it, or replaced it with a new one.
    Revoked,
    /// The policy is off, or no longer targets this person.
    DisabledByPolicy,
}

impl PassStatus {
    /// Graph's `methodUsabilityReason` for this state (`Revoked` has no Graph
    /// equivalent because Graph deletes revoked passes).
    pub fn graph_reason(self) -> &'static str {
        match self {
            Self::NotYetValid => "NotYetValid",
            Self::Usable => "EnabledByPolicy",
            Self::Expired => "Expired",
            Self::Used => "OneTimeUsed",
            Self::Revoked => "Revoked",
            Self::DisabledByPolicy => "DisabledByPolicy",
        }
    }

    /// Words for people.
    pub fn describe(self) -> &'static str {
        match self {
            Self::NotYetValid => "not yet valid",
            Self::Usable => "usable",
            Self::Expired => "expired",
            Self::Used => "used",
            Self::Revoked => "revoked",
            Self::DisabledByPolicy => "disabled by policy",
        }
    }

    /// Whether the pass still counts as the person's one live pass.
    pub fn is_live(self) -> bool {
        matches!(
            self,
            Self::NotYetValid | Self::Usable | Self::DisabledByPolicy
        )
    }
}

/// A pass as the directory keeps it: everything but the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pass {
    /// Stable identifier (a UUID, as Graph's `id`).
    pub id: String,
    /// The person it was issued to.
    pub user_id: String,
    /// When it was issued.
    pub created_at: DateTime<Utc>,
    /// When it starts to work.
    pub start_at: DateTime<Utc>,
    /// How long it works from `start_at`, in minutes.
    pub lifetime_minutes: i64,
    /// Whether one sign-in uses it up.
    pub one_time: bool,
    /// When it was revoked or replaced.
    pub revoked_at: Option<DateTime<Utc>>,
    /// When a one-time pass was used up.
    pub used_at: Option<DateTime<Utc>>,
}

impl Pass {
    /// The fields its stored MAC covers.
    pub fn binding(&self) -> crate::keys::PassBinding<'_> {
        crate::keys::PassBinding {
            id: &self.id,
            user_id: &self.user_id,
            start_at: self.start_at.timestamp(),
            lifetime_minutes: self.lifetime_minutes,
            one_time: self.one_time,
        }
    }

    /// When it stops working.
    pub fn end_at(&self) -> DateTime<Utc> {
        self.start_at + TimeDelta::minutes(self.lifetime_minutes)
    }

    /// Its state at `now`. `allowed_by_policy` says whether the current
    /// policy is on and targets the person. Final states win over
    /// time-based ones so that a used pass never shows as merely expired.
    pub fn status(&self, allowed_by_policy: bool, now: DateTime<Utc>) -> PassStatus {
        if self.revoked_at.is_some() {
            PassStatus::Revoked
        } else if self.used_at.is_some() {
            PassStatus::Used
        } else if now >= self.end_at() {
            PassStatus::Expired
        } else if !allowed_by_policy {
            PassStatus::DisabledByPolicy
        } else if now < self.start_at {
            PassStatus::NotYetValid
        } else {
            PassStatus::Usable
        }
    }

    /// The pass in Microsoft Graph's `temporaryAccessPassAuthenticationMethod`
    /// shape, with the value only when it is being shown for the first time.
    pub fn to_graph(&self, status: PassStatus, value: Option<&PassCode>) -> GraphPass {
        GraphPass {
            id: self.id.clone(),
            temporary_access_pass: value.map(PassCode::grouped),
            created_date_time: self.created_at,
            start_date_time: self.start_at,
            lifetime_in_minutes: self.lifetime_minutes,
            is_usable_once: self.one_time,
            is_usable: status == PassStatus::Usable,
            method_usability_reason: status.graph_reason(),
        }
    }
}

/// Graph's field names, so that scripts written for Entra read our output
/// unchanged.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GraphPass {
    /// Graph `id`.
    pub id: String,
    /// The value, present only in the answer to an issue.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temporary_access_pass: Option<String>,
    /// Graph `createdDateTime`.
    pub created_date_time: DateTime<Utc>,
    /// Graph `startDateTime`.
    pub start_date_time: DateTime<Utc>,
    /// Graph `lifetimeInMinutes`.
    pub lifetime_in_minutes: i64,
    /// Graph `isUsableOnce`.
    pub is_usable_once: bool,
    /// Graph `isUsable`.
    pub is_usable: bool,
    /// Graph `methodUsabilityReason`.
    pub method_usability_reason: &'static str,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::SeedableRng;

    fn symbol() -> impl Strategy<Value = char> {
        proptest::sample::select(ALPHABET.iter().map(|&b| char::from(b)).collect::<Vec<_>>())
    }

    proptest! {
        #[test]
        fn grouped_values_read_back_unchanged(chars in proptest::collection::vec(symbol(), MIN_LENGTH..=MAX_LENGTH)) {
            let value: String = chars.into_iter().collect();
            let code = PassCode::parse(&value).unwrap();
            prop_assert_eq!(code.expose(), value.as_str());
            prop_assert_eq!(PassCode::parse(&code.grouped()).unwrap(), code);
        }

        #[test]
        fn case_spaces_dashes_and_look_alikes_are_forgiven(
            chars in proptest::collection::vec(symbol(), MIN_LENGTH..=MAX_LENGTH),
            noise in proptest::collection::vec(0u8..6, MIN_LENGTH..=MAX_LENGTH),
        ) {
            let value: String = chars.iter().collect();
            let mut typed = String::new();
            for (c, n) in chars.iter().zip(noise.iter().cycle()) {
                match (n, c) {
                    (0, c) => typed.push(c.to_ascii_lowercase()),
                    (1, '1') => typed.push('l'),
                    (2, '1') => typed.push('I'),
                    (3, '0') => typed.push('o'),
                    (4, c) => { typed.push(' '); typed.push(*c); }
                    (5, c) => { typed.push('-'); typed.push(*c); }
                    (_, c) => typed.push(*c),
                }
            }
            let code = PassCode::parse(&typed).unwrap();
            prop_assert_eq!(code.expose(), value.as_str());
        }

        #[test]
        fn anything_outside_the_alphabet_is_refused(prefix in "[0-9A-HJKMNP-TV-Z]{8}", bad in "[^0-9A-Za-z\\s-]") {
            let typed = format!("{prefix}{bad}");
            prop_assert!(PassCode::parse(&typed).is_err());
        }

        #[test]
        fn lengths_outside_the_bounds_are_refused(len in 0usize..100) {
            let typed = "A".repeat(len);
            prop_assert_eq!(PassCode::parse(&typed).is_ok(), (MIN_LENGTH..=MAX_LENGTH).contains(&len));
        }
    }

    #[test]
    fn u_is_not_a_symbol() {
        assert_eq!(
            PassCode::parse("ABCDEFGU"),
            Err(PassFormatError::Character('U'))
        );
    }

    #[test]
    fn generated_values_use_the_alphabet_and_length() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for length in [MIN_LENGTH, 12, MAX_LENGTH] {
            let code = PassCode::generate(length, &mut rng);
            assert_eq!(code.expose().len(), length);
            assert!(code.expose().bytes().all(|b| ALPHABET.contains(&b)));
        }
        let a = PassCode::generate(12, &mut rng);
        let b = PassCode::generate(12, &mut rng);
        assert_ne!(a, b);
    }

    #[test]
    fn debug_never_shows_the_value() {
        let code = PassCode::parse("ABCD-EFGH-JKMN").unwrap();
        assert!(!format!("{code:?}").contains("ABCD"));
        assert_eq!(code.grouped(), "ABCD-EFGH-JKMN");
    }

    fn pass(start: i64, minutes: i64) -> Pass {
        Pass {
            id: "p".into(),
            user_id: "u".into(),
            created_at: crate::clock::from_seconds(0),
            start_at: crate::clock::from_seconds(start),
            lifetime_minutes: minutes,
            one_time: true,
            revoked_at: None,
            used_at: None,
        }
    }

    #[test]
    fn status_follows_time_and_final_states() {
        let at = crate::clock::from_seconds;
        let p = pass(600, 60);
        assert_eq!(p.status(true, at(0)), PassStatus::NotYetValid);
        assert_eq!(p.status(true, at(600)), PassStatus::Usable);
        assert_eq!(p.status(true, at(600 + 3599)), PassStatus::Usable);
        assert_eq!(p.status(true, at(600 + 3600)), PassStatus::Expired);
        assert_eq!(p.status(false, at(700)), PassStatus::DisabledByPolicy);
        let used = Pass {
            used_at: Some(at(700)),
            ..p.clone()
        };
        assert_eq!(used.status(true, at(10_000)), PassStatus::Used);
        let revoked = Pass {
            revoked_at: Some(at(700)),
            ..p
        };
        assert_eq!(revoked.status(true, at(700)), PassStatus::Revoked);
    }
}
