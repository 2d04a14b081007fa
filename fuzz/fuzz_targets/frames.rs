//! Frames from the wire, as the responder sees them on its ARP and NDP
//! sockets. Nothing may panic, whatever arrives.
#![no_main]

use std::time::Instant;

use l2vip::config::Announce;
use l2vip::responder::logic::{Interface, OwnedVip, Responder, MAX_FRAME};
use l2vip::wire::EthernetAddress;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let now = Instant::now();
    let interfaces = vec![Interface {
        name: "eth0".into(),
        mac: EthernetAddress([2, 0, 0, 0, 0, 1]),
        router: data.first().is_some_and(|b| b & 0x80 != 0),
    }];
    let mut responder = Responder::new(interfaces, Announce::default());
    let owned = [
        OwnedVip {
            ip: "192.0.2.200".parse().unwrap(),
            slot: 0,
            mac: None,
        },
        OwnedVip {
            ip: "2001:db8::200".parse().unwrap(),
            slot: 0,
            mac: None,
        },
        // VIPs answered with a MAC of their own (a macvlan's).
        OwnedVip {
            ip: "192.0.2.201".parse().unwrap(),
            slot: 0,
            mac: Some(EthernetAddress([2, 0x4c, 0x32, 0, 0, 0xc9])),
        },
        OwnedVip {
            ip: "2001:db8::201".parse().unwrap(),
            slot: 0,
            mac: Some(EthernetAddress([2, 0x4c, 0x32, 0, 0, 0xca])),
        },
    ];
    responder.set_owned(now, &owned);
    let pkttype = data.first().copied().unwrap_or(0) % 5;
    let frame = data.get(1..).unwrap_or(&[]);
    let mut out = [0u8; MAX_FRAME];
    let _ = responder.process_arp(0, pkttype, frame, &mut out);
    let _ = responder.process_ndp(0, pkttype, frame, &mut out);
});
