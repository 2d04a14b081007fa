//! Classic BPF programs for the packet sockets (see `packet`).
//!
//! They only cut noise in the kernel: frames we sent, frames for other
//! hosts, and (for NDP) everything that is not an ICMPv6 Neighbor
//! Solicitation. Every frame that could be a request for us still reaches
//! userspace, so that malformed ones are counted, not silently lost.

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

/// Offsets in an untagged frame: IPv6 Next Header, ICMPv6 Type.
const IPV6_NEXT_HEADER: u32 = 14 + 6;
const ICMPV6_TYPE: u32 = 14 + 40;

/// For a socket bound to ETH_P_IPV6: as `ARP`, and only ICMPv6 type 135
/// directly after the fixed header (RFC 4861 NS carry no extension headers).
/// Frames too short to hold the ICMPv6 type are passed up, to be counted
/// as truncated rather than vanish in the kernel.
pub const NEIGHBOR_SOLICIT: [Instruction; 11] = [
    stmt(LD | W | ABS, SKF_AD_OFF + SKF_AD_PKTTYPE),
    jump(JMP | JEQ | K, PACKET_OUTGOING, 8, 0),
    jump(JMP | JEQ | K, PACKET_OTHERHOST, 7, 0),
    stmt(LD | W | LEN, 0),
    jump(JMP | JGE | K, ICMPV6_TYPE + 1, 0, 4),
    stmt(LD | B | ABS, IPV6_NEXT_HEADER),
    jump(JMP | JEQ | K, 58, 0, 3),
    stmt(LD | B | ABS, ICMPV6_TYPE),
    jump(JMP | JEQ | K, 135, 0, 1),
    stmt(RET | K, SNAP_LEN),
    stmt(RET | K, 0),
];

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
    }
}
