//! Whether this node may serve a VIP now, and how long a VIP handed over on
//! purpose keeps being routed here (linger). Pure: the election's thread
//! brings the link states, health results and the clock.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::message::Unfit;
use crate::ownership::Vip;

/// An interface as the election knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Link {
    /// The interface exists.
    pub present: bool,
    /// It is up with carrier.
    pub usable: bool,
}

/// Why this node cannot serve a VIP on `link` now, if so. `health` is
/// `None` for a service without a health check, else its last verdict
/// (`None` before the first result).
pub fn unfit(link: Link, health: Option<Option<bool>>) -> Option<Unfit> {
    if !link.present {
        return Some(Unfit::InterfaceGone);
    }
    if !link.usable {
        return Some(Unfit::LinkDown);
    }
    match health {
        None | Some(Some(true)) => None,
        Some(Some(false)) => Some(Unfit::HealthFailing),
        Some(None) => Some(Unfit::HealthPending),
    }
}

/// VIPs handed over on purpose whose traffic is still accepted here, each
/// until its deadline, for clients whose caches ignored the announcement.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Linger {
    until: BTreeMap<Arc<str>, (Vip, Instant)>,
}

impl Linger {
    /// Follows one ownership change of `vip`: acquiring it again ends its
    /// linger; a planned release of a routed VIP starts one of `period`
    /// (none when `period` is zero). True when a linger started.
    pub fn follow(
        &mut self,
        vip: &Vip,
        acquired: bool,
        planned: bool,
        now: Instant,
        period: Duration,
    ) -> bool {
        if acquired {
            self.until.remove(&vip.name);
            return false;
        }
        if !planned || !vip.route || period.is_zero() {
            return false;
        }
        self.until
            .insert(Arc::clone(&vip.name), (vip.clone(), now + period));
        true
    }

    /// Ends the lingers due at `now`; returns their names.
    pub fn expire(&mut self, now: Instant) -> Vec<Arc<str>> {
        let mut ended = Vec::new();
        self.until.retain(|name, (_, until)| {
            let keep = now < *until;
            if !keep {
                ended.push(Arc::clone(name));
            }
            keep
        });
        ended
    }

    /// When the next linger ends.
    pub fn next_end(&self) -> Option<Instant> {
        self.until.values().map(|(_, until)| *until).min()
    }

    /// How long `name` still lingers, if it does.
    pub fn left(&self, name: &str, now: Instant) -> Option<Duration> {
        self.until
            .get(name)
            .map(|(_, until)| until.saturating_duration_since(now))
    }

    /// Keeps only lingers whose VIP is still served, unchanged and routed.
    pub fn keep_current(&mut self, vips: &[Vip]) {
        self.until
            .retain(|name, (vip, _)| vips.iter().any(|v| &v.name == name && v == vip && v.route));
    }

    /// Ends every linger (at exit nothing of l2vip stays behind).
    pub fn clear(&mut self) {
        self.until.clear();
    }

    /// The lingering VIPs.
    pub fn vips(&self) -> impl Iterator<Item = &Vip> {
        self.until.values().map(|(vip, _)| vip)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UP: Link = Link {
        present: true,
        usable: true,
    };

    fn vip(name: &str, route: bool) -> Vip {
        Vip {
            mac: None,
            name: name.into(),
            ip: "192.0.2.200".parse().expect("an address"),
            interface: "eth0".into(),
            route,
            answer: true,
            export: None,
        }
    }

    #[test]
    fn the_interface_comes_before_the_health_check() {
        let gone = Link {
            present: false,
            usable: false,
        };
        let down = Link {
            present: true,
            usable: false,
        };
        assert_eq!(unfit(gone, Some(Some(true))), Some(Unfit::InterfaceGone));
        assert_eq!(unfit(down, Some(Some(true))), Some(Unfit::LinkDown));
        assert_eq!(unfit(down, None), Some(Unfit::LinkDown));
        assert_eq!(unfit(UP, None), None);
    }

    #[test]
    fn a_checked_service_is_fit_only_once_it_passes() {
        assert_eq!(unfit(UP, Some(None)), Some(Unfit::HealthPending));
        assert_eq!(unfit(UP, Some(Some(false))), Some(Unfit::HealthFailing));
        assert_eq!(unfit(UP, Some(Some(true))), None);
    }

    #[test]
    fn a_planned_release_lingers_for_its_period_then_ends() {
        let start = Instant::now();
        let period = Duration::from_secs(120);
        let mut linger = Linger::default();
        assert!(linger.follow(&vip("web", true), false, true, start, period));
        assert_eq!(linger.next_end(), Some(start + period));
        let later = start + Duration::from_secs(100);
        assert_eq!(linger.left("web", later), Some(Duration::from_secs(20)));
        assert!(linger.expire(later).is_empty());
        assert_eq!(linger.vips().count(), 1);
        let ended = linger.expire(start + period);
        assert_eq!(ended, vec![Arc::<str>::from("web")]);
        assert_eq!(linger.next_end(), None);
        assert_eq!(linger.left("web", start + period), None);
    }

    #[test]
    fn no_linger_after_a_crash_without_a_route_or_with_a_zero_period() {
        let now = Instant::now();
        let period = Duration::from_secs(120);
        let mut linger = Linger::default();
        assert!(!linger.follow(&vip("web", true), false, false, now, period));
        assert!(!linger.follow(&vip("web", false), false, true, now, period));
        assert!(!linger.follow(&vip("web", true), false, true, now, Duration::ZERO));
        assert_eq!(linger.vips().count(), 0);
    }

    #[test]
    fn acquiring_again_ends_the_linger() {
        let now = Instant::now();
        let mut linger = Linger::default();
        linger.follow(&vip("web", true), false, true, now, Duration::from_secs(5));
        assert!(!linger.follow(&vip("web", true), true, false, now, Duration::from_secs(5)));
        assert_eq!(linger.next_end(), None);
    }

    #[test]
    fn a_changed_or_removed_service_stops_lingering() {
        let now = Instant::now();
        let period = Duration::from_secs(5);
        let mut linger = Linger::default();
        linger.follow(&vip("web", true), false, true, now, period);
        linger.follow(&vip("db", true), false, true, now, period);
        // "web" now has bind "none"; "db" is gone.
        linger.keep_current(&[vip("web", false)]);
        assert_eq!(linger.vips().count(), 0);
        linger.follow(&vip("web", true), false, true, now, period);
        linger.keep_current(&[vip("web", true)]);
        assert_eq!(linger.vips().count(), 1);
        linger.clear();
        assert_eq!(linger.vips().count(), 0);
    }
}
