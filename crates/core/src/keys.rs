//! The directory key and where it lives.
//!
//! One 256-bit secret per directory, held outside the database: in the OS
//! credential store through `keyring`, or, where there is none (a headless
//! server, CI), in a key file that the administrator names explicitly with
//! `TAPKIOSK_KEY_FILE`. There is never a silent fallback. Separate keys for
//! pass HMACs, the audit chain and sealing secrets and credentials are derived
//! from it with HKDF, so one export moves everything a kiosk needs.

use crate::pass::PassCode;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use rand::{CryptoRng, RngCore};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::fmt;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use subtle::ConstantTimeEq;
use thiserror::Error;
use zeroize::Zeroizing;

/// The environment variable that names a key file instead of the OS store.
pub const KEY_FILE_ENV: &str = "TAPKIOSK_KEY_FILE";
const KEYRING_SERVICE: &str = "tapkiosk";
const KEYRING_ACCOUNT: &str = "directory-key";
const KEY_FILE_HEADER: &str = "tapkiosk-directory-key-v1";
const EXPORT_FORMAT: &str = "tapkiosk-key-export-v1";
/// The shortest passphrase an export accepts.
pub const MIN_PASSPHRASE_CHARS: usize = 12;

type HmacSha256 = Hmac<Sha256>;

/// The directory's master secret and the keys derived from it.
#[derive(Clone)]
pub struct DirectoryKey {
    master: Zeroizing<[u8; 32]>,
    pass_key: Zeroizing<[u8; 32]>,
    audit_key: Zeroizing<[u8; 32]>,
    secret_key: Zeroizing<[u8; 32]>,
    record_key: Zeroizing<[u8; 32]>,
}

/// The fields of a pass row that its stored MAC covers: everything that
/// decides whose pass it is and when it works.
#[derive(Debug, Clone, Copy)]
pub struct PassBinding<'a> {
    /// The pass's id.
    pub id: &'a str,
    /// Its owner's user id.
    pub user_id: &'a str,
    /// Its start, in epoch seconds as stored.
    pub start_at: i64,
    /// Its lifetime in minutes.
    pub lifetime_minutes: i64,
    /// Whether it is one-time.
    pub one_time: bool,
}

/// Problems with finding, storing or moving the directory key.
#[derive(Debug, Error)]
pub enum KeyError {
    /// No usable OS credential store.
    #[error(
        "no OS credential store is available ({detail}); to keep the directory key in a file instead, set {KEY_FILE_ENV}=/path/to/directory.key (created with 0600 permissions)"
    )]
    NoCredentialStore {
        /// What the store said.
        detail: String,
    },
    /// No key has been created or imported yet.
    #[error(
        "no directory key in {location}: run `tapctl init` for a new directory, or `tapctl key import` to join an existing one"
    )]
    Missing {
        /// Where we looked.
        location: String,
    },
    /// A key is already stored and would be overwritten.
    #[error(
        "a different directory key is already stored in {location}; remove it first if you really mean to replace it"
    )]
    AlreadyStored {
        /// Where it is.
        location: String,
    },
    /// The key file can be read by other users.
    #[error("the key file {path} can be read by other users: run `chmod 600 {path}`")]
    FileTooOpen {
        /// The file.
        path: String,
    },
    /// The key file or export is not ours or is damaged.
    #[error("{what} is not a tapkiosk key: {reason}")]
    Malformed {
        /// Which file.
        what: String,
        /// Why.
        reason: String,
    },
    /// The export could not be decrypted.
    #[error("the passphrase is wrong, or the key export was changed")]
    WrongPassphrase,
    /// A passphrase too short to protect an export.
    #[error("the passphrase must have at least {MIN_PASSPHRASE_CHARS} characters")]
    WeakPassphrase,
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The failure.
        source: std::io::Error,
    },
}

impl DirectoryKey {
    /// Draws a new key from `rng`.
    pub fn generate(rng: &mut (impl RngCore + CryptoRng)) -> Self {
        let mut master = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(master.as_mut());
        Self::from_master(master)
    }

    fn from_master(master: Zeroizing<[u8; 32]>) -> Self {
        let derive = |label: &[u8]| {
            let mut out = Zeroizing::new([0u8; 32]);
            // A 32-byte output is always within HKDF-SHA256's limit.
            let _ = hkdf::Hkdf::<Sha256>::new(None, master.as_ref()).expand(label, out.as_mut());
            out
        };
        let pass_key = derive(b"tapkiosk pass hmac v1");
        let audit_key = derive(b"tapkiosk audit chain v1");
        let secret_key = derive(b"tapkiosk secret encryption v1");
        let record_key = derive(b"tapkiosk record mac v1");
        Self {
            master,
            pass_key,
            audit_key,
            secret_key,
            record_key,
        }
    }

    fn from_slice(bytes: &[u8], what: &str) -> Result<Self, KeyError> {
        let master: [u8; 32] = bytes.try_into().map_err(|_| KeyError::Malformed {
            what: what.to_string(),
            reason: format!("expected 32 bytes, found {}", bytes.len()),
        })?;
        Ok(Self::from_master(Zeroizing::new(master)))
    }

    /// The HMAC-SHA256 of a pass value alone. Never stored as it is: see
    /// [`bind_pass`](Self::bind_pass).
    pub fn pass_mac(&self, code: &PassCode) -> [u8; 32] {
        mac_of(self.pass_key.as_ref(), &[code.expose().as_bytes()])
    }

    /// What a pass row stores: the value's HMAC bound to the row's id,
    /// owner, start, lifetime and one-time flag, so that a MAC copied onto
    /// another person's row, or a row whose lifetime was stretched, no
    /// longer matches any value.
    pub fn bind_pass(&self, binding: &PassBinding<'_>, value_mac: &[u8]) -> [u8; 32] {
        mac_of(
            self.pass_key.as_ref(),
            &[
                b"tapkiosk pass binding v2",
                binding.id.as_bytes(),
                binding.user_id.as_bytes(),
                &binding.start_at.to_be_bytes(),
                &binding.lifetime_minutes.to_be_bytes(),
                &[u8::from(binding.one_time)],
                value_mac,
            ],
        )
    }

    /// Whether the pass whose [`pass_mac`](Self::pass_mac) is `value_mac`
    /// is the one stored as `stored` in the row `binding` describes,
    /// compared in constant time. The value's HMAC is taken once by the
    /// caller, however many rows it is compared with.
    pub fn pass_matches(
        &self,
        value_mac: &[u8; 32],
        binding: &PassBinding<'_>,
        stored: &[u8],
    ) -> bool {
        self.bind_pass(binding, value_mac).ct_eq(stored).into()
    }

    /// Vouches for a stored record (the policy, an administrator's
    /// credential) that only tapkiosk may write: `kind` names the record,
    /// `parts` are its fields.
    pub fn record_mac(&self, kind: &str, parts: &[&[u8]]) -> [u8; 32] {
        let mut all: Vec<&[u8]> = vec![b"tapkiosk record v1", kind.as_bytes()];
        all.extend_from_slice(parts);
        mac_of(self.record_key.as_ref(), &all)
    }

    /// Whether `stored` is the [`record_mac`](Self::record_mac) of the record.
    pub fn record_matches(&self, kind: &str, parts: &[&[u8]], stored: &[u8]) -> bool {
        self.record_mac(kind, parts).ct_eq(stored).into()
    }

    /// Links an audit event to the one before it. Keyed, so that someone
    /// with write access to the database alone cannot rebuild the chain.
    pub fn audit_mac(&self, previous: &[u8], event: &[u8]) -> [u8; 32] {
        mac_of(self.audit_key.as_ref(), &[previous, event])
    }

    /// Vouches for the audit log's newest event, so that deleting the newest
    /// events and moving the head back shows.
    pub fn audit_head_tag(&self, seq: i64, mac: &[u8]) -> [u8; 32] {
        mac_of(
            self.audit_key.as_ref(),
            &[b"audit head", &seq.to_be_bytes(), mac],
        )
    }

    /// A stable stand-in for text that must not be stored as typed (a pass
    /// typed into the email field, say): hex of its keyed hash.
    pub fn opaque_id(&self, text: &str) -> String {
        let tag = mac_of(self.audit_key.as_ref(), &[b"opaque id", text.as_bytes()]);
        tag.iter().take(16).map(|b| format!("{b:02x}")).collect()
    }

    /// The number of a database lock standing for `text`: the same on
    /// every kiosk with this directory's key. Two texts sharing a number
    /// (one chance in 2^64) only wait on each other.
    pub fn lock_number(&self, text: &str) -> i64 {
        let tag = mac_of(self.audit_key.as_ref(), &[b"lock", text.as_bytes()]);
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(&tag[..8]);
        i64::from_be_bytes(bytes)
    }

    /// Encrypts a method's secret (XChaCha20-Poly1305, random nonce) bound
    /// to `context` (the user and method ids), so that a sealed secret moved
    /// to another row does not open.
    pub fn seal(
        &self,
        context: &[u8],
        secret: &[u8],
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Vec<u8> {
        let mut nonce = [0u8; 24];
        rng.fill_bytes(&mut nonce);
        let cipher = XChaCha20Poly1305::new(self.secret_key.as_ref().into());
        let sealed = cipher.encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: secret,
                aad: context,
            },
        );
        // Encryption only fails for inputs of gigabytes.
        let mut out = nonce.to_vec();
        out.extend(sealed.unwrap_or_default());
        out
    }

    /// Decrypts what [`seal`](Self::seal) produced for the same `context`.
    pub fn open(&self, context: &[u8], sealed: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        if sealed.len() < 24 {
            return None;
        }
        let (nonce, ciphertext) = sealed.split_at(24);
        let cipher = XChaCha20Poly1305::new(self.secret_key.as_ref().into());
        cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: context,
                },
            )
            .ok()
            .map(Zeroizing::new)
    }

    /// A value stored in the directory to tell whether a kiosk holds the
    /// right key, without revealing the key.
    pub fn check_value(&self) -> [u8; 32] {
        mac_of(self.master.as_ref(), &[b"tapkiosk key check v1"])
    }

    /// Whether `stored` is this key's [`check_value`](Self::check_value).
    pub fn matches_check(&self, stored: &[u8]) -> bool {
        self.check_value().ct_eq(stored).into()
    }
}

impl fmt::Debug for DirectoryKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DirectoryKey(<redacted>)")
    }
}

fn mac_of(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // Counted by a system test: redeeming must take as many HMACs for an
    // unknown email as for a wrong pass.
    tracing::trace!(target: "tapkiosk::hmac", "HMAC");
    // HMAC accepts keys of any length, so this cannot fail.
    let Ok(mut mac) = <HmacSha256 as Mac>::new_from_slice(key) else {
        return [0; 32];
    };
    for part in parts {
        mac.update(&(part.len() as u64).to_be_bytes());
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// Where the directory key is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyStore {
    /// The OS credential store (Secret Service, Keychain, Credential Manager).
    Os,
    /// A file readable only by its owner, named by `TAPKIOSK_KEY_FILE`.
    File(PathBuf),
}

impl KeyStore {
    /// The key file named by `TAPKIOSK_KEY_FILE`, or else the OS store.
    pub fn from_env() -> Self {
        match std::env::var_os(KEY_FILE_ENV) {
            Some(path) if !path.is_empty() => Self::File(PathBuf::from(path)),
            _ => Self::Os,
        }
    }

    /// Where this is, in words.
    pub fn describe(&self) -> String {
        match self {
            Self::Os => "the OS credential store".to_string(),
            Self::File(path) => format!("the key file {}", path.display()),
        }
    }

    /// The stored key, if there is one.
    pub fn load(&self) -> Result<Option<DirectoryKey>, KeyError> {
        match self {
            Self::Os => match os_entry()?.get_secret() {
                Ok(bytes) => {
                    let bytes = Zeroizing::new(bytes);
                    DirectoryKey::from_slice(&bytes, "the OS credential store entry").map(Some)
                }
                Err(keyring::Error::NoEntry) => Ok(None),
                Err(e) => Err(store_error(e)),
            },
            Self::File(path) => load_file(path),
        }
    }

    /// The stored key, or an error that says how to get one.
    pub fn require(&self) -> Result<DirectoryKey, KeyError> {
        self.load()?.ok_or_else(|| KeyError::Missing {
            location: self.describe(),
        })
    }

    /// Stores `key`. Refuses to replace a different stored key; storing the
    /// same key again is harmless.
    pub fn save(&self, key: &DirectoryKey) -> Result<(), KeyError> {
        if let Some(existing) = self.load()? {
            return if existing.master.ct_eq(key.master.as_ref()).into() {
                Ok(())
            } else {
                Err(KeyError::AlreadyStored {
                    location: self.describe(),
                })
            };
        }
        match self {
            Self::Os => os_entry()?
                .set_secret(key.master.as_ref())
                .map_err(store_error),
            Self::File(path) => save_file(path, key),
        }
    }
}

fn os_entry() -> Result<keyring::Entry, KeyError> {
    keyring::Entry::new(KEYRING_SERVICE, KEYRING_ACCOUNT).map_err(store_error)
}

fn store_error(error: keyring::Error) -> KeyError {
    KeyError::NoCredentialStore {
        detail: error.to_string(),
    }
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> KeyError + '_ {
    move |source| KeyError::Io {
        path: path.display().to_string(),
        source,
    }
}

fn load_file(path: &Path) -> Result<Option<DirectoryKey>, KeyError> {
    let metadata = match std::fs::metadata(path) {
        Ok(metadata) => metadata,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error(path)(e)),
    };
    if metadata.permissions().mode() & 0o077 != 0 {
        return Err(KeyError::FileTooOpen {
            path: path.display().to_string(),
        });
    }
    let text = Zeroizing::new(std::fs::read_to_string(path).map_err(io_error(path))?);
    let what = format!("the key file {}", path.display());
    let malformed = |reason: &str| KeyError::Malformed {
        what: what.clone(),
        reason: reason.to_string(),
    };
    let encoded = text
        .trim()
        .strip_prefix(KEY_FILE_HEADER)
        .ok_or_else(|| malformed("it does not start with the tapkiosk header"))?;
    let bytes = Zeroizing::new(
        BASE64
            .decode(encoded.trim())
            .map_err(|_| malformed("the key is not base64"))?,
    );
    DirectoryKey::from_slice(&bytes, &what).map(Some)
}

fn save_file(path: &Path, key: &DirectoryKey) -> Result<(), KeyError> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
            .map_err(io_error(parent))?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io_error(path))?;
    let text = Zeroizing::new(format!(
        "{KEY_FILE_HEADER} {}\n",
        BASE64.encode(key.master.as_ref())
    ));
    file.write_all(text.as_bytes()).map_err(io_error(path))?;
    file.sync_all().map_err(io_error(path))
}

/// A directory key wrapped under a passphrase, to carry to another kiosk.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Export {
    format: String,
    kdf: String,
    memory_kib: u32,
    iterations: u32,
    parallelism: u32,
    salt: String,
    nonce: String,
    ciphertext: String,
}

fn wrapping_key(
    passphrase: &str,
    salt: &[u8],
    export: &Export,
) -> Result<Zeroizing<[u8; 32]>, KeyError> {
    let params = argon2::Params::new(
        export.memory_kib,
        export.iterations,
        export.parallelism,
        Some(32),
    )
    .map_err(|e| KeyError::Malformed {
        what: "the key export".into(),
        reason: e.to_string(),
    })?;
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut key = Zeroizing::new([0u8; 32]);
    argon
        .hash_password_into(passphrase.as_bytes(), salt, key.as_mut())
        .map_err(|e| KeyError::Malformed {
            what: "the key export".into(),
            reason: e.to_string(),
        })?;
    Ok(key)
}

/// Wraps `key` under `passphrase` (Argon2id, then XChaCha20-Poly1305) as a
/// JSON document.
pub fn export(
    key: &DirectoryKey,
    passphrase: &str,
    rng: &mut (impl RngCore + CryptoRng),
) -> Result<String, KeyError> {
    if passphrase.chars().count() < MIN_PASSPHRASE_CHARS {
        return Err(KeyError::WeakPassphrase);
    }
    let mut salt = [0u8; 16];
    let mut nonce = [0u8; 24];
    rng.fill_bytes(&mut salt);
    rng.fill_bytes(&mut nonce);
    let mut export = Export {
        format: EXPORT_FORMAT.into(),
        kdf: "argon2id".into(),
        memory_kib: 64 * 1024,
        iterations: 3,
        parallelism: 1,
        salt: BASE64.encode(salt),
        nonce: BASE64.encode(nonce),
        ciphertext: String::new(),
    };
    let wrapping = wrapping_key(passphrase, &salt, &export)?;
    let cipher = XChaCha20Poly1305::new(wrapping.as_ref().into());
    let sealed = cipher
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: key.master.as_ref(),
                aad: EXPORT_FORMAT.as_bytes(),
            },
        )
        .map_err(|_| KeyError::WrongPassphrase)?;
    export.ciphertext = BASE64.encode(sealed);
    serde_json::to_string_pretty(&export).map_err(|e| KeyError::Malformed {
        what: "the key export".into(),
        reason: e.to_string(),
    })
}

/// The most Argon2 work an export file may ask of the machine that imports
/// it: an export is read before anything in it is authenticated, so a file
/// asking for terabytes of memory must be refused, not attempted. Exports
/// written here ask for 64 MiB and 3 passes.
const MAX_KDF_MEMORY_KIB: u32 = 1024 * 1024;
const MAX_KDF_ITERATIONS: u32 = 10;
const MAX_KDF_PARALLELISM: u32 = 8;

fn check_kdf_costs(export: &Export) -> Result<(), String> {
    if export.memory_kib > MAX_KDF_MEMORY_KIB {
        return Err(format!(
            "it asks Argon2 for {} MiB of memory; at most {} MiB are accepted",
            export.memory_kib / 1024,
            MAX_KDF_MEMORY_KIB / 1024
        ));
    }
    if !(1..=MAX_KDF_ITERATIONS).contains(&export.iterations)
        || !(1..=MAX_KDF_PARALLELISM).contains(&export.parallelism)
    {
        return Err(format!(
            "it asks Argon2 for {} passes on {} lanes; 1 to {MAX_KDF_ITERATIONS} passes on 1 to {MAX_KDF_PARALLELISM} lanes are accepted",
            export.iterations, export.parallelism
        ));
    }
    Ok(())
}

/// Unwraps a key made by [`export`].
pub fn import(text: &str, passphrase: &str) -> Result<DirectoryKey, KeyError> {
    let malformed = |reason: String| KeyError::Malformed {
        what: "the key export".into(),
        reason,
    };
    let export: Export = serde_json::from_str(text).map_err(|e| malformed(e.to_string()))?;
    if export.format != EXPORT_FORMAT || export.kdf != "argon2id" {
        return Err(malformed(format!(
            "unknown format {} / {}",
            export.format, export.kdf
        )));
    }
    let decode = |field: &str| BASE64.decode(field).map_err(|e| malformed(e.to_string()));
    let (salt, nonce, sealed) = (
        decode(&export.salt)?,
        decode(&export.nonce)?,
        decode(&export.ciphertext)?,
    );
    if nonce.len() != 24 {
        return Err(malformed("the nonce must be 24 bytes".into()));
    }
    check_kdf_costs(&export).map_err(malformed)?;
    let wrapping = wrapping_key(passphrase, &salt, &export)?;
    let cipher = XChaCha20Poly1305::new(wrapping.as_ref().into());
    let master = Zeroizing::new(
        cipher
            .decrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: &sealed,
                    aad: EXPORT_FORMAT.as_bytes(),
                },
            )
            .map_err(|_| KeyError::WrongPassphrase)?,
    );
    DirectoryKey::from_slice(&master, "the key export")
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::OsRng;

    #[test]
    fn pass_macs_depend_on_the_key_the_value_and_the_row() {
        let key = DirectoryKey::generate(&mut OsRng);
        let other = DirectoryKey::generate(&mut OsRng);
        let code = PassCode::parse("ABCD-EFGH-JKMN").unwrap();
        let row = PassBinding {
            id: "pass-1",
            user_id: "user-1",
            start_at: 1_000,
            lifetime_minutes: 60,
            one_time: true,
        };
        let stored = key.bind_pass(&row, &key.pass_mac(&code));
        assert!(key.pass_matches(
            &key.pass_mac(&PassCode::parse("abcd efgh jkmn").unwrap()),
            &row,
            &stored
        ));
        assert!(!key.pass_matches(
            &key.pass_mac(&PassCode::parse("ABCD-EFGH-JKMP").unwrap()),
            &row,
            &stored
        ));
        assert!(!other.pass_matches(&other.pass_mac(&code), &row, &stored));
        assert!(!key.pass_matches(&key.pass_mac(&code), &row, &stored[..31]));
        for moved in [
            PassBinding {
                id: "pass-2",
                ..row
            },
            PassBinding {
                user_id: "user-2",
                ..row
            },
            PassBinding {
                start_at: 1_001,
                ..row
            },
            PassBinding {
                lifetime_minutes: 61,
                ..row
            },
            PassBinding {
                one_time: false,
                ..row
            },
        ] {
            assert!(
                !key.pass_matches(&key.pass_mac(&code), &moved, &stored),
                "{moved:?}"
            );
        }
    }

    #[test]
    fn record_macs_cover_kind_and_fields() {
        let key = DirectoryKey::generate(&mut OsRng);
        let mac = key.record_mac("policy", &[b"{}"]);
        assert!(key.record_matches("policy", &[b"{}"], &mac));
        assert!(!key.record_matches("policy", &[b"{ }"], &mac));
        assert!(!key.record_matches("admin", &[b"{}"], &mac));
        assert!(!key.record_matches("policy", &[b"{", b"}"], &mac));
    }

    #[test]
    fn sealed_secrets_open_only_in_their_context() {
        let key = DirectoryKey::generate(&mut OsRng);
        let sealed = key.seal(b"user-1/method-1", b"twenty byte secret!!", &mut OsRng);
        assert!(!sealed.windows(6).any(|w| w == b"twenty"));
        assert_eq!(
            key.open(b"user-1/method-1", &sealed).unwrap().as_slice(),
            b"twenty byte secret!!"
        );
        assert!(key.open(b"user-2/method-1", &sealed).is_none());
        assert!(
            DirectoryKey::generate(&mut OsRng)
                .open(b"user-1/method-1", &sealed)
                .is_none()
        );
        assert!(key.open(b"user-1/method-1", &sealed[..20]).is_none());
    }

    #[test]
    fn key_files_are_private_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("directory.key");
        let store = KeyStore::File(path.clone());
        assert!(store.load().unwrap().is_none());
        assert!(matches!(store.require(), Err(KeyError::Missing { .. })));
        let key = DirectoryKey::generate(&mut OsRng);
        store.save(&key).unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let loaded = store.require().unwrap();
        assert_eq!(loaded.check_value(), key.check_value());
        store.save(&key).unwrap();
        let other = DirectoryKey::generate(&mut OsRng);
        assert!(matches!(
            store.save(&other),
            Err(KeyError::AlreadyStored { .. })
        ));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(store.load(), Err(KeyError::FileTooOpen { .. })));
    }

    #[test]
    fn exports_open_only_with_the_passphrase() {
        let key = DirectoryKey::generate(&mut OsRng);
        assert!(matches!(
            export(&key, "short", &mut OsRng),
            Err(KeyError::WeakPassphrase)
        ));
        let text = export(&key, "correct horse battery", &mut OsRng).unwrap();
        assert!(!text.contains(&BASE64.encode(key.master.as_ref())));
        let back = import(&text, "correct horse battery").unwrap();
        assert_eq!(back.check_value(), key.check_value());
        assert!(matches!(
            import(&text, "wrong horse battery"),
            Err(KeyError::WrongPassphrase)
        ));
        let tampered = text.replacen("\"iterations\": 3", "\"iterations\": 2", 1);
        assert!(matches!(
            import(&tampered, "correct horse battery"),
            Err(KeyError::WrongPassphrase)
        ));
        assert!(matches!(
            import("{}", "correct horse battery"),
            Err(KeyError::Malformed { .. })
        ));
    }

    #[test]
    fn exports_asking_for_too_much_work_are_refused_before_any() {
        let key = DirectoryKey::generate(&mut OsRng);
        let text = export(&key, "correct horse battery", &mut OsRng).unwrap();
        for (field, cost) in [
            ("\"memory_kib\": 65536", "\"memory_kib\": 4294967295"),
            ("\"iterations\": 3", "\"iterations\": 4000000000"),
            ("\"iterations\": 3", "\"iterations\": 0"),
            ("\"parallelism\": 1", "\"parallelism\": 4096"),
        ] {
            assert!(text.contains(field), "{field} in {text}");
            let costly = text.replacen(field, cost, 1);
            match import(&costly, "correct horse battery") {
                Err(KeyError::Malformed { reason, .. }) => {
                    assert!(reason.contains("accepted"), "{reason}")
                }
                other => panic!("{cost}: {other:?}"),
            }
        }
    }
}
