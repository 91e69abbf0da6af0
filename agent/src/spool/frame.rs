//! On-disk record framing: `magic | crc32 | length | sequence | timestamp | priority | payload`.
//!
//! All integers are little-endian. The CRC32 covers every byte after itself (length through
//! payload), so a torn or bit-flipped record is detected, and the magic gives recovery a
//! pattern to resynchronise on after a damaged region.

use serde::Serialize;

/// Marks the start of every frame (`VSR1`: Vedette spool record, format 1).
pub const FRAME_MAGIC: [u8; 4] = *b"VSR1";

/// Bytes a frame adds around its payload: magic 4, crc 4, length 4, sequence 8, timestamp 8,
/// priority 1.
pub const FRAME_OVERHEAD: usize = 29;

/// Largest payload the format accepts (a larger length field is treated as corruption).
pub const MAX_PAYLOAD_BYTES: usize = 16 * 1024 * 1024;

/// How much an entry matters when the spool must drop something; lower ranks go first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    /// A batch of check results: dropped first under pressure.
    Result = 0,
    /// A periodic keepalive with summary counts: a newer one supersedes it.
    Keepalive = 1,
    /// A check changed state: kept longest.
    StateChange = 2,
}

impl Priority {
    /// Every priority, lowest (dropped first) to highest.
    pub const ALL: [Priority; 3] = [Priority::Result, Priority::Keepalive, Priority::StateChange];

    /// Position in [`Priority::ALL`] (also the byte stored in a frame).
    pub fn index(self) -> usize {
        self as usize
    }

    /// The priority stored as `byte` in a frame, if it is one.
    pub fn from_byte(byte: u8) -> Option<Priority> {
        Priority::ALL.get(usize::from(byte)).copied()
    }

    /// Name used for the priority's directory and in stats.
    pub fn name(self) -> &'static str {
        match self {
            Priority::Result => "result",
            Priority::Keepalive => "keepalive",
            Priority::StateChange => "state_change",
        }
    }
}

/// A decoded frame header plus where its payload sits in the buffer it was decoded from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// Sequence number.
    pub sequence: u64,
    /// Unix time in milliseconds when the entry was appended.
    pub timestamp_ms: u64,
    /// Priority of the entry.
    pub priority: Priority,
    /// Payload length in bytes.
    pub payload_len: usize,
}

impl FrameHeader {
    /// Total size of the frame on disk.
    pub fn frame_len(&self) -> usize {
        FRAME_OVERHEAD + self.payload_len
    }
}

/// Why bytes at some offset are not a valid frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invalid {
    /// The first four bytes are not [`FRAME_MAGIC`].
    BadMagic,
    /// The length field exceeds [`MAX_PAYLOAD_BYTES`].
    LengthTooLarge,
    /// The stored CRC does not match the bytes.
    CrcMismatch,
    /// The priority byte is not a known priority.
    BadPriority,
}

/// Result of decoding the bytes at the start of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decoded {
    /// A complete, checksummed frame.
    Frame(FrameHeader),
    /// The buffer ends before the frame does (a torn tail if nothing valid follows).
    Incomplete,
    /// The bytes are not a frame.
    Invalid(Invalid),
}

/// Appends the frame for one entry to `out`.
pub fn encode(
    out: &mut Vec<u8>,
    sequence: u64,
    timestamp_ms: u64,
    priority: Priority,
    payload: &[u8],
) {
    let start = out.len();
    out.extend_from_slice(&FRAME_MAGIC);
    out.extend_from_slice(&[0; 4]);
    let len = u32::try_from(payload.len()).expect("payload length checked by the caller");
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&sequence.to_le_bytes());
    out.extend_from_slice(&timestamp_ms.to_le_bytes());
    out.push(priority as u8);
    out.extend_from_slice(payload);
    let crc = crc32fast::hash(&out[start + 8..]);
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// Decodes the frame at the start of `buf` (which may hold more bytes after it).
pub fn decode(buf: &[u8]) -> Decoded {
    if buf.len() < 4 {
        return if FRAME_MAGIC.starts_with(buf) {
            Decoded::Incomplete
        } else {
            Decoded::Invalid(Invalid::BadMagic)
        };
    }
    if buf[..4] != FRAME_MAGIC {
        return Decoded::Invalid(Invalid::BadMagic);
    }
    if buf.len() < FRAME_OVERHEAD {
        return Decoded::Incomplete;
    }
    let payload_len = u32_at(buf, 8) as usize;
    if payload_len > MAX_PAYLOAD_BYTES {
        return Decoded::Invalid(Invalid::LengthTooLarge);
    }
    let frame_len = FRAME_OVERHEAD + payload_len;
    if buf.len() < frame_len {
        return Decoded::Incomplete;
    }
    if crc32fast::hash(&buf[8..frame_len]) != u32_at(buf, 4) {
        return Decoded::Invalid(Invalid::CrcMismatch);
    }
    let Some(priority) = Priority::from_byte(buf[28]) else {
        return Decoded::Invalid(Invalid::BadPriority);
    };
    Decoded::Frame(FrameHeader {
        sequence: u64_at(buf, 12),
        timestamp_ms: u64_at(buf, 20),
        priority,
        payload_len,
    })
}

fn u32_at(buf: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(buf[at..at + 4].try_into().expect("four bytes"))
}

fn u64_at(buf: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(buf[at..at + 8].try_into().expect("eight bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(sequence: u64, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        encode(
            &mut out,
            sequence,
            1_700_000_000_000,
            Priority::Keepalive,
            payload,
        );
        out
    }

    #[test]
    fn round_trips_header_and_payload() {
        let buf = frame(42, b"hello");
        assert_eq!(buf.len(), FRAME_OVERHEAD + 5);
        let Decoded::Frame(header) = decode(&buf) else {
            panic!("not a frame")
        };
        assert_eq!(
            header,
            FrameHeader {
                sequence: 42,
                timestamp_ms: 1_700_000_000_000,
                priority: Priority::Keepalive,
                payload_len: 5
            }
        );
        assert_eq!(&buf[FRAME_OVERHEAD..], b"hello");
    }

    #[test]
    fn every_prefix_is_incomplete_not_invalid() {
        let buf = frame(7, b"payload bytes");
        for cut in 0..buf.len() {
            assert_eq!(decode(&buf[..cut]), Decoded::Incomplete, "cut at {cut}");
        }
    }

    #[test]
    fn any_flipped_bit_after_the_magic_is_detected() {
        let buf = frame(7, b"payload bytes");
        for byte in 4..buf.len() {
            for bit in 0..8 {
                let mut damaged = buf.clone();
                damaged[byte] ^= 1 << bit;
                let decoded = decode(&damaged);
                assert!(
                    !matches!(decoded, Decoded::Frame(_)),
                    "flip {byte}:{bit} decoded as {decoded:?}"
                );
            }
        }
    }

    #[test]
    fn rejects_bad_magic_and_huge_lengths() {
        let mut buf = frame(1, b"x");
        buf[0] = b'X';
        assert_eq!(decode(&buf), Decoded::Invalid(Invalid::BadMagic));
        let mut buf = frame(1, b"x");
        buf[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(decode(&buf), Decoded::Invalid(Invalid::LengthTooLarge));
        assert_eq!(decode(b"ab"), Decoded::Invalid(Invalid::BadMagic));
    }

    #[test]
    fn unknown_priority_is_invalid_even_with_a_good_crc() {
        let mut buf = frame(1, b"x");
        buf[28] = 9;
        let crc = crc32fast::hash(&buf[8..]);
        buf[4..8].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(decode(&buf), Decoded::Invalid(Invalid::BadPriority));
    }
}
