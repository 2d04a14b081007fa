//! rtnetlink datagrams as the link thread and the route socket read them
//! from the kernel. Nothing may panic, and the walk always ends.
#![no_main]

use l2vip::wire::netlink;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut count = 0usize;
    for message in netlink::messages(data) {
        let _ = message;
        count += 1;
        // Every message takes at least 16 bytes of the datagram.
        assert!(count <= data.len() / 16 + 1);
    }
});
