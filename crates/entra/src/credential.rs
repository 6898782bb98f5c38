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
    #[error("no {what} in the OS credential store for app {client_id} ({reason}): {hint}")]
    Store {
        /// What was looked for.
        what: &'static str,
        /// The app.
        client_id: String,
        /// What the store said.
        reason: String,
        /// How to put it there.
        hint: &'static str,
    },
    /// The key in the store is not the certificate's.
    #[error("{0}")]
    Mismatch(String),
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
            EntraCredential::CertificateInOsStore(path) => {
                let certificate = certificate_of(path)?;
                let stored = Zeroizing::new(
                    Stored::Key
                        .entry(client_id)
                        .and_then(|entry| entry.get_password())
                        .map_err(|e| Stored::Key.error(client_id, &e))?,
                );
                let key = PKey::private_key_from_pem(stored.as_bytes()).map_err(|_| {
                    CredentialError::Mismatch(
                        "the key in the OS credential store is no PEM private key: store it again with `tapctl entra set-key`".into(),
                    )
                })?;
                check_pair(&certificate, &key, path)?;
                Ok(Self::Certificate { key, certificate })
            }
            EntraCredential::SecretInOsStore => {
                let secret = Stored::Secret
                    .entry(client_id)
                    .and_then(|entry| entry.get_password())
                    .map_err(|e| Stored::Secret.error(client_id, &e))?;
                Ok(Self::Secret(Zeroizing::new(secret)))
            }
        }
    }

    /// Keeps `secret` in the OS credential store for the app `client_id`.
    pub fn store_secret(client_id: &str, secret: &str) -> Result<(), CredentialError> {
        Stored::Secret
            .entry(client_id)
            .and_then(|entry| entry.set_password(secret))
            .map_err(|e| Stored::Secret.error(client_id, &e))
    }

    /// Keeps the private key (`pem`, a PEM private key) of the certificate
    /// in the PEM file `certificate` in the OS credential store for the
    /// app `client_id`; a key that is not the certificate's is refused.
    pub fn store_key(
        client_id: &str,
        certificate: &Path,
        pem: &[u8],
    ) -> Result<(), CredentialError> {
        let key = PKey::private_key_from_pem(pem)
            .map_err(|_| CredentialError::File("that is no PEM private key".into()))?;
        check_pair(&certificate_of(certificate)?, &key, certificate)?;
        let pem = Zeroizing::new(
            key.private_key_to_pem_pkcs8()
                .map_err(|e| CredentialError::File(e.to_string()))?,
        );
        let text = Zeroizing::new(String::from_utf8_lossy(&pem).into_owned());
        Stored::Key
            .entry(client_id)
            .and_then(|entry| entry.set_password(&text))
            .map_err(|e| Stored::Key.error(client_id, &e))
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

/// The certificate in the PEM file `path` (public: any permissions).
fn certificate_of(path: &Path) -> Result<X509, CredentialError> {
    let shown = path.display();
    let pem = std::fs::read(path)
        .map_err(|e| CredentialError::File(format!("cannot read {shown}: {e}")))?;
    X509::from_pem(&pem)
        .map_err(|_| CredentialError::File(format!("{shown} holds no PEM certificate")))
}

/// Refuses a private key that is not the certificate's (in `path`).
fn check_pair(certificate: &X509, key: &PKey<Private>, path: &Path) -> Result<(), CredentialError> {
    let matches = certificate
        .public_key()
        .is_ok_and(|public| public.public_eq(key));
    if matches {
        Ok(())
    } else {
        Err(CredentialError::Mismatch(format!(
            "the private key is not the key of the certificate {}",
            path.display()
        )))
    }
}

/// What tapkiosk keeps of the app's in the OS credential store.
#[derive(Clone, Copy)]
enum Stored {
    Secret,
    Key,
}

impl Stored {
    fn entry(self, client_id: &str) -> keyring::Result<keyring::Entry> {
        let name = match self {
            Self::Secret => "entra-client-secret",
            Self::Key => "entra-certificate-key",
        };
        keyring::Entry::new(STORE_SERVICE, &format!("{name}/{client_id}"))
    }

    fn error(self, client_id: &str, reason: &keyring::Error) -> CredentialError {
        let (what, hint) = match self {
            Self::Secret => (
                "client secret",
                "store one with `tapctl entra set-secret`, or set entra.certificate_file",
            ),
            Self::Key => (
                "private key of the certificate",
                "store it with `tapctl entra set-key`",
            ),
        };
        CredentialError::Store {
            what,
            client_id: client_id.to_string(),
            reason: reason.to_string(),
            hint,
        }
    }
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
