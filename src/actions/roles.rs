//! The node-level events: this node became primary, backup or fault.
//! Delivered one at a time, in order: each event runs the configured hook
//! (`on_primary`, `on_backup`, `on_fault`), then `--notify`'s command, and
//! the next event starts only when both have ended. Roles that come and go
//! while an event runs coalesce: only the latest is delivered next, and not
//! at all when it is the role last delivered. Pure: the thread starts the
//! processes and says when one ended.

use crate::config::Hooks;
use crate::ownership::Role;

/// The configured command of `role`'s event, if any.
pub(super) fn command(role: Role, hooks: &Hooks) -> Option<&String> {
    match role {
        Role::Primary => hooks.on_primary.as_ref(),
        Role::Backup => hooks.on_backup.as_ref(),
        Role::Fault => hooks.on_fault.as_ref(),
    }
}

/// The configuration key of `role`'s command.
pub(super) fn key(role: Role) -> &'static str {
    match role {
        Role::Primary => "on_primary",
        Role::Backup => "on_backup",
        Role::Fault => "on_fault",
    }
}

/// One process of an event: the configured hook, or `--notify`'s command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct RoleRun {
    pub(super) role: Role,
    pub(super) notify: bool,
}

/// The node's role, the last one delivered, and the run in progress.
#[derive(Debug, Default)]
pub(super) struct RoleQueue {
    now: Option<Role>,
    delivered: Option<Role>,
    running: Option<RoleRun>,
}

impl RoleQueue {
    /// The node's role is `role` now.
    pub(super) fn set(&mut self, role: Role) {
        self.now = Some(role);
    }

    /// The role delivery ends at, once it is idle.
    #[cfg(test)]
    pub(super) fn role(&self) -> Option<Role> {
        self.now
    }

    /// The next run to start, unless one runs now: the first process of
    /// the current role's event when that role is not the one last
    /// delivered. From here on the event counts as delivered, and the run
    /// as running until `finished`.
    pub(super) fn next(&mut self, hooks: &Hooks, notify: bool) -> Option<RoleRun> {
        if self.running.is_some() {
            return None;
        }
        let role = self.now?;
        if self.delivered == Some(role) {
            return None;
        }
        self.delivered = Some(role);
        let run = if command(role, hooks).is_some() {
            RoleRun {
                role,
                notify: false,
            }
        } else if notify {
            RoleRun { role, notify: true }
        } else {
            return None;
        };
        self.running = Some(run);
        Some(run)
    }

    /// The running process ended, or could not start: the event's next
    /// process (`--notify`'s after the configured hook), if any. When this
    /// returns `None`, `next` says what comes after.
    pub(super) fn finished(&mut self, notify: bool) -> Option<RoleRun> {
        let done = self.running.take()?;
        if done.notify || !notify {
            return None;
        }
        let run = RoleRun {
            role: done.role,
            notify: true,
        };
        self.running = Some(run);
        Some(run)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hooks() -> Hooks {
        Hooks {
            on_acquire: None,
            on_release: None,
            on_primary: Some("primary".into()),
            on_backup: Some("backup".into()),
            on_fault: Some("fault".into()),
            group: Vec::new(),
            timeout_ms: 5000,
        }
    }

    /// Ends the run in progress, then runs all that is due.
    fn deliver(queue: &mut RoleQueue, hooks: &Hooks, notify: bool) -> Vec<(Role, bool)> {
        let mut seen = Vec::new();
        let mut run = queue.finished(notify).or_else(|| queue.next(hooks, notify));
        while let Some(r) = run {
            seen.push((r.role, r.notify));
            run = queue.finished(notify).or_else(|| queue.next(hooks, notify));
        }
        seen
    }

    #[test]
    fn each_change_is_one_event_hook_then_notify() {
        let (mut queue, hooks) = (RoleQueue::default(), hooks());
        queue.set(Role::Backup);
        assert_eq!(
            deliver(&mut queue, &hooks, true),
            [(Role::Backup, false), (Role::Backup, true)]
        );
        queue.set(Role::Primary);
        assert_eq!(
            deliver(&mut queue, &hooks, true),
            [(Role::Primary, false), (Role::Primary, true)]
        );
        queue.set(Role::Primary);
        assert_eq!(deliver(&mut queue, &hooks, true), [], "no change, no event");
    }

    #[test]
    fn a_burst_while_an_event_runs_delivers_only_its_last_role() {
        let (mut queue, hooks) = (RoleQueue::default(), hooks());
        queue.set(Role::Backup);
        let first = queue.next(&hooks, true).expect("backup starts");
        assert_eq!(first.role, Role::Backup);
        // A link flaps, a hand-over lands: all while backup's hook runs.
        for role in [Role::Fault, Role::Backup, Role::Fault, Role::Primary] {
            queue.set(role);
            assert_eq!(queue.next(&hooks, true), None, "never two at once");
        }
        assert_eq!(
            queue.finished(true),
            Some(RoleRun {
                role: Role::Backup,
                notify: true
            }),
            "backup's event ends with --notify, whatever came since"
        );
        assert_eq!(
            deliver(&mut queue, &hooks, true),
            [(Role::Primary, false), (Role::Primary, true)]
        );
    }

    #[test]
    fn a_burst_that_ends_where_it_began_delivers_nothing() {
        let (mut queue, hooks) = (RoleQueue::default(), hooks());
        queue.set(Role::Primary);
        assert_eq!(
            queue.next(&hooks, false).map(|r| r.role),
            Some(Role::Primary)
        );
        queue.set(Role::Fault);
        queue.set(Role::Primary);
        assert_eq!(deliver(&mut queue, &hooks, false), []);
        assert_eq!(queue.role(), Some(Role::Primary));
    }

    #[test]
    fn only_what_is_configured_runs() {
        let mut hooks = hooks();
        hooks.on_backup = None;
        let mut queue = RoleQueue::default();
        queue.set(Role::Backup);
        assert_eq!(deliver(&mut queue, &hooks, true), [(Role::Backup, true)]);
        queue.set(Role::Fault);
        assert_eq!(deliver(&mut queue, &hooks, false), [(Role::Fault, false)]);
        queue.set(Role::Backup);
        assert_eq!(deliver(&mut queue, &hooks, false), [], "nothing to run");
        queue.set(Role::Fault);
        assert_eq!(
            deliver(&mut queue, &hooks, false),
            [(Role::Fault, false)],
            "backup counted as delivered: fault is a change again"
        );
    }
}
