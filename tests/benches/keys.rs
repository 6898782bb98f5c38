//! Server-side cost of security keys: finishing a registration and an
//! authentication (webauthn-rs, as the kiosk calls it), beside the raw
//! ECDSA P-256 / SHA-256 signature check those contain. The key is
//! webauthn-authenticator-rs's software key; only the server side is timed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use openssl::hash::MessageDigest;
use openssl::sha::sha256;
use openssl::sign::Verifier;
use tapkiosk_core::config::WebAuthnSettings;
use tapkiosk_core::fido::{Passkey, RelyingParty, Url, Uuid};
use webauthn_authenticator_rs::WebauthnAuthenticator;
use webauthn_authenticator_rs::softtoken::SoftToken;

fn relying_party() -> RelyingParty {
    RelyingParty::new(&WebAuthnSettings {
        rp_id: "example.com".into(),
        rp_name: "Example Ltd".into(),
        origin: "https://kiosk.example.com".into(),
        attestation_roots: None,
    })
    .unwrap()
}

fn origin() -> Url {
    Url::parse("https://kiosk.example.com").unwrap()
}

fn keys(c: &mut Criterion) {
    let rp = relying_party();
    // `true`: the software key claims user verification, as a key does
    // after its PIN.
    let mut key = WebauthnAuthenticator::new(SoftToken::new(true).unwrap().0);
    c.bench_function("finish a registration", |b| {
        b.iter_batched(
            || {
                let (challenge, state) = rp
                    .start_registration(Uuid::new_v4(), "ada@example.com", "Ada", &[], None)
                    .unwrap();
                (key.do_registration(origin(), challenge).unwrap(), state)
            },
            |(answer, state)| rp.finish_registration(&answer, state).unwrap(),
            BatchSize::SmallInput,
        )
    });

    let (challenge, state) = rp
        .start_registration(Uuid::new_v4(), "ada@example.com", "Ada", &[], None)
        .unwrap();
    let answer = key.do_registration(origin(), challenge).unwrap();
    let passkey: Passkey = rp.finish_registration(&answer, state).unwrap().passkey;
    c.bench_function("finish an authentication", |b| {
        b.iter_batched(
            || {
                let (challenge, state) = rp
                    .start_authentication(std::slice::from_ref(&passkey))
                    .unwrap();
                (key.do_authentication(origin(), challenge).unwrap(), state)
            },
            |(answer, state)| rp.finish_authentication(&answer, state).unwrap(),
            BatchSize::SmallInput,
        )
    });

    // The signature check inside an authentication, alone.
    let (challenge, _) = rp
        .start_authentication(std::slice::from_ref(&passkey))
        .unwrap();
    let assertion = key.do_authentication(origin(), challenge).unwrap();
    let mut signed = assertion.response.authenticator_data.to_vec();
    signed.extend_from_slice(&sha256(assertion.response.client_data_json.as_slice()));
    let signature = assertion.response.signature.to_vec();
    let public_key = passkey.get_public_key().get_openssl_pkey().unwrap();
    c.bench_function("ECDSA P-256 verify (raw)", |b| {
        b.iter(|| {
            let mut verifier = Verifier::new(MessageDigest::sha256(), &public_key).unwrap();
            verifier.update(&signed).unwrap();
            assert!(verifier.verify(&signature).unwrap());
        })
    });
}

criterion_group!(benches, keys);
criterion_main!(benches);
