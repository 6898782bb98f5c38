//! HR files for `user import` and pass batches: rows or errors that name
//! their lines, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tapkiosk_core::import;

fuzz_target!(|text: &str| {
    if let Err(errors) = import::parse_users(text) {
        assert!(!errors.0.is_empty());
    }
    if let Err(errors) = import::parse_batch(text) {
        assert!(!errors.0.is_empty());
    }
    let _ = import::parse_flag(text);
});
