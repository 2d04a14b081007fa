//! Pure packet formats: views over byte buffers and small `Repr`s.
//!
//! Nothing here allocates, performs I/O or logs. Each protocol has a
//! zero-copy `Packet<T: AsRef<[u8]>>` view whose `new_checked` validates
//! lengths, and a `Copy` `Repr` with `parse`, `buffer_len` and `emit`.

pub mod arp;
#[cfg(test)]
pub(crate) mod captures;
pub mod ethernet;
pub mod heartbeat;
pub mod icmpv6;
pub mod ipv6;
pub mod netlink;

use core::fmt;

pub use ethernet::EthernetAddress;

/// Why a buffer could not be read as a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// The buffer is shorter than the headers or lengths it announces.
    Truncated,
    /// A field holds a value this format does not allow.
    Malformed,
    /// A well-formed packet of a kind we do not handle.
    Unsupported,
    /// The checksum does not match the contents.
    Checksum,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Error::Truncated => "truncated",
            Error::Malformed => "malformed",
            Error::Unsupported => "unsupported",
            Error::Checksum => "bad checksum",
        })
    }
}

/// Result of parsing a wire format.
pub type Result<T> = core::result::Result<T, Error>;

/// Reads a big-endian u16 at `offset`; callers have checked the length.
pub(crate) fn read_u16(buffer: &[u8], offset: usize) -> u16 {
    u16::from_be_bytes([buffer[offset], buffer[offset + 1]])
}

/// Writes a big-endian u16 at `offset`; callers have checked the length.
pub(crate) fn write_u16(buffer: &mut [u8], offset: usize, value: u16) {
    buffer[offset..offset + 2].copy_from_slice(&value.to_be_bytes());
}

/// The Internet checksum (RFC 1071) as a running one's-complement sum.
pub mod checksum {
    /// Adds `data` to the 32-bit accumulator, 16 bits at a time.
    pub fn accumulate(mut sum: u32, data: &[u8]) -> u32 {
        let mut chunks = data.chunks_exact(2);
        for pair in &mut chunks {
            sum += u32::from(u16::from_be_bytes([pair[0], pair[1]]));
        }
        if let [last] = chunks.remainder() {
            sum += u32::from(*last) << 8;
        }
        sum
    }

    /// Folds the accumulator into the final one's-complement checksum.
    pub fn finish(mut sum: u32) -> u16 {
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        !(sum as u16)
    }
}
