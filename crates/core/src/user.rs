//! People in the directory and what the directory shows about them.

use crate::directory::DirectoryError;
use crate::email::Email;
use crate::pass::{Pass, PassStatus};
use chrono::{DateTime, Utc};
use serde::Serialize;

/// Someone to add to the directory, already checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUser {
    /// Work email.
    pub email: Email,
    /// Name shown at the kiosk.
    pub display_name: Option<String>,
    /// Groups, for the policy's target.
    pub groups: Vec<String>,
}

impl NewUser {
    /// Checks a display name (up to 200 printable characters) and group
    /// names (1–64 of letters, digits, space, `.`, `_`, `-`).
    pub fn new(
        email: Email,
        display_name: Option<&str>,
        groups: &[String],
    ) -> Result<Self, DirectoryError> {
        let display_name = display_name
            .map(str::trim)
            .filter(|name| !name.is_empty())
            .map(str::to_string);
        if let Some(name) = &display_name
            && (name.chars().count() > 200 || name.chars().any(char::is_control))
        {
            return Err(DirectoryError::Invalid(
                "a display name has at most 200 characters and no control characters".into(),
            ));
        }
        let mut clean: Vec<String> = Vec::new();
        for group in groups.iter().map(|g| g.trim()).filter(|g| !g.is_empty()) {
            check_group(group)?;
            if !clean.iter().any(|g| g == group) {
                clean.push(group.to_string());
            }
        }
        clean.sort();
        Ok(Self {
            email,
            display_name,
            groups: clean,
        })
    }
}

/// Checks one group name.
pub fn check_group(group: &str) -> Result<(), DirectoryError> {
    let valid = (1..=64).contains(&group.chars().count())
        && group
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, ' ' | '.' | '_' | '-'));
    if valid {
        Ok(())
    } else {
        Err(DirectoryError::Invalid(format!(
            "`{group}` is not a group name: use 1 to 64 letters, digits, spaces, dots, dashes or underscores"
        )))
    }
}

/// A way to sign in that a person has registered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MethodSummary {
    /// Identifier.
    pub id: String,
    /// `totp` or `fido2`.
    pub kind: String,
    /// The name the person gave it.
    pub label: String,
    /// When it was registered.
    pub created_at: DateTime<Utc>,
    /// When it was last used to sign in.
    pub last_used_at: Option<DateTime<Utc>>,
}

/// A person as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserSummary {
    /// Work email.
    pub email: Email,
    /// Name shown at the kiosk.
    pub display_name: Option<String>,
    /// Groups.
    pub groups: Vec<String>,
    /// Whether they may sign in.
    pub enabled: bool,
    /// The state of their newest pass, if they have one.
    pub pass_status: Option<PassStatus>,
    /// How many methods they have registered.
    pub methods: i64,
}

/// Everything about one person.
#[derive(Debug, Clone)]
pub struct UserDetail {
    /// The summary.
    pub summary: UserSummary,
    /// When they were added.
    pub created_at: DateTime<Utc>,
    /// Their passes, newest first, with their states.
    pub passes: Vec<(Pass, PassStatus)>,
    /// Their registered methods.
    pub methods: Vec<MethodSummary>,
}
