//! The lab's preflight: a lab test on a machine without a tool it runs fails
//! with one line naming the tool and its Debian package (`tests/need`), not
//! with an assertion about what the tool failed to print.

#[path = "lab/mod.rs"]
mod lab;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use lab::Lab;

/// An ordinary lab test: the client asks node 1's kernel for its address with
/// arping. Runs only as the child of the tests below, under their PATH (it is
/// ignored in an ordinary run, so it is never counted as passed there).
#[test]
#[ignore = "the tests below run it as their child, under a PATH of their own"]
fn child_arping_in_the_lab() {
    if !lab::available("child_arping_in_the_lab") {
        return;
    }
    let lab = Lab::up(1, false);
    assert_eq!(
        lab::arp_answerers(&lab, "192.0.2.11"),
        [lab::node_mac(1)].into_iter().collect()
    );
}

/// A directory of links to every program on this PATH except `arping`,
/// plus `fake_arping` as `arping` when given.
fn path_without_arping(fake_arping: Option<&str>) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "l2vip-path-{}-{}",
        std::process::id(),
        fake_arping.is_some()
    ));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("PATH directory");
    let path = std::env::var_os("PATH").expect("PATH is set");
    for entry in std::env::split_paths(&path).filter_map(|p| fs::read_dir(p).ok()) {
        for program in entry.flatten() {
            let name = program.file_name();
            let link = dir.join(&name);
            if name == "arping" || link.exists() {
                continue;
            }
            let _ = std::os::unix::fs::symlink(program.path(), link);
        }
    }
    if let Some(script) = fake_arping {
        let fake = dir.join("arping");
        fs::write(&fake, script).expect("fake arping");
        fs::set_permissions(&fake, fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    dir
}

/// Runs `child_arping_in_the_lab` in a new process with `path` as PATH and
/// returns its output.
fn run_child(path: &Path) -> (bool, String) {
    let out = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "child_arping_in_the_lab",
            "--ignored",
            "--test-threads=1",
        ])
        .env("L2VIP_REQUIRE_LAB", "1")
        .env("PATH", path)
        .output()
        .expect("run the child test");
    let _ = fs::remove_dir_all(path);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn a_missing_arping_fails_with_one_line_naming_its_package() {
    if !lab::available("a_missing_arping_fails_with_one_line_naming_its_package") {
        return;
    }
    let (passed, text) = run_child(&path_without_arping(None));
    assert!(!passed, "the child passed without arping:\n{text}");
    assert!(
        text.contains("need: arping is missing: install the Debian package iputils-arping"),
        "no line names arping and its package:\n{text}"
    );
    assert!(
        !text.contains("assertion"),
        "an assertion failed instead:\n{text}"
    );
}

#[test]
fn another_arping_fails_with_one_line_naming_iputils() {
    if !lab::available("another_arping_fails_with_one_line_naming_iputils") {
        return;
    }
    // What Thomas Habets' arping (Debian's package "arping") says to -V.
    let habets = "#!/bin/sh\necho 'ARPing 2.23, by Thomas Habets <thomas@habets.se>'\n";
    let (passed, text) = run_child(&path_without_arping(Some(habets)));
    assert!(!passed, "the child passed with another arping:\n{text}");
    assert!(
        text.contains("is not iputils' arping") && text.contains("iputils-arping"),
        "no line says which arping is wanted:\n{text}"
    );
    assert!(
        !text.contains("assertion"),
        "an assertion failed instead:\n{text}"
    );
}
