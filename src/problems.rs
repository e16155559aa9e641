//! Problems found in the data (one row each in `errors()`) and the fatal error type.

use std::fmt;

/// What kind of problem a [`Problem`] row reports. The snake_case names are the
/// `kind` strings of the Python `errors()` table and are part of the API.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProblemKind {
    /// A top-level block header that cannot be valid (size too small for its header words).
    BadBlockHeader,
    /// A block whose size runs past the end of the data (truncated file or corrupt size).
    BlockOverrun,
    /// A block whose size does not land on another valid block header: bytes skipped up to
    /// the next place where the chain of block sizes resumes.
    BadChain,
    /// A single byte left over at the end of the data.
    TrailingByte,
    /// A science event without a JMDC sub-block first.
    JmdcMissing,
    /// A 2007-layout JMDC header too short for words 0-10 (SIZE 24 or 34 expected).
    JmdcSize,
    /// A JMDC sub-block whose size (24/34) disagrees with its GPS flag.
    JmdcGpsMismatch,
    /// A flight JMDC header too short for words 0-5 or for the records its TYPE announces
    /// (or a record that overruns it).
    JmdcShort,
    /// A JMDC header with words after its fields (2007) or its records (flight), kept.
    JmdcExtraWords,
    /// A flight level-3 record whose length is not 9 bytes (kept).
    Level3Length,
    /// A flight GPS record whose length is not odd with (N + 1) % 4 == 0 and <= 7 values.
    GpsLength,
    /// A flight-layout node status whose CDP bit disagrees with the node's role.
    CdpMismatch,
    /// A JINJ port not used in flight data (24..31), walked as a leaf.
    UnknownPort,
    /// A Huffman-coded group whose stream cannot be decoded (FORMAT.md 9.3).
    HuffmanInvalid,
    /// A sub-block of a type that does not belong in an event (skipped).
    UnknownSubblock,
    /// A sub-block out of order (a second JMDC, a group after the Level-3 sub-block).
    SubblockOrder,
    /// A second Level-3 sub-block (skipped).
    DuplicateLevel3,
    /// A sub-block whose size runs past the end of its event.
    SubblockOverrun,
    /// A group sub-block too short for event number, status and CRC, or with an odd size.
    GroupMalformed,
    /// A group whose CRC-16 does not check.
    CrcMismatch,
    /// A group whose event number is not the low 16 bits of the JMDC event number.
    GroupEventNumber,
    /// A fragment whose length runs past the end of its parent (fragments do not tile it).
    FragmentOverrun,
    /// A fragment of length 0 (no node status word).
    FragmentEmpty,
    /// A JINF-U slave whose slave ID is not 0..23 (UDR index = slave ID // 4).
    UdrSlaveId,
    /// A UDR fragment with neither RAW nor COMPRESSED set in its status.
    UdrMode,
    /// Raw UDR data shorter than 448 words, or raw-only data longer than 448 words.
    UdrRawLength,
    /// Compressed UDR data with an odd number of words (the last word is ignored).
    UdrOddCompressed,
    /// A compressed hit with a channel number above 447.
    TrdChannelRange,
    /// A compressed hit on a link with no module connected.
    TrdNotConnected,
    /// A CCSDS packet whose length field runs past the end of the file (truncated last packet).
    PacketOverrun,
    /// A CCSDS primary header whose version is not 0.
    PacketVersion,
    /// Bytes between packets that are not a plausible packet (skipped up to the next one).
    PacketGarbage,
    /// Packets missing from an APID's sequence count.
    SequenceGap,
    /// A health-and-status packet whose subset ID is not 308 (not decoded).
    HealthSubset,
    /// A command packet whose checksum word does not check.
    CommandChecksum,
    /// Science-stream bytes dropped because a sequence gap cut the block they belong to.
    StreamGap,
    /// An envelope's inner block that overruns it or cannot be read (FORMAT.md 10).
    EnvelopeOverrun,
    /// An envelope deeper than FORMAT.md 10 walks (its inside is not walked).
    EnvelopeDepth,
    /// A LEF reply whose data are neither a raw event (1794 bytes) nor empty (11.1).
    LefPayload,
    /// The file is read in a dialect (FORMAT.md 11.2): one row per file.
    Dialect,
    /// The file shrank, was modified or could not be read while it was open: what was
    /// decoded from it is not trusted (a `FormatError`, or the error row of a skipped file).
    FileChanged,
}

impl ProblemKind {
    /// Every kind, in declaration order.
    pub const ALL: [ProblemKind; 41] = [
        ProblemKind::BadBlockHeader,
        ProblemKind::BlockOverrun,
        ProblemKind::BadChain,
        ProblemKind::TrailingByte,
        ProblemKind::JmdcMissing,
        ProblemKind::JmdcSize,
        ProblemKind::JmdcGpsMismatch,
        ProblemKind::JmdcShort,
        ProblemKind::JmdcExtraWords,
        ProblemKind::Level3Length,
        ProblemKind::GpsLength,
        ProblemKind::CdpMismatch,
        ProblemKind::UnknownPort,
        ProblemKind::HuffmanInvalid,
        ProblemKind::UnknownSubblock,
        ProblemKind::SubblockOrder,
        ProblemKind::DuplicateLevel3,
        ProblemKind::SubblockOverrun,
        ProblemKind::GroupMalformed,
        ProblemKind::CrcMismatch,
        ProblemKind::GroupEventNumber,
        ProblemKind::FragmentOverrun,
        ProblemKind::FragmentEmpty,
        ProblemKind::UdrSlaveId,
        ProblemKind::UdrMode,
        ProblemKind::UdrRawLength,
        ProblemKind::UdrOddCompressed,
        ProblemKind::TrdChannelRange,
        ProblemKind::TrdNotConnected,
        ProblemKind::PacketOverrun,
        ProblemKind::PacketVersion,
        ProblemKind::PacketGarbage,
        ProblemKind::SequenceGap,
        ProblemKind::HealthSubset,
        ProblemKind::CommandChecksum,
        ProblemKind::StreamGap,
        ProblemKind::EnvelopeOverrun,
        ProblemKind::EnvelopeDepth,
        ProblemKind::LefPayload,
        ProblemKind::Dialect,
        ProblemKind::FileChanged,
    ];

    /// The `kind` string of the `errors()` table.
    pub fn name(self) -> &'static str {
        match self {
            ProblemKind::BadBlockHeader => "bad_block_header",
            ProblemKind::BlockOverrun => "block_overrun",
            ProblemKind::BadChain => "bad_chain",
            ProblemKind::TrailingByte => "trailing_byte",
            ProblemKind::JmdcMissing => "jmdc_missing",
            ProblemKind::JmdcSize => "jmdc_size",
            ProblemKind::JmdcGpsMismatch => "jmdc_gps_mismatch",
            ProblemKind::JmdcShort => "jmdc_short",
            ProblemKind::JmdcExtraWords => "jmdc_extra_words",
            ProblemKind::Level3Length => "level3_length",
            ProblemKind::GpsLength => "gps_length",
            ProblemKind::CdpMismatch => "cdp_mismatch",
            ProblemKind::UnknownPort => "unknown_port",
            ProblemKind::HuffmanInvalid => "huffman_invalid",
            ProblemKind::UnknownSubblock => "unknown_subblock",
            ProblemKind::SubblockOrder => "subblock_order",
            ProblemKind::DuplicateLevel3 => "duplicate_level3",
            ProblemKind::SubblockOverrun => "subblock_overrun",
            ProblemKind::GroupMalformed => "group_malformed",
            ProblemKind::CrcMismatch => "crc_mismatch",
            ProblemKind::GroupEventNumber => "group_event_number",
            ProblemKind::FragmentOverrun => "fragment_overrun",
            ProblemKind::FragmentEmpty => "fragment_empty",
            ProblemKind::UdrSlaveId => "udr_slave_id",
            ProblemKind::UdrMode => "udr_mode",
            ProblemKind::UdrRawLength => "udr_raw_length",
            ProblemKind::UdrOddCompressed => "udr_odd_compressed",
            ProblemKind::TrdChannelRange => "trd_channel_range",
            ProblemKind::TrdNotConnected => "trd_not_connected",
            ProblemKind::PacketOverrun => "packet_overrun",
            ProblemKind::PacketVersion => "packet_version",
            ProblemKind::PacketGarbage => "packet_garbage",
            ProblemKind::SequenceGap => "sequence_gap",
            ProblemKind::HealthSubset => "health_subset",
            ProblemKind::CommandChecksum => "command_checksum",
            ProblemKind::StreamGap => "stream_gap",
            ProblemKind::EnvelopeOverrun => "envelope_overrun",
            ProblemKind::EnvelopeDepth => "envelope_depth",
            ProblemKind::LefPayload => "lef_payload",
            ProblemKind::Dialect => "dialect",
            ProblemKind::FileChanged => "file_changed",
        }
    }
}

impl fmt::Display for ProblemKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One problem found in the data: a row of `errors()`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// Byte offset in the file (or stream) where the problem is.
    pub offset: u64,
    /// Row of the science event in `events()`, or -1 when not inside an event.
    pub event_index: i64,
    /// What kind of problem.
    pub kind: ProblemKind,
    /// A sentence for a person: what was expected and what was found.
    pub detail: String,
}

impl Problem {
    /// A problem outside any event.
    pub fn new(offset: usize, kind: ProblemKind, detail: impl Into<String>) -> Problem {
        Problem {
            offset: offset as u64,
            event_index: -1,
            kind,
            detail: detail.into(),
        }
    }

    /// A problem inside event `event_index`.
    pub fn in_event(
        offset: usize,
        event_index: i64,
        kind: ProblemKind,
        detail: impl Into<String>,
    ) -> Problem {
        Problem {
            offset: offset as u64,
            event_index,
            kind,
            detail: detail.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte {}", self.kind, self.offset)?;
        if self.event_index >= 0 {
            write!(f, " (event {})", self.event_index)?;
        }
        write!(f, ": {}", self.detail)
    }
}

/// A fatal error: the input cannot be read as asked.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The data are not what was expected, at a byte offset.
    #[error("{what} (at byte {offset})")]
    Format {
        /// Byte offset of the problem.
        offset: u64,
        /// What was wrong.
        what: String,
    },
    /// An argument is out of range or of the wrong value.
    #[error("{0}")]
    Value(String),
    /// The file shrank, was modified or could not be read while it was open
    /// ([`ProblemKind::FileChanged`]): what was decoded from it is not trusted.
    #[error("file_changed: {0}")]
    FileChanged(String),
    /// An operating-system error (file missing, unreadable, ...).
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl Error {
    /// A format error at a byte offset.
    pub fn format(offset: usize, what: impl Into<String>) -> Error {
        Error::Format {
            offset: offset as u64,
            what: what.into(),
        }
    }
}

impl From<Problem> for Error {
    fn from(p: Problem) -> Error {
        Error::Format {
            offset: p.offset,
            what: format!("{}: {}", p.kind, p.detail),
        }
    }
}

/// The crate's result type.
pub type Result<T> = std::result::Result<T, Error>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_names_are_unique_snake_case() {
        let mut names: Vec<&str> = ProblemKind::ALL.iter().map(|k| k.name()).collect();
        assert!(names.iter().all(|n| n
            .chars()
            .all(|c| c.is_ascii_lowercase() || c == '_' || c.is_ascii_digit())));
        names.sort();
        names.dedup();
        assert_eq!(names.len(), ProblemKind::ALL.len());
    }

    #[test]
    fn problem_display_names_offset_and_event() {
        let p = Problem::in_event(10, 3, ProblemKind::CrcMismatch, "expected 0x1234");
        assert_eq!(
            p.to_string(),
            "crc_mismatch at byte 10 (event 3): expected 0x1234"
        );
    }
}
