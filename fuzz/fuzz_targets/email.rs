//! What a person types as their email: read or refused, and what is read
//! reads back the same.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tapkiosk_core::Email;

fuzz_target!(|text: &str| {
    if let Ok(email) = Email::parse(text) {
        assert_eq!(Email::parse(email.as_str()).ok(), Some(email));
    }
});
