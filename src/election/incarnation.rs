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
use std::io::{self, Read};
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

/// Where the start counter of a node with `state_file` lives: beside it.
pub fn counter_path(state_file: &str) -> PathBuf {
    PathBuf::from(format!("{state_file}.incarnation"))
}

/// Reads the start counter; `None` when there is none (or it is unreadable).
fn read_counter(path: &Path) -> Option<u64> {
    let text = crate::files::read_regular(path, 64).ok()?;
    text.trim().parse().ok()
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

/// This start's incarnation: the counter at `path` (if any) is read,
/// advanced and written back before the first heartbeat; a counter that
/// cannot be kept leaves the clock alone to order starts, with a warning.
pub fn for_this_start(path: Option<&Path>) -> (u64, Option<io::Error>) {
    let kept = path.and_then(read_counter);
    let start = next_start(kept, clock_seconds());
    let error = path.and_then(|path| {
        crate::files::write_atomically(path, format!("{start}\n").as_bytes()).err()
    });
    (incarnation(start, random16()), error)
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
    fn the_counter_is_kept_across_starts() {
        let dir = std::env::temp_dir().join(format!("l2vip-incarnation-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let path = counter_path(&dir.join("runtime.json").display().to_string());
        // A counter far ahead of the clock (written by a later clock).
        fs::write(&path, format!("{}\n", u64::MAX >> 17)).unwrap();
        let (first, error) = for_this_start(Some(&path));
        assert!(error.is_none(), "{error:?}");
        let (second, _) = for_this_start(Some(&path));
        assert_eq!(first >> 16, (u64::MAX >> 17) + 1);
        assert_eq!(second >> 16, (first >> 16) + 1);
        let _ = fs::remove_dir_all(&dir);
    }
}
