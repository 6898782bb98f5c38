//! Security keys (FIDO2). webauthn-rs is the relying party. The kiosk is
//! also the WebAuthn client: it talks CTAP2 to the key itself
//! (webauthn-authenticator-rs), because it enrols keys for the
//! organisation's RP ID and the Linux webview has no WebAuthn for USB keys.
//!
//! Every ceremony requires user verification (the key's PIN). The state
//! between the two halves of a ceremony is a value that the second half
//! consumes: it lives in the kiosk session, is never serialised, and cannot
//! be answered twice.

pub mod ceremony;
pub mod enrolment;
pub mod pin_policy;
#[cfg(feature = "softtoken")]
pub mod soft;

use crate::config::{WebAuthnSettings, read_roots};
use openssl::x509::X509;
use std::collections::BTreeSet;
use thiserror::Error;
use webauthn_rs::prelude::{
    AttestationCaListBuilder, AttestationMetadata, AttestedPasskeyRegistration, Credential,
    PasskeyAuthentication, PasskeyRegistration, Webauthn, WebauthnBuilder, WebauthnError,
};
use webauthn_rs_proto::{
    AllowCredentials, PublicKeyCredentialRequestOptions, UserVerificationPolicy,
};

pub use webauthn_rs::prelude::{
    AuthenticationResult, Base64UrlSafeData, CreationChallengeResponse, Passkey,
    PublicKeyCredential, RegisterPublicKeyCredential, RequestChallengeResponse, Url, Uuid,
};

/// Why a security key was refused.
#[derive(Debug, Error)]
pub enum KeyError {
    /// The configured RP ID, name or origin cannot be used.
    #[error("the WebAuthn settings cannot be used: {0}")]
    Settings(String),
    /// The key is registered to this person already.
    #[error("this key is already registered")]
    AlreadyRegistered,
    /// The signature counter went backwards: the key may have been cloned.
    #[error("this key's signature counter went backwards: it may have been cloned")]
    PossibleClone,
    /// The key did not verify its user (no PIN given).
    #[error("the key did not verify its user (PIN)")]
    UserNotVerified,
    /// The key could not prove its model against the attestation roots.
    #[error("the key could not prove its model ({})", aaguid.map_or("model unknown".to_string(), |a| a.to_string()))]
    Unproven {
        /// The model the key claimed, if it did.
        aaguid: Option<Uuid>,
    },
    /// The answer does not belong to this ceremony (another challenge,
    /// origin or RP ID) or does not verify.
    #[error("the key's answer was refused: {0}")]
    Refused(WebauthnError),
}

impl From<WebauthnError> for KeyError {
    fn from(error: WebauthnError) -> Self {
        match error {
            WebauthnError::CredentialPossibleCompromise => Self::PossibleClone,
            WebauthnError::UserNotVerified => Self::UserNotVerified,
            // webauthn-rs reports an excluded credential under this name.
            WebauthnError::CredentialAlteredAlgFromRequest => Self::AlreadyRegistered,
            WebauthnError::AttestationUntrustedAaguid
            | WebauthnError::AttestationChainNotTrusted(_)
            | WebauthnError::AttestationNotVerifiable
            | WebauthnError::AttestationTrustFailure => Self::Unproven { aaguid: None },
            other => Self::Refused(other),
        }
    }
}

/// The organisation's relying party.
#[derive(Debug)]
pub struct RelyingParty {
    webauthn: Webauthn,
    rp_id: String,
    origin: Url,
    /// Vendors' attestation roots: with a key allow-list, a key must chain
    /// to one of them with an allowed AAGUID.
    roots: Vec<X509>,
}

/// The first half of a registration, consumed by the second.
#[derive(Debug, Clone)]
pub enum Registration {
    /// Any key.
    Any(PasskeyRegistration),
    /// Only keys whose attestation chains to a root, with an allowed AAGUID.
    Attested(AttestedPasskeyRegistration),
}

/// The first half of a sign-in with a key, consumed by the second.
#[derive(Debug, Clone)]
pub struct Authentication(PasskeyAuthentication);

/// A key that has just been registered.
#[derive(Debug, Clone)]
pub struct NewKey {
    /// The credential, in webauthn-rs's own type.
    pub passkey: Passkey,
    /// The model the key reported in its attestation.
    pub aaguid: Option<Uuid>,
    /// The model a key allow-list may go by: the reported one when it was
    /// proven against the configured attestation roots, or when no roots
    /// are configured (then the reported model is trusted); `None` when
    /// roots are configured but this registration did not ask for proof
    /// (it started while any key was allowed).
    pub policy_model: Option<Uuid>,
}

impl RelyingParty {
    /// The relying party for `settings` (checked by the configuration).
    pub fn new(settings: &WebAuthnSettings) -> Result<Self, KeyError> {
        let origin = Url::parse(&settings.origin).map_err(|e| KeyError::Settings(e.to_string()))?;
        let webauthn = WebauthnBuilder::new(&settings.rp_id, &origin)
            .and_then(|b| b.rp_name(&settings.rp_name).build())
            .map_err(|e| KeyError::Settings(e.to_string()))?;
        let roots = match &settings.attestation_roots {
            Some(path) => read_roots(path).map_err(KeyError::Settings)?,
            None => Vec::new(),
        };
        Ok(Self {
            webauthn,
            rp_id: settings.rp_id.clone(),
            origin,
            roots,
        })
    }

    /// The origin the kiosk speaks for as a WebAuthn client.
    pub fn origin(&self) -> &Url {
        &self.origin
    }

    /// Asks a key to create a credential for a person; the keys in
    /// `registered` are excluded (the key refuses, as it already holds one).
    /// With `allowed` models and attestation roots configured, the key must
    /// prove its model: its attestation must chain to a root.
    pub fn start_registration(
        &self,
        handle: Uuid,
        email: &str,
        name: &str,
        registered: &[Passkey],
        allowed: Option<&BTreeSet<Uuid>>,
    ) -> Result<(CreationChallengeResponse, Registration), KeyError> {
        let exclude = Some(registered.iter().map(|k| k.cred_id().clone()).collect());
        let Some(allowed) = allowed.filter(|_| !self.roots.is_empty()) else {
            let (challenge, state) = self
                .webauthn
                .start_passkey_registration(handle, email, name, exclude)?;
            return Ok((challenge, Registration::Any(state)));
        };
        let mut cas = AttestationCaListBuilder::new();
        for root in &self.roots {
            for aaguid in allowed {
                let name = model_name(*aaguid).unwrap_or("allowed model").to_string();
                cas.insert_device_x509(root.clone(), *aaguid, name, Default::default())
                    .map_err(|e| KeyError::Settings(e.to_string()))?;
            }
        }
        let (challenge, state) = self.webauthn.start_attested_passkey_registration(
            handle,
            email,
            name,
            exclude,
            cas.build(),
            None,
        )?;
        Ok((challenge, Registration::Attested(state)))
    }

    /// Checks the key's answer to `state`'s challenge.
    pub fn finish_registration(
        &self,
        answer: &RegisterPublicKeyCredential,
        state: Registration,
    ) -> Result<NewKey, KeyError> {
        self.check_registration(answer, state)
            .map_err(|refused| match refused {
                // webauthn-rs does not say which model failed to prove itself.
                KeyError::Unproven { aaguid: None } => KeyError::Unproven {
                    aaguid: reported_model(answer),
                },
                other => other,
            })
    }

    fn check_registration(
        &self,
        answer: &RegisterPublicKeyCredential,
        state: Registration,
    ) -> Result<NewKey, KeyError> {
        let (passkey, proven) = match state {
            Registration::Any(state) => (
                self.webauthn.finish_passkey_registration(answer, &state)?,
                false,
            ),
            Registration::Attested(state) => (
                self.webauthn
                    .finish_attested_passkey_registration(answer, &state)?
                    .into(),
                true,
            ),
        };
        let aaguid = match Credential::from(passkey.clone()).attestation.metadata {
            AttestationMetadata::Packed { aaguid } | AttestationMetadata::Tpm { aaguid, .. } => {
                Some(aaguid)
            }
            _ => None,
        };
        let policy_model = aaguid.filter(|_| proven || self.roots.is_empty());
        Ok(NewKey {
            passkey,
            aaguid,
            policy_model,
        })
    }

    /// A sign-in request no key can answer (a fresh, random credential ID),
    /// for "Test my key" with an email that has no keys: the key then says
    /// it holds no credential, exactly as a key registered to someone else
    /// would, so the kiosk does not tell who has keys.
    pub fn decoy_authentication(&self) -> RequestChallengeResponse {
        use rand::RngCore as _;
        let random = |len: usize| {
            let mut bytes = vec![0; len];
            rand::rngs::OsRng.fill_bytes(&mut bytes);
            Base64UrlSafeData::from(bytes)
        };
        RequestChallengeResponse {
            public_key: PublicKeyCredentialRequestOptions {
                challenge: random(32),
                timeout: Some(60_000),
                rp_id: self.rp_id.clone(),
                allow_credentials: vec![AllowCredentials {
                    type_: "public-key".into(),
                    id: random(64),
                    transports: None,
                }],
                user_verification: UserVerificationPolicy::Required,
                hints: None,
                extensions: None,
            },
            mediation: None,
        }
    }

    /// Asks for an assertion from one of `keys`.
    pub fn start_authentication(
        &self,
        keys: &[Passkey],
    ) -> Result<(RequestChallengeResponse, Authentication), KeyError> {
        let (challenge, state) = self.webauthn.start_passkey_authentication(keys)?;
        Ok((challenge, Authentication(state)))
    }

    /// Checks an assertion against `state`'s challenge and the keys'
    /// counters as they were when it started.
    pub fn finish_authentication(
        &self,
        answer: &PublicKeyCredential,
        state: Authentication,
    ) -> Result<AuthenticationResult, KeyError> {
        Ok(self
            .webauthn
            .finish_passkey_authentication(answer, &state.0)?)
    }
}

/// The signature counter a key last reported.
pub fn counter(passkey: &Passkey) -> u32 {
    Credential::from(passkey.clone()).counter
}

/// Names of well-known key models, by AAGUID (from the vendors' metadata).
const MODELS: &[(&str, &str)] = &[
    ("cb69481e-8ff7-4039-93ec-0a2729a154a8", "YubiKey 5"),
    ("ee882879-721c-4913-9775-3dfcce97072a", "YubiKey 5 NFC"),
    ("fa2b99dc-9e39-4257-8f92-4a30d23c4118", "YubiKey 5 NFC"),
    ("2fc0579f-8113-47ea-b116-bb5a8db9202a", "YubiKey 5 NFC"),
    ("c5ef55ff-ad9a-4b9f-b580-adebafe026d0", "YubiKey 5Ci"),
    (
        "149a2021-8ef6-4133-96b8-81f8d5b7f1f5",
        "Security Key NFC by Yubico",
    ),
    (
        "a4e9fc6d-4cbe-4758-b8ba-37598bb5bbaa",
        "Security Key NFC by Yubico",
    ),
    (
        "42b4fb4a-2866-43b2-9bf7-6c6669c2e5d3",
        "Google Titan Security Key",
    ),
    (
        "0fb9bcbc-a0d4-4042-bbb0-559bc1631e28",
        "Software key (test)",
    ),
];

/// The attested credential data of a registration answer's authenticator
/// data (after the RP ID hash, flags and counter), unverified.
fn attested_data(answer: &RegisterPublicKeyCredential) -> Option<Vec<u8>> {
    use serde_cbor_2::Value;
    const ATTESTED_DATA: u8 = 0x40;
    let object = serde_cbor_2::from_slice(answer.response.attestation_object.as_ref()).ok()?;
    let Value::Map(object) = object else {
        return None;
    };
    let Some(Value::Bytes(data)) = object.get(&Value::Text("authData".into())) else {
        return None;
    };
    if data.get(32)? & ATTESTED_DATA == 0 {
        return None;
    }
    data.get(37..).map(<[u8]>::to_vec)
}

/// The AAGUID a registration answer reports, unverified: for the record
/// only.
pub fn reported_model(answer: &RegisterPublicKeyCredential) -> Option<Uuid> {
    Uuid::from_slice(attested_data(answer)?.get(..16)?)
        .ok()
        .filter(|a| !a.is_nil())
}

/// The answer with its credential id (`id`, `rawId`) filled in from its
/// attested credential data. webauthn-authenticator-rs leaves both empty
/// for CTAP2 keys, which webauthn-rs does not mind (it reads the attested
/// data) but a relying party that reads `id`, such as Entra's
/// `fido2Methods`, must be given.
pub fn with_credential_id(mut answer: RegisterPublicKeyCredential) -> RegisterPublicKeyCredential {
    use base64::Engine as _;
    let Some(data) = attested_data(&answer) else {
        return answer;
    };
    let length = data
        .get(16..18)
        .map_or(0, |l| usize::from(u16::from_be_bytes([l[0], l[1]])));
    if let Some(id) = data.get(18..18 + length).filter(|id| !id.is_empty()) {
        answer.id = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(id);
        answer.raw_id = id.to_vec().into();
    }
    answer
}

/// The model name of a key, by the AAGUID it reported, when known.
pub fn model_name(aaguid: Uuid) -> Option<&'static str> {
    MODELS
        .iter()
        .find(|(id, _)| Uuid::parse_str(id).is_ok_and(|m| m == aaguid))
        .map(|(_, name)| *name)
}

/// A sign-in request for whatever passkey a key keeps for `rp_id` (no
/// allow list): the key answers with the newest one and the account it is
/// for, after its PIN when it has one.
pub fn discoverable_request(rp_id: &str) -> RequestChallengeResponse {
    use rand::RngCore as _;
    let mut challenge = vec![0; 32];
    rand::rngs::OsRng.fill_bytes(&mut challenge);
    RequestChallengeResponse {
        public_key: PublicKeyCredentialRequestOptions {
            challenge: Base64UrlSafeData::from(challenge),
            timeout: Some(60_000),
            rp_id: rp_id.to_string(),
            allow_credentials: Vec::new(),
            user_verification: UserVerificationPolicy::Preferred,
            hints: None,
            extensions: None,
        },
        mediation: None,
    }
}
