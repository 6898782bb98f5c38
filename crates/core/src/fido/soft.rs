//! A software security key that speaks CTAP2: a `Token` (the transport
//! trait USB HID and NFC keys implement) around webauthn-authenticator-rs's
//! `SoftToken`, so that the kiosk's client code (`CtapAuthenticator`) runs
//! exactly as with a USB key. It adds what `SoftToken` lacks and a real key
//! has: a PIN (clientPIN, PIN/UV auth protocol 1, with retries and
//! blocking) and the exclude and allow lists. Tests only (feature
//! `softtoken`).
//!
//! [`SoftCtapToken::generate`] makes a CTAP 2.0 key; [`SoftCtapToken::generate_ctap21`]
//! a CTAP 2.1 one, which also has PIN tokens with permissions, changePIN,
//! and authenticatorConfig's setMinPINLength (a minimum PIN length and
//! "force PIN change"), so that staging a key can be tested both ways.
use std::collections::{BTreeMap, HashSet};

use async_trait::async_trait;
use base64urlsafedata::Base64UrlSafeData;
use openssl::{bn, derive::Deriver, ec, hash, nid::Nid, pkey, rand::rand_bytes, sign, symm};
use serde_cbor_2::Value;
use sha2::{Digest, Sha256};
use webauthn_authenticator_rs::AuthenticatorBackendHashedClientData;
use webauthn_authenticator_rs::ctap2::CBORResponse;
use webauthn_authenticator_rs::ctap2::commands::{
    GetAssertionRequest, GetAssertionResponse, GetInfoResponse, MakeCredentialRequest,
    MakeCredentialResponse,
};
use webauthn_authenticator_rs::error::{CtapError, WebauthnCError};
use webauthn_authenticator_rs::softtoken::SoftToken;
use webauthn_authenticator_rs::transport::Token;
use webauthn_authenticator_rs::ui::UiCallback;
use webauthn_rs_proto::{
    AuthenticatorSelectionCriteria, AuthenticatorTransport, PublicKeyCredentialCreationOptions,
    PublicKeyCredentialDescriptor, PublicKeyCredentialRequestOptions, UserVerificationPolicy,
};

type R<T> = Result<T, WebauthnCError>;
fn ctap(e: CtapError) -> WebauthnCError {
    WebauthnCError::Ctap(e)
}

/// PIN tries before the key blocks its PIN, as on real keys.
const MAX_RETRIES: u32 = 8;

/// The shortest PIN CTAP allows, and a 2.1 key's minimum until it is raised.
const DEFAULT_MIN_PIN: u32 = 4;
/// A PIN has at most 63 bytes, so no higher minimum can be met.
const MAX_MIN_PIN: u32 = 63;

/// CTAP 2.1 PIN token permissions: makeCredential, getAssertion,
/// largeBlobWrite and authenticatorConfig (the only ones this key grants,
/// and lbw never).
const MC: u8 = 0x01;
const GA: u8 = 0x02;
const LBW: u8 = 0x10;
const ACFG: u8 = 0x20;

/// A credential the key keeps, with the account it is for.
#[derive(Clone)]
struct Discoverable {
    rp_id: String,
    credential: Vec<u8>,
    user: Vec<u8>,
}

/// What getNextAssertion answers from: the getAssertion's relying party,
/// client data hash and user verification, and the passkeys left.
struct NextAssertions {
    rp_id: String,
    client_data_hash: Vec<u8>,
    uv: bool,
    left: std::collections::VecDeque<Discoverable>,
}

/// The key's insides.
struct SoftState {
    inner: SoftToken, // must be SoftToken::new(true) so it can set the UV flag when we say so
    pin_hash: Option<Vec<u8>>,
    retries: u32,
    ka: pkey::PKey<pkey::Private>,
    pin_token: Vec<u8>,
    known: HashSet<Vec<u8>>,
    /// Credentials the key keeps (made with `rk`), oldest first: found by
    /// relying party alone, and answered with their user handle.
    discoverable: Vec<Discoverable>,
    /// The other passkeys a getAssertion without a list found, newest
    /// first, for getNextAssertion right after it.
    next_assertions: Option<NextAssertions>,
    /// The key speaks CTAP 2.1; the rest below is used only then.
    ctap21: bool,
    /// The fewest code points a new PIN may have (minPINLength).
    min_pin_length: u32,
    /// The PIN must be changed before the key grants a PIN token.
    force_pin_change: bool,
    /// Code points of the current PIN, to compare with a new minimum.
    pin_chars: usize,
    /// What the current PIN token may do, and for which RP (once bound).
    permissions: u8,
    permissions_rp_id: Option<String>,
}

impl std::fmt::Debug for SoftState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SoftCtapToken(pin_set={})", self.pin_hash.is_some())
    }
}

fn p256() -> R<ec::EcGroup> {
    Ok(ec::EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)?)
}
fn new_ka() -> R<pkey::PKey<pkey::Private>> {
    Ok(pkey::PKey::from_ec_key(ec::EcKey::generate(&*p256()?)?)?)
}
fn hmac16(key: &[u8], msg: &[u8]) -> R<Vec<u8>> {
    let k = pkey::PKey::hmac(key)?;
    let mut s = sign::Signer::new(hash::MessageDigest::sha256(), &k)?;
    s.update(msg)?;
    let mut o = s.sign_to_vec()?;
    o.truncate(16);
    Ok(o)
}
fn aes(mode: symm::Mode, key: &[u8], data: &[u8]) -> R<Vec<u8>> {
    let c = symm::Cipher::aes_256_cbc();
    let mut cr = symm::Crypter::new(c, mode, key, Some(&[0u8; 16]))?;
    cr.pad(false);
    let mut out = vec![0; data.len() + 16];
    let n = cr.update(data, &mut out)?;
    let m = cr.finalize(&mut out[n..])?;
    out.truncate(n + m);
    Ok(out)
}
/// A key agreement public key as PIN/UV protocol 1 sends it (COSE, alg -25).
fn cose_pub(key: &pkey::PKey<pkey::Private>) -> R<Value> {
    let ec = key.ec_key()?;
    let mut ctx = bn::BigNumContext::new()?;
    let (mut x, mut y) = (bn::BigNum::new()?, bn::BigNum::new()?);
    ec.public_key()
        .affine_coordinates(&*p256()?, &mut x, &mut y, &mut ctx)?;
    Ok(Value::Map(BTreeMap::from([
        (Value::Integer(1), Value::Integer(2)),
        (Value::Integer(3), Value::Integer(-25)),
        (Value::Integer(-1), Value::Integer(1)),
        (Value::Integer(-2), Value::Bytes(x.to_vec_padded(32)?)),
        (Value::Integer(-3), Value::Bytes(y.to_vec_padded(32)?)),
    ])))
}
/// PIN/UV protocol 1: SHA-256 of the x coordinate of ECDH(own, peer).
fn ecdh_shared(own: &pkey::PKey<pkey::Private>, peer: Option<&Value>) -> R<Vec<u8>> {
    let Some(Value::Map(m)) = peer else {
        return Err(ctap(CtapError::Ctap2MissingParameter));
    };
    let x = bytes(m.get(&Value::Integer(-2)))?;
    let y = bytes(m.get(&Value::Integer(-3)))?;
    let (bx, by) = (bn::BigNum::from_slice(&x)?, bn::BigNum::from_slice(&y)?);
    let peer = ec::EcKey::from_public_key_affine_coordinates(&*p256()?, &bx, &by)?;
    let peer = pkey::PKey::from_ec_key(peer)?;
    let mut d = Deriver::new(own)?;
    d.set_peer(&peer)?;
    Ok(Sha256::digest(d.derive_to_vec()?).to_vec())
}
/// The crate's authenticator-side parsers (MakeCredentialRequest / GetAssertionRequest
/// `CBORResponse::try_from`) drop pinUvAuthParam, so read it from the raw map.
fn raw_pin_param(body: &[u8], key: i128) -> R<Option<Vec<u8>>> {
    let Value::Map(m) = serde_cbor_2::from_slice(body).map_err(|_| WebauthnCError::Cbor)? else {
        return Err(ctap(CtapError::Ctap2InvalidCBOR));
    };
    Ok(match m.get(&Value::Integer(key)) {
        Some(Value::Bytes(b)) => Some(b.clone()),
        _ => None,
    })
}
fn bytes(v: Option<&Value>) -> R<Vec<u8>> {
    match v {
        Some(Value::Bytes(b)) => Ok(b.clone()),
        _ => Err(ctap(CtapError::Ctap2MissingParameter)),
    }
}
fn cbor_map(body: &[u8]) -> R<BTreeMap<Value, Value>> {
    match serde_cbor_2::from_slice(body).map_err(|_| WebauthnCError::Cbor)? {
        Value::Map(m) => Ok(m),
        _ => Err(ctap(CtapError::Ctap2InvalidCBOR)),
    }
}
fn field(m: &BTreeMap<Value, Value>, key: i128) -> Option<&Value> {
    m.get(&Value::Integer(key))
}
/// CTAP counts a PIN's length in Unicode code points.
fn code_points(pin: &[u8]) -> usize {
    String::from_utf8_lossy(pin).chars().count()
}
/// The first 16 bytes of SHA-256: how a key stores and compares a PIN.
fn pin_hash(pin: &[u8]) -> Vec<u8> {
    Sha256::digest(pin)[..16].to_vec()
}

impl SoftState {
    fn generate(ctap21: bool) -> R<(Self, openssl::x509::X509)> {
        // `true`: the inner token sets the UV flag when told to; this
        // wrapper tells it to only after a correct PIN.
        let (inner, ca) = SoftToken::new(true)?;
        let mut pin_token = vec![0; 32];
        rand_bytes(&mut pin_token)?;
        let key = Self {
            inner,
            pin_hash: None,
            retries: MAX_RETRIES,
            ka: new_ka()?,
            pin_token,
            known: HashSet::new(),
            discoverable: Vec::new(),
            next_assertions: None,
            ctap21,
            min_pin_length: DEFAULT_MIN_PIN,
            force_pin_change: false,
            pin_chars: 0,
            permissions: 0,
            permissions_rp_id: None,
        };
        Ok((key, ca))
    }

    fn copy(&self) -> R<Self> {
        let cbor = self.inner.to_cbor()?;
        Ok(Self {
            inner: SoftToken::from_cbor(&cbor)?,
            pin_hash: self.pin_hash.clone(),
            retries: self.retries,
            ka: new_ka()?,
            pin_token: self.pin_token.clone(),
            known: self.known.clone(),
            discoverable: self.discoverable.clone(),
            next_assertions: None,
            ctap21: self.ctap21,
            min_pin_length: self.min_pin_length,
            force_pin_change: self.force_pin_change,
            pin_chars: self.pin_chars,
            permissions: self.permissions,
            permissions_rp_id: self.permissions_rp_id.clone(),
        })
    }

    fn cose_ka_pub(&self) -> R<Value> {
        cose_pub(&self.ka)
    }

    /// PIN/UV protocol 1: shared = SHA-256(ECDH(ka, platform_key).x)
    fn shared(&self, platform_key: Option<&Value>) -> R<Vec<u8>> {
        ecdh_shared(&self.ka, platform_key)
    }

    /// Returns whether the request is user-verified (valid pinUvAuthParam,
    /// and on a 2.1 key a PIN token with the permission `needed` for `rp_id`).
    fn check_pin_uv(
        &mut self,
        cdh: &[u8],
        param: &Option<Vec<u8>>,
        opts: &Option<BTreeMap<String, bool>>,
        (needed, rp_id): (u8, &str),
    ) -> R<bool> {
        if opts
            .as_ref()
            .and_then(|o| o.get("uv"))
            .copied()
            .unwrap_or(false)
        {
            return Err(ctap(CtapError::Ctap2UnsupportedOption)); // no built-in UV
        }
        match (&self.pin_hash, param) {
            (Some(_), Some(p)) if *p == hmac16(&self.pin_token, cdh)? => {}
            (Some(_), Some(_)) => return Err(ctap(CtapError::Ctap2PinAuthInvalid)),
            (Some(_), None) => return Err(ctap(CtapError::Ctap2PUATRequired)),
            (None, Some(_)) => return Err(ctap(CtapError::Ctap2PinNotSet)),
            (None, None) => return Ok(false),
        }
        self.check_permission(needed, rp_id)?;
        Ok(true)
    }

    /// CTAP 2.1: a PIN token works only for what it was granted, and its
    /// makeCredential and getAssertion permissions for one RP (the first
    /// it is used with, unless named when granted). A 2.0 key's token works
    /// for everything.
    fn check_permission(&mut self, needed: u8, rp_id: &str) -> R<()> {
        if !self.ctap21 {
            return Ok(());
        }
        if self.permissions & needed == 0 {
            return Err(ctap(CtapError::Ctap2PinAuthInvalid));
        }
        match &self.permissions_rp_id {
            Some(bound) if bound != rp_id => Err(ctap(CtapError::Ctap2PinAuthInvalid)),
            Some(_) => Ok(()),
            None => {
                self.permissions_rp_id = Some(rp_id.to_string());
                Ok(())
            }
        }
    }

    /// CTAP 2.1: once the user was present for a makeCredential or a
    /// getAssertion, its token keeps no permission but lbw (the next
    /// command needs a new token). Harmless on a 2.0 key, which never
    /// looks at permissions.
    fn token_used(&mut self) {
        self.permissions &= LBW;
    }

    /// A fresh PIN token, which invalidates the one before.
    fn new_pin_token(&mut self, permissions: u8, rp_id: Option<String>) -> R<()> {
        rand_bytes(&mut self.pin_token)?;
        self.permissions = permissions;
        self.permissions_rp_id = rp_id;
        Ok(())
    }

    fn get_info(&self) -> GetInfoResponse {
        let mut info = self.inner.get_info();
        let mut options = BTreeMap::from([
            ("rk".to_string(), true),
            ("up".to_string(), true),
            ("plat".to_string(), false),
            ("clientPin".to_string(), self.pin_hash.is_some()),
        ]);
        info.pin_protocols = Some(vec![1]);
        info.transports = Some(vec!["usb".into()]);
        if self.ctap21 {
            info.versions.insert("FIDO_2_1".into());
            for option in ["authnrCfg", "setMinPINLength", "pinUvAuthToken"] {
                options.insert(option.to_string(), true);
            }
            info.min_pin_length = Some(self.min_pin_length as usize);
            info.force_pin_change = self.force_pin_change;
            // No RP may read the minimum (minPinLength extension).
            info.max_rpids_for_set_min_pin_length = Some(0);
        }
        info.options = Some(options);
        info
    }

    /// A getAssertion answer: `rp_id`'s credential among `allowed`,
    /// signed over `client_data_hash`.
    fn assertion(
        &mut self,
        rp_id: &str,
        client_data_hash: &[u8],
        allowed: Vec<Vec<u8>>,
        uv: bool,
    ) -> R<BTreeMap<u32, Value>> {
        let options = PublicKeyCredentialRequestOptions {
            challenge: Base64UrlSafeData::new(),
            timeout: Some(30_000),
            rp_id: rp_id.to_string(),
            allow_credentials: allowed
                .into_iter()
                .map(|id| webauthn_rs_proto::AllowCredentials {
                    type_: "public-key".into(),
                    id: id.into(),
                    transports: None,
                })
                .collect(),
            user_verification: if uv {
                UserVerificationPolicy::Required
            } else {
                UserVerificationPolicy::Discouraged_DO_NOT_USE
            },
            hints: None,
            extensions: None,
        };
        let a = AuthenticatorBackendHashedClientData::perform_auth(
            &mut self.inner,
            client_data_hash.to_vec(),
            options,
            30_000,
        )?;
        Ok(GetAssertionResponse {
            credential: Some(PublicKeyCredentialDescriptor {
                type_: a.type_,
                id: a.raw_id,
                transports: None,
            }),
            auth_data: Some(a.response.authenticator_data.into()),
            signature: Some(a.response.signature.into()),
            number_of_credentials: None,
            user_selected: None,
            large_blob_key: None,
        }
        .into())
    }

    /// The answer of a passkey found by relying party alone, with its user
    /// handle.
    fn discovered(
        &mut self,
        rp_id: &str,
        client_data_hash: &[u8],
        passkey: &Discoverable,
        uv: bool,
    ) -> R<BTreeMap<u32, Value>> {
        let mut answer = self.assertion(
            rp_id,
            client_data_hash,
            vec![passkey.credential.clone()],
            uv,
        )?;
        let id = (Value::Text("id".into()), Value::Bytes(passkey.user.clone()));
        answer.insert(0x04, Value::Map([id].into()));
        Ok(answer)
    }

    fn handle<U: UiCallback>(&mut self, cbor: &[u8], ui: &U) -> R<Vec<u8>> {
        let (cmd, body) = cbor
            .split_first()
            .ok_or(ctap(CtapError::Ctap1InvalidLength))?;
        // getNextAssertion answers only the command just before it.
        let pending_next = self.next_assertions.take();
        let out: BTreeMap<u32, Value> = match *cmd {
            0x04 => self.get_info().into(), // authenticatorGetInfo
            0x01 => {
                // authenticatorMakeCredential
                let req = <MakeCredentialRequest as CBORResponse>::try_from(body)?;
                let param = raw_pin_param(body, 0x08)?;
                let needs = (MC, req.rp.id.as_str());
                let uv = self.check_pin_uv(&req.client_data_hash, &param, &req.options, needs)?;
                ui.request_touch();
                let resident = req.options.as_ref().and_then(|o| o.get("rk")) == Some(&true);
                let (rp_id, user) = (req.rp.id.clone(), req.user.id.to_vec());
                if req
                    .exclude_list
                    .iter()
                    .any(|d| self.known.contains(d.id.as_slice()))
                {
                    return Err(ctap(CtapError::Ctap2CredentialExcluded));
                }
                let options = PublicKeyCredentialCreationOptions {
                    rp: req.rp,
                    user: req.user,
                    challenge: Base64UrlSafeData::new(),
                    pub_key_cred_params: req.pub_key_cred_params,
                    timeout: Some(30_000),
                    exclude_credentials: None,
                    authenticator_selection: Some(AuthenticatorSelectionCriteria {
                        authenticator_attachment: None,
                        resident_key: None,
                        require_resident_key: false,
                        user_verification: if uv {
                            UserVerificationPolicy::Required
                        } else {
                            UserVerificationPolicy::Discouraged_DO_NOT_USE
                        },
                    }),
                    hints: None,
                    attestation: None,
                    attestation_formats: None,
                    extensions: None,
                };
                let cred = AuthenticatorBackendHashedClientData::perform_register(
                    &mut self.inner,
                    req.client_data_hash,
                    options,
                    30_000,
                )?;
                self.token_used();
                self.known.insert(cred.raw_id.to_vec());
                if resident {
                    // A new passkey for the same account replaces the old.
                    self.discoverable
                        .retain(|d| !(d.rp_id == rp_id && d.user == user));
                    self.discoverable.push(Discoverable {
                        rp_id,
                        credential: cred.raw_id.to_vec(),
                        user,
                    });
                }
                let resp: MakeCredentialResponse =
                    serde_cbor_2::from_slice(cred.response.attestation_object.as_slice())
                        .map_err(|_| WebauthnCError::Cbor)?;
                resp.into()
            }
            0x02 => {
                // authenticatorGetAssertion
                let req = <GetAssertionRequest as CBORResponse>::try_from(body)?;
                let param = raw_pin_param(body, 0x06)?;
                let needs = (GA, req.rp_id.as_str());
                let uv = self.check_pin_uv(&req.client_data_hash, &param, &req.options, needs)?;
                if !req.allow_list.is_empty() {
                    let allowed: Vec<Vec<u8>> =
                        req.allow_list.iter().map(|c| c.id.to_vec()).collect();
                    if !allowed.iter().any(|id| self.known.contains(id)) {
                        return Err(ctap(CtapError::Ctap2NoCredentials));
                    }
                    ui.request_touch();
                    let answer = self.assertion(&req.rp_id, &req.client_data_hash, allowed, uv)?;
                    self.token_used();
                    return serde_cbor_2::to_vec(&answer).map_err(|_| WebauthnCError::Cbor);
                }
                // No allow list: the passkeys this key keeps for the relying
                // party, newest first, each answered with its user handle.
                let mut found: std::collections::VecDeque<Discoverable> = self
                    .discoverable
                    .iter()
                    .rev()
                    .filter(|d| d.rp_id == req.rp_id)
                    .cloned()
                    .collect();
                let Some(first) = found.pop_front() else {
                    return Err(ctap(CtapError::Ctap2NoCredentials));
                };
                ui.request_touch();
                let mut answer = self.discovered(&req.rp_id, &req.client_data_hash, &first, uv)?;
                self.token_used();
                if !found.is_empty() {
                    let count = u64::try_from(found.len() + 1).unwrap_or(u64::MAX);
                    answer.insert(0x05, Value::Integer(count.into()));
                    self.next_assertions = Some(NextAssertions {
                        rp_id: req.rp_id,
                        client_data_hash: req.client_data_hash,
                        uv,
                        left: found,
                    });
                }
                answer
            }
            0x08 => {
                // authenticatorGetNextAssertion, right after getAssertion
                let Some(mut next) = pending_next else {
                    return Err(ctap(CtapError::Ctap2NotAllowed));
                };
                let Some(passkey) = next.left.pop_front() else {
                    return Err(ctap(CtapError::Ctap2NotAllowed));
                };
                let answer =
                    self.discovered(&next.rp_id, &next.client_data_hash, &passkey, next.uv)?;
                if !next.left.is_empty() {
                    self.next_assertions = Some(next);
                }
                answer
            }
            0x06 => self.client_pin(body)?,
            0x0b if self.ctap21 => {
                // authenticatorSelection
                ui.request_touch();
                BTreeMap::new()
            }
            0x0d if self.ctap21 => self.config(body)?, // authenticatorConfig
            _ => return Err(ctap(CtapError::Ctap1InvalidCommand)),
        };
        if out.is_empty() {
            return Ok(vec![]);
        }
        serde_cbor_2::to_vec(&out).map_err(|_| WebauthnCError::Cbor)
    }

    fn client_pin(&mut self, body: &[u8]) -> R<BTreeMap<u32, Value>> {
        let m = cbor_map(body)?;
        let Some(Value::Integer(sub)) = field(&m, 2) else {
            return Err(ctap(CtapError::Ctap2MissingParameter));
        };
        match *sub {
            0x01 => Ok(BTreeMap::from([(3, Value::Integer(self.retries.into()))])),
            0x02 => Ok(BTreeMap::from([(1, self.cose_ka_pub()?)])),
            0x03 => self.set_pin(&m),
            0x04 if self.ctap21 => self.change_pin(&m),
            0x05 => self.get_pin_token(&m),
            0x09 if self.ctap21 => self.get_pin_token_with_permissions(&m),
            _ => Err(ctap(CtapError::Ctap2InvalidSubcommand)),
        }
    }

    /// setPIN, on a key without one.
    fn set_pin(&mut self, m: &BTreeMap<Value, Value>) -> R<BTreeMap<u32, Value>> {
        if self.pin_hash.is_some() {
            return Err(ctap(CtapError::Ctap2NotAllowed));
        }
        let shared = self.shared(field(m, 3))?;
        let enc = bytes(field(m, 5))?;
        if bytes(field(m, 4))? != hmac16(&shared, &enc)? {
            return Err(ctap(CtapError::Ctap2PinAuthInvalid));
        }
        let pin = self.new_pin(&shared, &enc)?;
        self.store_pin(&pin);
        Ok(BTreeMap::new())
    }

    /// changePIN (CTAP 2.1 here): the current PIN proves the person, and the
    /// new one meets the minimum; a forced change must change it.
    fn change_pin(&mut self, m: &BTreeMap<Value, Value>) -> R<BTreeMap<u32, Value>> {
        let expected = self.pin_to_check()?;
        let shared = self.shared(field(m, 3))?;
        let (new_enc, hash_enc) = (bytes(field(m, 5))?, bytes(field(m, 6))?);
        let signed = [new_enc.as_slice(), hash_enc.as_slice()].concat();
        if bytes(field(m, 4))? != hmac16(&shared, &signed)? {
            return Err(ctap(CtapError::Ctap2PinAuthInvalid));
        }
        self.check_pin_hash(&shared, &expected, &hash_enc)?;
        let pin = self.new_pin(&shared, &new_enc)?;
        if self.force_pin_change && pin_hash(&pin) == expected {
            return Err(ctap(CtapError::Ctap2PinPolicyViolation));
        }
        self.store_pin(&pin);
        // The old PIN's token goes with it.
        self.new_pin_token(0, None)?;
        Ok(BTreeMap::new())
    }

    /// getPinToken: on a 2.1 key, a fresh token for makeCredential and
    /// getAssertion (as the spec grants), unless the PIN must change first.
    fn get_pin_token(&mut self, m: &BTreeMap<Value, Value>) -> R<BTreeMap<u32, Value>> {
        let expected = self.pin_to_check()?;
        let shared = self.shared(field(m, 3))?;
        self.check_pin_hash(&shared, &expected, &bytes(field(m, 6))?)?;
        if self.ctap21 {
            self.refuse_while_pin_must_change()?;
            self.new_pin_token(MC | GA, None)?;
        }
        self.encrypted_pin_token(&shared)
    }

    /// getPinUvAuthTokenUsingPinWithPermissions (CTAP 2.1): as getPinToken,
    /// for the permissions (and RP) asked for.
    fn get_pin_token_with_permissions(
        &mut self,
        m: &BTreeMap<Value, Value>,
    ) -> R<BTreeMap<u32, Value>> {
        let (permissions, rp_id) = asked_permissions(m)?;
        let expected = self.pin_to_check()?;
        let shared = self.shared(field(m, 3))?;
        self.check_pin_hash(&shared, &expected, &bytes(field(m, 6))?)?;
        self.refuse_while_pin_must_change()?;
        self.new_pin_token(permissions, rp_id)?;
        self.encrypted_pin_token(&shared)
    }

    fn refuse_while_pin_must_change(&self) -> R<()> {
        if self.force_pin_change {
            return Err(ctap(CtapError::Ctap2PinPolicyViolation));
        }
        Ok(())
    }

    fn encrypted_pin_token(&self, shared: &[u8]) -> R<BTreeMap<u32, Value>> {
        Ok(BTreeMap::from([(
            2,
            Value::Bytes(aes(symm::Mode::Encrypt, shared, &self.pin_token)?),
        )]))
    }

    /// The stored PIN hash, when a PIN is set and not blocked.
    fn pin_to_check(&self) -> R<Vec<u8>> {
        let Some(expected) = self.pin_hash.clone() else {
            return Err(ctap(CtapError::Ctap2PinNotSet));
        };
        if self.retries == 0 {
            return Err(ctap(CtapError::Ctap2PinBlocked));
        }
        Ok(expected)
    }

    /// Checks the PIN the platform sent (pinHashEnc): a wrong one costs a
    /// try and the key agreement key; a right one gives all tries back.
    fn check_pin_hash(&mut self, shared: &[u8], expected: &[u8], hash_enc: &[u8]) -> R<()> {
        let got = aes(symm::Mode::Decrypt, shared, hash_enc)?;
        if got != expected {
            self.retries -= 1;
            self.ka = new_ka()?;
            return Err(ctap(CtapError::Ctap2PinInvalid));
        }
        self.retries = MAX_RETRIES;
        Ok(())
    }

    /// Decrypts a new PIN (newPinEnc) and checks it against the key's
    /// rules: 4 bytes on a 2.0 key (as it always was), and on a 2.1 key
    /// also its minimum, in code points.
    fn new_pin(&self, shared: &[u8], enc: &[u8]) -> R<Vec<u8>> {
        let padded = aes(symm::Mode::Decrypt, shared, enc)?;
        let pin: Vec<u8> = padded.into_iter().take_while(|b| *b != 0).collect();
        let too_short_here = self.ctap21 && code_points(&pin) < self.min_pin_length as usize;
        if pin.len() < 4 || too_short_here {
            return Err(ctap(CtapError::Ctap2PinPolicyViolation));
        }
        Ok(pin)
    }

    fn store_pin(&mut self, pin: &[u8]) {
        self.pin_hash = Some(pin_hash(pin));
        self.pin_chars = code_points(pin);
        self.force_pin_change = false;
    }

    /// authenticatorConfig (CTAP 2.1).
    fn config(&mut self, body: &[u8]) -> R<BTreeMap<u32, Value>> {
        let m = cbor_map(body)?;
        let Some(Value::Integer(sub)) = field(&m, 1) else {
            return Err(ctap(CtapError::Ctap2MissingParameter));
        };
        let sub = u8::try_from(*sub).map_err(|_| ctap(CtapError::Ctap2InvalidSubcommand))?;
        let params = match field(&m, 2) {
            None => None,
            Some(Value::Map(p)) => Some(p),
            Some(_) => return Err(ctap(CtapError::Ctap2InvalidCBOR)),
        };
        self.check_config_auth(&m, sub, params)?;
        match sub {
            0x03 => self.set_min_pin_length(params)?,
            _ => return Err(ctap(CtapError::Ctap2InvalidSubcommand)),
        }
        Ok(BTreeMap::new())
    }

    /// A key with a PIN takes configuration only with a PIN token granted
    /// `acfg`, which signed 32 × 0xff || 0x0d || subCommand || the CBOR of
    /// subCommandParams. (The params are encoded again here: serde_cbor_2
    /// writes a map in its keys' order, exactly as the client encoded it.)
    /// A key without one takes it unsigned, as the spec says.
    fn check_config_auth(
        &self,
        m: &BTreeMap<Value, Value>,
        sub: u8,
        params: Option<&BTreeMap<Value, Value>>,
    ) -> R<()> {
        if self.pin_hash.is_none() {
            return Ok(());
        }
        let Some(Value::Bytes(param)) = field(m, 4) else {
            return Err(ctap(CtapError::Ctap2PUATRequired));
        };
        match field(m, 3) {
            Some(Value::Integer(1)) => {}
            None => return Err(ctap(CtapError::Ctap2MissingParameter)),
            Some(_) => return Err(ctap(CtapError::Ctap1InvalidParameter)),
        }
        let mut signed = vec![0xff; 32];
        signed.extend([0x0d, sub]);
        if let Some(params) = params {
            signed.extend(serde_cbor_2::to_vec(params).map_err(|_| WebauthnCError::Cbor)?);
        }
        if *param != hmac16(&self.pin_token, &signed)? || self.permissions & ACFG == 0 {
            return Err(ctap(CtapError::Ctap2PinAuthInvalid));
        }
        Ok(())
    }

    /// setMinPINLength: the minimum only goes up (a reset brings it back),
    /// and a PIN shorter than the new minimum must change.
    fn set_min_pin_length(&mut self, params: Option<&BTreeMap<Value, Value>>) -> R<()> {
        let get = |key: i128| params.and_then(|p| field(p, key));
        let new_min = match get(1) {
            None => self.min_pin_length,
            Some(Value::Integer(n)) => {
                u32::try_from(*n).map_err(|_| ctap(CtapError::Ctap1InvalidParameter))?
            }
            Some(_) => return Err(ctap(CtapError::Ctap2InvalidCBOR)),
        };
        let force = match get(3) {
            None => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(ctap(CtapError::Ctap2InvalidCBOR)),
        };
        // maxRPIDsForSetMinPINLength is 0: no RP may be named.
        let names_rps = matches!(get(2), Some(Value::Array(a)) if !a.is_empty());
        if new_min < self.min_pin_length || new_min > MAX_MIN_PIN || names_rps {
            return Err(ctap(CtapError::Ctap2PinPolicyViolation));
        }
        if force && self.pin_hash.is_none() {
            return Err(ctap(CtapError::Ctap2PinNotSet));
        }
        self.min_pin_length = new_min;
        let too_short = self.pin_hash.is_some() && self.pin_chars < new_min as usize;
        self.force_pin_change |= force || too_short;
        Ok(())
    }
}

/// The permissions (0x09) and permissions RP ID (0x0A) a client asks for
/// with getPinUvAuthTokenUsingPinWithPermissions; this key grants mc, ga and
/// acfg, and mc and ga only with an RP ID.
fn asked_permissions(m: &BTreeMap<Value, Value>) -> R<(u8, Option<String>)> {
    match field(m, 1) {
        Some(Value::Integer(1)) => {}
        None => return Err(ctap(CtapError::Ctap2MissingParameter)),
        Some(_) => return Err(ctap(CtapError::Ctap1InvalidParameter)),
    }
    let permissions = match field(m, 9) {
        Some(Value::Integer(p)) => {
            u8::try_from(*p).map_err(|_| ctap(CtapError::Ctap1InvalidParameter))?
        }
        _ => return Err(ctap(CtapError::Ctap2MissingParameter)),
    };
    let rp_id = match field(m, 0x0a) {
        None => None,
        Some(Value::Text(rp_id)) => Some(rp_id.clone()),
        Some(_) => return Err(ctap(CtapError::Ctap2InvalidCBOR)),
    };
    if permissions == 0 {
        return Err(ctap(CtapError::Ctap1InvalidParameter));
    }
    if permissions & !(MC | GA | ACFG) != 0 {
        return Err(ctap(CtapError::Ctap2UnauthorizedPermission));
    }
    if permissions & (MC | GA) != 0 && rp_id.is_none() {
        return Err(ctap(CtapError::Ctap2MissingParameter));
    }
    Ok((permissions, rp_id))
}

/// The software key. Handles made with [`SoftCtapToken::same_key`] reach
/// the same key (the test holds one while the client owns another).
#[derive(Debug)]
pub struct SoftCtapToken(std::sync::Arc<std::sync::Mutex<SoftState>>, Turn);

/// The key's turn: one kiosk conversation with it at a time.
type Turn = std::sync::Arc<tokio::sync::Mutex<()>>;

impl SoftCtapToken {
    /// A new key with no PIN, and the root of its attestation certificate
    /// (valid for a day).
    pub fn generate() -> R<(Self, openssl::x509::X509)> {
        let (state, ca) = SoftState::generate(false)?;
        Ok((Self::holding(state), ca))
    }

    /// A new CTAP 2.1 key with no PIN (see the module's comment), and the
    /// root of its attestation certificate.
    pub fn generate_ctap21() -> R<(Self, openssl::x509::X509)> {
        let (state, ca) = SoftState::generate(true)?;
        Ok((Self::holding(state), ca))
    }

    /// The fewest characters the key takes for a new PIN (4 until raised).
    pub fn min_pin_length(&self) -> u32 {
        self.state().min_pin_length
    }

    /// Whether the key refuses its PIN until it is changed (forcePINChange).
    pub fn must_change_pin(&self) -> bool {
        self.state().force_pin_change
    }

    /// Another handle on this key.
    pub fn same_key(&self) -> Self {
        Self(
            std::sync::Arc::clone(&self.0),
            std::sync::Arc::clone(&self.1),
        )
    }

    fn holding(state: SoftState) -> Self {
        Self(
            std::sync::Arc::new(std::sync::Mutex::new(state)),
            Turn::default(),
        )
    }

    /// See [`Turn`].
    pub(crate) fn turn(&self) -> Turn {
        std::sync::Arc::clone(&self.1)
    }

    /// An independent copy of the key as it is now, credentials, PIN and
    /// signature counter included: a cloned key.
    pub fn copy_key(&self) -> R<Self> {
        let state = self.lock()?.copy()?;
        Ok(Self::holding(state))
    }

    /// Keeps the key busy until the guard is dropped: a key that is slow
    /// to answer, so that a test can act while a command is in flight.
    pub fn hold(&self) -> impl Drop + '_ {
        self.state()
    }

    /// The key's state, for tests (a test that panicked holding it leaves
    /// it as it was).
    fn state(&self) -> std::sync::MutexGuard<'_, SoftState> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn lock(&self) -> R<std::sync::MutexGuard<'_, SoftState>> {
        self.0.lock().map_err(|_| WebauthnCError::Internal)
    }
}

#[async_trait]
impl Token for SoftCtapToken {
    type Id = ();
    fn get_transport(&self) -> AuthenticatorTransport {
        AuthenticatorTransport::Usb
    }
    async fn transmit_raw<U>(&mut self, cbor: &[u8], ui: &U) -> Result<Vec<u8>, WebauthnCError>
    where
        U: UiCallback,
    {
        self.lock()?.handle(cbor, ui)
    }
    async fn cancel(&mut self) -> R<()> {
        Ok(())
    }
    async fn init(&mut self) -> R<()> {
        Ok(())
    }
    async fn close(&mut self) -> R<()> {
        Ok(())
    }
}

/// The 2.1 key's PIN tokens, spoken to as a platform would, byte by byte
/// (the client library never asks for a token it would misuse).
#[cfg(test)]
mod tests {
    use super::*;
    use webauthn_authenticator_rs::ctap2::CBORCommand;
    use webauthn_authenticator_rs::ctap2::commands::{
        ConfigRequest, ConfigSubCommand, SetMinPinLengthParams,
    };
    use webauthn_authenticator_rs::types::{CableRequestType, CableState, EnrollSampleStatus};
    use webauthn_rs_proto::{PubKeyCredParams, RelyingParty, User};

    const PIN: &[u8] = b"123456";

    #[derive(Debug)]
    struct NoOne;
    impl UiCallback for NoOne {
        fn request_pin(&self) -> Option<String> {
            None
        }
        fn request_touch(&self) {}
        fn processing(&self) {}
        fn fingerprint_enrollment_feedback(&self, _: u32, _: Option<EnrollSampleStatus>) {}
        fn cable_qr_code(&self, _: CableRequestType, _: String) {}
        fn dismiss_qr_code(&self) {}
        fn cable_status_update(&self, _: CableState) {}
    }

    fn send(key: &SoftCtapToken, cbor: &[u8]) -> R<BTreeMap<Value, Value>> {
        let answer = key.state().handle(cbor, &NoOne)?;
        if answer.is_empty() {
            return Ok(BTreeMap::new());
        }
        cbor_map(&answer)
    }

    fn client_pin(key: &SoftCtapToken, fields: Vec<(i128, Value)>) -> R<BTreeMap<Value, Value>> {
        let map = fields
            .into_iter()
            .map(|(k, v)| (Value::Integer(k), v))
            .collect::<BTreeMap<_, _>>();
        let mut cbor = vec![0x06];
        cbor.extend(serde_cbor_2::to_vec(&Value::Map(map)).unwrap());
        send(key, &cbor)
    }

    /// getKeyAgreement: the shared secret, and the platform's public key.
    fn agree(key: &SoftCtapToken) -> (Vec<u8>, Value) {
        let answer = client_pin(key, vec![(1, Value::Integer(1)), (2, Value::Integer(2))]);
        let platform = new_ka().unwrap();
        let shared = ecdh_shared(&platform, field(&answer.unwrap(), 1)).unwrap();
        (shared, cose_pub(&platform).unwrap())
    }

    fn a_2_1_key_with_a_pin() -> SoftCtapToken {
        let (key, _) = SoftCtapToken::generate_ctap21().unwrap();
        let (shared, platform) = agree(&key);
        let mut padded = PIN.to_vec();
        padded.resize(64, 0);
        let enc = aes(symm::Mode::Encrypt, &shared, &padded).unwrap();
        let auth = hmac16(&shared, &enc).unwrap();
        client_pin(
            &key,
            vec![
                (1, Value::Integer(1)),
                (2, Value::Integer(3)),
                (3, platform),
                (4, Value::Bytes(auth)),
                (5, Value::Bytes(enc)),
            ],
        )
        .unwrap();
        key
    }

    /// getPinUvAuthTokenUsingPinWithPermissions, with the right PIN.
    fn token(key: &SoftCtapToken, permissions: u8, rp_id: Option<&str>) -> R<Vec<u8>> {
        let (shared, platform) = agree(key);
        let hash_enc = aes(symm::Mode::Encrypt, &shared, &pin_hash(PIN))?;
        let mut fields = vec![
            (1, Value::Integer(1)),
            (2, Value::Integer(9)),
            (3, platform),
            (6, Value::Bytes(hash_enc)),
            (9, Value::Integer(permissions.into())),
        ];
        fields.extend(rp_id.map(|rp_id| (0x0a, Value::Text(rp_id.into()))));
        let answer = client_pin(key, fields)?;
        aes(symm::Mode::Decrypt, &shared, &bytes(field(&answer, 2))?)
    }

    fn make_credential(key: &SoftCtapToken, token: &[u8], rp_id: &str) -> R<()> {
        let client_data_hash = vec![7; 32];
        let request = MakeCredentialRequest {
            pin_uv_auth_param: Some(hmac16(token, &client_data_hash)?),
            client_data_hash,
            rp: RelyingParty {
                id: rp_id.into(),
                name: rp_id.into(),
            },
            user: User {
                id: vec![1, 2, 3].into(),
                name: "ada".into(),
                display_name: "Ada".into(),
            },
            pub_key_cred_params: vec![PubKeyCredParams {
                type_: "public-key".into(),
                alg: -7,
            }],
            exclude_list: vec![],
            options: None,
            pin_uv_auth_proto: Some(1),
            enterprise_attest: None,
        };
        send(key, &request.cbor().unwrap()).map(|_| ())
    }

    /// setMinPINLength, signed with `token` over `signed` (the command sent
    /// when `None`).
    fn set_min(key: &SoftCtapToken, token: &[u8], min: u32, signed: Option<u32>) -> R<()> {
        let params = |min| {
            ConfigSubCommand::SetMinPinLength(SetMinPinLengthParams {
                new_min_pin_length: Some(min),
                min_pin_length_rpids: vec![],
                force_change_pin: Some(true),
            })
        };
        let auth = hmac16(token, &params(signed.unwrap_or(min)).prf())?;
        let request = ConfigRequest::new(params(min), Some(1), Some(auth));
        send(key, &request.cbor().unwrap()).map(|_| ())
    }

    fn refused(e: CtapError) -> R<()> {
        Err(ctap(e))
    }

    #[test]
    fn a_token_for_registrations_cannot_configure_nor_register_for_another_rp() {
        let key = a_2_1_key_with_a_pin();
        let mc = token(&key, MC, Some("example.com")).unwrap();
        assert_eq!(
            set_min(&key, &mc, 8, None),
            refused(CtapError::Ctap2PinAuthInvalid)
        );
        assert_eq!(
            make_credential(&key, &mc, "other.example"),
            refused(CtapError::Ctap2PinAuthInvalid)
        );
        make_credential(&key, &mc, "example.com").unwrap();
        // Once used, it has done its job.
        assert_eq!(
            make_credential(&key, &mc, "example.com"),
            refused(CtapError::Ctap2PinAuthInvalid)
        );
        assert_eq!(key.min_pin_length(), 4);
    }

    #[test]
    fn a_token_for_configuration_cannot_register_and_signs_exactly_what_is_sent() {
        let key = a_2_1_key_with_a_pin();
        let acfg = token(&key, ACFG, None).unwrap();
        assert_eq!(
            make_credential(&key, &acfg, "example.com"),
            refused(CtapError::Ctap2PinAuthInvalid)
        );
        assert_eq!(
            set_min(&key, &acfg, 10, Some(8)),
            refused(CtapError::Ctap2PinAuthInvalid)
        );
        assert_eq!((key.min_pin_length(), key.must_change_pin()), (4, false));
        set_min(&key, &acfg, 8, None).unwrap();
        assert_eq!((key.min_pin_length(), key.must_change_pin()), (8, true));
        // No new token until the PIN has changed.
        assert_eq!(
            token(&key, MC, Some("example.com")),
            Err(ctap(CtapError::Ctap2PinPolicyViolation))
        );
    }

    #[test]
    fn a_new_token_replaces_the_last_one() {
        let key = a_2_1_key_with_a_pin();
        let first = token(&key, MC, Some("example.com")).unwrap();
        let second = token(&key, MC, Some("example.com")).unwrap();
        assert_eq!(
            make_credential(&key, &first, "example.com"),
            refused(CtapError::Ctap2PinAuthInvalid)
        );
        make_credential(&key, &second, "example.com").unwrap();
    }

    #[test]
    fn only_permissions_the_key_has_are_granted() {
        let key = a_2_1_key_with_a_pin();
        // Credential management, and mc without an RP.
        assert_eq!(
            token(&key, 0x04, None),
            Err(ctap(CtapError::Ctap2UnauthorizedPermission))
        );
        assert_eq!(
            token(&key, MC, None),
            Err(ctap(CtapError::Ctap2MissingParameter))
        );
        assert_eq!(
            token(&key, 0, None),
            Err(ctap(CtapError::Ctap1InvalidParameter))
        );
    }

    #[test]
    fn a_2_0_key_has_none_of_it() {
        let (key, _) = SoftCtapToken::generate().unwrap();
        let asked = client_pin(&key, vec![(1, Value::Integer(1)), (2, Value::Integer(9))]);
        assert_eq!(asked, Err(ctap(CtapError::Ctap2InvalidSubcommand)));
        let config = ConfigRequest::new(ConfigSubCommand::ToggleAlwaysUv, None, None);
        assert_eq!(
            send(&key, &config.cbor().unwrap()),
            Err(ctap(CtapError::Ctap1InvalidCommand))
        );
    }
}
