//! The l2vip heartbeat: one UDP datagram a node sends every interval.
//!
//! ```text
//!  0      magic "L2VH"
//!  4      version (1)
//!  5      flags: 0x01 draining, 0x02 leaving, 0x04 authenticated,
//!         0x08 joining (still listening after start: not a candidate yet)
//!  6      priority (1..=255)
//!  7      reserved, 0
//!  8      incarnation (u64, one per process start, ordered: the start
//!         counter or the clock, whichever is later, then 16 random bits)
//! 16      sequence (u64, +1 per heartbeat within an incarnation)
//! 24      digest of the cluster's service list (u64)
//! 32      service count N (u16, at most 1024)
//! 34      cluster name length C (1..=64)
//! 35      node name length L (1..=64)
//! 36      cluster name, node name
//!  .      claims bitmap, ceil(N/8) bytes: bit i = the sender owns service i
//!  .      eligible bitmap, ceil(N/8) bytes: bit i = the sender may own it
//!  .      witness count W (u8, at most 32), then W times:
//!         node-name hash (u32), incarnation low 32 bits (u32), age in ms (u16)
//!  .      HMAC-SHA256 over everything before it, 32 bytes, when flagged
//! ```
//!
//! Service i is the i-th service of the cluster's configuration sorted by
//! name; the digest tells whether two nodes agree on that list. Integers
//! are big-endian. With 1024 services, 64-byte names and 32 witnesses a
//! heartbeat is 645 bytes: always one Ethernet frame.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::{Error, Result};

/// "L2VH".
pub const MAGIC: [u8; 4] = *b"L2VH";
/// The version this code speaks.
pub const VERSION: u8 = 1;
/// The most services a heartbeat describes.
pub const MAX_SERVICES: usize = 1024;
/// The longest cluster or node name.
pub const MAX_NAME: usize = 64;
/// The most witness entries.
pub const MAX_WITNESSES: usize = 32;
/// Bytes of the HMAC-SHA256 trailer.
pub const MAC_LEN: usize = 32;
/// Bytes of one witness entry.
pub const WITNESS_LEN: usize = 10;
/// The largest heartbeat (see the layout above).
pub const MAX_LEN: usize =
    field::NAMES + 2 * MAX_NAME + 2 * MAX_SERVICES / 8 + 1 + MAX_WITNESSES * WITNESS_LEN + MAC_LEN;

// One heartbeat always fits one Ethernet frame with room to spare.
const _: () = assert!(MAX_LEN <= 1400);

const FLAG_DRAINING: u8 = 0x01;
const FLAG_LEAVING: u8 = 0x02;
const FLAG_AUTHENTICATED: u8 = 0x04;
const FLAG_JOINING: u8 = 0x08;

mod field {
    use core::ops::Range;

    pub const MAGIC: Range<usize> = 0..4;
    pub const VERSION: usize = 4;
    pub const FLAGS: usize = 5;
    pub const PRIORITY: usize = 6;
    pub const RESERVED: usize = 7;
    pub const INCARNATION: Range<usize> = 8..16;
    pub const SEQUENCE: Range<usize> = 16..24;
    pub const DIGEST: Range<usize> = 24..32;
    pub const SERVICE_COUNT: Range<usize> = 32..34;
    pub const CLUSTER_LEN: usize = 34;
    pub const NODE_LEN: usize = 35;
    pub const NAMES: usize = 36;
}

/// "I heard this node recently": lets peers keep a node alive whose own
/// heartbeats they missed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Witness {
    /// `name_hash` of the node's name.
    pub node: u32,
    /// Low 32 bits of the incarnation heard.
    pub incarnation: u32,
    /// How long ago, in ms (saturating).
    pub age_ms: u16,
}

/// A parsed (or to-be-emitted) heartbeat, borrowing its variable parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr<'a> {
    /// The sender is draining: it wants to own nothing.
    pub draining: bool,
    /// The sender is shutting down: treat it as gone now.
    pub leaving: bool,
    /// The sender started recently and is still listening: not a candidate.
    pub joining: bool,
    /// 1..=255, higher wins.
    pub priority: u8,
    /// Random per process start.
    pub incarnation: u64,
    /// Increases with every heartbeat of an incarnation.
    pub sequence: u64,
    /// Digest of the sender's service list.
    pub digest: u64,
    /// Number of services the bitmaps cover.
    pub service_count: u16,
    /// Cluster name.
    pub cluster: &'a str,
    /// Sender's node name.
    pub node: &'a str,
    /// Claims bitmap, `bitmap_len(service_count)` bytes.
    pub claims: &'a [u8],
    /// Eligibility bitmap, same length.
    pub eligible: &'a [u8],
    /// Witness entries, `WITNESS_LEN` bytes each.
    pub witnesses: &'a [u8],
}

/// Bytes of a bitmap over `count` services.
pub const fn bitmap_len(count: u16) -> usize {
    (count as usize).div_ceil(8)
}

/// Whether bit `index` is set in `bitmap`.
pub fn bit(bitmap: &[u8], index: usize) -> bool {
    bitmap
        .get(index / 8)
        .is_some_and(|byte| byte & (0x80 >> (index % 8)) != 0)
}

/// Sets bit `index` of `bitmap` to `value` (ignored when out of range).
pub fn set_bit(bitmap: &mut [u8], index: usize, value: bool) {
    if let Some(byte) = bitmap.get_mut(index / 8) {
        let mask = 0x80 >> (index % 8);
        if value {
            *byte |= mask;
        } else {
            *byte &= !mask;
        }
    }
}

/// FNV-1a of a node name, for witness entries.
pub fn name_hash(name: &str) -> u32 {
    name.bytes().fold(0x811c_9dc5u32, |hash, byte| {
        (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193)
    })
}

fn valid_name(bytes: &[u8]) -> Option<&str> {
    let name = core::str::from_utf8(bytes).ok()?;
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    ok.then_some(name)
}

fn u64_at(buffer: &[u8], range: core::ops::Range<usize>) -> u64 {
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&buffer[range]);
    u64::from_be_bytes(bytes)
}

impl<'a> Repr<'a> {
    /// Parses a heartbeat, checking every length and that the trailer is
    /// exactly a MAC when flagged. It does not check the MAC: see `verify`.
    pub fn parse(buffer: &'a [u8]) -> Result<Repr<'a>> {
        if buffer.len() < field::NAMES {
            return Err(Error::Truncated);
        }
        if buffer[field::MAGIC] != MAGIC {
            return Err(Error::Malformed);
        }
        if buffer[field::VERSION] != VERSION {
            return Err(Error::Unsupported);
        }
        let flags = buffer[field::FLAGS];
        if flags & !(FLAG_DRAINING | FLAG_LEAVING | FLAG_AUTHENTICATED | FLAG_JOINING) != 0
            || buffer[field::RESERVED] != 0
        {
            return Err(Error::Malformed);
        }
        let priority = buffer[field::PRIORITY];
        let service_count = u16::from_be_bytes([
            buffer[field::SERVICE_COUNT.start],
            buffer[field::SERVICE_COUNT.start + 1],
        ]);
        if priority == 0 || usize::from(service_count) > MAX_SERVICES {
            return Err(Error::Malformed);
        }
        let cluster_len = usize::from(buffer[field::CLUSTER_LEN]);
        let node_len = usize::from(buffer[field::NODE_LEN]);
        let bitmap = bitmap_len(service_count);
        let mut at = field::NAMES;
        let mut take = |len: usize| -> Result<&'a [u8]> {
            let part = buffer.get(at..at + len).ok_or(Error::Truncated)?;
            at += len;
            Ok(part)
        };
        let cluster = valid_name(take(cluster_len)?).ok_or(Error::Malformed)?;
        let node = valid_name(take(node_len)?).ok_or(Error::Malformed)?;
        let claims = take(bitmap)?;
        let eligible = take(bitmap)?;
        let witness_count = usize::from(take(1)?[0]);
        if witness_count > MAX_WITNESSES {
            return Err(Error::Malformed);
        }
        let witnesses = take(witness_count * WITNESS_LEN)?;
        let trailer = buffer.len() - at;
        let authenticated = flags & FLAG_AUTHENTICATED != 0;
        match (authenticated, trailer) {
            (true, MAC_LEN) | (false, 0) => {}
            (true, n) if n < MAC_LEN => return Err(Error::Truncated),
            _ => return Err(Error::Malformed),
        }
        // Bits past the last service must be clear: one encoding per message.
        let spare = bitmap * 8 - usize::from(service_count);
        if spare > 0 {
            let mask = (1u8 << spare) - 1;
            if claims.last().is_some_and(|b| b & mask != 0)
                || eligible.last().is_some_and(|b| b & mask != 0)
            {
                return Err(Error::Malformed);
            }
        }
        Ok(Repr {
            draining: flags & FLAG_DRAINING != 0,
            leaving: flags & FLAG_LEAVING != 0,
            joining: flags & FLAG_JOINING != 0,
            priority,
            incarnation: u64_at(buffer, field::INCARNATION),
            sequence: u64_at(buffer, field::SEQUENCE),
            digest: u64_at(buffer, field::DIGEST),
            service_count,
            cluster,
            node,
            claims,
            eligible,
            witnesses,
        })
    }

    /// The witness entries.
    pub fn witnesses(&self) -> impl Iterator<Item = Witness> + 'a {
        self.witnesses
            .chunks_exact(WITNESS_LEN)
            .map(|entry| Witness {
                node: u32::from_be_bytes([entry[0], entry[1], entry[2], entry[3]]),
                incarnation: u32::from_be_bytes([entry[4], entry[5], entry[6], entry[7]]),
                age_ms: u16::from_be_bytes([entry[8], entry[9]]),
            })
    }

    /// Bytes the heartbeat takes, with a MAC when `authenticated`.
    pub fn buffer_len(&self, authenticated: bool) -> usize {
        field::NAMES
            + self.cluster.len()
            + self.node.len()
            + 2 * bitmap_len(self.service_count)
            + 1
            + self.witnesses.len()
            + if authenticated { MAC_LEN } else { 0 }
    }

    /// Writes the heartbeat into `buffer` and returns its length; with a
    /// key, appends the HMAC. Fails if a part is out of range or `buffer`
    /// is too short.
    pub fn emit(&self, buffer: &mut [u8], key: Option<&[u8]>) -> Result<usize> {
        let bitmap = bitmap_len(self.service_count);
        let witness_count = self.witnesses.len() / WITNESS_LEN;
        if self.cluster.is_empty()
            || self.cluster.len() > MAX_NAME
            || self.node.is_empty()
            || self.node.len() > MAX_NAME
            || usize::from(self.service_count) > MAX_SERVICES
            || self.claims.len() != bitmap
            || self.eligible.len() != bitmap
            || witness_count > MAX_WITNESSES
            || self.witnesses.len() % WITNESS_LEN != 0
            || self.priority == 0
        {
            return Err(Error::Malformed);
        }
        let len = self.buffer_len(key.is_some());
        let buffer = buffer.get_mut(..len).ok_or(Error::Truncated)?;
        buffer[field::MAGIC].copy_from_slice(&MAGIC);
        buffer[field::VERSION] = VERSION;
        let flag = |set: bool, bit: u8| if set { bit } else { 0 };
        buffer[field::FLAGS] = flag(self.draining, FLAG_DRAINING)
            | flag(self.leaving, FLAG_LEAVING)
            | flag(self.joining, FLAG_JOINING)
            | flag(key.is_some(), FLAG_AUTHENTICATED);
        buffer[field::PRIORITY] = self.priority;
        buffer[field::RESERVED] = 0;
        buffer[field::INCARNATION].copy_from_slice(&self.incarnation.to_be_bytes());
        buffer[field::SEQUENCE].copy_from_slice(&self.sequence.to_be_bytes());
        buffer[field::DIGEST].copy_from_slice(&self.digest.to_be_bytes());
        buffer[field::SERVICE_COUNT].copy_from_slice(&self.service_count.to_be_bytes());
        // Lengths checked above: both fit in a byte.
        buffer[field::CLUSTER_LEN] = self.cluster.len() as u8;
        buffer[field::NODE_LEN] = self.node.len() as u8;
        let mut at = field::NAMES;
        for part in [
            self.cluster.as_bytes(),
            self.node.as_bytes(),
            self.claims,
            self.eligible,
        ] {
            buffer[at..at + part.len()].copy_from_slice(part);
            at += part.len();
        }
        buffer[at] = witness_count as u8;
        at += 1;
        buffer[at..at + self.witnesses.len()].copy_from_slice(self.witnesses);
        at += self.witnesses.len();
        if let Some(key) = key {
            let tag = mac(key, &buffer[..at]);
            buffer[at..at + MAC_LEN].copy_from_slice(&tag);
        }
        Ok(len)
    }
}

/// Writes one witness entry into `out` (`WITNESS_LEN` bytes).
pub fn emit_witness(out: &mut [u8], witness: Witness) {
    out[0..4].copy_from_slice(&witness.node.to_be_bytes());
    out[4..8].copy_from_slice(&witness.incarnation.to_be_bytes());
    out[8..10].copy_from_slice(&witness.age_ms.to_be_bytes());
}

fn mac(key: &[u8], data: &[u8]) -> [u8; MAC_LEN] {
    // HMAC accepts keys of any length; this cannot fail.
    let mut hmac = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    hmac.update(data);
    hmac.finalize().into_bytes().into()
}

/// Whether an authenticated heartbeat's MAC is right for `key` (in
/// constant time). `false` for one that is not authenticated.
pub fn verify(buffer: &[u8], key: &[u8]) -> bool {
    let authenticated = buffer
        .get(field::FLAGS)
        .is_some_and(|f| f & FLAG_AUTHENTICATED != 0);
    if !authenticated || buffer.len() < field::NAMES + MAC_LEN {
        return false;
    }
    let (data, tag) = buffer.split_at(buffer.len() - MAC_LEN);
    let Ok(mut hmac) = <Hmac<Sha256> as Mac>::new_from_slice(key) else {
        return false;
    };
    hmac.update(data);
    hmac.verify_slice(tag).is_ok()
}

/// Whether a heartbeat says it carries a MAC.
pub fn is_authenticated(buffer: &[u8]) -> bool {
    buffer
        .get(field::FLAGS)
        .is_some_and(|f| f & FLAG_AUTHENTICATED != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Node n1's heartbeat, captured in the lab with `tests/lab/mcast.py
    /// listen` on the multicast group: cluster "lab", priority 150, owning
    /// both of two services, one witness (n2, 2 ms ago), signed with KEY.
    const CAPTURED: &str = "4c32564801049600499c12b35444e1dc000000000000002dd24d00af5fa9f9a5\
                            000203026c61626e31c0c0010735e0b9135117cc0002096d13f805b1e0076a25\
                            ed0fb7261a9362265dc34d8170188df08cc396c47dea";
    const KEY: &[u8] = b"lab-key-0123456789abcdef";

    fn captured() -> Vec<u8> {
        (0..CAPTURED.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&CAPTURED[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn deconstruct_captured() {
        let bytes = captured();
        let beat = Repr::parse(&bytes).unwrap();
        assert_eq!(beat.cluster, "lab");
        assert_eq!(beat.node, "n1");
        assert_eq!(beat.priority, 150);
        assert_eq!(beat.incarnation, 0x499c_12b3_5444_e1dc);
        assert_eq!(beat.sequence, 0x2d);
        assert_eq!(beat.service_count, 2);
        assert!(bit(beat.claims, 0) && bit(beat.claims, 1) && !bit(beat.claims, 2));
        assert!(!beat.draining && !beat.leaving && !beat.joining);
        let witnesses: Vec<Witness> = beat.witnesses().collect();
        assert_eq!(
            witnesses,
            vec![Witness {
                node: name_hash("n2"),
                incarnation: 0x1351_17cc,
                age_ms: 2
            }]
        );
        assert!(is_authenticated(&bytes));
        assert!(verify(&bytes, KEY));
        assert!(!verify(&bytes, b"another-key-0123456789"));
    }

    #[test]
    fn construct_matches_capture() {
        let bytes = captured();
        let beat = Repr::parse(&bytes).unwrap();
        let mut out = [0xa5u8; MAX_LEN];
        let len = beat.emit(&mut out, Some(KEY)).unwrap();
        assert_eq!(len, bytes.len());
        assert_eq!(out[..len], bytes[..]);
    }

    #[test]
    fn unauthenticated_round_trip_and_size() {
        let claims = [0xffu8; MAX_SERVICES / 8];
        let witnesses = [0x11u8; MAX_WITNESSES * WITNESS_LEN];
        let name = "n".repeat(MAX_NAME);
        let beat = Repr {
            draining: true,
            leaving: false,
            joining: true,
            priority: 255,
            incarnation: 1,
            sequence: 2,
            digest: 3,
            service_count: MAX_SERVICES as u16,
            cluster: &name,
            node: &name,
            claims: &claims,
            eligible: &claims,
            witnesses: &witnesses,
        };
        let mut out = [0u8; MAX_LEN];
        let len = beat.emit(&mut out, Some(KEY)).unwrap();
        assert_eq!(len, MAX_LEN);
        assert_eq!(Repr::parse(&out[..len]).unwrap(), beat);
        let len = beat.emit(&mut out, None).unwrap();
        assert_eq!(Repr::parse(&out[..len]).unwrap(), beat);
        assert!(!verify(&out[..len], KEY));
        assert_eq!(beat.emit(&mut out[..len - 1], None), Err(Error::Truncated));
    }

    #[test]
    fn rejects() {
        let bytes = captured();
        for len in 0..bytes.len() {
            let error = Repr::parse(&bytes[..len]).unwrap_err();
            assert!(
                matches!(error, Error::Truncated | Error::Malformed),
                "length {len}: {error:?}"
            );
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(Repr::parse(&longer), Err(Error::Malformed));
        let edit = |at: usize, value: u8| {
            let mut copy = bytes.clone();
            copy[at] = value;
            Repr::parse(&copy).map(|_| ())
        };
        assert_eq!(edit(0, b'X'), Err(Error::Malformed), "magic");
        assert_eq!(edit(4, 2), Err(Error::Unsupported), "version");
        assert_eq!(edit(5, 0x44), Err(Error::Malformed), "unknown flag");
        assert_eq!(edit(6, 0), Err(Error::Malformed), "priority 0");
        assert_eq!(edit(7, 1), Err(Error::Malformed), "reserved");
        assert_eq!(edit(32, 0x04), Err(Error::Malformed), "over 1024 services");
        assert_eq!(edit(34, 0), Err(Error::Malformed), "empty cluster name");
        assert_eq!(edit(36, b' '), Err(Error::Malformed), "bad name byte");
        assert_eq!(
            edit(41, 0xc1),
            Err(Error::Malformed),
            "bit past the last service"
        );
        assert_eq!(edit(43, 33), Err(Error::Malformed), "too many witnesses");
        // Unauthenticated but with 32 trailing bytes.
        assert_eq!(edit(5, 0x00), Err(Error::Malformed));
        // Any change breaks the MAC.
        let mut tampered = bytes.clone();
        tampered[6] = 255;
        assert!(Repr::parse(&tampered).is_ok());
        assert!(!verify(&tampered, KEY));
        assert!(!verify(&bytes[..10], KEY));
    }

    #[test]
    fn bitmaps() {
        let mut map = [0u8; 2];
        set_bit(&mut map, 0, true);
        set_bit(&mut map, 9, true);
        set_bit(&mut map, 99, true);
        assert_eq!(map, [0x80, 0x40]);
        assert!(bit(&map, 9) && !bit(&map, 8) && !bit(&map, 99));
        set_bit(&mut map, 9, false);
        assert_eq!(map, [0x80, 0]);
        assert_eq!(bitmap_len(0), 0);
        assert_eq!(bitmap_len(9), 2);
    }

    /// A heartbeat of every version a release still reads (see
    /// docs/compatibility.md), kept as bytes: version 1, as the first
    /// release sends it (node r1 of cluster l2vip, priority 150, 2
    /// services, the first owned, one witness, signed with the lab key).
    const VERSION_1: [u8; 88] = [
        0x4c, 0x32, 0x56, 0x48, 0x01, 0x04, 0x96, 0x00, 0x00, 0x00, 0x6b, 0x13, 0xb2, 0x1e, 0x42,
        0xc1, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x12, 0x67, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab,
        0xcd, 0xef, 0x00, 0x02, 0x05, 0x02, 0x6c, 0x32, 0x76, 0x69, 0x70, 0x72, 0x31, 0x80, 0xc0,
        0x01, 0x0f, 0x54, 0x02, 0x65, 0x6b, 0x13, 0xb2, 0x1e, 0x03, 0x48, 0xf5, 0x4e, 0x7a, 0x4b,
        0x3d, 0xae, 0xac, 0x72, 0x72, 0x18, 0xcd, 0x76, 0x19, 0x14, 0x0d, 0xd9, 0x0e, 0xbb, 0x3b,
        0x99, 0x67, 0x95, 0x0e, 0x19, 0x95, 0xc2, 0x77, 0xb9, 0xb4, 0xcd, 0x77, 0x99,
    ];

    #[test]
    fn a_heartbeat_of_every_supported_version_is_still_understood() {
        let beat = Repr::parse(&VERSION_1).expect("version 1 parses");
        assert!(verify(&VERSION_1, b"lab-secret-0123456789abcdef"));
        assert_eq!(
            (beat.cluster, beat.node, beat.priority),
            ("l2vip", "r1", 150)
        );
        assert_eq!((beat.incarnation, beat.sequence), (0x6b13_b21e_42c1, 4711));
        assert_eq!(
            (beat.digest, beat.service_count),
            (0x0123_4567_89ab_cdef, 2)
        );
        assert_eq!((beat.claims, beat.eligible), (&[0x80][..], &[0xc0][..]));
        assert!(!beat.draining && !beat.leaving && !beat.joining);
        let witnesses: Vec<Witness> = beat.witnesses().collect();
        assert_eq!(witnesses.len(), 1);
        let witness = witnesses[0];
        assert_eq!(
            (witness.node, witness.incarnation, witness.age_ms),
            (name_hash("r2"), 0x6b13_b21e, 840)
        );
        // And this release still writes it byte for byte.
        let mut out = [0u8; MAX_LEN];
        let len = beat
            .emit(&mut out, Some(b"lab-secret-0123456789abcdef"))
            .expect("emits");
        assert_eq!(out[..len], VERSION_1[..]);
    }
}
