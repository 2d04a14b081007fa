//! The hook queue: which hook runs next. Each ownership change queues the
//! configured hook and `--notify`'s command for its service; a service's
//! hooks run one at a time, in order, and at most `MAX_QUEUED_HOOKS` wait
//! per service (beyond, the oldest is dropped). Pure: the thread starts
//! the processes and says when one ended.

use std::collections::{BTreeMap, VecDeque};

use crate::config::Hooks;
use crate::ownership::Vip;

/// Hook runs waiting per service (two per event with `--notify`); older
/// ones are dropped beyond this.
pub(super) const MAX_QUEUED_HOOKS: usize = 16;

/// Which hook an ownership change runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum HookEvent {
    Acquire,
    Release,
}

impl HookEvent {
    /// `L2VIP_EVENT`'s value.
    pub(super) fn name(self) -> &'static str {
        match self {
            HookEvent::Acquire => "acquire",
            HookEvent::Release => "release",
        }
    }

    /// The configuration key of its command.
    pub(super) fn key(self) -> &'static str {
        match self {
            HookEvent::Acquire => "on_acquire",
            HookEvent::Release => "on_release",
        }
    }

    /// Its command, if one is configured.
    pub(super) fn command(self, hooks: &Hooks) -> Option<&String> {
        match self {
            HookEvent::Acquire => hooks.on_acquire.as_ref(),
            HookEvent::Release => hooks.on_release.as_ref(),
        }
    }
}

/// A hook waiting to run.
#[derive(Debug, Clone)]
pub(super) struct QueuedHook {
    pub(super) event: HookEvent,
    pub(super) vip: Vip,
    /// The daemon's `--notify` command rather than the configured hook.
    pub(super) notify: bool,
}

/// The hooks waiting per service, and the services whose hook runs now
/// (a plain vector: few at a time, and no set code in the binary for it).
#[derive(Debug, Default)]
pub(super) struct HookQueue {
    waiting: BTreeMap<String, VecDeque<QueuedHook>>,
    running: Vec<String>,
}

impl HookQueue {
    /// Queues what `event` on `vip` runs: the configured hook when
    /// `configured`, then `--notify`'s command when `notify`. Returns the
    /// events of the hooks dropped to make room (the oldest).
    pub(super) fn push(
        &mut self,
        event: HookEvent,
        vip: &Vip,
        configured: bool,
        notify: bool,
    ) -> Vec<HookEvent> {
        let mut dropped = Vec::new();
        for notify in [false, true]
            .into_iter()
            .filter(|n| if *n { notify } else { configured })
        {
            let queue = self.waiting.entry(vip.name.to_string()).or_default();
            if queue.len() >= MAX_QUEUED_HOOKS {
                dropped.extend(queue.pop_front().map(|hook| hook.event));
            }
            queue.push_back(QueuedHook {
                event,
                vip: vip.clone(),
                notify,
            });
        }
        dropped
    }

    /// The next hook of `service` to start, unless one of its hooks runs
    /// now; from here on it counts as running, until `finished`.
    pub(super) fn next(&mut self, service: &str) -> Option<QueuedHook> {
        if self.running.iter().any(|s| s == service) {
            return None;
        }
        let Some(hook) = self.waiting.get_mut(service).and_then(VecDeque::pop_front) else {
            self.waiting.remove(service);
            return None;
        };
        self.running.push(service.to_string());
        Some(hook)
    }

    /// The running hook of `service` ended, or could not start.
    pub(super) fn finished(&mut self, service: &str) {
        self.running.retain(|s| s != service);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn vip(name: &str) -> Vip {
        Vip {
            name: Arc::from(name),
            ip: "192.0.2.200".parse().unwrap(),
            interface: Arc::from("eth0"),
            route: true,
            mac: None,
            export: None,
            answer: true,
        }
    }

    fn events(queue: &mut HookQueue, service: &str) -> Vec<(HookEvent, bool)> {
        let mut seen = Vec::new();
        while let Some(hook) = queue.next(service) {
            seen.push((hook.event, hook.notify));
            queue.finished(service);
        }
        seen
    }

    #[test]
    fn a_services_hooks_run_one_at_a_time_in_order() {
        let mut queue = HookQueue::default();
        let web = vip("web");
        queue.push(HookEvent::Acquire, &web, true, false);
        queue.push(HookEvent::Release, &web, true, false);
        let first = queue.next("web").expect("the acquire hook");
        assert_eq!(first.event, HookEvent::Acquire);
        assert!(queue.next("web").is_none(), "one runs: the next waits");
        queue.finished("web");
        assert_eq!(events(&mut queue, "web"), [(HookEvent::Release, false)]);
        assert!(queue.waiting.is_empty() && queue.running.is_empty());
    }

    #[test]
    fn services_do_not_wait_for_each_other() {
        let mut queue = HookQueue::default();
        queue.push(HookEvent::Acquire, &vip("web"), true, false);
        queue.push(HookEvent::Acquire, &vip("dns"), true, false);
        assert!(queue.next("web").is_some());
        assert!(
            queue.next("dns").is_some(),
            "web's running hook holds up nothing else"
        );
    }

    #[test]
    fn the_configured_hook_runs_before_notify_and_only_what_is_set() {
        let mut queue = HookQueue::default();
        let web = vip("web");
        queue.push(HookEvent::Acquire, &web, true, true);
        queue.push(HookEvent::Release, &web, false, true);
        queue.push(HookEvent::Release, &web, false, false);
        assert_eq!(
            events(&mut queue, "web"),
            [
                (HookEvent::Acquire, false),
                (HookEvent::Acquire, true),
                (HookEvent::Release, true)
            ]
        );
    }

    #[test]
    fn a_queue_that_falls_behind_drops_its_oldest() {
        let mut queue = HookQueue::default();
        let web = vip("web");
        let running = {
            queue.push(HookEvent::Acquire, &web, true, false);
            queue.next("web").expect("runs")
        };
        assert_eq!(running.event, HookEvent::Acquire);
        let mut dropped = Vec::new();
        dropped.extend(queue.push(HookEvent::Release, &web, true, false));
        for _ in 0..MAX_QUEUED_HOOKS {
            dropped.extend(queue.push(HookEvent::Acquire, &web, true, false));
        }
        assert_eq!(dropped, [HookEvent::Release], "the oldest waiting one");
        queue.finished("web");
        let left = events(&mut queue, "web");
        assert_eq!(left.len(), MAX_QUEUED_HOOKS);
        assert!(left.iter().all(|(event, _)| *event == HookEvent::Acquire));
    }
}
