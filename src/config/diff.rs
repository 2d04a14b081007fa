//! What a reload changes: which settings apply at once and which wait for a
//! restart. Every field of `Config` and `Heartbeat` is named below, so a
//! new field does not compile until it is sorted into one or the other.

use super::{Config, Heartbeat};

/// The difference between the running configuration and a reloaded one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diff {
    /// Top-level keys that changed and take effect only at a restart.
    pub restart: Vec<&'static str>,
    /// The services, or the global `bind` or `export` that shape them, changed.
    pub services: bool,
    /// What the actions thread runs by changed (`bind`, `hooks`).
    pub actions: bool,
}

/// Compares the running configuration `old` with a reloaded `new`.
/// `priority`, `preempt`, `heartbeat.key_file` (and `heartbeat.insecure`)
/// and `linger_s` apply at once
/// whether they changed or not.
pub fn diff(old: &Config, new: &Config) -> Diff {
    let Config {
        node,
        cluster,
        priority: _,
        mode,
        preempt: _,
        heartbeat,
        announce,
        control,
        state_file,
        bind,
        mac,
        export,
        linger_s: _,
        hooks,
        user,
        nice,
        services,
    } = new;
    let Heartbeat {
        port,
        bind: heartbeat_bind,
        interval_ms,
        lease_ms,
        peers,
        multicast,
        // Both only decide whether the file is accepted, and the key in force.
        key_file: _,
        insecure: _,
    } = heartbeat;
    let was = &old.heartbeat;
    let heartbeat_changed = *port != was.port
        || *heartbeat_bind != was.bind
        || *interval_ms != was.interval_ms
        || *lease_ms != was.lease_ms
        || *peers != was.peers
        || *multicast != was.multicast;
    let restart = [
        ("node", *node != old.node),
        ("cluster", *cluster != old.cluster),
        ("mode", *mode != old.mode),
        ("heartbeat", heartbeat_changed),
        ("announce", *announce != old.announce),
        ("control", *control != old.control),
        ("state_file", *state_file != old.state_file),
        ("user", *user != old.user),
        ("nice", *nice != old.nice),
        ("mac", *mac != old.mac),
    ]
    .into_iter()
    .filter_map(|(key, changed)| changed.then_some(key))
    .collect();
    Diff {
        restart,
        services: *services != old.services || *bind != old.bind || *export != old.export,
        actions: *bind != old.bind || *hooks != old.hooks,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse;

    const BASE: &str = r#"{
      "node": "n1",
      "heartbeat": {"peers": ["192.0.2.12"], "insecure": true},
      "state_file": null,
      "services": [{"name": "web", "ip": "192.0.2.200", "interface": "eth0"}]
    }"#;

    fn config(text: &str) -> Config {
        parse(text, None).expect("a valid configuration")
    }

    /// BASE with `from` replaced by `to`.
    fn changed(from: &str, to: &str) -> Config {
        assert!(BASE.contains(from), "{from} is not in BASE");
        config(&BASE.replacen(from, to, 1))
    }

    #[test]
    fn the_same_file_changes_nothing() {
        let diff = diff(&config(BASE), &config(BASE));
        assert_eq!(
            diff,
            Diff {
                restart: vec![],
                services: false,
                actions: false
            }
        );
    }

    #[test]
    fn each_setting_that_waits_for_a_restart_is_named() {
        let old = config(BASE);
        let cases = [
            (r#""node": "n1""#, r#""node": "n9""#, "node"),
            (
                r#""node": "n1""#,
                r#""node": "n1", "cluster": "other""#,
                "cluster",
            ),
            (
                r#""node": "n1""#,
                r#""node": "n1", "mode": "spread""#,
                "mode",
            ),
            (r#"["192.0.2.12"]"#, r#"["192.0.2.13"]"#, "heartbeat"),
            (r#""peers""#, r#""interval_ms": 500, "peers""#, "heartbeat"),
            (r#""peers""#, r#""port": 7000, "peers""#, "heartbeat"),
            (
                r#""node": "n1""#,
                r#""node": "n1", "announce": {"count": 2}"#,
                "announce",
            ),
            (
                r#""node": "n1""#,
                r#""node": "n1", "control": {"idle_s": 5}"#,
                "control",
            ),
            (
                r#""state_file": null"#,
                r#""state_file": "/tmp/x.json""#,
                "state_file",
            ),
            (
                r#""node": "n1""#,
                r#""node": "n1", "user": "nobody""#,
                "user",
            ),
            (r#""node": "n1""#, r#""node": "n1", "nice": 0"#, "nice"),
        ];
        for (from, to, key) in cases {
            let diff = diff(&old, &changed(from, to));
            assert_eq!(diff.restart, vec![key], "{to}");
            assert!(!diff.services && !diff.actions, "{to}");
        }
    }

    #[test]
    fn settings_that_apply_at_once_need_no_restart() {
        let old = config(BASE);
        for (from, to) in [
            (r#""node": "n1""#, r#""node": "n1", "priority": 7"#),
            (r#""node": "n1""#, r#""node": "n1", "preempt": true"#),
            (r#""node": "n1""#, r#""node": "n1", "linger_s": 5"#),
            (r#""peers""#, r#""key_file": "/etc/l2vip/key", "peers""#),
        ] {
            let diff = diff(&old, &changed(from, to));
            assert_eq!(diff.restart, Vec::<&str>::new(), "{to}");
            assert!(!diff.services && !diff.actions, "{to}");
        }
    }

    #[test]
    fn services_bind_and_hooks_are_told_apart() {
        let old = config(BASE);
        let more = changed(
            r#""interface": "eth0"}"#,
            r#""interface": "eth0"}, {"name": "db", "ip": "192.0.2.201", "interface": "eth0"}"#,
        );
        let diff_more = diff(&old, &more);
        assert!(diff_more.services && !diff_more.actions);
        let bind = diff(
            &old,
            &changed(r#""node": "n1""#, r#""node": "n1", "bind": "none""#),
        );
        assert!(bind.services && bind.actions);
        // A global export applies at once, through the services it shapes.
        let export = diff(
            &old,
            &changed(
                r#""node": "n1""#,
                r#""node": "n1", "export": {"table": 100}"#,
            ),
        );
        assert!(export.services && export.restart.is_empty());
        let hooks = diff(
            &old,
            &changed(
                r#""node": "n1""#,
                r#""node": "n1", "hooks": {"on_acquire": "true"}"#,
            ),
        );
        assert!(!hooks.services && hooks.actions);
        assert!(hooks.restart.is_empty());
    }
}
