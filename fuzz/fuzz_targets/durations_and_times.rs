//! Lifetimes, delays and times as IT types them: read or refused, and a
//! duration reads back the same from its written form.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tapkiosk_core::policy::Lifetime;
use tapkiosk_core::{clock, duration};

fuzz_target!(|text: &str| {
    if let Ok(parsed) = duration::parse(text) {
        assert_eq!(
            duration::parse(&duration::format(parsed)).ok(),
            Some(parsed)
        );
    }
    let _ = clock::parse_time(text);
    let _ = Lifetime::parse(text);
});
