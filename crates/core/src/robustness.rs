//! Every parser of outside input, fed arbitrary text: each answers with a
//! value or an error, never a panic, and what it accepts reads back the same.
//! These stand in for fuzz targets where a property test reaches as far
//! (see the README's Fuzzing section for what is and is not covered).

use crate::checkpoint::Checkpoint;
use crate::pass::PassCode;
use crate::{Email, clock, duration, import, keys};
use proptest::prelude::*;

/// Text that looks a little like each input (separators, digits, unicode,
/// control characters), as well as anything at all.
fn texty() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[A-Za-z0-9 @.,;:=\"'\\-\\r\\n\\t\u{feff}éß中]{0,80}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn pass_input_is_read_or_refused(text in texty()) {
        if let Ok(code) = PassCode::parse(&text) {
            prop_assert_eq!(PassCode::parse(&code.grouped()).map(|c| c.grouped()), Ok(code.grouped()));
        }
    }

    #[test]
    fn email_input_is_read_or_refused(text in texty()) {
        if let Ok(email) = Email::parse(&text) {
            prop_assert_eq!(Email::parse(email.as_str()), Ok(email.clone()));
        }
    }

    #[test]
    fn csv_imports_and_batches_are_read_or_refused_by_line(text in texty()) {
        if let Err(errors) = import::parse_users(&text) {
            prop_assert!(!errors.0.is_empty());
        }
        if let Err(errors) = import::parse_batch(&text) {
            prop_assert!(!errors.0.is_empty());
        }
    }

    #[test]
    fn durations_and_times_are_read_or_refused(text in texty()) {
        if let Ok(parsed) = duration::parse(&text) {
            prop_assert_eq!(duration::parse(&duration::format(parsed)), Ok(parsed));
        }
        let _ = clock::parse_time(&text);
    }

    #[test]
    fn key_exports_and_checkpoints_are_read_or_refused(text in texty()) {
        prop_assert!(keys::import(&text, "correct horse battery").is_err());
        if let Ok(checkpoint) = Checkpoint::parse(&text) {
            prop_assert_eq!(Checkpoint::parse(&checkpoint.to_string()), Ok(checkpoint));
        }
    }

    #[test]
    fn configuration_files_are_read_or_refused(text in texty()) {
        let (_dir, inputs) = config_inputs(&text, None);
        let _ = crate::config::Config::resolve(&inputs);
    }

    #[test]
    fn configuration_from_the_environment_is_read_or_refused(
        key in prop::sample::select(crate::config::KEYS.map(|(k, _)| k).to_vec()),
        value in texty(),
    ) {
        let name = format!("TAPKIOSK_{}", key.to_uppercase().replace('.', "_"));
        let (_dir, inputs) = config_inputs("", Some((name, value)));
        let _ = crate::config::Config::resolve(&inputs);
    }
}

/// A private configuration file holding `text`, and `variable` set.
fn config_inputs(
    text: &str,
    variable: Option<(String, String)>,
) -> (tempfile::TempDir, crate::config::Inputs) {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let inputs = crate::config::Inputs {
        file: Some(path),
        env: variable.into_iter().collect(),
        flags: Vec::new(),
    };
    (dir, inputs)
}
