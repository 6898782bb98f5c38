//! The UI's text catalogues (ui/i18n/*.json) against the code: both
//! languages have the same keys, and every code the backend can send and
//! every key the UI asks for has words in both. Read from the sources, so a
//! new error code, notice or audit event without words fails here rather
//! than showing a raw key to a person.

use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

const LANGUAGES: [&str; 2] = ["en", "fr"];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every dotted key of a catalogue whose value is a string.
fn keys(value: &Value, prefix: &str, into: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            for (name, child) in map {
                let key = if prefix.is_empty() {
                    name.clone()
                } else {
                    format!("{prefix}.{name}")
                };
                keys(child, &key, into);
            }
        }
        Value::String(text) => {
            assert!(!text.trim().is_empty(), "{prefix} is empty");
            into.insert(prefix.to_string());
        }
        other => panic!("{prefix}: {other} is not text"),
    }
}

fn catalogue(language: &str) -> BTreeSet<String> {
    let path = root().join(format!("ui/i18n/{language}.json"));
    let json: Value = serde_json::from_str(&read(&path)).unwrap();
    let mut all = BTreeSet::new();
    keys(&json, "", &mut all);
    all
}

/// The string literals that follow each `marker` in the files of `dir`.
fn literals_after(dir: &str, extension: &str, marker: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for entry in walk(&root().join(dir)) {
        if entry.extension().is_some_and(|e| e == extension) {
            for piece in read(&entry).split(marker).skip(1) {
                let quote = piece.chars().next().unwrap_or(' ');
                if !"'\"`".contains(quote) {
                    continue;
                }
                if let Some(end) = piece[1..].find(quote) {
                    found.insert(piece[1..=end].to_string());
                }
            }
        }
    }
    found
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

/// The variants of `pub enum name` in `file`, in snake_case (serde's
/// `rename_all = "snake_case"`).
fn variants(file: &str, name: &str) -> BTreeSet<String> {
    let source = read(&root().join(file));
    let body = source
        .split(&format!("pub enum {name} {{"))
        .nth(1)
        .unwrap_or_else(|| panic!("no enum {name} in {file}"));
    let mut depth = 0;
    let mut found = BTreeSet::new();
    for line in body.lines() {
        let line = line.trim();
        if depth == 0 && line.starts_with(|c: char| c.is_ascii_uppercase()) {
            let variant: String = line
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric())
                .collect();
            found.insert(snake_case(&variant));
        }
        depth += line.matches('{').count() as i32 - line.matches('}').count() as i32;
        if depth < 0 {
            break;
        }
    }
    found
}

fn snake_case(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

fn assert_has(needed: &BTreeSet<String>, what: &str) {
    assert!(!needed.is_empty(), "found no {what} in the sources");
    for language in LANGUAGES {
        let words = catalogue(language);
        let missing: Vec<_> = needed.iter().filter(|k| !words.contains(*k)).collect();
        assert!(
            missing.is_empty(),
            "{language} has no words for {what}: {missing:?}"
        );
    }
}

fn prefixed(prefix: &str, names: BTreeSet<String>) -> BTreeSet<String> {
    names.into_iter().map(|n| format!("{prefix}.{n}")).collect()
}

#[test]
fn both_languages_have_the_same_keys() {
    let english = catalogue("en");
    let french = catalogue("fr");
    let only_en: Vec<_> = english.difference(&french).collect();
    let only_fr: Vec<_> = french.difference(&english).collect();
    assert!(only_en.is_empty(), "only in English: {only_en:?}");
    assert!(only_fr.is_empty(), "only in French: {only_fr:?}");
    assert!(english.len() > 100, "{} keys", english.len());
}

#[test]
fn every_key_the_ui_asks_for_has_words() {
    let mut asked = literals_after("ui/js", "js", "t(");
    // Keys built at run time, such as t(`notice.${code}`), are checked below.
    // (`split('.')` matches the marker too: keep only dotted names.)
    asked.retain(|key| {
        key.split('.').count() > 1
            && key.split('.').all(|part| {
                !part.is_empty() && part.chars().all(|c| c.is_ascii_lowercase() || c == '_')
            })
    });
    assert_has(&asked, "keys used in ui/js");
}

#[test]
fn every_error_code_has_words() {
    let mut codes = BTreeSet::new();
    for marker in ["new(", "with("] {
        codes.extend(literals_after("src-tauri/src", "rs", marker));
    }
    codes.retain(|c| c.chars().all(|c| c.is_ascii_lowercase() || c == '_'));
    assert_has(&prefixed("error", codes), "error codes");
}

#[test]
fn every_notice_and_key_phase_has_words() {
    let notices = variants("crates/core/src/kiosk/mod.rs", "Notice");
    assert_has(&prefixed("notice", notices), "notices");
    let phases = variants("crates/core/src/fido/ceremony.rs", "Phase");
    assert_has(&prefixed("key.phase", phases), "security key phases");
}

/// IT stages keys for other people: the staging pane has its own words for
/// what the kiosk says to a key's owner ("your key", "ask IT").
#[test]
fn the_staging_pane_has_its_own_pin_and_phase_words() {
    let phases = variants("crates/core/src/fido/ceremony.rs", "Phase");
    assert_has(&prefixed("admin.stage.phase", phases), "staging phases");
    let pin_words = [
        "new_pin",
        "new_pin_again",
        "pin",
        "wrong_pin",
        "wrong_pin_left",
        "wrong_pin_last",
        "few_tries_left",
        "last_try",
    ];
    let pin_words: BTreeSet<String> = pin_words.into_iter().map(str::to_string).collect();
    assert_has(&prefixed("admin.stage", pin_words), "staging PIN prompts");
}

#[test]
fn every_pass_state_and_audit_event_has_words() {
    let states = variants("crates/core/src/pass.rs", "PassStatus");
    assert_has(&prefixed("admin.pass_state", states), "pass states");
    let mut kinds = literals_after("crates/core/src", "rs", "Event::new(");
    // Revoking and replacing name their event in the call.
    let passes = read(&root().join("crates/core/src/directory/passes.rs"));
    for line in passes.lines().filter(|l| l.contains(".end_live_passes(")) {
        kinds.extend(line.rsplit('"').nth(1).map(str::to_string));
    }
    assert_has(&prefixed("admin.audit.kind", kinds), "audit events");
}
