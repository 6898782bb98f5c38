//! The configuration file and environment: a configuration or an error.
//! The input's first line names an environment variable and its value
//! (`NAME=value`); the rest is the file.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::os::unix::fs::PermissionsExt;
use std::sync::LazyLock;
use tapkiosk_core::config::{Config, Inputs};

static DIR: LazyLock<tempfile::TempDir> =
    LazyLock::new(|| tempfile::tempdir().expect("a temporary folder"));

fuzz_target!(|text: &str| {
    let (first, file) = text.split_once('\n').unwrap_or((text, ""));
    let path = DIR.path().join("config.toml");
    std::fs::write(&path, file).expect("the file is written");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
        .expect("the file is private");
    let env = first
        .split_once('=')
        .map(|(name, value)| (format!("TAPKIOSK_{name}"), value.to_string()))
        .into_iter()
        .collect();
    let inputs = Inputs {
        file: Some(path),
        env,
        flags: Vec::new(),
    };
    let _ = Config::resolve(&inputs);
});
