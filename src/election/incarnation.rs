//! Incarnations: one per process start, ordered, so a peer can tell a
//! restart (a later incarnation) from a replay of an earlier run (an older
//! one), which must never make it stop hearing the live process.
//!
//! The order comes from a start counter kept in a file across restarts and
//! from the wall clock, whichever is later: the counter keeps the order on
//! boards that boot at 1970 until NTP answers, the clock keeps it when the
//! file is lost (a fresh image, a read-only or volatile /etc). The low 16
//! bits are random, so two starts in one second still differ.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

/// The start counter after `kept` (the file's, if any) at wall-clock
/// second `clock`: later than both.
pub fn next_start(kept: Option<u64>, clock: u64) -> u64 {
    // 48 bits: the incarnation keeps 16 for the random part.
    let start = kept.map_or(0, |kept| kept.saturating_add(1)).max(clock);
    start.min((1 << 48) - 1)
}

/// The incarnation of start `start` with `random` low bits.
pub fn incarnation(start: u64, random: u16) -> u64 {
    (start << 16) | u64::from(random)
}

/// Where the start counter lives: beside the state file; with none,
/// beside the control socket (the runtime directory, which outlives a
/// restart of the daemon if not a reboot).
pub fn counter_path(state_file: Option<&str>, socket: &str) -> PathBuf {
    match state_file {
        Some(state_file) => PathBuf::from(format!("{state_file}.incarnation")),
        None => Path::new(socket).with_file_name("l2vip.incarnation"),
    }
}

/// No clock reads later than this (the start of the year 2400): a counter
/// past it was neither written by a clock nor reached by restarts, but is
/// corrupt (or from one boot with a wild clock). Kept, it would saturate
/// the 48 bits and leave the order of every later start to chance.
pub const LATEST_PLAUSIBLE: u64 = 13_569_465_600;

/// The start counter at `path`: `Ok(None)` when there is none or it is
/// unreadable, `Err` with a warning when it was implausible and has been
/// moved aside (to `PATH.corrupt`), so the clock orders this start.
fn read_counter(path: &Path) -> Result<Option<u64>, String> {
    let Ok(text) = crate::files::read_regular(path, 64) else {
        return Ok(None);
    };
    match text.trim().parse::<u64>() {
        Ok(counter) if counter <= LATEST_PLAUSIBLE => Ok(Some(counter)),
        Ok(counter) => {
            let aside = PathBuf::from(format!("{}.corrupt", path.display()));
            let moved = match fs::rename(path, &aside) {
                Ok(()) => format!("moved aside to {}", aside.display()),
                Err(e) => format!("could not move it aside: {e}"),
            };
            Err(format!(
                "start counter {} holds {counter}, past any plausible clock ({LATEST_PLAUSIBLE}): \
                 {moved}; this start is ordered by the clock",
                path.display()
            ))
        }
        Err(_) => Ok(None),
    }
}

fn random16() -> u16 {
    let mut bytes = [0u8; 2];
    let from_kernel = fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
    if from_kernel.is_ok() {
        return u16::from_ne_bytes(bytes);
    }
    // No /dev/urandom: the PID still differs between two quick starts.
    std::process::id() as u16
}

fn clock_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// This start's incarnation: the counter at `path` is read, advanced and
/// written back before the first heartbeat. Returns the warnings to log: a
/// counter that cannot be kept leaves the clock alone to order starts; an
/// implausible one is moved aside.
pub fn for_this_start(path: &Path) -> (u64, Vec<String>) {
    let mut warnings = Vec::new();
    let kept = read_counter(path).unwrap_or_else(|warning| {
        warnings.push(warning);
        None
    });
    let start = next_start(kept, clock_seconds());
    let written = match path.parent() {
        Some(dir) => fs::create_dir_all(dir),
        None => Ok(()),
    }
    .and_then(|()| crate::files::write_atomically(path, format!("{start}\n").as_bytes()));
    if let Err(e) = written {
        warnings.push(format!(
            "CANNOT KEEP THE START COUNTER in {}: {e}; starts are ordered by the clock \
             alone, and after a restart with the clock behind, peers do not hear this \
             node for a lease",
            path.display()
        ));
    }
    (incarnation(start, random16()), warnings)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_start_is_later_than_the_last_whatever_the_clock_says() {
        // A board at 1970 after a run at 2026: the counter orders it.
        let last = 1_790_000_000;
        assert_eq!(next_start(Some(last), 12), last + 1);
        // The file lost: the clock orders it.
        assert_eq!(next_start(None, 1_790_000_100), 1_790_000_100);
        // Both: the later.
        assert_eq!(next_start(Some(5), 1_790_000_100), 1_790_000_100);
        assert_eq!(next_start(Some(u64::MAX), 0), (1 << 48) - 1);
    }

    #[test]
    fn a_later_start_is_a_larger_incarnation_whatever_its_random_bits() {
        assert!(incarnation(101, 0) > incarnation(100, u16::MAX));
        assert_eq!(incarnation(1, 2), 0x1_0002);
    }

    #[test]
    fn without_a_state_file_the_counter_lives_beside_the_control_socket() {
        assert_eq!(
            counter_path(None, "/var/run/l2vip/control.sock"),
            PathBuf::from("/var/run/l2vip/l2vip.incarnation")
        );
        assert_eq!(
            counter_path(Some("/etc/l2vip/runtime.json"), "/run/l2vip/control.sock"),
            PathBuf::from("/etc/l2vip/runtime.json.incarnation")
        );
        // One that cannot be written is said loudly.
        let (_, warnings) = for_this_start(Path::new("/dev/null/l2vip.incarnation"));
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].starts_with("CANNOT KEEP THE START COUNTER in /dev/null/"));
    }

    #[test]
    fn the_counter_is_kept_across_starts() {
        let dir = std::env::temp_dir().join(format!("l2vip-incarnation-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let path = counter_path(Some(&dir.join("runtime.json").display().to_string()), "");
        // A counter far ahead of the clock (written by a later clock).
        let ahead = LATEST_PLAUSIBLE - 10;
        fs::write(&path, format!("{ahead}\n")).unwrap();
        let (first, warnings) = for_this_start(&path);
        assert!(warnings.is_empty(), "{warnings:?}");
        let (second, _) = for_this_start(&path);
        assert_eq!(first >> 16, ahead + 1);
        assert_eq!(second >> 16, (first >> 16) + 1);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_counter_past_any_plausible_clock_is_moved_aside_not_saturated() {
        let dir = std::env::temp_dir().join(format!("l2vip-corrupt-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let path = counter_path(Some(&dir.join("runtime.json").display().to_string()), "");
        for corrupt in [(1u64 << 48) - 1, u64::MAX >> 17, LATEST_PLAUSIBLE + 1] {
            fs::write(&path, format!("{corrupt}\n")).unwrap();
            let (first, warnings) = for_this_start(&path);
            assert_eq!(warnings.len(), 1, "{warnings:?}");
            assert!(warnings[0].contains("moved aside"), "{warnings:?}");
            let aside = fs::read_to_string(format!("{}.corrupt", path.display())).unwrap();
            assert_eq!(aside.trim(), corrupt.to_string());
            // Ordered by the clock, and every later start after it again.
            assert!(first >> 16 <= clock_seconds());
            let (second, warnings) = for_this_start(&path);
            assert!(warnings.is_empty(), "{warnings:?}");
            assert!(second >> 16 > first >> 16, "later starts stay ordered");
        }
        let _ = fs::remove_dir_all(&dir);
    }
}
