//! What a person types as their pass: read or refused, and what is read
//! reads back the same from its grouped form.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tapkiosk_core::PassCode;

fuzz_target!(|text: &str| {
    if let Ok(code) = PassCode::parse(text) {
        let again = PassCode::parse(&code.grouped()).expect("a grouped pass reads back");
        assert_eq!(again.expose(), code.expose());
    }
});
