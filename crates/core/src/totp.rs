//! Authenticator apps (TOTP, RFC 6238).
//!
//! A 160-bit secret from the OS RNG; SHA-1, 6 digits, 30-second steps,
//! because that is what every app supports (Google Authenticator ignores
//! other algorithms and silently shows wrong codes); one step of drift
//! either way; a code once accepted is never accepted again.

use rand::{CryptoRng, RngCore};
use std::fmt;
use thiserror::Error;
use totp_rs::{Algorithm, Builder, Secret, Totp};
use zeroize::Zeroizing;

/// Bytes in a secret: 160 bits, RFC 4226's recommendation.
pub const SECRET_BYTES: usize = 20;

/// A TOTP secret. Its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct TotpSecret(Zeroizing<[u8; SECRET_BYTES]>);

/// Why a code was not accepted. Both are things the person can fix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum CodeRejected {
    /// Not the code for now (or a typo, or a clock far off).
    #[error("that code is not right")]
    Wrong,
    /// The right code, but it was accepted before: wait for the next one.
    #[error("that code was already used: wait for the next one")]
    Reused,
}

/// A TOTP setup that cannot be made (an account name the URI cannot carry).
#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[error("cannot set up an authenticator app: {0}")]
pub struct TotpError(String);

impl TotpSecret {
    /// Draws a new secret.
    pub fn generate(rng: &mut (impl RngCore + CryptoRng)) -> Self {
        let mut bytes = Zeroizing::new([0u8; SECRET_BYTES]);
        rng.fill_bytes(bytes.as_mut());
        Self(bytes)
    }

    /// A secret from stored bytes.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let array: [u8; SECRET_BYTES] = bytes.try_into().ok()?;
        Some(Self(Zeroizing::new(array)))
    }

    /// A secret typed or scanned as base32 (spaces and case ignored), as an
    /// authenticator app reads it.
    pub fn from_base32(text: &str) -> Option<Self> {
        let compact: String = text
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect::<String>()
            .to_uppercase();
        let secret = Secret::try_from_base32(compact).ok()?;
        Self::from_bytes(secret.as_bytes())
    }

    /// The raw bytes, for sealing.
    pub fn expose(&self) -> &[u8] {
        self.0.as_ref()
    }

    /// Base32 (RFC 4648, no padding), as typed into an app by hand.
    pub fn base32(&self) -> Zeroizing<String> {
        Zeroizing::new(Secret::new_stack(*self.0).to_base32())
    }

    /// The base32 secret in groups of four, easier to type.
    pub fn grouped(&self) -> Zeroizing<String> {
        let base32 = self.base32();
        let chars: Vec<char> = base32.chars().collect();
        Zeroizing::new(
            chars
                .chunks(4)
                .map(|g| g.iter().collect::<String>())
                .collect::<Vec<_>>()
                .join(" "),
        )
    }

    fn totp(&self, issuer: &str, account: &str) -> Result<Totp, TotpError> {
        Builder::new()
            .with_algorithm(Algorithm::SHA1)
            .with_digits(6)
            .with_step_duration(30)
            .with_skew(1)
            .with_secret(Secret::new_stack(*self.0))
            .with_issuer(Some(issuer))
            .with_account_name(account)
            .build()
            .map_err(|e| TotpError(e.to_string()))
    }

    /// The `otpauth://totp/…` URI the QR code carries: issuer = the
    /// organisation, account = the person's email.
    pub fn uri(&self, issuer: &str, account: &str) -> Result<Zeroizing<String>, TotpError> {
        let url = self
            .totp(issuer, account)?
            .to_url()
            .map_err(|e| TotpError(e.to_string()))?;
        Ok(Zeroizing::new(url))
    }

    /// The code for the Unix time `at` (for tests and the test sign-in).
    pub fn code_at(&self, at: i64) -> Result<String, TotpError> {
        Ok(self
            .totp("tapkiosk", "code")?
            .generate(u64::try_from(at).unwrap_or(0))
            .to_string())
    }

    /// Checks `code` at Unix time `at`, one step either way. Returns the
    /// matched time step, which must be later than `last_step` (the last
    /// one accepted) so that no code works twice.
    pub fn check(&self, code: &str, at: i64, last_step: Option<u64>) -> Result<u64, CodeRejected> {
        let code: String = code
            .chars()
            .filter(|c| !c.is_whitespace() && *c != '-')
            .collect();
        let totp = self
            .totp("tapkiosk", "code")
            .map_err(|_| CodeRejected::Wrong)?;
        let step = totp
            .check(&code, u64::try_from(at).unwrap_or(0))
            .ok_or(CodeRejected::Wrong)?;
        match last_step {
            Some(last) if step <= last => Err(CodeRejected::Reused),
            _ => Ok(step),
        }
    }
}

impl fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TotpSecret(<redacted>)")
    }
}

/// Checks that `issuer` (the organisation) can name the account in every
/// authenticator app: no colon, which apps read as the end of the issuer
/// in `Issuer:account`, and short enough that the QR code still holds it
/// beside the longest address an email can be. Otherwise the kiosk would
/// have no QR code to show.
pub fn check_issuer(issuer: &str) -> Result<(), TotpError> {
    if issuer.contains(':') {
        return Err(TotpError(
            "the organisation must not contain ':', which authenticator apps read as the end of its name".into(),
        ));
    }
    let longest_email = format!("{}@{}.com", "a".repeat(64), "b".repeat(185));
    let secret = TotpSecret(Zeroizing::new([0; SECRET_BYTES]));
    let uri = secret.uri(issuer, &longest_email)?;
    qrcode::QrCode::new(uri.as_bytes())
        .map(drop)
        .map_err(|_| TotpError("the organisation is too long for the QR code: shorten it".into()))
}

/// The QR code of `uri` as an SVG document.
pub fn qr_svg(uri: &str) -> Result<String, TotpError> {
    let code = qrcode::QrCode::new(uri.as_bytes()).map_err(|e| TotpError(e.to_string()))?;
    Ok(code
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(240, 240)
        .quiet_zone(true)
        .build())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::OsRng;

    /// RFC 6238 appendix B, SHA-1 rows (8 digits there; the last 6 here).
    #[test]
    fn rfc_6238_vectors() {
        let secret = TotpSecret::from_bytes(b"12345678901234567890").unwrap();
        for (at, code) in [
            (59, "94287082"),
            (1_111_111_109, "07081804"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
        ] {
            assert_eq!(secret.code_at(at).unwrap(), &code[2..]);
        }
    }

    #[test]
    fn a_code_works_one_step_either_way_and_only_once() {
        let secret = TotpSecret::generate(&mut OsRng);
        let now = 1_800_000_000;
        let code = secret.code_at(now).unwrap();
        let step = secret.check(&code, now, None).unwrap();
        assert_eq!(step, 1_800_000_000 / 30);
        assert_eq!(
            secret.check(&code, now, Some(step)),
            Err(CodeRejected::Reused)
        );
        assert!(
            secret
                .check(&secret.code_at(now - 30).unwrap(), now, None)
                .is_ok()
        );
        assert!(
            secret
                .check(&secret.code_at(now + 30).unwrap(), now, None)
                .is_ok()
        );
        assert_eq!(
            secret.check(&secret.code_at(now - 90).unwrap(), now, None),
            Err(CodeRejected::Wrong)
        );
        let spaced = format!("{} {}", &code[..3], &code[3..]);
        assert!(secret.check(&spaced, now, None).is_ok());
        assert_eq!(secret.check("abcdef", now, None), Err(CodeRejected::Wrong));
    }

    #[test]
    fn the_uri_names_issuer_and_account_and_the_qr_carries_it() {
        let secret = TotpSecret::generate(&mut OsRng);
        let uri = secret.uri("Example Ltd", "ada@example.com").unwrap();
        assert!(
            uri.starts_with("otpauth://totp/Example%20Ltd:ada%40example.com?"),
            "{}",
            *uri
        );
        assert!(uri.contains(&format!("secret={}", *secret.base32())));
        assert!(uri.contains("issuer=Example%20Ltd"));
        let svg = qr_svg(&uri).unwrap();
        assert!(svg.starts_with("<?xml") && svg.contains("<svg"));
        assert_eq!(secret.grouped().replace(' ', ""), *secret.base32());
        assert!(!format!("{secret:?}").contains(&*secret.base32()));
    }
}
