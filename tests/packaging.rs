//! The packages' files against the rules their build systems check:
//! Buildroot's `check-package` for SysV init scripts
//! (utils/checkpackagelib/lib_sysv.py with the generic checks it imports)
//! and the conventions of its start-script template; the feed form of the
//! OpenWrt Makefile. Each rule is also run against a broken script, so a
//! rule that cannot fail fails here.

use std::path::Path;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// What check-package reports for a SysV init script named `name` with
/// `text`, in its words; `executable` is the file's mode bit in the
/// package directory.
fn check_sysv(name: &str, text: &str, executable: bool) -> Vec<String> {
    let mut problems = Vec::new();
    // NotExecutable: the .mk installs it with $(INSTALL) -D -m 0755.
    if executable {
        problems.push(format!(
            "{name}:0: This file does not need to be executable"
        ));
    }
    // NewlineAtEof, EmptyLastLine, ConsecutiveEmptyLines, TrailingSpace.
    if !text.ends_with('\n') {
        problems.push(format!("{name}: missing newline at end of file"));
    }
    let lines: Vec<&str> = text.lines().collect();
    if lines.last().is_some_and(|l| l.trim().is_empty()) {
        problems.push(format!(
            "{name}:{}: remove empty line at the end",
            lines.len()
        ));
    }
    let mut daemon: Option<String> = None;
    for (i, line) in lines.iter().enumerate() {
        let n = i + 1;
        if i > 0 && line.trim().is_empty() && lines[i - 1].trim().is_empty() {
            problems.push(format!("{name}:{n}: consecutive empty lines"));
        }
        if line.trim_end() != *line {
            problems.push(format!("{name}:{n}: line contains trailing whitespace"));
        }
        // Indent: `^[\t]* ` on the line without its trailing space.
        let trimmed = line.trim_end();
        if trimmed.trim_start_matches('\t').starts_with(' ') {
            problems.push(format!("{name}:{n}: should be indented with tabs"));
        }
        // Variables: DAEMON once, without a path; PIDFILE in /var/run
        // named after it.
        let value = |prefix: &str| {
            trimmed
                .strip_prefix(prefix)
                .map(|v| v.trim_matches(|c| c == '"' || c == '\'').to_string())
        };
        if let Some(value) = value("DAEMON=") {
            if daemon.is_some() {
                problems.push(format!("{name}:{n}: DAEMON variable redefined"));
            }
            if value.contains('/') {
                problems.push(format!("{name}:{n}: Do not include path in DAEMON"));
            }
            daemon = Some(value.rsplit('/').next().unwrap_or_default().to_string());
        } else if let Some(value) = value("PIDFILE=") {
            if value != "/var/run/$DAEMON.pid" && value != "/var/run/${DAEMON}.pid" {
                problems.push(format!("{name}:{n}: Incorrect PIDFILE value"));
            }
        }
    }
    match daemon {
        None => problems.push(format!("{name}:0: DAEMON variable not defined")),
        Some(daemon) => {
            // The file is S<digit><digit><daemon>.
            let rest = name.strip_prefix('S').unwrap_or_default();
            let digits = rest.chars().take(2).filter(char::is_ascii_digit).count();
            if digits != 2 || rest.get(2..) != Some(daemon.as_str()) {
                problems.push(format!(
                    "{name}:0: filename should be S<number><number><daemon name>"
                ));
            }
        }
    }
    problems
}

/// The start-script template's conventions that a reviewer checks beyond
/// the script above: <DAEMON>_ARGS, the binary given by path with --exec on
/// every start-stop-daemon call (so another process with the PID file's
/// number is never signalled), stop waiting with --stop --test, and the
/// four actions.
fn check_template(name: &str, text: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let calls: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#') && l.contains("start-stop-daemon"))
        .collect();
    if calls.is_empty() {
        problems.push(format!("{name}: no start-stop-daemon"));
    }
    for call in &calls {
        if !call.contains("-x \"/usr/sbin/$DAEMON\"") {
            problems.push(format!("{name}: start-stop-daemon without -x: {call}"));
        }
        if !call.contains("-p \"$PIDFILE\"") {
            problems.push(format!("{name}: start-stop-daemon without -p: {call}"));
        }
    }
    if !calls.iter().any(|c| c.contains(" -K -t ")) {
        problems.push(format!("{name}: stop does not wait with --stop --test"));
    }
    let daemon_upper = name.get(3..).unwrap_or_default().to_uppercase();
    for line in text.lines() {
        if let Some((var, _)) = line.split_once("_ARGS=") {
            if var != daemon_upper {
                problems.push(format!("{name}: {var}_ARGS should be {daemon_upper}_ARGS"));
            }
        }
    }
    if !text.contains(&format!("{daemon_upper}_ARGS=")) {
        problems.push(format!("{name}: no {daemon_upper}_ARGS"));
    }
    for action in ["start", "stop", "restart", "reload"] {
        if !text.contains(&format!("{action}()")) && !text.contains(&format!("{action}|")) {
            problems.push(format!("{name}: no {action}"));
        }
    }
    problems
}

#[test]
fn the_buildroot_init_script_passes_check_package() {
    use std::os::unix::fs::PermissionsExt;
    let path = Path::new(ROOT).join("cross/buildroot/package/l2vip/S50l2vip");
    let text = std::fs::read_to_string(&path).expect("S50l2vip");
    let mode = std::fs::metadata(&path).expect("mode").permissions().mode();
    let mut problems = check_sysv("S50l2vip", &text, mode & 0o111 != 0);
    problems.extend(check_template("S50l2vip", &text));
    assert_eq!(problems, Vec::<String>::new());
    // The .mk installs it executable, from the package directory.
    let mk =
        std::fs::read_to_string(Path::new(ROOT).join("cross/buildroot/package/l2vip/l2vip.mk"))
            .expect("l2vip.mk");
    assert!(
        mk.contains("$(INSTALL) -D -m 0755 $(L2VIP_PKGDIR)/S50l2vip"),
        "{mk}"
    );
}

#[test]
fn check_package_rules_catch_what_they_are_for() {
    let good = "#!/bin/sh\n\nDAEMON=\"l2vip\"\nPIDFILE=\"/var/run/$DAEMON.pid\"\n";
    assert_eq!(check_sysv("S50l2vip", good, false), Vec::<String>::new());
    let count = |name: &str, text: &str, executable: bool| check_sysv(name, text, executable).len();
    assert_eq!(count("S50l2vip", good, true), 1);
    assert_eq!(
        count(
            "S50l2vip",
            &good.replace("\"l2vip\"", "\"/usr/sbin/l2vip\""),
            false
        ),
        1
    );
    assert_eq!(
        count("S50l2vip", &good.replace("$DAEMON.pid", "l2vip.pid"), false),
        1
    );
    assert_eq!(
        count("S50l2vip", &format!("{good}DAEMON=\"l2vip\"\n"), false),
        1
    );
    assert_eq!(
        count("S50l2vip", &good.replace("DAEMON=\"l2vip\"\n", ""), false),
        1
    );
    assert_eq!(count("S5l2vip", good, false), 1);
    assert_eq!(count("S50other", good, false), 1);
    assert_eq!(
        count(
            "S50l2vip",
            &format!("{good}start() {{\n    true\n}}\n"),
            false
        ),
        1
    );
    assert_eq!(count("S50l2vip", &format!("{good}x=1 \n"), false), 1);
    assert_eq!(count("S50l2vip", &format!("{good}\n\nx=1\n"), false), 1);
    assert_eq!(count("S50l2vip", &format!("{good}\n"), false), 1);
    assert_eq!(count("S50l2vip", good.trim_end(), false), 1);

    let template = "L2VIP_ARGS=\"\"\nstart() {\n\tstart-stop-daemon -S -q -p \"$PIDFILE\" -x \"/usr/sbin/$DAEMON\"\n}\n\
        stop() {\n\tstart-stop-daemon -K -q -p \"$PIDFILE\" -x \"/usr/sbin/$DAEMON\"\n\
        \twhile start-stop-daemon -K -t -q -p \"$PIDFILE\" -x \"/usr/sbin/$DAEMON\"; do sleep 0.1; done\n}\n\
        restart() {\n\tstop\n}\nreload() {\n\tstop\n}\n";
    assert_eq!(check_template("S50l2vip", template), Vec::<String>::new());
    let broken = |from: &str, to: &str| check_template("S50l2vip", &template.replacen(from, to, 1));
    assert_eq!(broken(" -x \"/usr/sbin/$DAEMON\"\n}", "\n}").len(), 1);
    assert_eq!(broken(" -K -t ", " -K ").len(), 1);
    assert_eq!(broken("L2VIP_ARGS", "DAEMON_ARGS").len(), 2);
    assert_eq!(broken("reload()", "other()").len(), 1);
}

#[test]
fn the_systemd_unit_matches_the_privilege_drop() {
    let unit = std::fs::read_to_string(
        Path::new(ROOT).join("cross/buildroot/package/l2vip/l2vip.service"),
    )
    .expect("unit");
    let value = |key: &str| {
        unit.lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")))
            .unwrap_or_default()
            .to_string()
    };
    // The two the daemon keeps, and CAP_SYS_NICE until its threads run.
    let caps = "CAP_NET_RAW CAP_NET_ADMIN CAP_SYS_NICE";
    assert_eq!(value("AmbientCapabilities"), caps);
    assert_eq!(value("CapabilityBoundingSet"), caps);
    assert_eq!(value("User"), "l2vip");
    assert_eq!(value("ExecReload"), "/bin/kill -HUP $MAINPID");
    assert_eq!(value("RestartPreventExitStatus"), "2");
    assert_eq!(value("RuntimeDirectory"), "l2vip");
    assert_eq!(
        value("ExecStart"),
        "/usr/sbin/l2vip daemon -c /etc/l2vip/config.json"
    );
    // The default control socket lives in that directory.
    assert_eq!(l2vip::config::DEFAULT_SOCKET, "/var/run/l2vip/control.sock");
}

#[test]
fn the_openwrt_makefile_has_the_feed_form() {
    let dir = Path::new(ROOT).join("cross/openwrt/l2vip");
    let makefile = std::fs::read_to_string(dir.join("Makefile")).expect("Makefile");
    for needed in [
        "include ../../lang/rust/rust-package.mk",
        "PKG_SOURCE_PROTO:=git",
        "PKG_SOURCE_URL",
        "PKG_SOURCE_VERSION",
        "PKG_MIRROR_HASH",
        "PKG_MAINTAINER",
        "PKG_LICENSE:=Apache-2.0",
        "PKG_LICENSE_FILES:=LICENSE",
        "URL:=",
        "$(eval $(call RustBinPackage,l2vip))",
        "$(eval $(call BuildPackage,l2vip))",
        "$(eval $(call BuildPackage,l2vip-conntrackd))",
        "DEPENDS:=+l2vip +conntrackd",
        "$(PKG_BUILD_DIR)/rootfs/usr/libexec/l2vip/conntrackd",
    ] {
        assert!(makefile.contains(needed), "Makefile lacks {needed}");
    }
    // Local sources go through USE_SOURCE_DIR, not a Build/Prepare of its own.
    assert!(!makefile.contains("Build/Prepare"));
    // Every file it installs from ./files/ is there, and every file there
    // is installed.
    let installed: Vec<&str> = makefile
        .split_whitespace()
        .filter_map(|word| word.strip_prefix("./files/"))
        .collect();
    let mut present: Vec<String> = std::fs::read_dir(dir.join("files"))
        .expect("files/")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    present.sort();
    let mut wanted: Vec<String> = installed.iter().map(|s| s.to_string()).collect();
    wanted.sort();
    assert_eq!(wanted, present);
    // The ACL grants exactly the rpcd plugin's methods.
    let acl: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("files/l2vip.acl.json")).expect("acl"),
    )
    .expect("the ACL is JSON");
    let mut granted: Vec<&str> = ["read", "write"]
        .iter()
        .flat_map(|access| {
            acl["l2vip"][access]["ubus"]["l2vip"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|m| m.as_str())
        })
        .collect();
    granted.sort();
    let list: serde_json::Value =
        serde_json::from_str(l2vip::control::rpcd::LIST).expect("LIST is JSON");
    let mut methods: Vec<&str> = list
        .as_object()
        .map(|m| m.keys().map(String::as_str).collect())
        .unwrap_or_default();
    methods.sort();
    assert_eq!(granted, methods);
}

/// Runs the OpenWrt service in `case` (tests/openwrt/init.sh, with procd,
/// rc.common and UCI recorded) and returns what it did, line by line.
fn openwrt_service(case: &str) -> Vec<String> {
    let out = std::process::Command::new("sh")
        .arg(Path::new(ROOT).join("tests/openwrt/init.sh"))
        .arg(case)
        .output()
        .expect("run tests/openwrt/init.sh");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn the_openwrt_service_starts_one_instance_when_any_l2vip_section_enables_it() {
    let lines = openwrt_service("start");
    let has = |line: &str| lines.iter().any(|l| l == line);
    assert!(
        has("procd_set_param command l2vip daemon -c /etc/config/l2vip --notify /usr/libexec/l2vip/hotplug"),
        "{lines:#?}"
    );
    // Each interface once, though two services share br-lan.
    let netdevs: Vec<&String> = lines.iter().filter(|l| l.contains("netdev")).collect();
    assert_eq!(
        netdevs,
        [
            "procd_append_param netdev br-lan",
            "procd_append_param netdev eth1"
        ]
    );
    assert!(has("procd_set_param respawn") && has("procd_set_param term_timeout 5"));
    // procd would send HUP for every change; reload_service decides instead.
    assert!(
        !lines.iter().any(|l| l.contains("reload_signal")),
        "{lines:#?}"
    );
    assert_eq!(lines.last().map(String::as_str), Some("status 0"));

    let lines = openwrt_service("disabled");
    assert!(!lines.iter().any(|l| l.starts_with("procd_open_instance")));
    assert!(
        lines.iter().any(|l| l.contains("l2vip is disabled")),
        "{lines:#?}"
    );
    let lines = openwrt_service("invalid");
    assert!(!lines.iter().any(|l| l.starts_with("procd_open_instance")));
    assert!(lines
        .iter()
        .any(|l| l.contains("is invalid (service l2vip validate)")));
    assert_eq!(lines.last().map(String::as_str), Some("status 1"));
    let lines = openwrt_service("triggers");
    assert!(lines.iter().any(|l| l == "procd_add_reload_trigger l2vip"));
    assert!(lines
        .iter()
        .any(|l| l == "procd_add_validation validate_l2vip_section"));
}

#[test]
fn an_openwrt_reload_restarts_only_when_the_daemon_says_a_change_needs_it() {
    let did = |case: &str| -> Vec<String> {
        openwrt_service(case)
            .into_iter()
            .filter(|l| !l.starts_with("config_load") && !l.starts_with("stderr"))
            .collect()
    };
    // Applied at once: nothing else happens.
    assert_eq!(did("reload-applied"), ["l2vip reload --json", "status 0"]);
    // node and heartbeat changed: the instance restarts.
    assert_eq!(
        did("reload-restart"),
        ["l2vip reload --json", "restart", "status 0"]
    );
    let lines = openwrt_service("reload-restart");
    assert!(lines.contains(&"stderr: l2vip: restarting to apply: node heartbeat".to_string()));
    // A file the daemon refuses: it keeps running as it is.
    assert_eq!(did("reload-refused"), ["l2vip reload --json", "status 1"]);
    // Not running (it was disabled, or crashed past procd's respawn): start.
    assert_eq!(
        did("reload-not-running"),
        ["l2vip reload --json", "start", "status 0"]
    );
    // Disabled since: stop.
    assert_eq!(did("reload-disabled"), ["stop", "status 0"]);
}

/// The Debian package as `cross/debian/build` makes it (from the test's
/// binary, stripped): the daemon, the systemd unit, the configuration as a
/// conffile, the man page, its library dependencies, maintainer scripts,
/// and nothing lintian calls an error or a warning.
#[test]
fn the_debian_package_holds_what_users_install_and_lintian_passes_it() {
    let run = |program: &str, args: &[&str]| {
        let out = std::process::Command::new(program)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("{program}: {e} (tests/need test installs it)"));
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let errors = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(out.status.success(), "{program} {args:?}: {text}\n{errors}");
        text
    };
    let dir = std::env::temp_dir().join(format!("l2vip-deb-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("work directory");
    let binary = dir.join("l2vip").display().to_string();
    run("strip", &["-o", &binary, env!("CARGO_BIN_EXE_l2vip")]);
    let out = dir.join("out").display().to_string();
    let built = run(
        &format!("{ROOT}/cross/debian/build"),
        &["--binary", &binary, "--out", &out],
    );
    let deb = built.trim();
    let version = env!("CARGO_PKG_VERSION");
    assert!(
        deb.contains(&format!("/l2vip_{version}_")) && deb.ends_with(".deb"),
        "{deb}"
    );

    let contents = run("dpkg-deb", &["--contents", deb]);
    for path in [
        "./usr/sbin/l2vip",
        "./lib/systemd/system/l2vip.service",
        "./etc/l2vip/config.json",
        "./usr/share/man/man8/l2vip.8.gz",
        "./usr/share/doc/l2vip/copyright",
        "./usr/share/doc/l2vip/changelog.gz",
        "./usr/share/doc/l2vip/configuration.md.gz",
        "./usr/libexec/l2vip/conntrackd",
    ] {
        assert!(
            contents.lines().any(|l| l.ends_with(path)),
            "{path} missing:\n{contents}"
        );
    }
    let field = |name: &str| run("dpkg-deb", &["--field", deb, name]).trim().to_string();
    assert_eq!(field("Package"), "l2vip");
    assert_eq!(field("Version"), version);
    assert!(
        field("Depends").contains("libc6 (>="),
        "{}",
        field("Depends")
    );
    assert_eq!(field("Suggests"), "conntrackd");
    let control = dir.join("control");
    run(
        "dpkg-deb",
        &["--control", deb, &control.display().to_string()],
    );
    let conffiles = std::fs::read_to_string(control.join("conffiles")).unwrap_or_default();
    assert_eq!(conffiles, "/etc/l2vip/config.json\n");
    for script in ["postinst", "prerm", "postrm"] {
        assert!(control.join(script).exists(), "{script}");
    }
    // The conffile as shipped: commented, and read by the binary beside it.
    let unpacked = dir.join("unpacked");
    run("dpkg-deb", &["-x", deb, &unpacked.display().to_string()]);
    let conffile = unpacked.join("etc/l2vip/config.json");
    let text = std::fs::read_to_string(&conffile).unwrap_or_default();
    assert!(
        text.lines()
            .filter(|l| l.trim_start().starts_with('#'))
            .count()
            >= 10,
        "{text}"
    );
    run(
        &unpacked.join("usr/sbin/l2vip").display().to_string(),
        &[
            "check-config",
            "--offline",
            "-c",
            &conffile.display().to_string(),
        ],
    );
    run("lintian", &["--fail-on", "error,warning", deb]);
    let _ = std::fs::remove_dir_all(&dir);
}
