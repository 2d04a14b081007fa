//! The health of one service as its checks report it: rise and fall
//! counting, pure and clocked from outside.

use std::time::Instant;

/// What a service's checks say so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    /// `None` until the first result; then healthy or not.
    pub healthy: Option<bool>,
    /// Results in a row that disagree with `healthy`.
    streak: u32,
    /// The last result: success, a short description, when.
    pub last: Option<(bool, String, Instant)>,
}

impl Health {
    /// No result yet: the service counts as not healthy until the first
    /// check, so a node never claims a VIP it has not checked.
    pub fn new() -> Health {
        Health {
            healthy: None,
            streak: 0,
            last: None,
        }
    }

    /// Takes one result. The first decides at once; after that `rise`
    /// successes in a row make a failing service healthy and `fall`
    /// failures in a row make a healthy one failing. Returns the new state
    /// when it changed.
    pub fn record(
        &mut self,
        ok: bool,
        detail: String,
        now: Instant,
        rise: u32,
        fall: u32,
    ) -> Option<bool> {
        self.last = Some((ok, detail, now));
        let needed = match self.healthy {
            None => 1,
            Some(current) if current == ok => {
                self.streak = 0;
                return None;
            }
            Some(true) => fall,
            Some(false) => rise,
        };
        self.streak += 1;
        if self.streak >= needed {
            self.streak = 0;
            self.healthy = Some(ok);
            Some(ok)
        } else {
            None
        }
    }
}

impl Default for Health {
    fn default() -> Self {
        Health::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rise_and_fall_count_results_in_a_row() {
        let now = Instant::now();
        let mut health = Health::new();
        let mut feed = |ok| health.record(ok, String::new(), now, 2, 3);
        assert_eq!(feed(true), Some(true), "the first result decides");
        assert_eq!(feed(false), None);
        assert_eq!(feed(false), None);
        assert_eq!(feed(true), None, "a success breaks the run of failures");
        assert_eq!(feed(false), None);
        assert_eq!(feed(false), None);
        assert_eq!(feed(false), Some(false), "three failures in a row");
        assert_eq!(feed(true), None);
        assert_eq!(feed(true), Some(true), "two successes in a row");

        let mut failing = Health::new();
        assert_eq!(
            failing.record(false, "refused".into(), now, 2, 3),
            Some(false)
        );
        assert_eq!(failing.healthy, Some(false));
        assert_eq!(failing.last.as_ref().map(|l| l.1.as_str()), Some("refused"));
    }
}
