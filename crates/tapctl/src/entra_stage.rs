//! `tapctl entra stage FILE`: IT stages security keys into the tenant from
//! a terminal, one person of the file after another. The queue is the
//! admin pane's (`tapkiosk_core::staging::StagingQueue`); this only reads
//! the key's state and says it, asks IT for a PIN only IT knows (a key
//! that had one), and prints each PIN letter once, on standard output.
//! What IT is asked to do goes to standard error.

use crate::print::say;
use anyhow::{Context as _, Result};
use std::io::BufRead as _;
use std::path::Path;
use std::process::ExitCode;
use tapkiosk_core::Directory;
use tapkiosk_core::fido::ceremony::{KeySource, Phase};
use tapkiosk_core::staging::{
    PinChange, PinLetter, RowState, StagingNotice, StagingQueue, StagingTerms,
};
use tapkiosk_core::tenant::Tenant;
use zeroize::Zeroizing;

/// How often the key's state is read while it works.
const POLL: std::time::Duration = std::time::Duration::from_millis(100);

/// Stages a key for each person of `file`; exit 1 if anyone was not.
pub async fn stage(
    tenant: &dyn Tenant,
    directory: &Directory,
    file: &Path,
    min_pin_length: Option<u32>,
) -> Result<ExitCode> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let terms = StagingTerms::new(None, min_pin_length)?;
    let mut queue = StagingQueue::new(&text, terms)?;
    let keys = key_source();
    loop {
        queue.next(tenant, &keys).await?;
        if queue.view().notice == Some(StagingNotice::TenantUnavailable) {
            eprintln!("The tenant cannot be reached: stopped here. Run the command again later.");
            break;
        }
        let Some(email) = queue.view().current.map(|c| c.email.to_string()) else {
            break;
        };
        eprintln!("Next: {email}. Plug in their key (only that one).");
        stage_one(&mut queue, tenant, &keys, directory).await?;
    }
    Ok(summary(&queue))
}

/// Drives the key in hand until it is registered or given up.
#[allow(
    clippy::disallowed_methods,
    reason = "the pace of polling a key's worker, not a rule of time"
)]
async fn stage_one(
    queue: &mut StagingQueue,
    tenant: &dyn Tenant,
    keys: &KeySource,
    directory: &Directory,
) -> Result<()> {
    let (mut said, mut told) = (None, None);
    loop {
        queue.tick(tenant, keys, directory).await?;
        let view = queue.view();
        let Some(current) = view.current else {
            return Ok(());
        };
        if let Some(letter) = current.letter {
            print_letter(letter);
            return Ok(());
        }
        let (phase, pin_wanted) = (current.key.clone(), current.pin_wanted);
        if view.notice != told {
            told = view.notice;
            if told == Some(StagingNotice::KeyTooLate) {
                eprintln!("The tenant's request ran out: touch the key once more.");
            }
        }
        match phase {
            Some(Phase::EnterPin { .. }) if pin_wanted => {
                let pin = rpassword::prompt_password("This key has a PIN already. Its PIN: ")
                    .context("cannot read the key's PIN")?;
                let _ = queue.give_pin(Zeroizing::new(pin));
            }
            Some(phase) if phase.failed() => {
                if ask_again(&phase)? {
                    queue.retry(tenant, keys, directory.now()).await?;
                } else {
                    queue.skip()?;
                    return Ok(());
                }
            }
            Some(phase) if said.as_ref() != Some(&phase) => {
                if let Some(words) = words(&phase) {
                    eprintln!("{words}");
                }
                said = Some(phase);
            }
            _ => {}
        }
        tokio::time::sleep(POLL).await;
    }
}

/// What IT is told while the key works.
fn words(phase: &Phase) -> Option<&'static str> {
    match phase {
        Phase::Searching => Some("Looking for the key…"),
        Phase::Touch => Some("Touch the key."),
        _ => None,
    }
}

/// A key that failed: Enter tries again, `s` skips the person. A key that
/// cannot be staged (blocked, not FIDO2, registered already) is skipped.
fn ask_again(phase: &Phase) -> Result<bool> {
    let problem = match phase {
        Phase::NoKey => "No key found",
        Phase::SeveralKeys => "More than one key is plugged in",
        Phase::TimedOut => "Nobody touched the key in time",
        Phase::ReinsertKey => "Too many wrong PINs for now: unplug the key and plug it back in",
        _ => {
            eprintln!("This key cannot be staged: skipped.");
            return Ok(false);
        }
    };
    eprintln!("{problem}. Press Enter to try again, or type s and Enter to skip this person.");
    let mut line = String::new();
    let read = std::io::stdin().lock().read_line(&mut line)?;
    Ok(read > 0 && line.trim() != "s")
}

/// The PIN letter, for IT to print and hand over with the key.
fn print_letter(letter: &PinLetter) {
    let owner = match letter.name() {
        Some(name) => format!("{name} <{}>", letter.email()),
        None => letter.email().to_string(),
    };
    say!("PIN letter for {owner}");
    say!("  key: {}", letter.key_name());
    say!("  PIN: {}", letter.pin());
    match letter.pin_change() {
        PinChange::Required { min_pin_length } => say!(
            "  The key asks for a PIN of your own ({min_pin_length} characters or more) the first time you use it."
        ),
        PinChange::NotSupported | PinChange::Failed { .. } => {
            say!("  Keep this PIN, or change it on a computer with your key's own tool.")
        }
    }
}

/// Each person, and what became of them; exit 1 if anyone was not staged.
fn summary(queue: &StagingQueue) -> ExitCode {
    let mut missed = 0;
    for row in queue.rows() {
        let said = match &row.state {
            RowState::Staged { key_name, .. } => format!("staged as “{key_name}”"),
            RowState::Failed { reason } => {
                missed += 1;
                format!("not staged: {reason}")
            }
            RowState::Skipped => {
                missed += 1;
                "skipped".to_string()
            }
            RowState::Waiting | RowState::Staging => {
                missed += 1;
                "not done (run the command again for the rest)".to_string()
            }
        };
        say!("line {}: {}: {said}", row.line, row.email);
    }
    if missed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// USB keys, or in a `test-keys` build started with
/// `TAPKIOSK_TEST_SOFT_KEY`, a software key (for the tests).
fn key_source() -> KeySource {
    #[cfg(feature = "test-keys")]
    let soft_key = std::env::var("TAPKIOSK_TEST_SOFT_KEY").ok();
    #[cfg(not(feature = "test-keys"))]
    let soft_key: Option<String> = None;
    KeySource::of_build(soft_key.as_deref())
}
