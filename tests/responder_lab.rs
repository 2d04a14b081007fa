//! The responder in the lab: the client is the real Linux stack (arping,
//! ndisc6, ping, `ip neigh`), tcpdump decodes what l2vip sends.

#[path = "lab/mod.rs"]
mod lab;

use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use l2vip::wire::{arp, ethernet, icmpv6, ipv6, EthernetAddress};
use lab::Lab;

const NODE: &str = "02:4c:32:00:00:01";
const NODE_UPPER: &str = "02:4C:32:00:00:01";
const CLIENT_MAC: EthernetAddress = EthernetAddress([0x02, 0x4c, 0x32, 0x00, 0x00, 0x64]);
const CLIENT_SIDE_MAC: EthernetAddress = EthernetAddress([0x02, 0x4c, 0x32, 0x00, 0x01, 0x64]);
const NODE_MAC: EthernetAddress = EthernetAddress([0x02, 0x4c, 0x32, 0x00, 0x00, 0x01]);
const CLIENT_V4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 100);
const VIP4: &str = "192.0.2.200";
const VIP6: &str = "2001:db8::200";
/// Longer than the start-up burst of the test configs below.
const START: Duration = Duration::from_secs(5);

fn config(announce: &str, extra_services: &str) -> String {
    format!(
        r#"{{
  "node": "n1",
  "announce": {announce},
  "services": [
    {{"name": "web", "ip": "{VIP4}", "interface": "eth0"}},
    {{"name": "web6", "ip": "{VIP6}", "interface": "eth0"}},
    {{"name": "far6", "ip": "2001:db8::1:2345", "interface": "eth0"}}{extra_services}
  ]
}}"#
    )
}

/// One announcement round at start and no refresh: quiet captures later.
const QUIET: &str = r#"{"count": 1, "refresh_s": 0}"#;

fn started(lab: &Lab, config: &str) -> lab::Daemon {
    let daemon = lab.daemon(1, config);
    assert!(
        daemon.wait_for_log("answering for", START),
        "daemon did not start: {}",
        daemon.log()
    );
    daemon
}

#[test]
fn answers_arp_and_ns_for_its_vips_only() {
    if !lab::available("answers_arp_and_ns_for_its_vips_only") {
        return;
    }
    let lab = Lab::up(1, false);
    let daemon = started(&lab, &config(QUIET, ""));

    let arping = lab.text("c", &["arping", "-c", "2", "-w", "3", "-I", "eth0", VIP4]);
    assert!(
        arping.contains(&format!("Unicast reply from {VIP4} [{NODE_UPPER}]")),
        "{arping}"
    );
    // RFC 5227 probe (sender 0.0.0.0) is answered too.
    let probe = lab.text(
        "c",
        &["arping", "-D", "-c", "2", "-w", "3", "-I", "eth0", VIP4],
    );
    assert!(
        probe.contains(&format!("reply from {VIP4} [{NODE_UPPER}]")),
        "{probe}"
    );

    let capture = lab.capture("c", "eth0", "icmp6");
    let ndisc = lab.text("c", &["ndisc6", "-1", "-r", "3", VIP6, "eth0"]);
    assert!(
        ndisc.contains(&format!("Target link-layer address: {NODE_UPPER}")),
        "{ndisc}"
    );
    let decoded = capture.stop();
    let advert = decoded
        .lines()
        .find(|line| line.contains(&format!("tgt is {VIP6}")))
        .unwrap_or_else(|| panic!("no NA for {VIP6} in:\n{decoded}"));
    assert!(advert.contains("Flags [solicited, override]"), "{advert}");
    assert!(
        advert.contains(&format!("{NODE} > 02:4c:32:00:00:64")),
        "unicast to the client: {advert}"
    );
    assert!(
        advert.contains("hlim 255") && advert.contains("icmp6 sum ok"),
        "{advert}"
    );
    assert!(
        decoded.contains(&format!(
            "destination link-address option (2), length 8 (1): {NODE}"
        )),
        "{decoded}"
    );

    // After ordinary traffic, the client's cache points at the node.
    for vip in [VIP4, VIP6] {
        lab.run("c", &["ping", "-c", "1", "-W", "1", vip]);
        let entry = lab.neighbour(vip);
        assert!(
            entry.contains(&format!("lladdr {NODE}")),
            "{vip}: {entry:?}"
        );
    }

    // Addresses that are not VIPs get no answer.
    let silent = lab.text(
        "c",
        &["arping", "-c", "2", "-w", "2", "-I", "eth0", "192.0.2.201"],
    );
    assert!(silent.contains("Received 0 response"), "{silent}");
    let silent6 = lab.run(
        "c",
        &[
            "ndisc6",
            "-1",
            "-r",
            "2",
            "-w",
            "300",
            "2001:db8::201",
            "eth0",
        ],
    );
    assert!(
        !silent6.status.success(),
        "{}",
        String::from_utf8_lossy(&silent6.stdout)
    );

    let counters = daemon.counters();
    assert!(counters["arp_replies_sent"] >= 3, "{counters:?}");
    assert!(counters["na_sent"] >= 2, "{counters:?}");
    // Requests for addresses it does not own never leave the kernel: the
    // sockets' filters list the owned addresses.
    assert_eq!(counters["drop.not_owned"], 0, "{counters:?}");
}

#[test]
fn gratuitous_burst_on_start_moves_the_clients_cache() {
    if !lab::available("gratuitous_burst_on_start_moves_the_clients_cache") {
        return;
    }
    let lab = Lab::up(1, false);
    // The client believes the VIPs live elsewhere.
    for vip in [VIP4, VIP6] {
        let out = lab.run(
            "c",
            &[
                "ip",
                "neigh",
                "replace",
                vip,
                "lladdr",
                "02:4c:32:00:00:99",
                "dev",
                "eth0",
                "nud",
                "stale",
            ],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let capture = lab.capture("c", "eth0", &format!("ether src {NODE}"));
    let daemon = lab.daemon(1, &config(r#"{"count": 5, "interval_ms": 1100}"#, ""));

    // Linux ignores a second update within its 1 s locktime, so the second
    // round (1.1 s) at the latest moves the entry: 3 s is ample.
    for vip in [VIP4, VIP6] {
        let moved = Lab::wait_until(Duration::from_secs(3), || lab.neighbour(vip).contains(NODE));
        assert!(moved, "{vip}: {:?}\n{}", lab.neighbour(vip), daemon.log());
    }
    // The whole burst: 5 rounds 1.1 s apart take 4.4 s.
    std::thread::sleep(Duration::from_millis(5000));
    let decoded = capture.stop();
    let lines: Vec<&str> = decoded.lines().collect();
    let requests: Vec<f64> = lines
        .iter()
        .filter(|l| l.contains(&format!("Request who-has {VIP4} tell {VIP4}")))
        .filter(|l| l.contains(&format!("{NODE} > ff:ff:ff:ff:ff:ff")))
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect();
    let replies = lines
        .iter()
        .filter(|l| {
            l.contains(&format!("Reply {VIP4} is-at {NODE}")) && l.contains("ff:ff:ff:ff:ff:ff")
        })
        .count();
    let adverts: Vec<&&str> = lines
        .iter()
        .filter(|l| {
            l.contains(&format!("{VIP6} > ff02::1")) && l.contains(&format!("tgt is {VIP6}"))
        })
        .collect();
    assert_eq!(requests.len(), 5, "request form:\n{decoded}");
    assert_eq!(replies, 5, "reply form:\n{decoded}");
    assert_eq!(adverts.len(), 5, "unsolicited NA:\n{decoded}");
    for pair in requests.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(
            (1.0..1.6).contains(&gap),
            "rounds {gap:.3} s apart:\n{decoded}"
        );
    }
    for advert in adverts {
        assert!(advert.contains("Flags [override]"), "S=0 R=0 O=1: {advert}");
        assert!(
            advert.contains("hlim 255") && advert.contains("icmp6 sum ok"),
            "{advert}"
        );
        assert!(
            advert.contains(&format!("{NODE} > 33:33:00:00:00:01")),
            "{advert}"
        );
    }
    assert!(
        decoded.contains(&format!(
            "destination link-address option (2), length 8 (1): {NODE}"
        )),
        "{decoded}"
    );
}

#[test]
fn joins_the_solicited_node_group_of_each_ipv6_vip() {
    if !lab::available("joins_the_solicited_node_group_of_each_ipv6_vip") {
        return;
    }
    let lab = Lab::up(1, false);
    let maddr = || lab.text("n1", &["ip", "maddr", "show", "dev", "eth0"]);
    assert!(!maddr().contains("33:33:ff:01:23:45"), "{}", maddr());
    let mut daemon = started(&lab, &config(QUIET, ""));
    let joined = maddr();
    assert!(joined.contains("33:33:ff:00:02:00"), "{joined}");
    assert!(joined.contains("33:33:ff:01:23:45"), "{joined}");
    // That VIP's NS goes to a group the kernel would not join by itself.
    let ndisc = lab.text(
        "c",
        &["ndisc6", "-1", "-r", "3", "2001:db8::1:2345", "eth0"],
    );
    assert!(ndisc.contains(NODE_UPPER), "{ndisc}");
    // Closing the socket leaves the group.
    daemon
        .stop_with("TERM", Duration::from_secs(2))
        .expect("daemon stops");
    assert!(!maddr().contains("33:33:ff:01:23:45"), "{}", maddr());
}

fn arp_request(source_mac: EthernetAddress, target: Ipv4Addr) -> Vec<u8> {
    let mut frame = vec![0u8; 42];
    let header = ethernet::Repr {
        source: source_mac,
        destination: EthernetAddress::BROADCAST,
        ethertype: ethernet::EtherType::Arp,
    };
    header.emit(&mut ethernet::Frame::new_unchecked(&mut frame[..]));
    let repr = arp::Repr {
        operation: arp::Operation::Request,
        source_hardware_addr: source_mac,
        source_protocol_addr: CLIENT_V4,
        target_hardware_addr: EthernetAddress::default(),
        target_protocol_addr: target,
    };
    repr.emit(&mut arp::Packet::new_unchecked(&mut frame[14..]));
    frame
}

/// A Neighbor Solicitation from the client for `target`, checksummed.
fn solicit(target: Ipv6Addr, hop_limit: u8) -> Vec<u8> {
    let source: Ipv6Addr = "2001:db8::100".parse().unwrap();
    let destination = ipv6::solicited_node(&target);
    let mut frame = vec![0u8; 14 + 40 + 32];
    ethernet::Repr {
        source: CLIENT_MAC,
        destination: EthernetAddress::ipv6_multicast(&destination.octets()),
        ethertype: ethernet::EtherType::Ipv6,
    }
    .emit(&mut ethernet::Frame::new_unchecked(&mut frame[..]));
    ipv6::Repr {
        source,
        destination,
        next_header: ipv6::NEXT_HEADER_ICMPV6,
        payload_len: 32,
        hop_limit,
    }
    .emit(&mut ipv6::Packet::new_unchecked(&mut frame[14..]));
    icmpv6::Repr::NeighborSolicit {
        target,
        source_lladdr: Some(CLIENT_MAC),
    }
    .emit(
        &source,
        &destination,
        &mut icmpv6::Packet::new_unchecked(&mut frame[54..]),
    );
    frame
}

/// Re-checksums an NS built by `solicit` after an edit.
fn refill(frame: &mut [u8]) {
    let packet = ipv6::Packet::new_checked(&frame[14..]).unwrap();
    let (source, destination) = (packet.source(), packet.destination());
    icmpv6::Packet::new_unchecked(&mut frame[54..]).fill_checksum(&source, &destination);
}

#[test]
fn bad_frames_get_no_answer_and_are_counted() {
    if !lab::available("bad_frames_get_no_answer_and_are_counted") {
        return;
    }
    let lab = Lab::up(1, true);
    // A VIP on the side link, so the daemon listens there too.
    let side = r#",
    {"name": "side", "ip": "192.0.2.210", "interface": "eth1"}"#;
    let daemon = started(&lab, &config(QUIET, side));
    std::thread::sleep(Duration::from_millis(300));
    let before = daemon.counters();

    let vip4: Ipv4Addr = VIP4.parse().unwrap();
    let vip6: Ipv6Addr = VIP6.parse().unwrap();
    let good_arp = arp_request(CLIENT_MAC, vip4);
    let truncated = good_arp[..24].to_vec();
    let mut hlen8 = good_arp.clone();
    hlen8[18] = 8;
    hlen8.resize(60, 0);
    let mut plen16 = good_arp.clone();
    plen16[19] = 16;
    plen16.resize(14 + 8 + 2 * (6 + 16), 0);
    let mut hop64 = solicit(vip6, 64);
    refill(&mut hop64);
    let mut bad_checksum = solicit(vip6, 255);
    bad_checksum[56] ^= 0x5a;
    let mut zero_option = solicit(vip6, 255);
    zero_option[14 + 40 + 25] = 0;
    refill(&mut zero_option);
    // AF_PACKET refuses to send less than an Ethernet header, and the lab's
    // bridge drops runts, so the shortest frames arrive over the side link:
    // a bare header and one byte of payload.
    let bare_header = good_arp[..14].to_vec();
    let one_byte_arp = good_arp[..15].to_vec();
    let one_byte_ipv6 = solicit(vip6, 255)[..15].to_vec();
    let short_ipv6 = solicit(vip6, 255)[..60].to_vec();

    let eth0 = lab.capture("c", "eth0", &format!("ether src {NODE}"));
    let eth1 = lab.capture("c", "eth1", "ether src 02:4c:32:00:01:01");
    lab.inject(
        "eth0",
        &[
            truncated,
            hlen8,
            plen16,
            hop64,
            bad_checksum,
            zero_option,
            short_ipv6,
        ],
    );
    lab.inject("eth1", &[bare_header, one_byte_arp, one_byte_ipv6]);
    // A good request, but on the interface where that VIP does not live.
    lab.inject("eth1", &[arp_request(CLIENT_SIDE_MAC, vip4)]);
    std::thread::sleep(Duration::from_millis(500));
    // The node's kernel may send MLD reports meanwhile; l2vip must send
    // no ARP reply and no NA.
    let is_answer = |line: &&str| line.contains("ARP") || line.contains("neighbor advertisement");
    let answers = eth0.stop();
    let side_answers = eth1.stop();
    assert_eq!(
        answers.lines().filter(is_answer).count(),
        0,
        "answers to bad frames:\n{answers}"
    );
    assert_eq!(
        side_answers.lines().filter(is_answer).count(),
        0,
        "answer on the wrong interface:\n{side_answers}"
    );

    let after = daemon.counters();
    let grew = |key: &str| after[key] - before[key];
    assert_eq!(grew("drop.truncated"), 5, "{after:?}");
    assert_eq!(grew("drop.arp_format"), 2, "hlen 8 and plen 16: {after:?}");
    assert_eq!(grew("drop.hop_limit"), 1, "{after:?}");
    assert_eq!(grew("drop.checksum"), 1, "{after:?}");
    assert_eq!(grew("drop.ndp_format"), 1, "zero-length option: {after:?}");
    // eth1's filters pass only what names its own VIP: the request for
    // eth0's VIP never reaches userspace there.
    assert_eq!(grew("drop.other_interface"), 0, "{after:?}");
    assert_eq!(grew("arp_replies_sent") + grew("na_sent"), 0, "{after:?}");

    // Still answering good requests afterwards, and still alive.
    let arping = lab.text("c", &["arping", "-c", "1", "-w", "3", "-I", "eth0", VIP4]);
    assert!(arping.contains(NODE_UPPER), "{arping}");
    let ndisc = lab.text("c", &["ndisc6", "-1", "-r", "3", VIP6, "eth0"]);
    assert!(ndisc.contains(NODE_UPPER), "{ndisc}");
    let log = daemon.log();
    assert!(
        log.contains("dropped a") && log.contains("hop_limit"),
        "drops are logged: {log}"
    );
}

#[test]
fn answers_unicast_nud_and_dad_probes() {
    if !lab::available("answers_unicast_nud_and_dad_probes") {
        return;
    }
    let lab = Lab::up(1, false);
    let _daemon = started(&lab, &config(QUIET, ""));
    std::thread::sleep(Duration::from_millis(300));
    let vip6: Ipv6Addr = VIP6.parse().unwrap();

    // Unicast NUD: to the VIP itself, to the node's MAC.
    let mut nud = solicit(vip6, 255);
    nud[..6].copy_from_slice(NODE_MAC.as_bytes());
    nud[14 + 24..14 + 40].copy_from_slice(&vip6.octets());
    refill(&mut nud);
    // DAD: from ::, no source link-layer option, to the solicited-node group.
    let mut dad = solicit(vip6, 255);
    dad[14 + 8..14 + 24].fill(0);
    dad.truncate(14 + 40 + 24);
    dad[14 + 5] = 24;
    refill(&mut dad);

    let capture = lab.capture("c", "eth0", &format!("ether src {NODE} and icmp6"));
    lab.inject("eth0", &[nud]);
    std::thread::sleep(Duration::from_millis(300));
    lab.inject("eth0", &[dad]);
    std::thread::sleep(Duration::from_millis(500));
    let decoded = capture.stop();
    let adverts: Vec<&str> = decoded
        .lines()
        .filter(|l| l.contains("neighbor advertisement"))
        .collect();
    assert_eq!(adverts.len(), 2, "{decoded}");
    assert!(
        adverts[0].contains(&format!("{VIP6} > 2001:db8::100"))
            && adverts[0].contains("Flags [solicited, override]"),
        "NUD answer: {}",
        adverts[0]
    );
    assert!(
        adverts[1].contains(&format!("{VIP6} > ff02::1"))
            && adverts[1].contains("Flags [override]"),
        "DAD answer: {}",
        adverts[1]
    );
}

#[test]
fn stops_cleanly_within_a_second() {
    if !lab::available("stops_cleanly_within_a_second") {
        return;
    }
    let lab = Lab::up(1, false);
    for signal in ["TERM", "INT"] {
        let mut daemon = started(&lab, &config(QUIET, ""));
        let (status, took) = daemon
            .stop_with(signal, Duration::from_secs(3))
            .unwrap_or_else(|| panic!("SIG{signal}: still running after 3 s"));
        assert!(
            status.success(),
            "SIG{signal}: {status:?}\n{}",
            daemon.log()
        );
        assert!(took < Duration::from_secs(1), "SIG{signal}: took {took:?}");
        assert!(daemon.log().contains("stopped"), "{}", daemon.log());
    }
}
