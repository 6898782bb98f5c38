//! Named points in the middle of the directory's writes where a system test
//! stops the process, to show that a kiosk killed there (power cut, OOM
//! killer, SIGKILL) leaves the directory as if the write had never begun,
//! or as if it had finished.
//!
//! Only with the feature `crash-points`, which the tests turn on and no
//! shipped build has: there, a process started with `TAPKIOSK_CRASH_AT` set
//! to a point's name says `crash point: <name>` on standard output and in
//! its log when it reaches it, then stops where it is, its transaction
//! open, until the test kills it. Without the feature every point is an
//! empty function.

/// The variable that names the point to stop at.
pub const CRASH_AT_ENV: &str = "TAPKIOSK_CRASH_AT";

/// Stops the process at `name` if the tests asked for it.
#[cfg(feature = "crash-points")]
pub(crate) fn point(name: &'static str) {
    use std::io::Write;
    static ARMED: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    let armed = ARMED.get_or_init(|| std::env::var(CRASH_AT_ENV).ok());
    if armed.as_deref() != Some(name) {
        return;
    }
    // The log too: the app's standard output is not the test's to read.
    tracing::warn!("crash point: {name}");
    let mut out = std::io::stdout().lock();
    // Nothing to do if the test is gone: it kills us either way.
    let _ = writeln!(out, "crash point: {name}").and_then(|()| out.flush());
    drop(out);
    // Blocks this worker thread on purpose: nothing after the point may run.
    loop {
        std::thread::park();
    }
}

/// Stops the process at `name` if the tests asked for it.
#[cfg(not(feature = "crash-points"))]
#[inline(always)]
pub(crate) fn point(_name: &'static str) {}
