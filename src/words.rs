//! 16-bit word access with a byte order chosen once per file (FORMAT.md section 1).
//!
//! Decoders are generic over [`Order`], so the byte order is a compile-time choice
//! inside hot loops instead of a branch on every word.

use std::fmt;

/// The byte order of 16-bit words on disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ByteOrder {
    /// Each word stored least significant byte first (files written by the AMS DAQ computers).
    Little,
    /// Each word stored most significant byte first (AMSWire, CCSDS packets).
    Big,
}

impl ByteOrder {
    /// The name used in the Python API: `"little"` or `"big"`.
    pub fn name(self) -> &'static str {
        match self {
            ByteOrder::Little => "little",
            ByteOrder::Big => "big",
        }
    }

    /// Parses `"little"` or `"big"`.
    pub fn from_name(name: &str) -> Option<ByteOrder> {
        match name {
            "little" => Some(ByteOrder::Little),
            "big" => Some(ByteOrder::Big),
            _ => None,
        }
    }
}

impl fmt::Display for ByteOrder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A byte order known at compile time.
pub trait Order: Copy + Send + Sync + 'static {
    /// The runtime value of this order.
    const ORDER: ByteOrder;
    /// Builds a word from its two bytes as stored.
    fn word(bytes: [u8; 2]) -> u16;
    /// Stores a word as two bytes.
    fn bytes(word: u16) -> [u8; 2];
}

/// Little-endian words.
#[derive(Clone, Copy, Debug)]
pub struct Le;
/// Big-endian words.
#[derive(Clone, Copy, Debug)]
pub struct Be;

impl Order for Le {
    const ORDER: ByteOrder = ByteOrder::Little;
    #[inline(always)]
    fn word(bytes: [u8; 2]) -> u16 {
        u16::from_le_bytes(bytes)
    }
    #[inline(always)]
    fn bytes(word: u16) -> [u8; 2] {
        word.to_le_bytes()
    }
}

impl Order for Be {
    const ORDER: ByteOrder = ByteOrder::Big;
    #[inline(always)]
    fn word(bytes: [u8; 2]) -> u16 {
        u16::from_be_bytes(bytes)
    }
    #[inline(always)]
    fn bytes(word: u16) -> [u8; 2] {
        word.to_be_bytes()
    }
}

/// Bounds-checked word access to a byte slice. Positions are byte offsets.
#[derive(Clone, Copy)]
pub struct Words<'a, O: Order> {
    bytes: &'a [u8],
    _order: std::marker::PhantomData<O>,
}

impl<'a, O: Order> Words<'a, O> {
    /// Wraps a byte slice.
    pub fn new(bytes: &'a [u8]) -> Self {
        Words {
            bytes,
            _order: std::marker::PhantomData,
        }
    }

    /// The underlying bytes.
    #[inline]
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Number of bytes.
    #[inline]
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// True when there are no bytes.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The word at byte offset `pos`, or `None` past the end.
    #[inline(always)]
    pub fn word(&self, pos: usize) -> Option<u16> {
        let end = pos.checked_add(2)?;
        let b = self.bytes.get(pos..end)?;
        Some(O::word([b[0], b[1]]))
    }

    /// The 32-bit value at byte offset `pos`: two words, most significant word first.
    #[inline(always)]
    pub fn u32_at(&self, pos: usize) -> Option<u32> {
        let hi = self.word(pos)? as u32;
        let lo = self.word(pos + 2)? as u32;
        Some((hi << 16) | lo)
    }

    /// The words in byte range `pos..pos + 2 * n`, or `None` if it does not fit.
    pub fn slice(&self, pos: usize, n: usize) -> Option<&'a [u8]> {
        let end = pos.checked_add(n.checked_mul(2)?)?;
        self.bytes.get(pos..end)
    }
}

/// The nom parser of one word in byte order `O` (as nom's `le_u16`/`be_u16` on complete
/// input, with the order chosen at compile time and no generic input handling, so that it
/// reduces to one load in the header and JMDC parsers).
#[inline(always)]
pub fn nom_word<O: Order>(input: &[u8]) -> nom::IResult<&[u8], u16> {
    match input {
        [a, b, rest @ ..] => Ok((rest, O::word([*a, *b]))),
        _ => Err(nom::Err::Error(nom::error::Error::new(
            input,
            nom::error::ErrorKind::Eof,
        ))),
    }
}

/// Decodes `n` words at byte offset `pos` into native `u16`s.
pub fn read_words(bytes: &[u8], order: ByteOrder, pos: usize, n: usize) -> Option<Vec<u16>> {
    let end = pos.checked_add(n.checked_mul(2)?)?;
    let raw = bytes.get(pos..end)?;
    Some(
        raw.chunks_exact(2)
            .map(|b| match order {
                ByteOrder::Little => u16::from_le_bytes([b[0], b[1]]),
                ByteOrder::Big => u16::from_be_bytes([b[0], b[1]]),
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nom_word_matches_nom_in_both_orders() {
        use nom::number::complete::{be_u16, le_u16};
        let bytes = [0x12u8, 0x34, 0x56];
        for n in 0..=bytes.len() {
            let b = &bytes[..n];
            assert_eq!(nom_word::<Le>(b), le_u16::<_, nom::error::Error<_>>(b));
            assert_eq!(nom_word::<Be>(b), be_u16::<_, nom::error::Error<_>>(b));
        }
    }

    #[test]
    fn words_in_both_orders() {
        let data = [0x12u8, 0x34, 0x56, 0x78];
        assert_eq!(Words::<Le>::new(&data).word(0), Some(0x3412));
        assert_eq!(Words::<Be>::new(&data).word(0), Some(0x1234));
        assert_eq!(Words::<Be>::new(&data).u32_at(0), Some(0x1234_5678));
        assert_eq!(Words::<Le>::new(&data).u32_at(0), Some(0x3412_7856));
        assert_eq!(Words::<Be>::new(&data).word(3), None);
        assert_eq!(Words::<Be>::new(&data).word(usize::MAX), None);
        assert_eq!(Words::<Be>::new(&data).u32_at(2), None);
    }

    #[test]
    fn read_words_checks_bounds() {
        let data = [1u8, 0, 2, 0];
        assert_eq!(read_words(&data, ByteOrder::Little, 0, 2), Some(vec![1, 2]));
        assert_eq!(read_words(&data, ByteOrder::Big, 2, 1), Some(vec![0x0200]));
        assert_eq!(read_words(&data, ByteOrder::Big, 2, 2), None);
        assert_eq!(read_words(&data, ByteOrder::Big, usize::MAX, 2), None);
    }
}
