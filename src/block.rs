//! AMS block headers (FORMAT.md section 2).
//!
//! ```text
//! L | SIZE (15 bits)                          primary header
//! (SIZE_EXT, only if L = 1)
//! RR | RW | NODE (9 bits) | TYPE (5 bits)
//! (TYPE_EXT, only if TYPE = 0x1F)
//! STATUS-or-FBI (4 bits) | TAG (12 bits)      secondary header, top-level blocks only
//! TIME MSW, TIME LSW                          only in replies (RR = 1) of top-level blocks
//! DATA ...
//! ```

use nom::IResult;

use crate::words::{nom_word, Order};

/// `TYPE` value that announces a `TYPE_EXT` word.
pub const TYPE_EXTENDED: u8 = 0x1F;

/// A decoded block header, with the byte positions of the block's parts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BlockHeader {
    /// Byte offset of the first size word.
    pub offset: usize,
    /// SIZE: the number of bytes after the size word(s).
    pub size: u32,
    /// L: the size takes two words.
    pub long: bool,
    /// RR: 1 for a reply.
    pub rr: bool,
    /// RW: 1 for write only.
    pub rw: bool,
    /// NODE (9 bits).
    pub node: u16,
    /// TYPE (5 bits).
    pub type_: u8,
    /// TYPE_EXT, 0 if absent.
    pub type_ext: u16,
    /// Whether a secondary header was read (top-level blocks).
    pub top: bool,
    /// STATUS (replies) or FBI (requests): the top 4 bits of the secondary header.
    pub status: u8,
    /// TAG: the low 12 bits of the secondary header.
    pub tag: u16,
    /// TIME (replies of top-level blocks), 0 otherwise.
    pub time: u32,
    /// Byte offset of the first data byte (after every header word).
    pub data_start: usize,
    /// Byte offset just past the last data byte: `offset + size words + SIZE`.
    pub data_end: usize,
    /// Byte offset of the next block: `data_end` rounded up to a whole word counted from
    /// the block's own start (`offset + size words + SIZE + SIZE % 2`), so that a block
    /// at an odd offset (data shifted by an odd number of bytes) chains like any other.
    pub next: usize,
}

impl BlockHeader {
    /// The combined data type: `0x1F << 16 | TYPE_EXT` when extended, else `TYPE`.
    pub fn data_type(&self) -> u32 {
        if self.type_ == TYPE_EXTENDED {
            (u32::from(TYPE_EXTENDED) << 16) | u32::from(self.type_ext)
        } else {
            u32::from(self.type_)
        }
    }

    /// Number of whole data words (a trailing odd byte is not counted).
    pub fn data_words(&self) -> usize {
        self.data_end.saturating_sub(self.data_start) / 2
    }

    /// Whether this top-level block is a science event (FORMAT.md section 4).
    pub fn is_science_event(&self) -> bool {
        crate::jmdc::is_event(self)
    }
}

/// Why a header could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderError {
    /// Fewer bytes remain than the header words need.
    Truncated {
        /// Bytes the header words need.
        need: usize,
        /// Bytes available.
        have: usize,
    },
    /// SIZE cannot hold the header words that follow the size word(s).
    TooSmall {
        /// SIZE as read.
        size: u32,
        /// The smallest SIZE that holds the header.
        need: u32,
    },
    /// The block runs past the end of its enclosing region.
    Overrun {
        /// Where the block would end.
        end: u64,
        /// Where the region ends.
        limit: usize,
    },
}

impl HeaderError {
    /// A sentence describing the error.
    pub fn describe(&self) -> String {
        match *self {
            HeaderError::Truncated { need, have } => {
                format!("block header needs {need} bytes, only {have} remain")
            }
            HeaderError::TooSmall { size, need } => {
                format!("SIZE {size} cannot hold the header words (needs at least {need})")
            }
            HeaderError::Overrun { end, limit } => {
                format!("block would end at byte {end}, past the end of its data at byte {limit}")
            }
        }
    }
}

/// The raw header words, as parsed by nom.
struct RawHeader {
    long: bool,
    size: u32,
    id: u16,
    type_ext: Option<u16>,
    secondary: Option<u16>,
    time: Option<u32>,
    header_bytes: usize,
}

fn raw_header<O: Order>(input: &[u8], top: bool) -> IResult<&[u8], RawHeader> {
    let (i, w0) = nom_word::<O>(input)?;
    let long = w0 & 0x8000 != 0;
    let (i, size) = if long {
        let (i, ext) = nom_word::<O>(i)?;
        (i, (u32::from(w0 & 0x7FFF) << 16) | u32::from(ext))
    } else {
        (i, u32::from(w0 & 0x7FFF))
    };
    let (i, id) = nom_word::<O>(i)?;
    let (i, type_ext) = if (id & 0x1F) as u8 == TYPE_EXTENDED {
        let (i, x) = nom_word::<O>(i)?;
        (i, Some(x))
    } else {
        (i, None)
    };
    let (i, secondary, time) = if top {
        let (i, sec) = nom_word::<O>(i)?;
        if id & 0x8000 != 0 {
            let (i, hi) = nom_word::<O>(i)?;
            let (i, lo) = nom_word::<O>(i)?;
            (i, Some(sec), Some((u32::from(hi) << 16) | u32::from(lo)))
        } else {
            (i, Some(sec), None)
        }
    } else {
        (i, None, None)
    };
    let header_bytes = input.len() - i.len();
    Ok((
        i,
        RawHeader {
            long,
            size,
            id,
            type_ext,
            secondary,
            time,
            header_bytes,
        },
    ))
}

/// Reads the header of the block at byte `pos` of `bytes`, which must end at or before
/// `limit` (the end of the enclosing region). `top` selects a top-level block (with its
/// secondary header and, in replies, TIME) or a sub-block.
#[inline]
pub fn parse<O: Order>(
    bytes: &[u8],
    pos: usize,
    limit: usize,
    top: bool,
) -> Result<BlockHeader, HeaderError> {
    let limit = limit.min(bytes.len());
    let region = bytes.get(pos..limit).unwrap_or(&[]);
    let raw = match raw_header::<O>(region, top) {
        Ok((_, raw)) => raw,
        Err(_) => {
            return Err(HeaderError::Truncated {
                need: minimum_header_bytes::<O>(region, top),
                have: region.len(),
            })
        }
    };
    let size_words = if raw.long { 4 } else { 2 };
    let need = (raw.header_bytes - size_words) as u32;
    if raw.size < need {
        return Err(HeaderError::TooSmall {
            size: raw.size,
            need,
        });
    }
    let data_end = pos as u64 + size_words as u64 + u64::from(raw.size);
    // Padding is to a whole word of the block itself, not of the file: relative to `pos`.
    let next = data_end + u64::from(raw.size & 1);
    if next > limit as u64 {
        return Err(HeaderError::Overrun { end: next, limit });
    }
    let secondary = raw.secondary.unwrap_or(0);
    Ok(BlockHeader {
        offset: pos,
        size: raw.size,
        long: raw.long,
        rr: raw.id & 0x8000 != 0,
        rw: raw.id & 0x4000 != 0,
        node: (raw.id >> 5) & 0x1FF,
        type_: (raw.id & 0x1F) as u8,
        type_ext: raw.type_ext.unwrap_or(0),
        top,
        status: (secondary >> 12) as u8,
        tag: secondary & 0x0FFF,
        time: raw.time.unwrap_or(0),
        data_start: pos + raw.header_bytes,
        data_end: data_end as usize,
        next: next as usize,
    })
}

/// The number of header bytes a block at the start of `region` would need, for messages.
fn minimum_header_bytes<O: Order>(region: &[u8], top: bool) -> usize {
    let word = |i: usize| region.get(i..i + 2).map(|b| O::word([b[0], b[1]]));
    let mut need = 2;
    let Some(w0) = word(0) else { return need };
    if w0 & 0x8000 != 0 {
        need += 2;
    }
    need += 2;
    let Some(id) = word(need - 2) else {
        return need + if top { 2 } else { 0 };
    };
    if (id & 0x1F) as u8 == TYPE_EXTENDED {
        need += 2;
    }
    if top {
        need += 2;
        if id & 0x8000 != 0 {
            need += 4;
        }
    }
    need
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::words::{Be, Le};

    fn be(words: &[u16]) -> Vec<u8> {
        words.iter().flat_map(|w| w.to_be_bytes()).collect()
    }
    fn le(words: &[u16]) -> Vec<u8> {
        words.iter().flat_map(|w| w.to_le_bytes()).collect()
    }

    #[test]
    fn science_event_header_from_format_md() {
        // A reply from JMDC node 1, TYPE 5, STATUS 0, TAG 0x123, TIME 0x12345678, 2 data words.
        let id = 0x8000 | (1 << 5) | 5;
        let words = [12u16, id, 0x0123, 0x1234, 0x5678, 0xAAAA, 0xBBBB];
        for bytes in [be(&words), le(&words)] {
            let h = if bytes == be(&words) {
                parse::<Be>(&bytes, 0, bytes.len(), true)
            } else {
                parse::<Le>(&bytes, 0, bytes.len(), true)
            }
            .expect("valid header");
            assert_eq!(h.size, 12);
            assert!(!h.long && h.rr && !h.rw);
            assert_eq!((h.node, h.type_, h.type_ext), (1, 5, 0));
            assert_eq!((h.status, h.tag, h.time), (0, 0x123, 0x1234_5678));
            assert_eq!((h.data_start, h.data_end, h.next), (10, 14, 14));
            assert_eq!(h.data_type(), 5);
            assert!(h.is_science_event());
        }
    }

    #[test]
    fn long_size_type_ext_and_request_without_time() {
        // L = 1, SIZE = 0x0000_0008; request (RR = 0, RW = 1) to node 300 with TYPE_EXT 0x0042.
        let id = 0x4000 | (300 << 5) | 0x1F;
        let words = [0x8000u16, 8, id, 0x0042, 0x5FFF, 0xCAFE];
        let bytes = be(&words);
        let h = parse::<Be>(&bytes, 0, bytes.len(), true).expect("valid");
        assert!(h.long && !h.rr && h.rw);
        assert_eq!((h.node, h.type_, h.type_ext), (300, 0x1F, 0x42));
        assert_eq!(h.data_type(), 0x1F_0042);
        assert_eq!((h.status, h.tag, h.time), (5, 0xFFF, 0));
        assert_eq!((h.data_start, h.data_end, h.next), (10, 12, 12));
        assert!(!h.is_science_event());
    }

    #[test]
    fn odd_size_pads_to_the_next_word() {
        // Sub-block with SIZE 3: ID word and one data byte in the high half of the last word.
        let words = [3u16, 0x0021, 0xAB00, 0x0002, 0x0001];
        let bytes = be(&words);
        let h = parse::<Be>(&bytes, 0, bytes.len(), false).expect("valid");
        assert_eq!((h.data_start, h.data_end, h.next), (4, 5, 6));
        let h2 = parse::<Be>(&bytes, h.next, bytes.len(), false).expect("next block");
        assert_eq!((h2.size, h2.node, h2.type_), (2, 0, 1));
        // The same block one byte later: the padding is counted from the block's start.
        let mut shifted = vec![0xEEu8];
        shifted.extend(&bytes);
        let h = parse::<Be>(&shifted, 1, shifted.len(), false).expect("valid at an odd offset");
        assert_eq!((h.data_start, h.data_end, h.next), (5, 6, 7));
        let h2 = parse::<Be>(&shifted, h.next, shifted.len(), false).expect("next block");
        assert_eq!((h2.size, h2.node, h2.type_), (2, 0, 1));
    }

    #[test]
    fn malformed_headers_are_errors_not_panics() {
        let bytes = be(&[1u16, 0x0021]);
        assert_eq!(
            parse::<Be>(&bytes, 0, bytes.len(), false),
            Err(HeaderError::TooSmall { size: 1, need: 2 })
        );
        let bytes = be(&[0u16]);
        assert!(matches!(
            parse::<Be>(&bytes, 0, bytes.len(), false),
            Err(HeaderError::Truncated { .. })
        ));
        // A reply needs 8 bytes after the size word; SIZE 6 is too small.
        let bytes = be(&[6u16, 0x8005, 0, 0, 0]);
        assert_eq!(
            parse::<Be>(&bytes, 0, bytes.len(), true),
            Err(HeaderError::TooSmall { size: 6, need: 8 })
        );
        let bytes = be(&[100u16, 0x0021]);
        assert_eq!(
            parse::<Be>(&bytes, 0, bytes.len(), false),
            Err(HeaderError::Overrun { end: 102, limit: 4 })
        );
        assert!(parse::<Be>(&bytes, 3, bytes.len(), false).is_err());
        assert!(parse::<Be>(&bytes, usize::MAX, bytes.len(), false).is_err());
        // Maximal 31-bit size never overflows.
        let bytes = be(&[0xFFFF, 0xFFFF, 0x0021]);
        assert!(matches!(
            parse::<Be>(&bytes, 0, bytes.len(), false),
            Err(HeaderError::Overrun { .. })
        ));
    }
}
