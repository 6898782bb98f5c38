//! The app registration's credential: a certificate (preferred: nothing
//! secret crosses the network) or a client secret, and the client
//! assertion a certificate signs for each token request.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Padding;
use openssl::sign::{RsaPssSaltlen, Signer};
use openssl::x509::X509;
use std::path::Path;
use tapkiosk_core::config::EntraCredential;
use zeroize::Zeroizing;

/// The OS credential store's service for tapkiosk's secrets.
const STORE_SERVICE: &str = "tapkiosk";

/// A client assertion lives this long (the docs ask for 5–10 minutes).
const ASSERTION_LIFETIME: i64 = 5 * 60;

/// A loaded credential.
pub enum Credential {
    /// A private key and its certificate (the one uploaded to the app).
    Certificate {
        /// The private key.
        key: PKey<Private>,
        /// The certificate.
        certificate: X509,
    },
    /// A client secret.
    Secret(Zeroizing<String>),
    /// None: a public client, acting for an administrator who signed in
    /// (device code).
    Delegated,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Certificate { .. } => f.write_str("Credential::Certificate(<redacted>)"),
            Self::Secret(_) => f.write_str("Credential::Secret(<redacted>)"),
            Self::Delegated => f.write_str("Credential::Delegated"),
        }
    }
}

/// Why the credential could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    /// The file is missing, unreadable or readable by others.
    #[error("{0}")]
    File(String),
    /// The OS credential store has none, or failed.
    #[error(
        "no client secret in the OS credential store for app {client_id} ({reason}): store one with `tapctl entra set-secret`, or set entra.certificate_file"
    )]
    Store {
        /// The app.
        client_id: String,
        /// What the store said.
        reason: String,
    },
}

impl Credential {
    /// Loads the credential the configuration names for the app `client_id`.
    pub fn load(source: &EntraCredential, client_id: &str) -> Result<Self, CredentialError> {
        match source {
            EntraCredential::CertificateFile(path) => {
                let pem = read_private(path)?;
                let shown = path.display();
                let key = PKey::private_key_from_pem(&pem).map_err(|_| {
                    CredentialError::File(format!("{shown} holds no PEM private key"))
                })?;
                let certificate = X509::from_pem(&pem).map_err(|_| {
                    CredentialError::File(format!("{shown} holds no PEM certificate"))
                })?;
                Ok(Self::Certificate { key, certificate })
            }
            EntraCredential::SecretFile(path) => {
                let text = read_private(path)?;
                let secret = String::from_utf8_lossy(&text).trim().to_string();
                if secret.is_empty() {
                    return Err(CredentialError::File(format!(
                        "{} is empty",
                        path.display()
                    )));
                }
                Ok(Self::Secret(Zeroizing::new(secret)))
            }
            EntraCredential::SecretInOsStore => {
                let store = |reason: String| CredentialError::Store {
                    client_id: client_id.to_string(),
                    reason,
                };
                let secret = store_entry(client_id)
                    .and_then(|entry| entry.get_password())
                    .map_err(|e| store(e.to_string()))?;
                Ok(Self::Secret(Zeroizing::new(secret)))
            }
        }
    }

    /// Keeps `secret` in the OS credential store for the app `client_id`.
    pub fn store_secret(client_id: &str, secret: &str) -> Result<(), CredentialError> {
        store_entry(client_id)
            .and_then(|entry| entry.set_password(secret))
            .map_err(|e| CredentialError::Store {
                client_id: client_id.to_string(),
                reason: e.to_string(),
            })
    }

    /// The form fields that authenticate the app at `token_endpoint`.
    pub(crate) fn form_fields(
        &self,
        client_id: &str,
        token_endpoint: &str,
        now: i64,
    ) -> Result<Vec<(&'static str, Zeroizing<String>)>, openssl::error::ErrorStack> {
        Ok(match self {
            Self::Secret(secret) => vec![("client_secret", secret.clone())],
            Self::Delegated => Vec::new(),
            Self::Certificate { key, certificate } => vec![
                (
                    "client_assertion_type",
                    Zeroizing::new("urn:ietf:params:oauth:client-assertion-type:jwt-bearer".into()),
                ),
                (
                    "client_assertion",
                    Zeroizing::new(assertion(key, certificate, client_id, token_endpoint, now)?),
                ),
            ],
        })
    }
}

fn store_entry(client_id: &str) -> keyring::Result<keyring::Entry> {
    keyring::Entry::new(STORE_SERVICE, &format!("entra-client-secret/{client_id}"))
}

/// A file only its owner may read: it holds a key or a secret.
fn read_private(path: &Path) -> Result<Zeroizing<Vec<u8>>, CredentialError> {
    use std::os::unix::fs::PermissionsExt;
    let shown = path.display();
    let metadata = std::fs::metadata(path)
        .map_err(|e| CredentialError::File(format!("cannot read {shown}: {e}")))?;
    if metadata.permissions().mode() & 0o077 != 0 {
        return Err(CredentialError::File(format!(
            "{shown} can be read by others: make it private (chmod 600 {shown})"
        )));
    }
    std::fs::read(path)
        .map(Zeroizing::new)
        .map_err(|e| CredentialError::File(format!("cannot read {shown}: {e}")))
}

/// A client assertion as Microsoft's identity platform documents it: a JWT
/// signed PS256, naming the certificate by its SHA-256 thumbprint
/// (`x5t#S256`), for the token endpoint (`aud`), from and about the app
/// (`iss`, `sub`), once (`jti`), for a few minutes.
pub fn assertion(
    key: &PKey<Private>,
    certificate: &X509,
    client_id: &str,
    token_endpoint: &str,
    now: i64,
) -> Result<String, openssl::error::ErrorStack> {
    let thumbprint = certificate.digest(MessageDigest::sha256())?;
    let header = serde_json::json!({
        "alg": "PS256",
        "typ": "JWT",
        "x5t#S256": URL_SAFE_NO_PAD.encode(thumbprint),
    });
    let claims = serde_json::json!({
        "aud": token_endpoint,
        "iss": client_id,
        "sub": client_id,
        "jti": uuid::Uuid::new_v4().to_string(),
        "nbf": now,
        "iat": now,
        "exp": now + ASSERTION_LIFETIME,
    });
    let signed = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let mut signer = Signer::new(MessageDigest::sha256(), key)?;
    signer.set_rsa_padding(Padding::PKCS1_PSS)?;
    signer.set_rsa_pss_saltlen(RsaPssSaltlen::DIGEST_LENGTH)?;
    signer.update(signed.as_bytes())?;
    let signature = signer.sign_to_vec()?;
    Ok(format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature)))
}
