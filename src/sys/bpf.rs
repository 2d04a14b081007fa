//! Classic BPF programs for the packet sockets (see `packet`).
//!
//! They cut noise in the kernel: frames we sent, frames for other hosts,
//! (for NDP) everything that is not an ICMPv6 Neighbor Solicitation, and,
//! once the responder knows what it owns on an interface (`arp_for`,
//! `neighbor_solicit_for`), well-formed requests that name none of those
//! addresses, so a flood against a VIP costs a standby node nothing.
//! Anything short or unusual still reaches userspace, so that malformed
//! frames are counted, not silently lost.

use crate::wire::{arp, ethernet, icmpv6, ipv6};

/// One BPF instruction, as in `<linux/filter.h>`.
pub type Instruction = libc::sock_filter;

// Opcodes from <linux/bpf_common.h>.
const LD: u16 = 0x00;
const JMP: u16 = 0x05;
const RET: u16 = 0x06;
const W: u16 = 0x00;
const B: u16 = 0x10;
const ABS: u16 = 0x20;
const LEN: u16 = 0x80;
const JEQ: u16 = 0x10;
const JGE: u16 = 0x30;
const K: u16 = 0x00;
const H: u16 = 0x08;

/// Ancillary data loads (<linux/filter.h>): base offset and pkttype.
const SKF_AD_OFF: u32 = (-0x1000i32) as u32;
const SKF_AD_PKTTYPE: u32 = 4;

/// `sll_pkttype` values (<linux/if_packet.h>).
pub const PACKET_OTHERHOST: u32 = 3;
/// A frame this host sent, looped back to packet sockets.
pub const PACKET_OUTGOING: u32 = 4;

/// Bytes of a frame handed to userspace: more than any ARP or NS needs.
pub const SNAP_LEN: u32 = 2048;

const fn stmt(code: u16, k: u32) -> Instruction {
    Instruction {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

const fn jump(code: u16, k: u32, jt: u8, jf: u8) -> Instruction {
    Instruction { code, jt, jf, k }
}

/// Drops everything: attached first, so nothing queues before the real one.
pub const DROP_ALL: [Instruction; 1] = [stmt(RET | K, 0)];

/// For a socket bound to ETH_P_ARP: drop our own and other hosts' frames.
pub const ARP: [Instruction; 5] = [
    stmt(LD | W | ABS, SKF_AD_OFF + SKF_AD_PKTTYPE),
    jump(JMP | JEQ | K, PACKET_OUTGOING, 2, 0),
    jump(JMP | JEQ | K, PACKET_OTHERHOST, 1, 0),
    stmt(RET | K, SNAP_LEN),
    stmt(RET | K, 0),
];

/// Where headers start in an untagged frame.
const L2: u32 = ethernet::HEADER_LEN as u32;
const L3: u32 = L2 + ipv6::HEADER_LEN as u32;
/// Offsets in an untagged frame: IPv6 Next Header, ICMPv6 Type.
const IPV6_NEXT_HEADER: u32 = L2 + ipv6::NEXT_HEADER_OFFSET as u32;
const ICMPV6_TYPE: u32 = L3 + icmpv6::TYPE_OFFSET as u32;
/// The values they are compared with.
const ICMPV6: u32 = ipv6::NEXT_HEADER_ICMPV6 as u32;
const NS: u32 = icmpv6::Message::NeighborSolicit.to_raw() as u32;
const NA: u32 = icmpv6::Message::NeighborAdvert.to_raw() as u32;
const ETHERTYPE_ARP: u32 = ethernet::EtherType::Arp.to_raw() as u32;
const ETHERTYPE_IPV6: u32 = ethernet::EtherType::Ipv6.to_raw() as u32;

/// For a socket bound to ETH_P_IPV6: as `ARP`, and only ICMPv6 types 135
/// and 136 (NS, and NA: another host's claim) directly after the fixed
/// header (RFC 4861 messages carry no extension headers). Frames too short
/// to hold the ICMPv6 type are passed up, to be counted as truncated
/// rather than vanish in the kernel.
pub const NEIGHBOR_SOLICIT: [Instruction; 12] = [
    stmt(LD | W | ABS, SKF_AD_OFF + SKF_AD_PKTTYPE),
    jump(JMP | JEQ | K, PACKET_OUTGOING, 9, 0),
    jump(JMP | JEQ | K, PACKET_OTHERHOST, 8, 0),
    stmt(LD | W | LEN, 0),
    jump(JMP | JGE | K, ICMPV6_TYPE + 1, 0, 5),
    stmt(LD | B | ABS, IPV6_NEXT_HEADER),
    jump(JMP | JEQ | K, ICMPV6, 0, 4),
    stmt(LD | B | ABS, ICMPV6_TYPE),
    jump(JMP | JEQ | K, NS, 1, 0),
    jump(JMP | JEQ | K, NA, 0, 1),
    stmt(RET | K, SNAP_LEN),
    stmt(RET | K, 0),
];

/// The most addresses `arp_for` and `neighbor_solicit_for` list: two
/// instructions each, twice (target and sender), within the kernel's 4096.
pub const MAX_LISTED: usize = 1000;

/// The start of a narrowed program of `capacity` instructions: drop our
/// own frames and other hosts', pass up frames shorter than `min_len` or
/// of another EtherType than `ethertype` (userspace counts them).
fn prologue(capacity: usize, min_len: u32, ethertype: u32) -> Vec<Instruction> {
    let mut program = Vec::with_capacity(capacity);
    program.extend([
        stmt(LD | W | ABS, SKF_AD_OFF + SKF_AD_PKTTYPE),
        jump(JMP | JEQ | K, PACKET_OUTGOING, 1, 0),
        jump(JMP | JEQ | K, PACKET_OTHERHOST, 0, 1),
        stmt(RET | K, 0),
        stmt(LD | W | LEN, 0),
        jump(JMP | JGE | K, min_len, 1, 0),
        stmt(RET | K, SNAP_LEN),
        stmt(LD | H | ABS, ethernet::ETHERTYPE_OFFSET as u32),
    ]);
    pass_unless(&mut program, ethertype);
    program
}

/// Passes the frame up when the value loaded is not `k` (a frame of a shape
/// the narrowing does not know: userspace counts it).
fn pass_unless(program: &mut Vec<Instruction>, k: u32) {
    program.extend([jump(JMP | JEQ | K, k, 1, 0), stmt(RET | K, SNAP_LEN)]);
}

/// Passes the frame up when the word loaded is one of `words`.
fn pass_if_listed(program: &mut Vec<Instruction>, words: &[u32]) {
    for word in words {
        program.extend([jump(JMP | JEQ | K, *word, 0, 1), stmt(RET | K, SNAP_LEN)]);
    }
}

/// For a socket bound to ETH_P_ARP on an interface where this node owns
/// the IPv4 addresses `owned` (each as `u32::from_be_bytes` of its
/// octets): as `ARP`, and a plain Ethernet/IPv4 ARP frame only when its
/// target or its sender (a conflict) is one of them. `None` past
/// `MAX_LISTED`.
pub fn arp_for(owned: &[u32]) -> Option<Vec<Instruction>> {
    if owned.len() > MAX_LISTED {
        return None;
    }
    let mut program = prologue(20 + 4 * owned.len(), ARP_FRAME_LEN, ETHERTYPE_ARP);
    program.push(stmt(LD | W | ABS, L2 + arp::HTYPE_OFFSET as u32));
    pass_unless(&mut program, ARP_ETHERNET_IPV4);
    program.push(stmt(LD | H | ABS, L2 + arp::HLEN_OFFSET as u32));
    pass_unless(&mut program, ARP_LENGTHS);
    program.push(stmt(LD | W | ABS, ARP_TARGET_IP));
    pass_if_listed(&mut program, owned);
    program.push(stmt(LD | W | ABS, ARP_SENDER_IP));
    pass_if_listed(&mut program, owned);
    program.push(stmt(RET | K, 0));
    Some(program)
}

/// For a socket bound to ETH_P_IPV6 on an interface where this node owns
/// IPv6 addresses whose last four bytes (`u32::from_be_bytes`) are `owned`:
/// as `NEIGHBOR_SOLICIT`, and a full-length solicitation or advertisement
/// only when its target or its source (a claim) ends in one of them
/// (userspace compares the whole address).
/// `None` past `MAX_LISTED`.
pub fn neighbor_solicit_for(owned: &[u32]) -> Option<Vec<Instruction>> {
    if owned.len() > MAX_LISTED {
        return None;
    }
    let mut program = prologue(22 + 4 * owned.len(), NS_FRAME_LEN, ETHERTYPE_IPV6);
    program.extend([
        stmt(LD | B | ABS, IPV6_NEXT_HEADER),
        jump(JMP | JEQ | K, ICMPV6, 1, 0),
        stmt(RET | K, 0),
        stmt(LD | B | ABS, ICMPV6_TYPE),
        jump(JMP | JEQ | K, NS, 2, 0),
        jump(JMP | JEQ | K, NA, 1, 0),
        stmt(RET | K, 0),
        // NS and NA have their target at the same place.
        stmt(LD | W | ABS, NS_TARGET_LAST_WORD),
    ]);
    pass_if_listed(&mut program, owned);
    // Sent from one of them (an NS from a VIP is a claim on it).
    program.push(stmt(LD | W | ABS, IPV6_SOURCE_LAST_WORD));
    pass_if_listed(&mut program, owned);
    program.push(stmt(RET | K, 0));
    Some(program)
}

/// An untagged Ethernet frame holding a whole Ethernet/IPv4 ARP packet.
const ARP_FRAME_LEN: u32 = L2 + arp::PACKET_LEN as u32;
const ARP_SENDER_IP: u32 = L2 + arp::SENDER_IPV4_OFFSET as u32;
const ARP_TARGET_IP: u32 = L2 + arp::TARGET_IPV4_OFFSET as u32;
/// Its hardware and protocol types as one word: Ethernet, IPv4.
const ARP_ETHERNET_IPV4: u32 =
    (arp::Hardware::Ethernet.to_raw() as u32) << 16 | ethernet::EtherType::Ipv4.to_raw() as u32;
/// Its address lengths as one half-word: a MAC's and an IPv4 address's.
const ARP_LENGTHS: u32 = (6 << 8) | 4;
/// An untagged frame holding an NS up to the end of its target address.
const NS_FRAME_LEN: u32 = L3 + icmpv6::MESSAGE_LEN as u32;
/// The last four bytes of the IPv6 source address.
const IPV6_SOURCE_LAST_WORD: u32 = L2 + ipv6::SOURCE_END as u32 - 4;
/// The last four bytes of an NS's (or NA's) target address.
const NS_TARGET_LAST_WORD: u32 = L3 + icmpv6::TARGET_OFFSET as u32 + 12;

#[cfg(test)]
mod tests {
    use super::*;

    /// Every jump lands inside the program, and the program ends in RET.
    fn well_formed(program: &[Instruction]) {
        for (at, instruction) in program.iter().enumerate() {
            if instruction.code & 0x07 == JMP {
                let far = usize::from(instruction.jt.max(instruction.jf));
                assert!(at + 1 + far < program.len(), "jump out of program at {at}");
            }
        }
        assert_eq!(program.last().map(|i| i.code), Some(RET | K));
    }

    #[test]
    fn programs_are_well_formed() {
        well_formed(&DROP_ALL);
        well_formed(&ARP);
        well_formed(&NEIGHBOR_SOLICIT);
        for count in [0, 1, 7, MAX_LISTED] {
            let words: Vec<u32> = (0..count as u32).map(|i| 0xc000_0200 + i).collect();
            let arp = arp_for(&words).unwrap();
            well_formed(&arp);
            assert!(arp.len() <= 4096);
            let ns = neighbor_solicit_for(&words).unwrap();
            well_formed(&ns);
            assert!(ns.len() <= 4096);
        }
        assert!(arp_for(&vec![0; MAX_LISTED + 1]).is_none());
    }

    /// Runs a classic BPF program over `frame` with `pkttype`, the few
    /// opcodes these programs use; returns the bytes it keeps.
    fn run(program: &[Instruction], frame: &[u8], pkttype: u32) -> u32 {
        let mut a = 0u32;
        let mut pc = 0;
        loop {
            let i = program[pc];
            let load = |at: u32, width: usize| -> Option<u32> {
                let at = at as usize;
                frame
                    .get(at..at + width)
                    .map(|b| b.iter().fold(0, |v, x| (v << 8) | u32::from(*x)))
            };
            match i.code {
                c if c == LD | W | ABS && i.k == SKF_AD_OFF + SKF_AD_PKTTYPE => a = pkttype,
                c if c == LD | W | ABS => match load(i.k, 4) {
                    Some(v) => a = v,
                    None => return 0,
                },
                c if c == LD | H | ABS => match load(i.k, 2) {
                    Some(v) => a = v,
                    None => return 0,
                },
                c if c == LD | B | ABS => match load(i.k, 1) {
                    Some(v) => a = v,
                    None => return 0,
                },
                c if c == LD | W | LEN => a = frame.len() as u32,
                c if c == RET | K => return i.k,
                c if c == JMP | JEQ | K || c == JMP | JGE | K => {
                    let taken = if c == JMP | JEQ | K {
                        a == i.k
                    } else {
                        a >= i.k
                    };
                    pc += usize::from(if taken { i.jt } else { i.jf });
                }
                other => panic!("opcode {other:#x} not modelled"),
            }
            pc += 1;
        }
    }

    #[test]
    fn narrowed_programs_pass_what_names_an_owned_address_and_anything_odd() {
        use crate::wire::captures::{ARP_REPLY, ARP_REQUEST, NS};
        const PACKET_HOST: u32 = 0;
        const PACKET_BROADCAST: u32 = 1;
        // The capture's request asks for the target at bytes 38..42.
        let target = u32::from_be_bytes(ARP_REQUEST[38..42].try_into().unwrap());
        let sender = u32::from_be_bytes(ARP_REPLY[28..32].try_into().unwrap());
        let arp = arp_for(&[0x0a00_0001, target]).unwrap();
        assert_eq!(run(&arp, &ARP_REQUEST, PACKET_BROADCAST), SNAP_LEN);
        assert_eq!(run(&arp, &ARP_REQUEST, PACKET_OUTGOING), 0);
        assert_eq!(run(&arp, &ARP_REQUEST, PACKET_OTHERHOST), 0);
        let nobody = arp_for(&[0x0a00_0001]).unwrap();
        assert_eq!(
            run(&nobody, &ARP_REQUEST, PACKET_BROADCAST),
            0,
            "not ours: dropped"
        );
        // A frame claiming an owned address as its sender is a conflict to count.
        assert_eq!(
            run(&arp_for(&[sender]).unwrap(), &ARP_REPLY, PACKET_HOST),
            SNAP_LEN
        );
        // Short or unusual frames go up to be counted.
        assert_eq!(run(&nobody, &ARP_REQUEST[..30], PACKET_BROADCAST), SNAP_LEN);
        let mut odd = ARP_REQUEST.to_vec();
        odd[19] = 16; // protocol address length
        assert_eq!(run(&nobody, &odd, PACKET_BROADCAST), SNAP_LEN);

        let last = u32::from_be_bytes(NS[74..78].try_into().unwrap());
        let ns = neighbor_solicit_for(&[last]).unwrap();
        assert_eq!(run(&ns, &NS, PACKET_HOST), SNAP_LEN);
        assert_eq!(
            run(&neighbor_solicit_for(&[]).unwrap(), &NS, PACKET_HOST),
            0
        );
        assert_eq!(
            run(&neighbor_solicit_for(&[]).unwrap(), &NS[..60], PACKET_HOST),
            SNAP_LEN
        );
        let mut advert = NS.to_vec();
        advert[54] = 136;
        assert_eq!(
            run(&ns, &advert, PACKET_HOST),
            SNAP_LEN,
            "and advertisements"
        );
        // An NS sent from an owned address, for any target: a claim.
        let mut from_vip = NS.to_vec();
        from_vip[34..38].copy_from_slice(&NS[74..78]);
        from_vip[77] = 0x99;
        assert_eq!(run(&ns, &from_vip, PACKET_HOST), SNAP_LEN);
        from_vip[37] = 0x98;
        assert_eq!(run(&ns, &from_vip, PACKET_HOST), 0);
        let mut redirect = NS.to_vec();
        redirect[54] = 137;
        assert_eq!(run(&ns, &redirect, PACKET_HOST), 0, "nothing else");
        assert_eq!(run(&NEIGHBOR_SOLICIT, &advert, PACKET_HOST), SNAP_LEN);
        assert_eq!(run(&NEIGHBOR_SOLICIT, &redirect, PACKET_HOST), 0);
    }
}
