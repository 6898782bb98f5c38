//! A key's answer to a registration, as the kiosk checks it: a real answer
//! from a software key, changed by the input (bytes overwritten, the end
//! cut), or the input itself as the attestation object. It never panics
//! the kiosk, and changed client data (which the key signed) is refused.
//! Without attestation roots a changed certificate in the attestation
//! statement may still verify, so only client data changes are asserted.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::sync::LazyLock;
use tapkiosk_core::fido::reported_model;
use tapkiosk_fuzz::{Registered, edit};

static SETUP: LazyLock<Registered> = LazyLock::new(Registered::new);

fuzz_target!(|data: &[u8]| {
    let setup = &*SETUP;
    let Some((mode, edits)) = data.split_first() else {
        return;
    };
    let mut answer = setup.answer.clone();
    let client_data_changed = match mode % 3 {
        0 => {
            edit(&mut answer.response.attestation_object, edits);
            false
        }
        1 => edit(&mut answer.response.client_data_json, edits),
        _ => {
            answer.response.attestation_object = edits.to_vec().into();
            false
        }
    };
    let _ = reported_model(&answer);
    let outcome = setup.rp.finish_registration(&answer, setup.state.clone());
    assert!(
        outcome.is_err() || !client_data_changed,
        "changed client data was accepted"
    );
});
