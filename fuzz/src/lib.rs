//! What the fuzz targets share: a relying party, a software key's real
//! answers to it, and a way to change bytes as the input says.
use tapkiosk_core::config::WebAuthnSettings;
use tapkiosk_core::fido::{
    Base64UrlSafeData, Passkey, RegisterPublicKeyCredential, Registration, RelyingParty, Uuid,
};
use webauthn_authenticator_rs::WebauthnAuthenticator;
use webauthn_authenticator_rs::softtoken::SoftToken;

/// A relying party, a registration it started, a software key's answer
/// to it, and the key.
pub struct Registered {
    pub rp: RelyingParty,
    pub state: Registration,
    pub answer: RegisterPublicKeyCredential,
    pub key: WebauthnAuthenticator<SoftToken>,
}

impl Registered {
    pub fn new() -> Self {
        let rp = RelyingParty::new(&WebAuthnSettings {
            rp_id: "kiosk.example".into(),
            rp_name: "Kiosk".into(),
            origin: "https://kiosk.example".into(),
            attestation_roots: None,
        })
        .expect("a relying party");
        let (challenge, state) = rp
            .start_registration(Uuid::from_u128(7), "ada@example.com", "Ada", &[], None)
            .expect("a challenge");
        let mut key = WebauthnAuthenticator::new(SoftToken::new(true).expect("a key").0);
        let answer = key
            .do_registration(rp.origin().clone(), challenge)
            .expect("the key answers");
        Self {
            rp,
            state,
            answer,
            key,
        }
    }

    /// The credential the answer registers.
    pub fn passkey(&self) -> Passkey {
        self.rp
            .finish_registration(&self.answer, self.state.clone())
            .expect("the key's own answer is accepted")
            .passkey
    }
}

impl Default for Registered {
    fn default() -> Self {
        Self::new()
    }
}

/// Applies `edits` as (position, byte) pairs, positions scaled to the
/// length, and a final odd byte as a cut at its scaled position; says
/// whether the bytes differ afterwards.
pub fn edit(bytes: &mut Base64UrlSafeData, edits: &[u8]) -> bool {
    let before: Vec<u8> = bytes.as_ref().to_vec();
    let mut after = before.clone();
    let mut pairs = edits.chunks_exact(2);
    for pair in &mut pairs {
        if after.is_empty() {
            break;
        }
        let at = pair[0] as usize * after.len() / 256;
        after[at] = pair[1];
    }
    if let [cut] = pairs.remainder() {
        after.truncate(*cut as usize * after.len() / 256);
    }
    let changed = after != before;
    *bytes = after.into();
    changed
}
