//! The admin pane's session: which admin is signed in, and until when. A
//! command IT gives extends it by [`ADMIN_SESSION`]; what the pane asks by
//! itself (its polls) does not, so that a pane left alone locks. A lapsed
//! session is closed at the next look. The session holds the directory
//! acting as that admin, so that their name is in the audit log.

use crate::directory::AdminName;
use chrono::{DateTime, TimeDelta, Utc};
use thiserror::Error;

/// How long the admin pane stays unlocked without being used.
pub const ADMIN_SESSION: TimeDelta = TimeDelta::minutes(5);

/// The pane is locked: nobody is signed in, or the session lapsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("the admin pane is locked")]
pub struct Locked;

/// How a command uses the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use {
    /// IT did something: the session lasts [`ADMIN_SESSION`] from now.
    Extend,
    /// The pane asked by itself: the session is not extended.
    Peek,
}

/// The session, holding `D` (the directory acting as the admin) while
/// open.
#[derive(Debug)]
pub struct AdminSession<D> {
    open: Option<Open<D>>,
}

#[derive(Debug)]
struct Open<D> {
    name: AdminName,
    until: DateTime<Utc>,
    acting: D,
}

impl<D> Default for AdminSession<D> {
    fn default() -> Self {
        Self { open: None }
    }
}

impl<D: Clone> AdminSession<D> {
    /// `name` signed in at `now`, acting through `acting`.
    pub fn unlock(&mut self, name: AdminName, acting: D, now: DateTime<Utc>) {
        self.open = Some(Open {
            name,
            until: now + ADMIN_SESSION,
            acting,
        });
    }

    /// The directory acting as the admin, while the session is open at
    /// `now`; extended when `used` says so. A lapsed session is closed.
    pub fn check(&mut self, now: DateTime<Utc>, used: Use) -> Result<D, Locked> {
        match self.open.as_mut() {
            Some(open) if open.until > now => {
                if used == Use::Extend {
                    open.until = now + ADMIN_SESSION;
                }
                Ok(open.acting.clone())
            }
            _ => {
                self.open = None;
                Err(Locked)
            }
        }
    }

    /// The admin signed in at `now`, if the session has not lapsed (not
    /// extended).
    pub fn admin(&self, now: DateTime<Utc>) -> Option<&AdminName> {
        self.open
            .as_ref()
            .filter(|open| open.until > now)
            .map(|open| &open.name)
    }

    /// Ends the session.
    pub fn lock(&mut self) {
        self.open = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(minutes: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 3, 9, 0, 0).unwrap() + TimeDelta::minutes(minutes)
    }

    fn alice() -> AdminName {
        AdminName::parse("alice").unwrap()
    }

    #[test]
    fn a_locked_pane_gives_nothing() {
        let mut session = AdminSession::<&str>::default();
        assert_eq!(session.check(at(0), Use::Extend), Err(Locked));
        assert_eq!(session.admin(at(0)), None);
    }

    #[test]
    fn use_extends_the_session_and_the_panes_polls_do_not() {
        let mut session = AdminSession::default();
        session.unlock(alice(), "as alice", at(0));
        assert_eq!(session.check(at(4), Use::Extend), Ok("as alice"));
        // Used at 4: open until 9, whatever the pane polls meanwhile.
        assert_eq!(session.check(at(8), Use::Peek), Ok("as alice"));
        assert_eq!(session.admin(at(8)), Some(&alice()));
        assert_eq!(session.admin(at(9)), None, "lapsed at 9");
        assert_eq!(session.check(at(9), Use::Peek), Err(Locked));
        // Closed at that look: a later use does not bring it back.
        assert_eq!(session.check(at(9), Use::Extend), Err(Locked));
    }

    #[test]
    fn a_poll_alone_lets_the_session_lapse() {
        let mut session = AdminSession::default();
        session.unlock(alice(), "as alice", at(0));
        assert_eq!(session.check(at(3), Use::Peek), Ok("as alice"));
        assert_eq!(session.check(at(5), Use::Peek), Err(Locked));
    }

    #[test]
    fn lock_ends_it_at_once() {
        let mut session = AdminSession::default();
        session.unlock(alice(), "as alice", at(0));
        session.lock();
        assert_eq!(session.check(at(0), Use::Extend), Err(Locked));
        assert_eq!(session.admin(at(0)), None);
    }
}
