//! Key export files and audit checkpoints: refused unless well formed;
//! no export opens without its passphrase.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tapkiosk_core::{checkpoint::Checkpoint, keys};

fuzz_target!(|text: &str| {
    assert!(keys::import(text, "correct horse battery").is_err());
    if let Ok(checkpoint) = Checkpoint::parse(text) {
        assert_eq!(Checkpoint::parse(&checkpoint.to_string()), Ok(checkpoint));
    }
});
