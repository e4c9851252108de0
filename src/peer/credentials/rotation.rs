//! When a replica trusts and presents a new peer credential, as a pure state
//! machine over observations and time. A new CA is trusted at once beside
//! the active one; certificates from it are presented only one `step`
//! later (by then every replica, reading at the same interval, trusts it
//! too); the old CA is trusted for one more `step` (so peers that have not
//! switched yet still get in). So during a rotation no two replicas ever
//! refuse each other, and the cluster never splits.

use std::time::{Duration, Instant};

/// What a [`Rotation::tick`] changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Nothing to do.
    None,
    /// A newly observed credential is now trusted beside the active one.
    Trusting,
    /// The incoming credential became the active one: present it.
    Switched,
    /// The previous credential is no longer trusted.
    Retired,
}

/// The credentials a replica trusts, and the one it presents.
#[derive(Debug, Clone)]
pub struct Rotation<T> {
    active: T,
    incoming: Option<(T, Instant)>,
    retiring: Option<(T, Instant)>,
    /// A fresh observation not yet acted on.
    noticed: bool,
    step: Duration,
}

impl<T: PartialEq + Clone> Rotation<T> {
    /// Starts with `active` only; `step` is how long each phase lasts.
    pub fn new(active: T, step: Duration) -> Rotation<T> {
        Rotation { active, incoming: None, retiring: None, noticed: false, step }
    }

    /// Records what the source holds now. A value other than the active
    /// (or already incoming) one becomes the incoming credential; seeing
    /// the active one again cancels a pending switch that has not happened.
    pub fn observe(&mut self, seen: T, now: Instant) {
        if seen == self.active {
            self.incoming = None;
            return;
        }
        if self.incoming.as_ref().is_some_and(|(c, _)| *c == seen) {
            return;
        }
        self.incoming = Some((seen, now));
        self.noticed = true;
    }

    /// Advances the phases to `now`; at most one change per call.
    pub fn tick(&mut self, now: Instant) -> Change {
        if std::mem::take(&mut self.noticed) {
            return Change::Trusting;
        }
        if let Some((_, since)) = &self.incoming
            && now.duration_since(*since) >= self.step
            && let Some((next, _)) = self.incoming.take()
        {
            let previous = std::mem::replace(&mut self.active, next);
            self.retiring = Some((previous, now));
            return Change::Switched;
        }
        if let Some((_, since)) = &self.retiring
            && now.duration_since(*since) >= self.step
        {
            self.retiring = None;
            return Change::Retired;
        }
        Change::None
    }

    /// The credential to present.
    pub fn active(&self) -> &T {
        &self.active
    }

    /// Every credential to trust: the active one first, then the incoming
    /// and the retiring ones.
    pub fn trusted(&self) -> Vec<&T> {
        let mut all = vec![&self.active];
        all.extend(self.incoming.as_ref().map(|(c, _)| c));
        all.extend(self.retiring.as_ref().map(|(c, _)| c).filter(|c| **c != self.active));
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_credential_is_trusted_first_presented_one_step_later_and_the_old_dropped_after_another() {
        let t0 = Instant::now();
        let step = Duration::from_secs(2);
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut r = Rotation::new("old", step);
        assert_eq!(r.tick(at(0)), Change::None);
        r.observe("old", at(1));
        assert_eq!(r.tick(at(1)), Change::None);
        r.observe("new", at(1));
        assert_eq!(r.tick(at(1)), Change::Trusting);
        assert_eq!((*r.active(), r.trusted()), ("old", vec![&"old", &"new"]));
        r.observe("new", at(2));
        assert_eq!(r.tick(at(2)), Change::None, "seeing it again does not restart the clock");
        assert_eq!(r.tick(at(3)), Change::Switched);
        assert_eq!((*r.active(), r.trusted()), ("new", vec![&"new", &"old"]));
        assert_eq!(r.tick(at(4)), Change::None);
        assert_eq!(r.tick(at(5)), Change::Retired);
        assert_eq!(r.trusted(), vec![&"new"]);
        assert_eq!(r.tick(at(9)), Change::None);
    }

    #[test]
    fn a_credential_replaced_again_before_the_switch_restarts_the_wait_and_a_revert_cancels_it() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut r = Rotation::new(1, Duration::from_secs(2));
        r.observe(2, at(0));
        assert_eq!(r.tick(at(0)), Change::Trusting);
        r.observe(3, at(1));
        assert_eq!(r.tick(at(1)), Change::Trusting);
        assert_eq!(r.trusted(), vec![&1, &3]);
        assert_eq!(r.tick(at(2)), Change::None, "3 was first seen at 1 s");
        assert_eq!(r.tick(at(3)), Change::Switched);
        assert_eq!(*r.active(), 3);
        let mut back = Rotation::new(1, Duration::from_secs(2));
        back.observe(2, at(0));
        back.observe(1, at(1));
        back.tick(at(1));
        assert_eq!(back.tick(at(5)), Change::None);
        assert_eq!((*back.active(), back.trusted()), (1, vec![&1]));
    }
}
