//! The pass policy, after Entra's Temporary Access Pass settings and bounds.

use crate::duration;
use chrono::TimeDelta;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;
use thiserror::Error;

/// The shortest lifetime any pass or policy may have: 10 minutes.
pub const MIN_LIFETIME_MINUTES: i64 = 10;
/// The longest lifetime any pass or policy may have: 30 days.
pub const MAX_LIFETIME_MINUTES: i64 = 30 * 24 * 60;

/// How long a pass works once it has started, in whole minutes between 10
/// minutes and 30 days.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "i64")]
pub struct Lifetime(i64);

impl Lifetime {
    /// A lifetime of `minutes`, refused outside 10 minutes … 30 days.
    pub fn from_minutes(minutes: i64) -> Result<Self, PolicyError> {
        if (MIN_LIFETIME_MINUTES..=MAX_LIFETIME_MINUTES).contains(&minutes) {
            Ok(Self(minutes))
        } else {
            Err(PolicyError::LifetimeBounds { minutes })
        }
    }

    /// Reads `90m`, `8h`, `30d`…
    pub fn parse(text: &str) -> Result<Self, PolicyError> {
        let delta = duration::parse(text).map_err(|e| PolicyError::Duration(e.to_string()))?;
        if delta.num_seconds() % 60 != 0 {
            return Err(PolicyError::Duration(format!(
                "`{text}` is not a whole number of minutes"
            )));
        }
        Self::from_minutes(delta.num_minutes())
    }

    /// The lifetime in minutes.
    pub fn minutes(self) -> i64 {
        self.0
    }
}

impl TryFrom<i64> for Lifetime {
    type Error = PolicyError;
    fn try_from(value: i64) -> Result<Self, Self::Error> {
        Self::from_minutes(value)
    }
}

impl From<Lifetime> for i64 {
    fn from(value: Lifetime) -> Self {
        value.0
    }
}

impl fmt::Display for Lifetime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&duration::format(TimeDelta::minutes(self.0)))
    }
}

/// Whom the policy lets use passes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "groups")]
pub enum Target {
    /// Everyone in the directory.
    AllUsers,
    /// Only members of these groups.
    Groups(BTreeSet<String>),
}

/// Which security keys may be registered (Entra's "key restrictions").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case", tag = "kind", content = "aaguids")]
pub enum KeyRestriction {
    /// Any FIDO2 key.
    #[default]
    AnyKey,
    /// Only these models, named by the AAGUID the key reports in its
    /// attestation. A key that reports none is refused.
    AllowList(BTreeSet<uuid::Uuid>),
}

impl KeyRestriction {
    /// The allowed models, when only some are.
    pub fn allow_list(&self) -> Option<&BTreeSet<uuid::Uuid>> {
        match self {
            Self::AnyKey => None,
            Self::AllowList(models) => Some(models),
        }
    }

    /// Whether a key of model `aaguid` may be registered, and sign in.
    pub fn allows(&self, aaguid: Option<uuid::Uuid>) -> bool {
        match self {
            Self::AnyKey => true,
            Self::AllowList(allowed) => aaguid.is_some_and(|a| allowed.contains(&a)),
        }
    }
}

/// Whether every pass must be one-time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OneTime {
    /// Every pass is one-time.
    Required,
    /// The issuer chooses; passes are multi-use unless asked otherwise (as in Entra).
    Optional,
}

/// The pass policy. Build it with [`Policy::default`] and change it with
/// [`Policy::validate`] before storing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Whether passes work at all.
    pub enabled: bool,
    /// Whom passes work for.
    pub target: Target,
    /// The shortest lifetime an issuer may choose.
    pub min_lifetime: Lifetime,
    /// The longest lifetime an issuer may choose.
    pub max_lifetime: Lifetime,
    /// The lifetime when the issuer does not choose.
    pub default_lifetime: Lifetime,
    /// Characters in a new pass (8–48).
    pub length: usize,
    /// Whether passes must be one-time.
    pub one_time: OneTime,
    /// Which security keys may be registered.
    #[serde(default)]
    pub keys: KeyRestriction,
}

/// A policy rule that a value breaks. Each message names the rule.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum PolicyError {
    /// A lifetime outside 10 minutes … 30 days.
    #[error("lifetimes must be between 10m and 30d; {} is not", duration::format(TimeDelta::minutes(*minutes)))]
    LifetimeBounds {
        /// The lifetime given.
        minutes: i64,
    },
    /// A duration that could not be read.
    #[error("{0}")]
    Duration(String),
    /// Minimum above maximum.
    #[error("the minimum lifetime ({min}) must not be longer than the maximum ({max})")]
    MinAboveMax {
        /// Minimum.
        min: Lifetime,
        /// Maximum.
        max: Lifetime,
    },
    /// Default outside min … max.
    #[error(
        "the default lifetime ({default}) must lie between the minimum ({min}) and the maximum ({max})"
    )]
    DefaultOutside {
        /// Default.
        default: Lifetime,
        /// Minimum.
        min: Lifetime,
        /// Maximum.
        max: Lifetime,
    },
    /// Length outside 8 … 48.
    #[error("the pass length must be between 8 and 48 characters; {0} is not")]
    Length(usize),
    /// A group target with no groups.
    #[error("a policy that targets groups must name at least one group")]
    NoGroups,
    /// A key allow-list with no models.
    #[error("a key allow-list must name at least one model (AAGUID); to allow any key, say so")]
    NoKeyModels,
    /// A pass lifetime outside the policy's bounds.
    #[error("the lifetime {lifetime} is outside the policy's {min} … {max}")]
    LifetimeOutsidePolicy {
        /// Asked for.
        lifetime: Lifetime,
        /// Minimum.
        min: Lifetime,
        /// Maximum.
        max: Lifetime,
    },
    /// A multi-use pass while the policy requires one-time passes.
    #[error("the policy requires one-time passes")]
    OneTimeRequired,
}

/// The admin pane's policy form, as IT typed it. It is read here rather
/// than in the pane, so that the pane and `tapctl policy set` take the same
/// words (`1h 30m` too) and refuse the same mistakes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyForm {
    /// Whether passes work at all.
    pub enabled: bool,
    /// Group names separated by `;`; empty for everyone.
    pub groups: String,
    /// The shortest lifetime, e.g. `1h`.
    pub min_lifetime: String,
    /// The longest lifetime, e.g. `8h`.
    pub max_lifetime: String,
    /// The lifetime when the issuer does not choose.
    pub default_lifetime: String,
    /// Characters in a new pass.
    pub length: String,
    /// Whether passes must be one-time.
    pub one_time: bool,
    /// Key models (AAGUIDs) separated by `;`; empty for any key.
    pub keys: String,
}

/// A policy form that does not read as a policy: the value at fault, or
/// the rule the values break together.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum PolicyFormError {
    /// Not a lifetime from 10 minutes to 30 days.
    #[error("`{value}` is not a lifetime: write it like 90m, 8h or 2d, from 10m to 30d")]
    Lifetime {
        /// As typed.
        value: String,
    },
    /// Not an AAGUID.
    #[error("`{value}` is not a key model's AAGUID")]
    KeyModel {
        /// As typed.
        value: String,
    },
    /// Not a whole number.
    #[error("`{value}` is not a pass length")]
    Length {
        /// As typed.
        value: String,
    },
    /// Not a group name.
    #[error("`{value}` is not a group name")]
    Group {
        /// As typed.
        value: String,
    },
    /// The values break a rule together (minimum above maximum…).
    #[error(transparent)]
    Rule(#[from] PolicyError),
}

/// The items of a `;`-separated list, trimmed, empty ones dropped.
fn items(list: &str) -> impl Iterator<Item = &str> {
    list.split(';')
        .map(str::trim)
        .filter(|item| !item.is_empty())
}

impl PolicyForm {
    /// The form showing `policy`.
    pub fn of(policy: &Policy) -> Self {
        let join = |items: Vec<String>| items.join("; ");
        Self {
            enabled: policy.enabled,
            groups: match &policy.target {
                Target::AllUsers => String::new(),
                Target::Groups(groups) => join(groups.iter().cloned().collect()),
            },
            min_lifetime: policy.min_lifetime.to_string(),
            max_lifetime: policy.max_lifetime.to_string(),
            default_lifetime: policy.default_lifetime.to_string(),
            length: policy.length.to_string(),
            one_time: policy.one_time == OneTime::Required,
            keys: match &policy.keys {
                KeyRestriction::AnyKey => String::new(),
                KeyRestriction::AllowList(models) => {
                    join(models.iter().map(ToString::to_string).collect())
                }
            },
        }
    }

    /// The policy the form says, checked as a whole.
    pub fn read(&self) -> Result<Policy, PolicyFormError> {
        let lifetime = |text: &str| {
            Lifetime::parse(text).map_err(|_| PolicyFormError::Lifetime {
                value: text.trim().to_string(),
            })
        };
        let groups = items(&self.groups)
            .map(|group| match crate::user::check_group(group) {
                Ok(()) => Ok(group.to_string()),
                Err(_) => Err(PolicyFormError::Group {
                    value: group.to_string(),
                }),
            })
            .collect::<Result<BTreeSet<_>, _>>()?;
        let models = items(&self.keys)
            .map(|model| {
                model
                    .parse::<uuid::Uuid>()
                    .map_err(|_| PolicyFormError::KeyModel {
                        value: model.to_string(),
                    })
            })
            .collect::<Result<BTreeSet<_>, _>>()?;
        let policy = Policy {
            enabled: self.enabled,
            target: if groups.is_empty() {
                Target::AllUsers
            } else {
                Target::Groups(groups)
            },
            min_lifetime: lifetime(&self.min_lifetime)?,
            max_lifetime: lifetime(&self.max_lifetime)?,
            default_lifetime: lifetime(&self.default_lifetime)?,
            length: self
                .length
                .trim()
                .parse()
                .map_err(|_| PolicyFormError::Length {
                    value: self.length.trim().to_string(),
                })?,
            one_time: if self.one_time {
                OneTime::Required
            } else {
                OneTime::Optional
            },
            keys: if models.is_empty() {
                KeyRestriction::AnyKey
            } else {
                KeyRestriction::AllowList(models)
            },
        };
        policy.validate()?;
        Ok(policy)
    }
}

impl Default for Policy {
    /// Entra's defaults (enabled for everyone, 1 h minimum, 8 h maximum,
    /// 1 h default, 12 characters) but one-time use required: a kiosk
    /// pass is for one visit, and a multi-use pass typed by the wrong
    /// person keeps working until it expires.
    fn default() -> Self {
        Self {
            enabled: true,
            target: Target::AllUsers,
            min_lifetime: Lifetime(60),
            max_lifetime: Lifetime(8 * 60),
            default_lifetime: Lifetime(60),
            length: 12,
            one_time: OneTime::Required,
            keys: KeyRestriction::AnyKey,
        }
    }
}

impl Policy {
    /// Checks the rules that tie the settings together.
    pub fn validate(&self) -> Result<(), PolicyError> {
        if !(crate::pass::MIN_LENGTH..=crate::pass::MAX_LENGTH).contains(&self.length) {
            return Err(PolicyError::Length(self.length));
        }
        if self.min_lifetime > self.max_lifetime {
            return Err(PolicyError::MinAboveMax {
                min: self.min_lifetime,
                max: self.max_lifetime,
            });
        }
        if !(self.min_lifetime..=self.max_lifetime).contains(&self.default_lifetime) {
            return Err(PolicyError::DefaultOutside {
                default: self.default_lifetime,
                min: self.min_lifetime,
                max: self.max_lifetime,
            });
        }
        if matches!(&self.target, Target::Groups(groups) if groups.is_empty()) {
            return Err(PolicyError::NoGroups);
        }
        if matches!(&self.keys, KeyRestriction::AllowList(models) if models.is_empty()) {
            return Err(PolicyError::NoKeyModels);
        }
        Ok(())
    }

    /// Whether a person in `groups` may use a pass under this policy.
    pub fn allows<S: AsRef<str>>(&self, groups: &[S]) -> bool {
        self.enabled
            && match &self.target {
                Target::AllUsers => true,
                Target::Groups(wanted) => groups.iter().any(|g| wanted.contains(g.as_ref())),
            }
    }

    /// Settles the lifetime and one-time choice of a new pass, filling in
    /// the policy's defaults and refusing what it does not allow.
    pub fn settle(
        &self,
        lifetime: Option<Lifetime>,
        one_time: Option<bool>,
    ) -> Result<(Lifetime, bool), PolicyError> {
        let lifetime = lifetime.unwrap_or(self.default_lifetime);
        if !(self.min_lifetime..=self.max_lifetime).contains(&lifetime) {
            return Err(PolicyError::LifetimeOutsidePolicy {
                lifetime,
                min: self.min_lifetime,
                max: self.max_lifetime,
            });
        }
        let required = self.one_time == OneTime::Required;
        match one_time {
            Some(false) if required => Err(PolicyError::OneTimeRequired),
            Some(chosen) => Ok((lifetime, chosen)),
            None => Ok((lifetime, required)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn form() -> PolicyForm {
        PolicyForm::of(&Policy::default())
    }

    #[test]
    fn a_form_reads_back_as_the_policy_it_shows() {
        let policy = Policy {
            target: Target::Groups(["new hires".to_string(), "IT".to_string()].into()),
            keys: KeyRestriction::AllowList(
                ["cb69481e-8ff7-4039-93ec-0a2729a154a8".parse().unwrap()].into(),
            ),
            one_time: OneTime::Optional,
            min_lifetime: Lifetime(10),
            max_lifetime: Lifetime(30 * 24 * 60),
            ..Policy::default()
        };
        let shown = PolicyForm::of(&policy);
        assert_eq!(shown.groups, "IT; new hires");
        assert_eq!(shown.max_lifetime, "30d");
        assert_eq!(shown.read(), Ok(policy));
    }

    #[test]
    fn a_form_takes_what_tapctl_takes_and_lists_loosely_typed() {
        let typed = PolicyForm {
            default_lifetime: " 1h 30m ".into(),
            max_lifetime: "2d".into(),
            groups: " ; new hires;;IT ;".into(),
            keys: " CB69481E-8FF7-4039-93EC-0A2729A154A8 ; ".into(),
            length: " 16".into(),
            ..form()
        };
        let policy = typed.read().unwrap();
        assert_eq!(policy.default_lifetime.minutes(), 90);
        assert_eq!(policy.max_lifetime.minutes(), 2 * 24 * 60);
        assert_eq!(policy.length, 16);
        assert_eq!(
            policy.target,
            Target::Groups(["IT".to_string(), "new hires".to_string()].into())
        );
        assert_eq!(policy.keys.allow_list().map(BTreeSet::len), Some(1));
    }

    #[test]
    fn a_form_names_the_value_at_fault() {
        let cases = [
            (
                PolicyForm {
                    min_lifetime: "an hour".into(),
                    ..form()
                },
                PolicyFormError::Lifetime {
                    value: "an hour".into(),
                },
            ),
            (
                PolicyForm {
                    max_lifetime: "5m".into(),
                    ..form()
                },
                PolicyFormError::Lifetime { value: "5m".into() },
            ),
            (
                PolicyForm {
                    default_lifetime: "90s".into(),
                    ..form()
                },
                PolicyFormError::Lifetime {
                    value: "90s".into(),
                },
            ),
            (
                PolicyForm {
                    keys: "cb69481e-8ff7; not-a-model".into(),
                    ..form()
                },
                PolicyFormError::KeyModel {
                    value: "cb69481e-8ff7".into(),
                },
            ),
            (
                PolicyForm {
                    length: "twelve".into(),
                    ..form()
                },
                PolicyFormError::Length {
                    value: "twelve".into(),
                },
            ),
            (
                PolicyForm {
                    groups: "IT; <script>".into(),
                    ..form()
                },
                PolicyFormError::Group {
                    value: "<script>".into(),
                },
            ),
            (
                PolicyForm {
                    length: "7".into(),
                    ..form()
                },
                PolicyFormError::Rule(PolicyError::Length(7)),
            ),
            (
                PolicyForm {
                    min_lifetime: "10h".into(),
                    ..form()
                },
                PolicyFormError::Rule(PolicyError::MinAboveMax {
                    min: Lifetime(600),
                    max: Lifetime(480),
                }),
            ),
        ];
        for (typed, fault) in cases {
            assert_eq!(typed.read(), Err(fault), "{typed:?}");
        }
    }

    #[test]
    fn defaults_are_entras_and_valid() {
        let policy = Policy::default();
        assert_eq!(policy.validate(), Ok(()));
        assert_eq!(policy.min_lifetime.to_string(), "1h");
        assert_eq!(policy.max_lifetime.to_string(), "8h");
        assert_eq!(policy.default_lifetime.to_string(), "1h");
        assert_eq!(policy.length, 12);
    }

    #[test]
    fn errors_name_the_rule() {
        let policy = Policy {
            min_lifetime: Lifetime(600),
            ..Policy::default()
        };
        assert_eq!(
            policy.validate().unwrap_err().to_string(),
            "the minimum lifetime (10h) must not be longer than the maximum (8h)"
        );
        assert_eq!(
            Lifetime::parse("5m").unwrap_err().to_string(),
            "lifetimes must be between 10m and 30d; 5m is not"
        );
        assert!(Lifetime::parse("90s").is_err());
    }

    #[test]
    fn group_targets_allow_only_members() {
        let policy = Policy {
            target: Target::Groups(["new-hires".to_string()].into()),
            ..Policy::default()
        };
        assert!(policy.allows(&["staff", "new-hires"]));
        assert!(!policy.allows(&["staff"]));
        assert!(
            !Policy {
                enabled: false,
                ..Policy::default()
            }
            .allows(&["staff"])
        );
    }

    #[test]
    fn settle_fills_defaults_and_enforces_one_time() {
        let policy = Policy::default();
        assert_eq!(policy.one_time, OneTime::Required, "a new directory's");
        assert_eq!(policy.settle(None, None), Ok((Lifetime(60), true)));
        assert_eq!(
            policy.settle(None, Some(false)),
            Err(PolicyError::OneTimeRequired)
        );
        let optional = Policy {
            one_time: OneTime::Optional,
            ..Policy::default()
        };
        assert_eq!(
            optional.settle(Some(Lifetime(120)), None),
            Ok((Lifetime(120), false))
        );
        assert!(
            Policy::default()
                .settle(Some(Lifetime(9 * 60)), None)
                .is_err()
        );
    }

    proptest! {
        #[test]
        fn lifetimes_are_accepted_exactly_within_bounds(minutes in -100i64..50_000) {
            prop_assert_eq!(Lifetime::from_minutes(minutes).is_ok(), (10..=43_200).contains(&minutes));
        }

        #[test]
        fn a_policy_is_valid_exactly_when_its_rules_hold(
            min in 10i64..=43_200, max in 10i64..=43_200, default in 10i64..=43_200, length in 0usize..60,
        ) {
            let policy = Policy {
                min_lifetime: Lifetime(min), max_lifetime: Lifetime(max), default_lifetime: Lifetime(default),
                length, ..Policy::default()
            };
            let expected = min <= max && (min..=max).contains(&default) && (8..=48).contains(&length);
            prop_assert_eq!(policy.validate().is_ok(), expected);
        }

        #[test]
        fn settled_lifetimes_stay_within_the_policy(asked in 10i64..=43_200) {
            let policy = Policy::default();
            if let Ok((lifetime, _)) = policy.settle(Some(Lifetime(asked)), None) {
                prop_assert!(policy.min_lifetime <= lifetime && lifetime <= policy.max_lifetime);
            } else {
                prop_assert!(!(60..=480).contains(&asked));
            }
        }
    }
}
