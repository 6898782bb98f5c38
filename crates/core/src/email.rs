//! Work email addresses, the name a person gives at the kiosk.

use serde::{Deserialize, Serialize};
use std::fmt;
use thiserror::Error;

/// A syntactically valid email address, lower-cased so that the directory
/// treats `Ada@Example.com` and `ada@example.com` as one person.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Email(String);

/// An email address that is not one.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("`{0}` is not a valid email address")]
pub struct EmailError(pub String);

impl Email {
    /// Checks and normalises an address.
    pub fn parse(text: &str) -> Result<Self, EmailError> {
        let trimmed = text.trim();
        // Quoted local parts (`"a:b"@example.com`) are valid mail but no
        // work account's: they would carry a colon into the authenticator
        // app's `Issuer:account` name.
        let valid = trimmed.len() <= 254
            && !trimmed.starts_with('"')
            && email_address::EmailAddress::parse_with_options(
                trimmed,
                email_address::Options::default().without_display_text(),
            )
            .is_ok_and(|address| address.domain().contains('.'));
        if valid {
            Ok(Self(trimmed.to_lowercase()))
        } else {
            Err(EmailError(trimmed.chars().take(80).collect()))
        }
    }

    /// The normalised address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for Email {
    type Error = EmailError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<Email> for String {
    fn from(value: Email) -> Self {
        value.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_lower_cased_and_trimmed() {
        assert_eq!(
            Email::parse("  Ada.Lovelace@Example.COM ")
                .unwrap()
                .as_str(),
            "ada.lovelace@example.com"
        );
    }

    #[test]
    fn malformed_addresses_are_refused() {
        for bad in [
            "",
            "ada",
            "ada@",
            "@example.com",
            "ada@example",
            "Ada <ada@example.com>",
            "a b@example.com",
            "\"ada:it\"@example.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad} was accepted");
        }
    }
}
