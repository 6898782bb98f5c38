//! A key's answer to a sign-in ("Test my key"), as the kiosk checks it: a
//! real assertion from a software key with its authenticator data, client
//! data or signature changed by the input. All three are signed or are the
//! signature, so any change is refused; nothing panics the kiosk.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::sync::LazyLock;
use tapkiosk_core::fido::{Authentication, PublicKeyCredential, RelyingParty};
use tapkiosk_fuzz::{Registered, edit};

struct Setup {
    rp: RelyingParty,
    state: Authentication,
    answer: PublicKeyCredential,
}

static SETUP: LazyLock<Setup> = LazyLock::new(|| {
    let mut registered = Registered::new();
    let passkey = registered.passkey();
    let (challenge, state) = registered
        .rp
        .start_authentication(&[passkey])
        .expect("a challenge");
    let answer = registered
        .key
        .do_authentication(registered.rp.origin().clone(), challenge)
        .expect("the key answers");
    Setup {
        rp: registered.rp,
        state,
        answer,
    }
});

fuzz_target!(|data: &[u8]| {
    let setup = &*SETUP;
    let Some((mode, edits)) = data.split_first() else {
        return;
    };
    let mut answer = setup.answer.clone();
    let response = &mut answer.response;
    let changed = match mode % 3 {
        0 => edit(&mut response.authenticator_data, edits),
        1 => edit(&mut response.client_data_json, edits),
        _ => edit(&mut response.signature, edits),
    };
    let outcome = setup.rp.finish_authentication(&answer, setup.state.clone());
    assert!(
        outcome.is_err() || !changed,
        "a changed answer was accepted"
    );
});
