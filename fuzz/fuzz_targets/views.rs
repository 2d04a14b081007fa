//! Every accessor of every wire view that passed `new_checked`, on any
//! bytes: a checked view never reads outside its buffer, whatever its
//! length fields say (ARP's hlen and plen, IPv6's payload length, ICMPv6's
//! options).
#![no_main]

use std::hint::black_box;

use l2vip::wire::{arp, ethernet, icmpv6, ipv6};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(packet) = arp::Packet::new_checked(data) {
        black_box((
            packet.hardware_type(),
            packet.protocol_type(),
            packet.hardware_len(),
            packet.protocol_len(),
            packet.operation(),
            packet.source_hardware_addr(),
            packet.source_protocol_addr(),
            packet.target_hardware_addr(),
            packet.target_protocol_addr(),
        ));
        let _ = black_box(arp::Repr::parse(&packet));
    }
    if let Ok(frame) = ethernet::Frame::new_checked(data) {
        black_box((
            frame.destination(),
            frame.source(),
            frame.vlan_id(),
            frame.ethertype(),
            frame.header_len(),
            frame.payload(),
        ));
    }
    if let Ok(packet) = ipv6::Packet::new_checked(data) {
        black_box((
            packet.version(),
            packet.payload_len(),
            packet.next_header(),
            packet.hop_limit(),
            packet.source(),
            packet.destination(),
            packet.payload(),
        ));
        let _ = black_box(ipv6::Repr::parse(&packet));
    }
    if let Ok(packet) = icmpv6::Packet::new_checked(data) {
        let address = std::net::Ipv6Addr::LOCALHOST;
        black_box((
            packet.message(),
            packet.code(),
            packet.checksum(),
            packet.advert_flags(),
            packet.target(),
            packet.options(),
            packet.verify_checksum(&address, &address),
        ));
    }
});
