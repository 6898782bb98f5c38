//! What a security key answers over CTAP2, as the kiosk's client decodes
//! it: the first byte picks the command whose answer the rest is read as.
#![no_main]
use libfuzzer_sys::fuzz_target;
use webauthn_authenticator_rs::ctap2::CBORResponse;
use webauthn_authenticator_rs::ctap2::commands::{
    ClientPinResponse, CredentialManagementResponse, GetAssertionResponse, GetInfoResponse,
    MakeCredentialResponse,
};

fuzz_target!(|data: &[u8]| {
    let Some((which, answer)) = data.split_first() else {
        return;
    };
    match which % 5 {
        0 => drop(<GetInfoResponse as CBORResponse>::try_from(answer)),
        1 => drop(<ClientPinResponse as CBORResponse>::try_from(answer)),
        2 => drop(<MakeCredentialResponse as CBORResponse>::try_from(answer)),
        3 => drop(<GetAssertionResponse as CBORResponse>::try_from(answer)),
        _ => drop(<CredentialManagementResponse as CBORResponse>::try_from(
            answer,
        )),
    }
});
