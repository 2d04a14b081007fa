//! A thread's niceness. On Linux it belongs to the thread, not the process:
//! `setpriority(PRIO_PROCESS, 0, ..)` changes only the calling thread, and
//! threads it starts afterwards inherit the value.

use std::io;

/// The calling thread's niceness.
pub fn thread_nice() -> io::Result<i32> {
    // getpriority can return -1 as a value: tell it from an error by errno.
    // SAFETY: __errno_location returns this thread's errno; writing 0 to it
    // is how the manual says to tell a -1 value from an error.
    unsafe { *libc::__errno_location() = 0 };
    // SAFETY: getpriority takes plain integers.
    let value = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
    let error = io::Error::last_os_error();
    if value == -1 && error.raw_os_error().is_some_and(|e| e != 0) {
        return Err(error);
    }
    Ok(value)
}

/// Sets the calling thread's niceness. Lowering it needs root or
/// CAP_SYS_NICE; raising it never does.
pub fn set_thread_nice(nice: i32) -> io::Result<()> {
    // SAFETY: setpriority takes plain integers; who = 0 is the caller.
    let result = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, nice) };
    if result == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_raises_its_niceness_and_its_children_inherit_it() {
        std::thread::spawn(|| {
            let before = thread_nice().unwrap();
            let raised = (before + 3).min(19);
            set_thread_nice(raised).unwrap();
            assert_eq!(thread_nice().unwrap(), raised);
            let inherited = std::thread::spawn(|| thread_nice().unwrap())
                .join()
                .unwrap();
            assert_eq!(inherited, raised, "threads started after inherit it");
        })
        .join()
        .unwrap();
        // Only that thread changed.
        let here = thread_nice().unwrap();
        assert!(here <= 19);
    }
}
