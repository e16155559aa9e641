//! Huffman-coded groups (FORMAT.md section 9.3): the two code tables, a table-driven
//! decoder and the on-board encoder.
//!
//! **Rule.** A TYPE 4 group's data after the ID word are a coded stream of 16-bit words
//! (in the file's byte order), read most significant bit first; bits past the end read
//! as 0. Codes follow one another, each decoding to one byte; `L + 1` zero bits where a
//! code starts (`L` the table's longest code: 11 for `B50A`, 10 for `B606`) are the END
//! symbol. The output bytes pair into words, first byte high (so the decoded bytes are
//! the plain group's words in big-endian order: read them with
//! [`Words::<Be>`](crate::words::Words)). The table is `B606` for run IDs above
//! 1,307,049,984 (0x4DE80000), else `B50A` ([`table_for_run`]).
//!
//! **Evidence.** The tables are the AMS offline software's `DAQCompress` tables
//! (`huffman_code_B50A`, `huffman_code_B606` of `CC/daqevt.C` in the public copy
//! `krafczyk/AMS`), shipped in the shared `data/huffman_tables.json` and compiled into the
//! crate by `scripts/gen_huffman_tables.py` as `src/huffman_tables.rs`. The JSON's
//! `sha256_of_big_endian_u32_entries` fingerprint is the SHA-256 of the 1024 bytes made
//! of the 256 entries in byte-value order, each entry the 32-bit value
//! `code << 16 | length` written big-endian (e.g. `B50A`'s byte 0, code `1` of length 1,
//! is `00 01 00 01`); the tests check the compiled tables against it. Both tables are
//! prefix-free and neither has an all-zero code: `B50A` uses every bit pattern but the
//! 11 zeros (its Kraft sum is `1 - 2^-11`), `B606` leaves ten 10-bit patterns unused
//! (the all-zero one and nine others, which are therefore invalid codes).
//!
//! **Edge cases**, as [`decode`] implements them:
//!
//! - An odd trailing byte of the stream is not read (as the offline software does).
//! - The order of the checks: `Invalid` and `TooLong` while decoding (the first met),
//!   then `TrailingBits`, then `OddOutput`.
//! - END is looked for with the stream's zero padding: an END that starts in the last real
//!   bits and runs past the end is an END; a stream of 0 words is an END at bit 0 and
//!   decodes to no bytes (no error: an empty output is even).
//! - A code that would end past the end of the stream stops decoding with no byte for it
//!   and no error of its own (the output must still be even). A bit pattern that (with
//!   the zero padding) is no code is [`HuffmanError::Invalid`].
//! - After END, up to 12 unread bits of the stream are fine (the encoder's zero padding
//!   leaves at most 15 - (L + 1) of them); 13 or more are
//!   [`HuffmanError::TrailingBits`]. Then an odd number of output bytes is
//!   [`HuffmanError::OddOutput`].
//! - More than `max_out` output bytes is [`HuffmanError::TooLong`], raised at the code
//!   that would give byte `max_out + 1`; the output never grows beyond `max_out` bytes
//!   and the decoder reserves at most `max_out` bytes (less when the stream is too short
//!   to hold that many codes).
//!
//! Error offsets are byte offsets in the stream of the 16-bit word that holds the first
//! bit of what went wrong (the code, the first unread bit, the END); the variants also
//! carry the bit position. On an error `out` is left as it was. The problem kind of all
//! four in FORMAT.md's terms is `huffman_invalid`.
//!
//! **Speed.** A little-endian stream is first byte-swapped per word (into a buffer kept
//! per thread; AVX2 shuffles where the CPU has them, `crc::swap_pairs`), so
//! that the stream's bits are its bytes' bits in order and a window is one unaligned
//! 64-bit big-endian load at any byte, shifted to the bit: at least 56 stream bits, which
//! serve five lookups of [`FAST_BITS`] (11) bits in a table built once per code table
//! ([`OnceLock`], 16 KB: it stays in L1). Its 64-bit entries hold up to six whole codes'
//! bytes, the bits they take (in the entry's low bits, so that the entry is itself the
//! shift count) and their count; END and invalid patterns are entry 0, which takes no
//! bits, so a lane that meets one stays there and no lookup needs a branch (the bits taken
//! are counted by a sentinel bit below the window: its trailing zeros). Each lookup waits
//! for the previous one of its lane (a load and two shifts), and on detector-like words,
//! which these tables hardly compress (coded/decoded near 1), a lookup of 11 bits gives
//! only ~1.06-1.08 bytes (B50A, B606 on bytes drawn like the 2007 run's); so streams of
//! `LANES * LANE_MIN_BYTES` bytes and more are decoded by [`LANES`] lanes at once, their
//! lookups interleaved, each lane from a quarter of the stream, joined where the codes
//! resynchronise ([`lanes`]; exact: the result is always the one-lane result). The lanes
//! use a table of one code an entry (2 bytes, 4 KB: `byte << 8 | length`, again its own
//! shift count), so that every lookup gives one byte and a pass of five lookups five:
//! each lookup is a shift, a load, a byte store and a shift, and the lanes' output
//! pointers move by five a pass. They run in batches of passes with no check inside a
//! pass (the batch's length is worked out so that every window lies inside the stream and
//! every store inside the lane's output region, written through a raw pointer); after each
//! pass a lane whose last entry is 0 (END or an invalid pattern met in that pass) has its
//! bytes of that pass counted again code by code. A lane from a guessed place that meets
//! an invalid pattern is off the code boundaries: it goes on one bit further (at most
//! [`MAX_SKIPS`] times), its recorded places dropped. Lanes that no longer move read a
//! window of zeros and store into a scratch buffer, so no pass needs a select. The lanes
//! are compiled twice, the second time for BMI2 (`shlx`), chosen at run time.
//! The event decoder gives the lanes whole streams instead where it can: the coded groups
//! of the next events, one stream a lane ([`Batch`], [`BATCH_LANES`] lanes, the same
//! passes: [`run_passes`]), each from its known start, so that nothing is guessed, joined
//! or copied into place.
//! The last bytes of a stream (where the window would run past the end), END, invalid
//! codes and the `max_out` bound are handled by an exact one-code-at-a-time path.
//! `examples/huffman_speed.rs` and `benchmarks/huffman_bench.py` measure it
//! (benchmarks/README.md). Tried and not kept: 5 and 6 lanes (more instructions a byte, no
//! faster), 8 lanes (the compiler spills their state: slower for one stream, and for a
//! batch on two threads), the lane's stores staged on
//! the stack (store-to-load forwarding stalls), the lanes' passes in inline assembly (no
//! faster: each lane's chain of lookups, not the instructions, sets the pace).

use std::sync::OnceLock;

use crate::words::{ByteOrder, Order};

#[path = "huffman_tables.rs"]
pub mod tables;

/// Bits looked up at a time by the decoder (more than the longest code, so that a code
/// and END are always seen whole in one lookup).
pub const LUT_BITS: u32 = 12;
/// Unread stream bits allowed after the END symbol (FORMAT.md 9.3, both tables).
pub const MAX_TRAILING_BITS: usize = 12;

const LUT_SIZE: usize = 1 << LUT_BITS;
/// Whole codes packed into one lookup entry.
const LUT_SYMBOLS: u32 = 6;
// A lookup entry (u64): bits 0..3 the bits its codes take (bits 4..5 zero, so that the
// entry itself is the shift count of `u64::wrapping_shl`), bit 6 END, bit 7 invalid,
// bits 8..11 the number of codes, bits 16..63 their bytes (the first in bits 16..23).
const E_END: u64 = 1 << 6;
const E_INVALID: u64 = 1 << 7;
const E_COUNT_SHIFT: u32 = 8;
const E_SYMBOLS_SHIFT: u32 = 16;
/// Bits looked up at a time by the fast path (at least the longest code, so that a code
/// always fits in one lookup; END and the invalid patterns stop it). 11 rather than 12:
/// five lookups fit in one window and the table (16 KB) leaves room in L1.
pub const FAST_BITS: u32 = 11;
const FAST_SIZE: usize = 1 << FAST_BITS;
/// Whole codes packed into one fast-path entry.
const FAST_SYMBOLS: u32 = 6;
// A fast-path entry (u64): bits 0..3 the bits its codes take (bits 4..5 zero, so that the
// entry itself is the shift count of `u64::wrapping_shl`), bits 8..55 their bytes (the
// first in bits 8..15), bits 61..63 the number of codes. 0 for END and invalid patterns:
// a lane that meets one takes no bits and gives no byte, so it stays there.
const F_SYMBOLS_SHIFT: u32 = 8;
const F_COUNT_SHIFT: u32 = 61;
/// Lookups of one pass of the fast loop: a 64-bit window at any bit of a byte holds at
/// least 57 bits of the stream (56 besides the sentinel bit, see [`window`]).
const PASS_LOOKUPS: usize = (56 / FAST_BITS) as usize;

/// A Huffman code table: for each byte value, its code and the code's length.
#[derive(Debug)]
pub struct Table {
    name: &'static str,
    codes: &'static [(u16, u8); 256],
    sha256: &'static str,
    max_len: u8,
    min_len: u8,
    lut: OnceLock<Lut>,
}

/// The decoder's lookup tables of one code table.
#[derive(Debug)]
struct Lut {
    /// Indexed by the next [`LUT_BITS`] bits: up to [`LUT_SYMBOLS`] whole codes' bytes,
    /// the bits they take, their count; or the END / invalid flag (see `E_END`).
    multi: Box<[u64; LUT_SIZE]>,
    /// Indexed by the next [`LUT_BITS`] bits: the first code's byte and length (low byte,
    /// next byte), or 0 when no code starts there (END or invalid, see `multi`).
    single: Box<[u16; LUT_SIZE]>,
    /// Indexed by the next [`FAST_BITS`] bits: the fast path's entries (see
    /// `F_COUNT_SHIFT`).
    fast: Box<[u64; FAST_SIZE]>,
    /// Indexed by the next [`FAST_BITS`] bits: the lanes' entries, the first code's byte
    /// and length (`byte << 8 | length`: the entry itself is the shift count of
    /// `u64::wrapping_shl`), or 0 when no whole code starts there (END or invalid).
    one: Box<[u16; FAST_SIZE]>,
}

const fn lengths(codes: &[(u16, u8); 256]) -> (u8, u8) {
    let mut max = 0;
    let mut min = u8::MAX;
    let mut i = 0;
    while i < 256 {
        let l = codes[i].1;
        if l > max {
            max = l;
        }
        if l < min {
            min = l;
        }
        i += 1;
    }
    (min, max)
}

impl Table {
    const fn new(
        name: &'static str,
        codes: &'static [(u16, u8); 256],
        sha256: &'static str,
    ) -> Table {
        let (min_len, max_len) = lengths(codes);
        Table {
            name,
            codes,
            sha256,
            max_len,
            min_len,
            lut: OnceLock::new(),
        }
    }

    /// The table's name: `"B50A"` or `"B606"`.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// `(code, length)` of every byte value, in byte-value order.
    pub fn codes(&self) -> &'static [(u16, u8); 256] {
        self.codes
    }

    /// The SHA-256 fingerprint of the source JSON (see the module documentation).
    pub fn sha256(&self) -> &'static str {
        self.sha256
    }

    /// `L`, the longest code's length (11 for `B50A`, 10 for `B606`); END is `L + 1`
    /// zero bits.
    pub fn max_len(&self) -> u32 {
        u32::from(self.max_len)
    }

    /// The shortest code's length.
    pub fn min_len(&self) -> u32 {
        u32::from(self.min_len)
    }

    /// The table named `"B50A"` or `"B606"`.
    pub fn by_name(name: &str) -> Option<&'static Table> {
        match name {
            "B50A" => Some(&B50A),
            "B606" => Some(&B606),
            _ => None,
        }
    }

    fn lut(&self) -> &Lut {
        self.lut.get_or_init(|| Lut::build(self))
    }
}

/// Code table `B50A` (run IDs up to 0x4DE80000).
pub static B50A: Table = Table::new("B50A", &tables::B50A_CODES, tables::B50A_SHA256);
/// Code table `B606` (run IDs above 0x4DE80000).
pub static B606: Table = Table::new("B606", &tables::B606_CODES, tables::B606_SHA256);

/// The table of an event's run ID: `B606` above 1,307,049,984 (0x4DE80000), else `B50A`.
pub fn table_for_run(run_id: u32) -> &'static Table {
    if run_id > tables::SWITCH_RUN {
        &B606
    } else {
        &B50A
    }
}

impl Lut {
    fn build(table: &Table) -> Lut {
        let k = LUT_BITS;
        // The first whole code in the top bits of a k-bit index, as (byte, length).
        let mut single = vec![0u16; LUT_SIZE];
        for (byte, &(code, len)) in table.codes.iter().enumerate() {
            let len = u32::from(len);
            if len == 0 || len > k {
                continue;
            }
            let first = usize::from(code) << (k - len);
            for slot in &mut single[first..first + (1usize << (k - len))] {
                *slot = (byte as u16) | ((len as u16) << 8);
            }
        }
        // END: the top L + 1 bits are zero (L < LUT_BITS: END is seen whole in one lookup).
        let end_mask = (LUT_SIZE - 1) & !((1usize << (k - table.max_len() - 1)) - 1);
        let mut multi = vec![0u64; LUT_SIZE];
        for (index, slot) in multi.iter_mut().enumerate() {
            if index & end_mask == 0 {
                *slot = E_END;
                continue;
            }
            let mut used = 0u32;
            let mut count = 0u32;
            let mut entry = 0u64;
            while count < LUT_SYMBOLS {
                // The bits after `used`, zero filled: a code found there is whole only if
                // it fits in the `k - used` real bits.
                let rest = (index << used) & (LUT_SIZE - 1);
                let s = single[rest];
                let len = u32::from(s >> 8);
                if len == 0 || used + len > k {
                    break;
                }
                entry |= u64::from(s & 0xFF) << (E_SYMBOLS_SHIFT + 8 * count);
                used += len;
                count += 1;
            }
            *slot = if count == 0 {
                E_INVALID
            } else {
                entry | u64::from(used) | (u64::from(count) << E_COUNT_SHIFT)
            };
        }
        let mut fast = vec![0u64; FAST_SIZE];
        let fk = FAST_BITS;
        for (index, slot) in fast.iter_mut().enumerate() {
            let mut used = 0u32;
            let mut count = 0u32;
            let mut entry = 0u64;
            while count < FAST_SYMBOLS {
                // The bits after `used` as a LUT_BITS index, zero filled: a code found there
                // is whole only if it fits in the `fk - used` real bits.
                let rest = ((index << used) & (FAST_SIZE - 1)) << (k - fk);
                let s = single[rest];
                let len = u32::from(s >> 8);
                if len == 0 || used + len > fk {
                    break;
                }
                entry |= u64::from(s & 0xFF) << (F_SYMBOLS_SHIFT + 8 * count);
                used += len;
                count += 1;
            }
            // END: the top L + 1 bits zero (or all fk bits, for B50A with fk = 11): no code
            // starts there, so count is 0.
            if count > 0 {
                *slot = entry | u64::from(used) | (u64::from(count) << F_COUNT_SHIFT);
            }
        }
        let one: Vec<u16> = (0..FAST_SIZE)
            .map(|index| {
                let s = single[index << (k - fk)];
                let len = s >> 8;
                if len == 0 || u32::from(len) > fk {
                    0
                } else {
                    ((s & 0xFF) << 8) | len
                }
            })
            .collect();
        Lut {
            one: one
                .into_boxed_slice()
                .try_into()
                .unwrap_or_else(|_| unreachable!("the table has FAST_SIZE entries")),
            fast: fast
                .into_boxed_slice()
                .try_into()
                .unwrap_or_else(|_| unreachable!("the table has FAST_SIZE entries")),
            multi: multi
                .into_boxed_slice()
                .try_into()
                .unwrap_or_else(|_| unreachable!("the table has LUT_SIZE entries")),
            single: single
                .into_boxed_slice()
                .try_into()
                .unwrap_or_else(|_| unreachable!("the table has LUT_SIZE entries")),
        }
    }
}

/// Why a coded stream could not be decoded. Offsets are byte offsets in the stream of
/// the 16-bit word holding the first bit concerned; `bit` is that bit's position in the
/// stream (bit 0 is the most significant bit of the first word).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HuffmanError {
    /// The bits at `bit` are no code of the table (nor END).
    Invalid {
        /// Byte offset of the word where the pattern starts.
        offset: usize,
        /// Bit position where the pattern starts.
        bit: usize,
    },
    /// More than [`MAX_TRAILING_BITS`] bits of the stream are left unread after END.
    TrailingBits {
        /// Byte offset of the word holding the first unread bit.
        offset: usize,
        /// Bit position of the first unread bit.
        bit: usize,
        /// Unread bits.
        unread: usize,
    },
    /// The output has an odd number of bytes.
    OddOutput {
        /// Byte offset of the word where decoding stopped (END, or the code that would end
        /// past the end of the stream).
        offset: usize,
        /// Bit position where decoding stopped.
        bit: usize,
        /// Output bytes.
        bytes: usize,
    },
    /// The output would have more than `max_out` bytes.
    TooLong {
        /// Byte offset of the word where the code of byte `max_out + 1` starts.
        offset: usize,
        /// Bit position where that code starts.
        bit: usize,
        /// The bound.
        max_out: usize,
    },
}

impl HuffmanError {
    /// Byte offset in the stream (of the 16-bit word holding the first bit concerned).
    pub fn offset(&self) -> usize {
        match *self {
            HuffmanError::Invalid { offset, .. }
            | HuffmanError::TrailingBits { offset, .. }
            | HuffmanError::OddOutput { offset, .. }
            | HuffmanError::TooLong { offset, .. } => offset,
        }
    }

    /// A sentence describing the error.
    pub fn describe(&self) -> String {
        match *self {
            HuffmanError::Invalid { bit, .. } => {
                format!("Huffman stream: the bits at bit {bit} are no code of the table")
            }
            HuffmanError::TrailingBits { bit, unread, .. } => format!(
                "Huffman stream: {unread} bits left unread after END (from bit {bit}; \
                 at most {MAX_TRAILING_BITS} allowed)"
            ),
            HuffmanError::OddOutput { bytes, .. } => {
                format!("Huffman stream decodes to an odd number of bytes ({bytes})")
            }
            HuffmanError::TooLong { max_out, bit, .. } => {
                format!("Huffman stream decodes to more than {max_out} bytes (at bit {bit})")
            }
        }
    }
}

impl std::fmt::Display for HuffmanError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl std::error::Error for HuffmanError {}

/// Byte offset of the 16-bit word holding stream bit `bit`.
#[inline]
fn word_offset(bit: usize) -> usize {
    (bit >> 4) << 1
}

/// Eight stream bytes as 64 stream bits, the first bit most significant.
#[inline(always)]
fn bits64<O: Order>(b: [u8; 8]) -> u64 {
    let x = u64::from_be_bytes(b);
    match O::ORDER {
        ByteOrder::Big => x,
        // Each 16-bit word is stored low byte first: swap the bytes of every word.
        ByteOrder::Little => {
            ((x & 0x00FF_00FF_00FF_00FF) << 8) | ((x >> 8) & 0x00FF_00FF_00FF_00FF)
        }
    }
}

/// The 64 stream bits from bit `pos` on, the bits past the end of `bytes` (a whole number
/// of words) as 0.
#[inline]
fn peek<O: Order>(bytes: &[u8], pos: usize) -> u64 {
    let off = word_offset(pos);
    let mut b = [0u8; 8];
    if let Some(rest) = bytes.get(off..) {
        let n = rest.len().min(8);
        b[..n].copy_from_slice(&rest[..n]);
    }
    bits64::<O>(b) << (pos & 15)
}

/// Output bytes gathered on the stack before they are appended to `out`.
const CHUNK: usize = 512;
/// Output bytes one pass of the fast loop can give.
const PASS_BYTES: usize = PASS_LOOKUPS * FAST_SYMBOLS as usize;
/// Output room one pass needs: each lookup stores 8 bytes (of which its codes' bytes are
/// kept) at up to 4 x 7 bytes past the pass's start (the count field has 3 bits).
const PASS_ROOM: usize = 72;

/// Decodes a Huffman-coded stream (FORMAT.md 9.3) of 16-bit words in byte order `O`,
/// appending the decoded bytes to `out` (at most `max_out` of them).
///
/// Returns the number of stream bits read: through the END symbol (capped at the
/// stream's length), or the whole stream when decoding stopped at a code that would end
/// past its end. See the module documentation for the edge cases; on an error `out` is
/// left as it was.
pub fn decode<O: Order>(
    stream: &[u8],
    table: &Table,
    max_out: usize,
    out: &mut Vec<u8>,
) -> Result<usize, HuffmanError> {
    let start = out.len();
    // An odd trailing byte is not read.
    let bytes = &stream[..stream.len() & !1];
    let result = match O::ORDER {
        // Big-endian words: the stream's bits are already its bytes' bits in order.
        ByteOrder::Big => decode_be(bytes, table, max_out, out),
        ByteOrder::Little => BE_COPY.with(|copy| match copy.try_borrow_mut() {
            Ok(mut copy) => decode_be(to_big_endian(bytes, &mut copy), table, max_out, out),
            // Never re-entered; should it be, a copy of its own.
            Err(_) => decode_be(to_big_endian(bytes, &mut Vec::new()), table, max_out, out),
        }),
    };
    if result.is_err() {
        out.truncate(start);
    }
    result
}

thread_local! {
    /// Little-endian streams turned big-endian (the stream's bits in byte order), kept
    /// between calls: its size follows the longest stream met.
    static BE_COPY: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    /// The lanes' output buffer, kept between calls (its size follows the longest stream
    /// met: about twice its length).
    static LANE_OUT: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The words of `bytes` (little-endian, an even count) byte-swapped, in `copy` (which
/// only grows: no zero filling once it is large enough).
fn to_big_endian<'a>(bytes: &[u8], copy: &'a mut Vec<u8>) -> &'a [u8] {
    if copy.len() < bytes.len() {
        copy.resize(bytes.len(), 0);
    }
    let copy = &mut copy[..bytes.len()];
    crate::crc::swap_pairs(bytes, copy);
    copy
}

/// [`decode`] of a stream whose words are big-endian (an even number of bytes).
fn decode_be(
    bytes: &[u8],
    table: &Table,
    max_out: usize,
    out: &mut Vec<u8>,
) -> Result<usize, HuffmanError> {
    let lut = table.lut();
    let total_bits = bytes.len() * 8;
    // Every output byte is a whole code inside the stream, at least `min_len` bits long.
    let bound = total_bits / table.min_len().max(1) as usize;
    out.reserve(bound.min(max_out));

    let mut a = Lane::new(0);
    let mut produced = 0usize; // bytes appended to `out`
    if bytes.len() >= LANES * LANE_MIN_BYTES {
        lanes(bytes, lut, max_out, out, &mut a, &mut produced);
    }
    // Fast loop, one lane, from where the lanes stopped (or from bit 0).
    a.run(bytes, &lut.fast, max_out, out, &mut produced, usize::MAX);
    exact(bytes, table, max_out, out, produced, a.pos)
}

/// The exact path of [`decode_be`]: one code at a time from stream bit `pos` (a code
/// boundary, `produced` bytes given so far), with the zero padding past the end, to the
/// end of decoding and its checks.
fn exact(
    bytes: &[u8],
    table: &Table,
    max_out: usize,
    out: &mut Vec<u8>,
    mut produced: usize,
    mut pos: usize,
) -> Result<usize, HuffmanError> {
    let lut = table.lut();
    let total_bits = bytes.len() * 8;
    let l = table.max_len() as usize;
    loop {
        let w = peek::<crate::words::Be>(bytes, pos);
        let index = (w >> (64 - LUT_BITS)) as usize;
        let e = lut.multi[index];
        if e & E_END != 0 {
            break;
        }
        if e & E_INVALID != 0 {
            return Err(HuffmanError::Invalid {
                offset: word_offset(pos),
                bit: pos,
            });
        }
        let s = lut.single[index];
        let len = usize::from(s >> 8);
        if pos + len > total_bits {
            // A code that would end past the end: stop, with no byte for it (fewer bits
            // than the code's length are left unread: never too many).
            return even(produced, pos).map(|()| total_bits);
        }
        if produced >= max_out {
            return Err(HuffmanError::TooLong {
                offset: word_offset(pos),
                bit: pos,
                max_out,
            });
        }
        out.push((s & 0xFF) as u8);
        produced += 1;
        pos += len;
    }
    let after = pos + l + 1;
    let unread = total_bits.saturating_sub(after);
    if unread > MAX_TRAILING_BITS {
        return Err(HuffmanError::TrailingBits {
            offset: word_offset(after),
            bit: after,
            unread,
        });
    }
    even(produced, pos).map(|()| after.min(total_bits))
}

/// [`HuffmanError::OddOutput`] unless `produced` is even (decoding stopped at bit `pos`).
fn even(produced: usize, pos: usize) -> Result<(), HuffmanError> {
    if produced % 2 == 1 {
        return Err(HuffmanError::OddOutput {
            offset: word_offset(pos),
            bit: pos,
            bytes: produced,
        });
    }
    Ok(())
}

/// Lanes of the fast path: the stream is cut into this many pieces decoded at once.
pub const LANES: usize = 4;
/// Lanes of a [`Batch`]: streams decoded at once, one a lane. Four, as for one stream:
/// eight ran up to 1.1 x faster alone (`examples/huffman_speed.rs`, best of six runs) but
/// took 7-8 % more CPU in the one pass on two threads (`benchmarks/extension_ab.py`, 7
/// alternating rounds, twice), and were level on one.
pub const BATCH_LANES: usize = 4;
/// Streams of at least `LANES * LANE_MIN_BYTES` bytes are decoded by [`LANES`] lanes.
pub const LANE_MIN_BYTES: usize = 96;
/// Passes of lanes 1.. whose starts are recorded as places where the lane before may
/// join them.
const SYNC_PASSES: usize = 16;
/// Rounds of the lanes between two checks of their limits, room and progress.
const MAX_BATCH: usize = 32;
/// Times a lane from a guessed place goes on one bit further after meeting a pattern that
/// no code starts with (see [`lanes_in`]).
const MAX_SKIPS: usize = 4;
/// Bits one pass of the fast loop can take.
const PASS_BITS: usize = PASS_LOOKUPS * FAST_BITS as usize;

/// The 64-bit window of stream bits at `pos` of a big-endian stream, when it lies inside
/// `bytes`. Its lowest bit is set (a sentinel: after shifts by `c` bits in all, the window
/// has `c` trailing zeros); it holds at least 56 stream bits above the sentinel.
#[inline(always)]
fn window(bytes: &[u8], pos: usize) -> Option<u64> {
    let off = pos >> 3;
    let chunk: &[u8; 8] = bytes.get(off..)?.first_chunk()?;
    Some((u64::from_be_bytes(*chunk) << (pos & 7)) | 1)
}

/// One lookup in window `w`: stores the entry's bytes at `d`, returns (bytes given, the
/// window after the codes, the entry).
#[inline(always)]
fn lookup(lut: &[u64; FAST_SIZE], w: u64, d: &mut [u8]) -> (usize, u64, u64) {
    let e = lut[(w >> (64 - FAST_BITS)) as usize];
    if let Some(d) = d.first_chunk_mut::<8>() {
        *d = (e >> F_SYMBOLS_SHIFT).to_le_bytes();
    }
    // The entry's low 6 bits are the bits its codes take (0 for END and invalid).
    ((e >> F_COUNT_SHIFT) as usize, w << (e & 63), e)
}

/// [`PASS_LOOKUPS`] lookups in window `w` (made by [`window`]), the bytes stored from the
/// start of `d`. Returns (bits taken, bytes given, last entry). END and invalid entries
/// take no bits and give no byte, so a lane that meets one stays there (the last entry
/// is then 0).
#[inline(always)]
fn pass_lookups(
    lut: &[u64; FAST_SIZE],
    mut w: u64,
    d: &mut [u8; PASS_ROOM],
) -> (usize, usize, u64) {
    let mut j = 0usize;
    let mut e = 0u64;
    for _ in 0..PASS_LOOKUPS {
        // `j` is at most 4 x 7 here (3-bit counts): the 8 bytes fit in PASS_ROOM.
        let (n, w2, e2) = lookup(lut, w, &mut d[j & 63..]);
        j += n;
        w = w2;
        e = e2;
    }
    (w.trailing_zeros() as usize, j, e)
}

/// One decoding position of the one-lane fast path with its stack buffer of output bytes.
struct Lane {
    pos: usize,
    n: usize,
    buf: [u8; CHUNK + PASS_ROOM],
}

impl Lane {
    fn new(pos: usize) -> Lane {
        Lane {
            pos,
            n: 0,
            buf: [0; CHUNK + PASS_ROOM],
        }
    }

    /// Passes from `pos` while `pos < until`, the window lies inside the stream and the
    /// output stays within `max_out`; the bytes end in `out`. Stops at END or an invalid
    /// pattern with `pos` on it, where the exact path must look.
    #[inline(always)]
    fn run(
        &mut self,
        bytes: &[u8],
        lut: &[u64; FAST_SIZE],
        max_out: usize,
        out: &mut Vec<u8>,
        produced: &mut usize,
        until: usize,
    ) {
        while self.pos < until && *produced + self.n + PASS_BYTES <= max_out {
            if !self.pass(bytes, lut) {
                break;
            }
            if self.n >= CHUNK {
                self.flush(out, produced);
            }
        }
        self.flush(out, produced);
    }

    /// Up to PASS_LOOKUPS lookups at `pos`; false when the lane cannot go on (window past
    /// the end, END or an invalid pattern met, `pos` then being on it).
    #[inline(always)]
    fn pass(&mut self, bytes: &[u8], lut: &[u64; FAST_SIZE]) -> bool {
        let Some(w) = window(bytes, self.pos) else {
            return false;
        };
        let Some(d) = self
            .buf
            .get_mut(self.n..)
            .and_then(|d| d.first_chunk_mut::<PASS_ROOM>())
        else {
            return false;
        };
        let (bits, n, last) = pass_lookups(lut, w, d);
        self.pos += bits;
        self.n += n;
        last != 0
    }

    /// One code at `pos` (with the `single` table), if its window lies inside the
    /// stream; false as for `pass`. Code by code, the lane meets every code boundary.
    fn code_step(&mut self, bytes: &[u8], single: &[u16; LUT_SIZE]) -> bool {
        let Some(w) = window(bytes, self.pos) else {
            return false;
        };
        let s = single[(w >> (64 - LUT_BITS)) as usize];
        let len = usize::from(s >> 8);
        let Some(d) = self.buf.get_mut(self.n) else {
            return false;
        };
        if len == 0 {
            return false; // END or an invalid pattern
        }
        *d = (s & 0xFF) as u8;
        self.n += 1;
        self.pos += len;
        true
    }

    fn flush(&mut self, out: &mut Vec<u8>, produced: &mut usize) {
        out.extend_from_slice(&self.buf[..self.n]);
        *produced += self.n;
        self.n = 0;
    }
}

/// Decodes a long stream as [`LANES`] lanes at once, so that the lookups of one overlap
/// the waits of the others (each lookup waits for the previous one of its lane: a load
/// and two shifts). Lane `i` starts at the byte `i / LANES` of the way into the stream,
/// a place where no code need start, and stops once it passes the start of lane `i + 1`.
/// Codes resynchronise: decoding from a wrong place soon meets the true code boundaries.
/// The lanes record where their first [`SYNC_PASSES`] passes start (a pass: the
/// [`PASS_LOOKUPS`] lookups of one window). Then, from lane 0 (which starts at bit 0, so
/// is right), the decoding `a` goes on one code at a time past the start of the next lane
/// until it reaches one of that lane's recorded places (one code at a time, it meets
/// every true code boundary, so it finds the lane within a pass once the lane has met the
/// true boundaries): from there both decode the same bits (decoding depends on the
/// position only), so the lane's bytes from there are `a`'s and `a` jumps to where that
/// lane stopped. Without such a meeting (or when the bytes would pass `max_out`) `a`
/// decodes that lane's piece alone.
///
/// The lanes make their passes in batches of up to [`MAX_BATCH`] rounds (one pass of
/// every lane each) with no bounds check inside a batch: the batch is as long as every
/// moving lane can go with each of its passes starting below its limit (so that its
/// window lies inside the stream) and with room for a pass in its output region. A lane
/// whose last entry of a pass is 0 met END or an invalid pattern in that pass: the batch
/// ends there, and the lane stops (lane 0), or, started at a guessed place, goes on one
/// bit further (up to [`MAX_SKIPS`] times). Either way the caller goes on from `a.pos`
/// exactly as if one lane had done all the work (the tests compare with a bit-by-bit
/// reference).
fn lanes(
    bytes: &[u8],
    lut: &Lut,
    max_out: usize,
    out: &mut Vec<u8>,
    a: &mut Lane,
    produced: &mut usize,
) {
    LANE_OUT.with(|buf| {
        // Never re-entered; should it be, the one-lane path does the work.
        if let Ok(mut buf) = buf.try_borrow_mut() {
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("bmi2") {
                // SAFETY: the CPU has BMI2, checked just above.
                unsafe { lanes_in_bmi2(bytes, lut, max_out, out, a, produced, &mut buf) };
                return;
            }
            lanes_in(bytes, lut, max_out, out, a, produced, &mut buf);
        }
    });
}

/// [`lanes_in`] compiled for BMI2 (`shlx`: a shift by a count in any register, not only
/// `cl`, which saves a copy per lookup; the one-lane runs of the joins are inlined into
/// it too).
///
/// # Safety
/// The CPU has BMI2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "bmi1,bmi2")]
unsafe fn lanes_in_bmi2(
    bytes: &[u8],
    tables: &Lut,
    max_out: usize,
    out: &mut Vec<u8>,
    a: &mut Lane,
    produced: &mut usize,
    buf: &mut Vec<u8>,
) {
    lanes_in(bytes, tables, max_out, out, a, produced, buf);
}

// The lanes' state is parallel arrays indexed by lane (and lookup): index loops read best.
#[allow(clippy::needless_range_loop)]
#[inline(always)]
fn lanes_in(
    bytes: &[u8],
    tables: &Lut,
    max_out: usize,
    out: &mut Vec<u8>,
    a: &mut Lane,
    produced: &mut usize,
    buf: &mut Vec<u8>,
) {
    const K: usize = LANES;
    let lut = &tables.fast;
    let one = &tables.one;
    let total_bits = bytes.len() * 8;
    // Positions whose window lies inside the stream: (pos >> 3) + 8 <= len.
    let Some(last) = bytes.len().checked_sub(8) else {
        return;
    };
    let fits = (last + 1) * 8;
    let mut starts_at = [0usize; K + 1];
    for (i, s) in starts_at.iter_mut().enumerate() {
        *s = if i == K {
            total_bits
        } else {
            i * bytes.len() / K * 8
        };
    }
    let mut pos = [0usize; K];
    let mut limit = [0usize; K];
    let mut cap = [0usize; K]; // output room of each lane (its piece: about 2 x its bytes)
    let mut k = [0usize; K]; // bytes of each lane
    let mut total = 0usize;
    for i in 0..K {
        pos[i] = starts_at[i];
        limit[i] = starts_at[i + 1].min(fits);
        cap[i] = ((starts_at[i + 1] - starts_at[i]) / 4 + 2 * PASS_ROOM).min(max_out);
        total += cap[i];
    }
    if buf.len() < total {
        buf.resize(total, 0);
    }
    // Each lane's output region: `cap` bytes of room.
    let mut regions: [&mut [u8]; K] = Default::default();
    let mut rest: &mut [u8] = buf;
    for i in 0..K {
        let Some((r, t)) = std::mem::take(&mut rest).split_at_mut_checked(cap[i]) else {
            return;
        };
        regions[i] = r;
        rest = t;
    }
    // Where each lane's first SYNC_PASSES passes start (lane 0's are not used).
    let mut starts = [[(0usize, 0usize); SYNC_PASSES]; K];
    let mut passes = 0usize;
    let mut go = [true; K];
    let mut skips = [0usize; K];
    // A lane that no longer moves reads its windows here (0: entry 0, no bits) and
    // stores its bytes there.
    let zeros = [0u8; 8];
    let mut junk = [0u8; MAX_BATCH * PASS_LOOKUPS];
    loop {
        // A batch of rounds (one pass of every lane each) that every moving lane can make
        // with no check: rounds that start below its limit (a pass takes at most
        // PASS_BITS bits) and with room for a pass (a pass gives PASS_LOOKUPS bytes).
        let mut rounds = MAX_BATCH;
        for i in 0..K {
            go[i] &= pos[i] < limit[i] && k[i] + PASS_LOOKUPS <= cap[i];
            if go[i] {
                let by_bits = (limit[i] - pos[i]).div_ceil(PASS_BITS);
                let by_room = (cap[i] - k[i]) / PASS_LOOKUPS;
                rounds = rounds.min(by_bits).min(by_room);
            }
        }
        if !go.iter().any(|&g| g) {
            break;
        }
        // Each lane's window source and bit position, and its next output byte: a moving
        // lane reads the stream at `pos` and stores `k` bytes into its region, which has
        // room for `rounds` passes from there (see `rounds`); the others read zeros at bit
        // 0 and store into `junk`, which has room for MAX_BATCH passes.
        let mut src = [zeros.as_ptr(); K];
        let mut bit = [0usize; K];
        let mut p = [junk.as_mut_ptr(); K];
        for i in 0..K {
            if go[i] {
                let Some(d) = regions[i].get_mut(k[i]..k[i] + rounds * PASS_LOOKUPS) else {
                    return;
                };
                p[i] = d.as_mut_ptr();
                src[i] = bytes.as_ptr();
                bit[i] = pos[i];
            }
        }
        // SAFETY: as `rounds` was worked out: every moving lane's `rounds` passes start
        // below its limit, so inside `bytes`, and store inside its region (above); the
        // others read `zeros` at bit 0 and store into `junk`.
        let done = unsafe {
            run_passes(one, &src, &p, &mut bit, &go, rounds, |r, bit| {
                if passes < SYNC_PASSES {
                    for i in 0..K {
                        starts[i][passes] = if go[i] {
                            (bit[i], k[i] + r * PASS_LOOKUPS)
                        } else {
                            (pos[i], k[i])
                        };
                    }
                }
                passes += 1;
            })
        };
        let full = done.full;
        for i in 0..K {
            if !go[i] {
                continue;
            }
            if !done.stuck[i] {
                pos[i] = bit[i];
                k[i] += full * PASS_LOOKUPS;
                continue;
            }
            k[i] += full * PASS_LOOKUPS + codes_between(one, bytes, bit[i], done.stop[i]);
            pos[i] = done.stop[i];
            if i > 0 && skips[i] < MAX_SKIPS && pos[i] < limit[i] {
                // A lane from a guessed place (lane 0 starts on a code's boundary) that
                // meets a pattern no code starts with is off the boundaries: it goes on one
                // bit further. Its places recorded so far promise bytes that the bits past
                // here do not give (the stream may be damaged there): they are dropped (0:
                // below every place a join looks for).
                skips[i] += 1;
                pos[i] += 1;
                for s in starts[i].iter_mut() {
                    s.0 = 0;
                }
                continue;
            }
            go[i] = false;
        }
    }
    // Join the lanes, from lane 0.
    out.extend_from_slice(regions[0].get(..k[0]).unwrap_or(&[]));
    *produced += k[0];
    a.pos = pos[0];
    for j in 1..K {
        a.run(bytes, lut, max_out, out, produced, starts_at[j]);
        if a.pos < starts_at[j] {
            return; // END, an invalid pattern, the bound or the end of the fast path
        }
        let st = &starts[j][..passes.min(SYNC_PASSES)];
        let mut idx = 0;
        let joined = loop {
            while idx < st.len() && st[idx].0 < a.pos {
                idx += 1;
            }
            match st.get(idx) {
                None => break None,
                Some(&s) if s.0 == a.pos => break Some(s),
                Some(_) => {}
            }
            if *produced + a.n + 1 > max_out || !a.code_step(bytes, &tables.single) {
                a.flush(out, produced);
                return;
            }
            if a.n >= CHUNK {
                a.flush(out, produced);
            }
        };
        a.flush(out, produced);
        if let Some((_, at)) = joined {
            let rest = regions[j].get(at..k[j]).unwrap_or(&[]);
            if *produced + rest.len() <= max_out {
                out.extend_from_slice(rest);
                *produced += rest.len();
                a.pos = pos[j];
            }
        }
    }
}

/// What one stream of a [`Batch`] decoded to: `Ok((lane, start, len, bits))` (its
/// bytes are `out[lane][start..start + len]`, `bits` as [`decode`] returns) or the error.
type Decoded = Result<(usize, usize, usize, usize), HuffmanError>;

/// Streams decoded side by side, one a lane ([`Batch::decode`]): the coded groups of
/// consecutive events. Each starts at a known place (its bit 0), so no lane starts at a
/// guessed place and nothing is joined or copied into place. The buffers are kept from
/// batch to batch.
#[derive(Clone, Debug, Default)]
pub struct Batch {
    /// Little-endian streams turned big-endian, one after another.
    be: Vec<u8>,
    /// Where each stream lies in `be` (little-endian streams).
    spans: Vec<(usize, usize)>,
    /// The lanes' outputs and the results.
    lanes: BatchOut,
}

/// What the lanes of a [`Batch`] write.
#[derive(Clone, Debug, Default)]
struct BatchOut {
    /// Each lane's output: the bytes of the streams it decoded, one after another.
    out: [Vec<u8>; BATCH_LANES],
    /// One a stream, in the order given.
    results: Vec<Decoded>,
    /// The exact path's bytes at the end of a stream.
    tail: Vec<u8>,
}

impl Batch {
    /// Decodes each `(stream, max_out)` of `streams` with `table`, each exactly as
    /// [`decode`] would (the same bytes, bits read and errors): read them with
    /// [`Batch::get`].
    pub fn decode<O: Order>(&mut self, streams: &[(&[u8], usize)], table: &Table) {
        let mut be: Vec<&[u8]> = Vec::with_capacity(streams.len());
        let max_outs: Vec<usize> = streams.iter().map(|s| s.1).collect();
        match O::ORDER {
            ByteOrder::Big => be.extend(streams.iter().map(|s| &s.0[..s.0.len() & !1])),
            ByteOrder::Little => {
                self.spans.clear();
                let mut total = 0;
                for (stream, _) in streams {
                    let n = stream.len() & !1;
                    self.spans.push((total, n));
                    total += n;
                }
                if self.be.len() < total {
                    self.be.resize(total, 0);
                }
                for ((stream, _), &(at, n)) in streams.iter().zip(&self.spans) {
                    crate::crc::swap_pairs(&stream[..n], &mut self.be[at..at + n]);
                }
                be.extend(self.spans.iter().map(|&(at, n)| &self.be[at..at + n]));
            }
        }
        let lanes = &mut self.lanes;
        lanes.results.clear();
        lanes.results.resize(streams.len(), Ok((0, 0, 0, 0)));
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("bmi2") {
            // SAFETY: the CPU has BMI2, checked just above.
            unsafe { side_by_side_bmi2(&be, &max_outs, table, lanes) };
            return;
        }
        side_by_side(&be, &max_outs, table, lanes);
    }

    /// Streams in the last batch.
    pub fn len(&self) -> usize {
        self.lanes.results.len()
    }

    /// Whether the last batch had no stream.
    pub fn is_empty(&self) -> bool {
        self.lanes.results.is_empty()
    }

    /// Stream `i` of the last batch: its decoded bytes and the stream bits read, or the
    /// error (as [`decode`] returns them); `None` past the batch.
    pub fn get(&self, i: usize) -> Option<Result<(&[u8], usize), HuffmanError>> {
        Some(match *self.lanes.results.get(i)? {
            Ok((lane, start, len, bits)) => {
                Ok((self.lanes.out[lane].get(start..start + len)?, bits))
            }
            Err(e) => Err(e),
        })
    }
}

/// [`side_by_side`] compiled for BMI2 (see [`lanes_in_bmi2`]).
///
/// # Safety
/// The CPU has BMI2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "bmi1,bmi2")]
unsafe fn side_by_side_bmi2(
    streams: &[&[u8]],
    max_outs: &[usize],
    table: &Table,
    w: &mut BatchOut,
) {
    side_by_side(streams, max_outs, table, w);
}

/// The lanes of a [`Batch`]: each lane decodes one stream (big-endian words, an even
/// number of bytes) from its bit 0 in passes of the lanes' table, the passes of all lanes
/// interleaved as in [`lanes_in`] ([`run_passes`]), until its window would run past the
/// stream's end, its output would pass the room for the stream's bytes, or it meets END
/// or an invalid pattern; the exact path ([`exact`]) ends the stream from there, and the
/// lane takes the next stream. A stream's room is what it can decode to (at most
/// `max_out`, and a byte a code of the table's shortest length), so its bytes stay in
/// place in its lane's output.
#[allow(clippy::needless_range_loop)]
#[inline(always)]
fn side_by_side(streams: &[&[u8]], max_outs: &[usize], table: &Table, w: &mut BatchOut) {
    const K: usize = BATCH_LANES;
    const IDLE: usize = usize::MAX;
    let one = &table.lut().one;
    let min_len = table.min_len().max(1) as usize;
    let mut next = 0usize;
    let mut job = [IDLE; K];
    let mut used = [0usize; K]; // bytes of each lane's output in use
    let mut base = [0usize; K]; // where the lane's stream's bytes start in its output
    let mut pos = [0usize; K];
    let mut limit = [0usize; K];
    let mut cap = [0usize; K];
    let mut k = [0usize; K];
    let zeros = [0u8; 8];
    let mut junk = [0u8; MAX_BATCH * PASS_LOOKUPS];
    loop {
        // Every lane without a stream takes the next; a lane that cannot make a pass ends
        // its stream (and takes the next).
        for i in 0..K {
            loop {
                if job[i] == IDLE {
                    let Some(stream) = streams.get(next) else {
                        break;
                    };
                    job[i] = next;
                    base[i] = used[i];
                    pos[i] = 0;
                    k[i] = 0;
                    // Positions whose window lies inside the stream: (pos >> 3) + 8 <= len.
                    limit[i] = stream.len().checked_sub(7).map_or(0, |n| n * 8);
                    cap[i] = max_outs[next].min(stream.len() * 8 / min_len);
                    if w.out[i].len() < base[i] + cap[i] {
                        w.out[i].resize(base[i] + cap[i], 0);
                    }
                    next += 1;
                }
                if pos[i] < limit[i] && k[i] + PASS_LOOKUPS <= cap[i] {
                    break;
                }
                used[i] = w.finish(
                    streams[job[i]],
                    table,
                    max_outs[job[i]],
                    (i, job[i], k[i], pos[i], base[i]),
                );
                job[i] = IDLE;
            }
        }
        let go: [bool; K] = std::array::from_fn(|i| job[i] != IDLE);
        if !go.iter().any(|&g| g) {
            return;
        }
        // Rounds every moving lane can make with no check (as in `lanes_in`).
        let mut rounds = MAX_BATCH;
        for i in 0..K {
            if go[i] {
                let by_bits = (limit[i] - pos[i]).div_ceil(PASS_BITS);
                let by_room = (cap[i] - k[i]) / PASS_LOOKUPS;
                rounds = rounds.min(by_bits).min(by_room);
            }
        }
        let mut src = [zeros.as_ptr(); K];
        let mut bit = [0usize; K];
        let mut p = [junk.as_mut_ptr(); K];
        let mut ready = true;
        for i in 0..K {
            if go[i] {
                let at = base[i] + k[i];
                let Some(d) = w.out[i].get_mut(at..at + rounds * PASS_LOOKUPS) else {
                    // Never (the room of `cap` bytes was made above); were it so, the exact
                    // path would end the stream.
                    limit[i] = 0;
                    ready = false;
                    continue;
                };
                p[i] = d.as_mut_ptr();
                src[i] = streams[job[i]].as_ptr();
                bit[i] = pos[i];
            }
        }
        if !ready {
            continue;
        }
        // SAFETY: every moving lane's `rounds` passes start below its limit, so their
        // windows lie inside its stream, and store inside its output (`rounds` and the
        // `get_mut` above); the others read `zeros` at bit 0 and store into `junk`, which
        // has room for MAX_BATCH passes.
        let done = unsafe { run_passes(one, &src, &p, &mut bit, &go, rounds, |_, _| {}) };
        for i in 0..K {
            if !go[i] {
                continue;
            }
            if done.stuck[i] {
                let stream = streams[job[i]];
                k[i] += done.full * PASS_LOOKUPS + codes_between(one, stream, bit[i], done.stop[i]);
                pos[i] = done.stop[i];
                // On END or an invalid pattern: the exact path ends the stream (at the top
                // of the loop, as for a lane that can make no pass).
                limit[i] = 0;
            } else {
                k[i] += done.full * PASS_LOOKUPS;
                pos[i] = bit[i];
            }
        }
    }
}

impl BatchOut {
    /// Ends stream `j` of a [`Batch`], which lane `i` decoded to `k` bytes at `base` of
    /// its output, with the exact path from stream bit `pos`; returns the end of the bytes
    /// of the lane's output now in use.
    fn finish(
        &mut self,
        stream: &[u8],
        table: &Table,
        max_out: usize,
        (i, j, k, pos, base): (usize, usize, usize, usize, usize),
    ) -> usize {
        self.tail.clear();
        match exact(stream, table, max_out, &mut self.tail, k, pos) {
            Ok(bits) => {
                let (a, b) = (base + k, base + k + self.tail.len());
                let out = &mut self.out[i];
                if out.len() < b {
                    out.resize(b, 0);
                }
                out[a..b].copy_from_slice(&self.tail);
                self.results[j] = Ok((i, base, k + self.tail.len(), bits));
                b
            }
            Err(e) => {
                self.results[j] = Err(e);
                base
            }
        }
    }
}

/// What [`run_passes`] did: the passes every moving lane made in full, and the lanes
/// whose last entry in the pass after those was 0 (END or an invalid pattern met in it),
/// with the bit each of them stopped at.
struct Passes<const K: usize> {
    full: usize,
    stuck: [bool; K],
    stop: [usize; K],
}

/// Up to `rounds` passes of `K` lanes at once, their lookups interleaved (the lanes'
/// table `one`): a pass of lane `i` reads the window at bit `bit[i]` of the stream at
/// `src[i]` and stores one byte a lookup, its `r`-th pass's at `p[i] + r *
/// PASS_LOOKUPS`. `at_pass(r, bit)` is called before each pass. After `rounds` passes, or
/// after the first pass in which a lane of `moving` met a 0 entry, it returns: every
/// moving lane that met none has `bit` after its `full` passes; a lane that met one
/// (`stuck`) has `bit` at the start of its pass number `full` and `stop` where its
/// lookups of that pass ended. Lanes not `moving` must read 8 zero bytes at bit 0.
///
/// # Safety
/// For every lane, each of the `rounds` passes from `bit[i]` (a pass takes at most
/// [`PASS_BITS`] bits) has its 8 bytes from `src[i] + (bit >> 3)` readable, and `p[i]` has
/// room for `rounds * PASS_LOOKUPS` bytes.
#[inline(always)]
unsafe fn run_passes<const K: usize>(
    one: &[u16; FAST_SIZE],
    src: &[*const u8; K],
    p: &[*mut u8; K],
    bit: &mut [usize; K],
    moving: &[bool; K],
    rounds: usize,
    mut at_pass: impl FnMut(usize, &[usize; K]),
) -> Passes<K> {
    let mut done = Passes {
        full: rounds,
        stuck: [false; K],
        stop: [0; K],
    };
    for r in 0..rounds {
        at_pass(r, bit);
        let mut w = [1u64; K];
        for i in 0..K {
            // SAFETY: the caller's promise: the pass's window lies in readable memory.
            let x = unsafe { src[i].add(bit[i] >> 3).cast::<u64>().read_unaligned() };
            w[i] = (u64::from_be(x) << (bit[i] & 7)) | 1;
        }
        let mut e = [0u16; K];
        for j in 0..PASS_LOOKUPS {
            for i in 0..K {
                e[i] = one[(w[i] >> (64 - FAST_BITS)) as usize];
                // SAFETY: `r * PASS_LOOKUPS + j < rounds * PASS_LOOKUPS`, the room the
                // caller promised at `p[i]`.
                unsafe { p[i].add(r * PASS_LOOKUPS + j).write((e[i] >> 8) as u8) };
                // The entry's low 6 bits are the code's length (0: END, invalid).
                w[i] = w[i].wrapping_shl(u32::from(e[i]));
            }
        }
        // A lane that met END or an invalid pattern stays on it (entry 0 takes no bits):
        // its last entry is 0. Every lookup of the others gave one byte.
        let mut any = false;
        for i in 0..K {
            done.stuck[i] = moving[i] & (e[i] == 0);
            any |= done.stuck[i];
        }
        if any {
            done.full = r;
            for i in 0..K {
                if done.stuck[i] {
                    done.stop[i] = bit[i] + w[i].trailing_zeros() as usize;
                }
            }
            return done;
        }
        for i in 0..K {
            bit[i] += w[i].trailing_zeros() as usize;
        }
    }
    done
}

/// The number of codes of the lanes' table `one` from stream bit `from` (a place where a
/// lane's lookups went) to bit `to`, which those lookups reached (the bits past the end
/// of `bytes` read as 0).
fn codes_between(one: &[u16; FAST_SIZE], bytes: &[u8], from: usize, to: usize) -> usize {
    let mut q = from;
    let mut n = 0;
    while q < to {
        let len = usize::from(
            one[(peek::<crate::words::Be>(bytes, q) >> (64 - FAST_BITS)) as usize] & 0xFF,
        );
        if len == 0 {
            break;
        }
        q += len;
        n += 1;
    }
    debug_assert_eq!(q, to, "the lookups went code by code");
    n
}

/// Decodes with the byte order chosen at run time (see [`decode`]).
pub fn decode_dyn(
    stream: &[u8],
    order: ByteOrder,
    table: &Table,
    max_out: usize,
    out: &mut Vec<u8>,
) -> Result<usize, HuffmanError> {
    match order {
        ByteOrder::Little => decode::<crate::words::Le>(stream, table, max_out, out),
        ByteOrder::Big => decode::<crate::words::Be>(stream, table, max_out, out),
    }
}

/// Huffman-codes words as on board (FORMAT.md 9.3): each word as its high byte then its
/// low byte, the codes packed most significant bit first into 16-bit words, the last
/// word padded with zero bits. The group's SIZE is then `2 + 2 * result.len()`.
pub fn encode(words: &[u16], table: &Table) -> Vec<u16> {
    let mut out = Vec::with_capacity(words.len() + 1);
    let mut acc: u64 = 0; // pending bits, right-aligned
    let mut n: u32 = 0; // number of pending bits (< 16 between bytes)
    for &w in words {
        for b in [w >> 8, w & 0xFF] {
            let (code, len) = table.codes[usize::from(b)];
            acc = (acc << len) | u64::from(code);
            n += u32::from(len);
            while n >= 16 {
                n -= 16;
                out.push((acc >> n) as u16);
            }
        }
    }
    if n > 0 {
        out.push((acc << (16 - n)) as u16);
    }
    out
}

/// The stream bytes of coded words in byte order `O` (as they are stored in a file).
pub fn stream_bytes<O: Order>(coded: &[u16]) -> Vec<u8> {
    coded.iter().flat_map(|&w| O::bytes(w)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::words::{Be, Le};
    use proptest::prelude::*;
    use sha2::{Digest, Sha256};

    /// The JSON's `sha256_of_big_endian_u32_entries`, copied by hand.
    const FINGERPRINTS: [(&str, &str); 2] = [
        (
            "B50A",
            "c1df7bc2c97bf1df438dc5d309efdbb6d6a40ad5fb1ac681fc9c778fbade4bdf",
        ),
        (
            "B606",
            "e0a827288c32a3a0bcfdb9d20294682f94b82f990bb1a23a5b8824c70e9a9350",
        ),
    ];

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn tables_match_the_json_fingerprints() {
        for (name, want) in FINGERPRINTS {
            let t = Table::by_name(name).expect("known table");
            let mut h = Sha256::new();
            for &(code, len) in t.codes() {
                h.update(((u32::from(code) << 16) | u32::from(len)).to_be_bytes());
            }
            assert_eq!(hex(&h.finalize()), want, "{name}");
            assert_eq!(t.sha256(), want, "{name}");
        }
        assert!(Table::by_name("B999").is_none());
    }

    #[test]
    fn lengths_and_table_choice() {
        assert_eq!((B50A.min_len(), B50A.max_len()), (1, 11));
        assert_eq!((B606.min_len(), B606.max_len()), (2, 10));
        assert!(LUT_BITS > B50A.max_len() && LUT_BITS > B606.max_len());
        assert_eq!(table_for_run(0).name(), "B50A");
        assert_eq!(table_for_run(0x4DE8_0000).name(), "B50A");
        assert_eq!(table_for_run(0x4DE8_0001).name(), "B606");
        assert_eq!(table_for_run(u32::MAX).name(), "B606");
    }

    #[test]
    fn tables_are_prefix_free_without_a_zero_code() {
        for t in [&B50A, &B606] {
            let codes: Vec<String> = t
                .codes()
                .iter()
                .map(|&(c, l)| format!("{c:0w$b}", w = usize::from(l)))
                .collect();
            for (i, a) in codes.iter().enumerate() {
                assert_eq!(a.len(), usize::from(t.codes()[i].1), "{}: {i}", t.name());
                assert!(
                    a.contains('1'),
                    "{}: byte {i} has an all-zero code",
                    t.name()
                );
                for (j, b) in codes.iter().enumerate() {
                    assert!(
                        i == j || !b.starts_with(a.as_str()),
                        "{}: {i} {j}",
                        t.name()
                    );
                }
            }
        }
    }

    /// Words from a string of '0'/'1' (spaces ignored), zero padded to whole words.
    fn words_of(bits: &str) -> Vec<u16> {
        let bits: Vec<u8> = bits.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
        bits.chunks(16)
            .map(|c| {
                let mut w = 0u16;
                for (i, &b) in c.iter().enumerate() {
                    assert!(b == b'0' || b == b'1');
                    w |= u16::from(b == b'1') << (15 - i);
                }
                w
            })
            .collect()
    }

    fn code(t: &Table, byte: u8) -> String {
        let (c, l) = t.codes()[usize::from(byte)];
        format!("{c:0w$b}", w = usize::from(l))
    }

    fn dec<O: Order>(
        words: &[u16],
        t: &Table,
        max_out: usize,
    ) -> Result<(Vec<u8>, usize), HuffmanError> {
        let mut out = vec![0xAA];
        let r = decode::<O>(&stream_bytes::<O>(words), t, max_out, &mut out);
        match r {
            Ok(bits) => {
                assert_eq!(out[0], 0xAA);
                Ok((out[1..].to_vec(), bits))
            }
            Err(e) => {
                assert_eq!(out, vec![0xAA], "out is left as it was");
                Err(e)
            }
        }
    }

    fn both<F: Fn(&dyn Fn(&[u16], &Table, usize) -> Result<(Vec<u8>, usize), HuffmanError>)>(f: F) {
        f(&|w, t, m| dec::<Le>(w, t, m));
        f(&|w, t, m| dec::<Be>(w, t, m));
    }

    #[test]
    fn hand_made_streams() {
        both(|d| {
            for t in [&B50A, &B606] {
                let l = t.max_len() as usize;
                let end = "0".repeat(l + 1);
                // Two bytes then END inside the stream, padded to one or more words.
                let s = format!("{}{}{end}", code(t, 0x12), code(t, 0x34));
                let w = words_of(&s);
                let (out, bits) = d(&w, t, 100).expect("valid");
                assert_eq!(out, vec![0x12, 0x34]);
                assert_eq!(bits, s.len().min(16 * w.len()));
                // The same codes without END: END found in the padding or past the end.
                let s = format!("{}{}", code(t, 0x12), code(t, 0x34));
                let (out, _) = d(&words_of(&s), t, 100).expect("valid");
                assert_eq!(out, vec![0x12, 0x34]);
                // 0 words: no bytes, no error.
                assert_eq!(d(&[], t, 100), Ok((vec![], 0)));
                assert_eq!(d(&[], t, 0), Ok((vec![], 0)));
                // Exactly 12 bits left after END: fine; 13: too many. Two codes chosen so
                // that they, END and the unread bits (a 1 first) fill whole words.
                for left in [12usize, 13] {
                    let (a, b) = (0..=255u8)
                        .flat_map(|a| (0..=255u8).map(move |b| (a, b)))
                        .find(|&(a, b)| {
                            (code(t, a).len() + code(t, b).len() + l + 1 + left) % 16 == 0
                        })
                        .expect("some pair fits");
                    let s = format!("{}{}{end}1{}", code(t, a), code(t, b), "0".repeat(left - 1));
                    let total = s.len();
                    let r = d(&words_of(&s), t, 100);
                    if left == 12 {
                        assert_eq!(r, Ok((vec![a, b], total - left)), "{}", t.name());
                    } else {
                        assert_eq!(
                            r,
                            Err(HuffmanError::TrailingBits {
                                offset: word_offset(total - left),
                                bit: total - left,
                                unread: left,
                            }),
                            "{}",
                            t.name()
                        );
                    }
                }
                // An odd number of bytes.
                // An odd number of bytes (END in the padding or past the end).
                let s = format!("{}{}{}", code(t, 7), code(t, 8), code(t, 9));
                let stop = s.len();
                assert_eq!(
                    d(&words_of(&s), t, 100),
                    Err(HuffmanError::OddOutput {
                        offset: word_offset(stop),
                        bit: stop,
                        bytes: 3
                    })
                );
                // Too long: 20 bytes with max_out 19 (and 20 is fine).
                let s: String = (0..20u8).map(|b| code(t, b)).collect();
                let at: usize = (0..19u8).map(|b| code(t, b).len()).sum();
                assert_eq!(d(&words_of(&s), t, 20).map(|r| r.0), Ok((0..20).collect()));
                assert_eq!(
                    d(&words_of(&s), t, 19),
                    Err(HuffmanError::TooLong {
                        offset: word_offset(at),
                        bit: at,
                        max_out: 19
                    })
                );
            }
        });
    }

    #[test]
    fn invalid_codes_and_ends_at_the_edge() {
        both(|d| {
            // B50A: 11 zeros then a 1 is its only invalid pattern; at bit 21 (word 1).
            let s = format!(
                "{}{}{}1",
                code(&B50A, 0x55),
                code(&B50A, 0x66),
                "0".repeat(11)
            );
            let at = s.len() - 12;
            assert_eq!(at, code(&B50A, 0x55).len() + code(&B50A, 0x66).len());
            assert_eq!(
                d(&words_of(&s), &B50A, 100),
                Err(HuffmanError::Invalid {
                    offset: word_offset(at),
                    bit: at
                })
            );
            // B606: a 10-bit pattern that is no code (and not all zero).
            let used: Vec<u16> = B606
                .codes()
                .iter()
                .filter(|c| c.1 == 10)
                .map(|c| c.0)
                .collect();
            let free = (1u16..1024)
                .find(|p| {
                    !used.contains(p)
                        && B606
                            .codes()
                            .iter()
                            .all(|&(c, l)| l == 10 || p >> (10 - l) != c)
                })
                .expect("B606 has unused 10-bit patterns");
            let s = format!("{}{free:010b}", code(&B606, 0xFF));
            let at = code(&B606, 0xFF).len();
            assert_eq!(
                d(&words_of(&format!("{s}{}", code(&B606, 1))), &B606, 100),
                Err(HuffmanError::Invalid {
                    offset: word_offset(at),
                    bit: at
                })
            );
            // END starting in the last real bits and running past the end: every
            // count of zeros at the end of a full word is an END.
            for t in [&B50A, &B606] {
                for byte in [0u8, 1, 0x80, 0xFF] {
                    let c = code(t, byte);
                    for k in 1..=t.max_len() as usize {
                        // Two codes, then `k` zero bits filling the stream exactly.
                        let body = format!("{c}{c}");
                        let total = body.len() + k;
                        if total % 16 != 0 {
                            continue;
                        }
                        let (out, bits) = d(&words_of(&body), t, 10).expect("END in padding");
                        assert_eq!((out, bits), (vec![byte, byte], total));
                    }
                }
            }
            // A code that would end past the end: no byte for it, no error (even output).
            let t = &B50A;
            let long: u8 = (0..=255u8)
                .find(|&b| code(t, b).len() == 11)
                .expect("11-bit code");
            let pre: String = "1".repeat(7); // seven 0x00 bytes: 7 bits
            let s = format!("{pre}{}{}", code(t, 0), &code(t, long)[..8]);
            assert_eq!(s.len(), 16);
            // 7 + 1 = 8 zero bytes, then an 11-bit code cut after 8 bits.
            let (out, bits) = d(&words_of(&s), t, 100).expect("stops");
            assert_eq!((out, bits), (vec![0; 8], 16));
            // The same with an odd count before it: OddOutput where decoding stopped.
            let s = format!("{pre}{}", &code(t, long)[..9]);
            assert_eq!(s.len(), 16);
            assert_eq!(
                d(&words_of(&s), t, 100),
                Err(HuffmanError::OddOutput {
                    offset: 0,
                    bit: 7,
                    bytes: 7
                })
            );
        });
    }

    #[test]
    fn error_descriptions_name_the_numbers() {
        let e = HuffmanError::TrailingBits {
            offset: 4,
            bit: 33,
            unread: 14,
        };
        assert_eq!(e.offset(), 4);
        assert!(e.describe().contains("14 bits"));
        assert!(HuffmanError::TooLong {
            offset: 2,
            bit: 16,
            max_out: 9
        }
        .describe()
        .contains('9'));
    }

    /// FORMAT.md 9.3 one bit at a time: the reference the table-driven decoder must equal.
    fn reference(
        words: &[u16],
        t: &Table,
        max_out: usize,
    ) -> Result<(Vec<u8>, usize), HuffmanError> {
        let total = words.len() * 16;
        let bit = |i: usize| -> u16 {
            if i < total {
                (words[i / 16] >> (15 - i % 16)) & 1
            } else {
                0
            }
        };
        let l = t.max_len() as usize;
        let mut out = Vec::new();
        let mut pos = 0;
        let stop = loop {
            if (0..=l).all(|k| bit(pos + k) == 0) {
                let after = pos + l + 1;
                if total.saturating_sub(after) > 12 {
                    return Err(HuffmanError::TrailingBits {
                        offset: after / 16 * 2,
                        bit: after,
                        unread: total - after,
                    });
                }
                break after.min(total);
            }
            let mut found = None;
            let mut v = 0u16;
            for len in 1..=l {
                v = (v << 1) | bit(pos + len - 1);
                if let Some(b) = t
                    .codes()
                    .iter()
                    .position(|&(c, cl)| usize::from(cl) == len && c == v)
                {
                    found = Some((b as u8, len));
                    break;
                }
            }
            let Some((b, len)) = found else {
                return Err(HuffmanError::Invalid {
                    offset: pos / 16 * 2,
                    bit: pos,
                });
            };
            if pos + len > total {
                break total;
            }
            if out.len() == max_out {
                return Err(HuffmanError::TooLong {
                    offset: pos / 16 * 2,
                    bit: pos,
                    max_out,
                });
            }
            out.push(b);
            pos += len;
        };
        if out.len() % 2 == 1 {
            return Err(HuffmanError::OddOutput {
                offset: pos / 16 * 2,
                bit: pos,
                bytes: out.len(),
            });
        }
        Ok((out, stop))
    }

    /// The plain words of a drawn stream: `seed`'s bytes as they are (kind 0), mostly
    /// zeros (1: the 1- and 2-bit codes, output up to 8 x the stream), small values (2), or
    /// every other byte masked with `low` (a mix), paired into big-endian words.
    fn drawn_words(seed: &[u8], kind: u8, low: u8) -> Vec<u16> {
        let symbols: Vec<u8> = seed
            .iter()
            .enumerate()
            .map(|(i, &b)| match kind {
                0 => b,
                1 => {
                    if b < 230 {
                        0
                    } else {
                        b
                    }
                }
                2 => b & 0x0F,
                _ => {
                    if i % 2 == 0 {
                        b & low
                    } else {
                        b
                    }
                }
            })
            .collect();
        symbols
            .chunks_exact(2)
            .map(|p| u16::from_be_bytes([p[0], p[1]]))
            .collect()
    }

    fn table_of(i: u8) -> &'static Table {
        if i % 2 == 0 {
            &B50A
        } else {
            &B606
        }
    }

    /// Detector-like words: mostly small values, now and then anything.
    fn word_strategy() -> impl Strategy<Value = u16> {
        prop_oneof![
            4 => 0u16..64,
            3 => 0u16..0x1000,
            1 => any::<u16>(),
        ]
    }

    /// The exact one-code-at-a-time path alone, from bit 0 (what the lanes and the fast
    /// loop must equal), with [`decode`]'s handling of the byte order and the odd byte.
    fn exact_only<O: Order>(
        stream: &[u8],
        t: &Table,
        max_out: usize,
    ) -> Result<(Vec<u8>, usize), HuffmanError> {
        let bytes = &stream[..stream.len() & !1];
        let mut copy = Vec::new();
        let bytes = match O::ORDER {
            ByteOrder::Big => bytes,
            ByteOrder::Little => to_big_endian(bytes, &mut copy),
        };
        let mut out = Vec::new();
        exact(bytes, t, max_out, &mut out, 0, 0).map(|bits| (out, bits))
    }

    /// A coded stream for the properties: symbols from `seed` drawn by `kind` (4: raw
    /// random words), then damaged by `damage` (2: invalid patterns at random bits, 3:
    /// flipped bits), `cut` words cut off and then `extra` words added.
    #[allow(clippy::too_many_arguments)]
    fn damaged(
        t: &Table,
        kind: u8,
        seed: &[u8],
        invalid: &[(prop::sample::Index, prop::sample::Index)],
        flips: &[(prop::sample::Index, u32)],
        damage: u8,
        cut: usize,
        extra: &[u16],
    ) -> Vec<u16> {
        let words: Vec<u16> = if kind == 4 {
            seed.chunks_exact(2)
                .map(|p| u16::from_be_bytes([p[0], p[1]]))
                .collect()
        } else {
            encode(&drawn_words(seed, kind, 0x07), t)
        };
        let mut coded = words;
        let patterns = invalid_patterns(t);
        // Half of the streams intact (but for the cut and the words added).
        for (at, which) in invalid.iter().filter(|_| damage == 2) {
            if !coded.is_empty() {
                let (v, len) = patterns[which.index(patterns.len())];
                let bit = at.index(16 * coded.len());
                put_bits(&mut coded, bit, v, len);
            }
        }
        for (i, b) in flips.iter().filter(|_| damage == 3) {
            if !coded.is_empty() {
                let i = i.index(coded.len());
                coded[i] ^= 1 << b;
            }
        }
        coded.truncate(coded.len().saturating_sub(cut));
        if cut > 0 {
            coded.extend(extra);
        }
        coded
    }

    /// Bit patterns that are no code of the table (nor END), as (value, length).
    fn invalid_patterns(t: &Table) -> Vec<(u16, usize)> {
        let l = t.max_len() as usize;
        (1u16..(1 << l))
            .filter(|&p| {
                t.codes()
                    .iter()
                    .all(|&(c, cl)| p >> (l - usize::from(cl)) != c)
            })
            .map(|p| (p, l))
            // B50A has none of L bits but the L zeros: its one invalid pattern is L zeros
            // and a 1.
            .chain((t.name() == "B50A").then_some((1u16, l + 1)))
            .collect()
    }

    /// Writes the `len` low bits of `value` into the words from stream bit `bit` (within
    /// the stream).
    fn put_bits(words: &mut [u16], bit: usize, value: u16, len: usize) {
        for i in 0..len {
            let b = bit + i;
            if b / 16 >= words.len() {
                return;
            }
            let m = 1u16 << (15 - b % 16);
            if (value >> (len - 1 - i)) & 1 == 1 {
                words[b / 16] |= m;
            } else {
                words[b / 16] &= !m;
            }
        }
    }

    #[test]
    fn the_lanes_entries_are_each_code_once() {
        // Every code (all fit in FAST_BITS) fills the entries its bits start, with its
        // byte and length; every other entry is 0.
        for t in [&B50A, &B606] {
            let one = &t.lut().one;
            let mut filled = 0;
            for (byte, &(code, len)) in t.codes().iter().enumerate() {
                let len = u32::from(len);
                let first = usize::from(code) << (FAST_BITS - len);
                for e in &one[first..first + (1 << (FAST_BITS - len))] {
                    assert_eq!(
                        *e,
                        (byte as u16) << 8 | len as u16,
                        "{} byte {byte}",
                        t.name()
                    );
                    filled += 1;
                }
            }
            let zeros = one.iter().filter(|&&e| e == 0).count();
            assert_eq!(filled + zeros, FAST_SIZE, "{}", t.name());
        }
    }

    #[test]
    fn the_fast_entry_of_zero_bits_is_zero() {
        // The lanes rely on it: a lane given the window 1 (index 0) takes no bits and
        // gives no byte.
        for t in [&B50A, &B606] {
            assert_eq!(t.lut().fast[0], 0, "{}", t.name());
            assert_eq!(t.lut().one[0], 0, "{}", t.name());
            assert!(!invalid_patterns(t).is_empty(), "{}", t.name());
        }
        assert_eq!(invalid_patterns(&B50A), vec![(1, 12)]);
        assert_eq!(invalid_patterns(&B606).len(), 9);
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 400,
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        #[test]
        fn round_trip(words in prop::collection::vec(word_strategy(), 0..600), ti in 0u8..2) {
            let t = table_of(ti);
            let coded = encode(&words, t);
            let plain: Vec<u8> = words.iter().flat_map(|w| w.to_be_bytes()).collect();
            for little in [false, true] {
                let mut out = Vec::new();
                let r = if little {
                    decode::<Le>(&stream_bytes::<Le>(&coded), t, plain.len(), &mut out)
                } else {
                    decode::<Be>(&stream_bytes::<Be>(&coded), t, plain.len(), &mut out)
                };
                prop_assert!(r.is_ok(), "{:?}", r);
                prop_assert_eq!(&out, &plain);
                if !words.is_empty() {
                    // One byte less room: too long, at the last code.
                    let mut o2 = Vec::new();
                    let r = decode::<Be>(&stream_bytes::<Be>(&coded), t, plain.len() - 1, &mut o2);
                    let last = t.codes()[usize::from(plain[plain.len() - 1])].1 as usize;
                    let bits: usize = plain.iter().map(|&b| t.codes()[usize::from(b)].1 as usize).sum();
                    prop_assert_eq!(r, Err(HuffmanError::TooLong {
                        offset: word_offset(bits - last), bit: bits - last, max_out: plain.len() - 1 }));
                    prop_assert!(o2.is_empty());
                }
            }
        }

        #[test]
        fn equals_the_reference_on_any_stream(
            words in prop::collection::vec(any::<u16>(), 0..40),
            ti in 0u8..2,
            max_out in 0usize..120,
        ) {
            let t = table_of(ti);
            let want = reference(&words, t, max_out);
            prop_assert_eq!(dec::<Le>(&words, t, max_out), want.clone());
            prop_assert_eq!(dec::<Be>(&words, t, max_out), want);
        }

        #[test]
        fn equals_the_reference_on_long_streams(
            words in prop::collection::vec(prop_oneof![Just(0u16), any::<u16>(), 0u16..0x100], 128..700),
            ti in 0u8..2,
            max_out in prop_oneof![Just(usize::MAX), 0usize..3000],
        ) {
            // Long enough for the lanes (LANES x LANE_MIN_BYTES), from random bits.
            let t = table_of(ti);
            let want = reference(&words, t, max_out);
            prop_assert_eq!(dec::<Le>(&words, t, max_out), want.clone());
            prop_assert_eq!(dec::<Be>(&words, t, max_out), want);
        }

        #[test]
        fn equals_the_reference_on_damaged_streams(
            words in prop::collection::vec(word_strategy(), 1..200),
            ti in 0u8..2,
            flips in prop::collection::vec((any::<prop::sample::Index>(), 0u32..16), 1..4),
            cut in 0usize..3,
            extra in prop::collection::vec(prop_oneof![Just(0u16), any::<u16>()], 0..3),
        ) {
            let t = table_of(ti);
            let mut coded = encode(&words, t);
            for (i, b) in flips {
                let i = i.index(coded.len());
                coded[i] ^= 1 << b;
            }
            coded.truncate(coded.len().saturating_sub(cut));
            coded.extend(extra);
            let want = reference(&coded, t, 400);
            prop_assert_eq!(dec::<Le>(&coded, t, 400), want.clone());
            prop_assert_eq!(dec::<Be>(&coded, t, 400), want);
        }

        #[test]
        fn equals_the_reference_on_random_symbol_streams(
            kind in 0u8..4,
            seed in prop::collection::vec(any::<u8>(), 0..4000),
            ti in 0u8..2,
            damage in prop::collection::vec((any::<prop::sample::Index>(), 0u32..16), 0..3),
            cut in 0usize..3,
            bound in 0u8..4,
        ) {
            // Symbol streams long enough for the lanes (LANES x LANE_MIN_BYTES coded bytes),
            // with uniform bytes, zero runs (1- and 2-bit codes: output up to 8 x the
            // stream, past the lanes' room), small values, or a mix; then possibly some
            // flipped bits and the last words cut off (invalid codes, odd output, END in
            // the wrong place, a code cut by the end).
            let t = table_of(ti);
            let words = drawn_words(&seed, kind, 0x03);
            let mut coded = encode(&words, t);
            for &(i, b) in &damage {
                if !coded.is_empty() {
                    let i = i.index(coded.len());
                    coded[i] ^= 1 << b;
                }
            }
            coded.truncate(coded.len().saturating_sub(cut));
            let max_out = match bound {
                0 => usize::MAX,
                1 => 2 * words.len(),
                2 => (2 * words.len()).saturating_sub(1 + seed.len() % 7),
                _ => 2 * 32767,
            };
            let want = reference(&coded, t, max_out);
            if damage.is_empty() && cut == 0 && bound != 2 {
                // Intact and within the bound: the reference gives the symbols back.
                let plain: Vec<u8> = words.iter().flat_map(|w| w.to_be_bytes()).collect();
                prop_assert_eq!(want.clone().map(|r| r.0), Ok(plain));
            }
            prop_assert_eq!(dec::<Le>(&coded, t, max_out), want.clone());
            prop_assert_eq!(dec::<Be>(&coded, t, max_out), want);
        }

        #[test]
        fn never_panics_on_odd_bytes(bytes in prop::collection::vec(any::<u8>(), 0..300), ti in 0u8..2) {
            let t = table_of(ti);
            let mut out = Vec::new();
            let a = decode::<Le>(&bytes, t, 1000, &mut out).map(|b| (out.clone(), b));
            // The odd last byte is not read.
            let even = &bytes[..bytes.len() & !1];
            let mut o2 = Vec::new();
            let b = decode::<Le>(even, t, 1000, &mut o2).map(|b| (o2, b));
            prop_assert_eq!(a, b);
        }
    }

    proptest! {
        // The joins of the lanes are rare events per stream (where a lane resynchronises):
        // more cases than the other properties (about a second in all).
        #![proptest_config(ProptestConfig {
            cases: 1500,
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        #[test]
        fn the_lanes_equal_the_exact_path(
            kind in 0u8..5,
            seed in prop::collection::vec(any::<u8>(), 0..6000),
            ti in 0u8..2,
            invalid in prop::collection::vec((any::<prop::sample::Index>(), any::<prop::sample::Index>()), 1..3),
            flips in prop::collection::vec((any::<prop::sample::Index>(), 0u32..16), 1..3),
            damage in 0u8..4,
            cut in prop_oneof![3 => Just(0usize), 1 => 1usize..4],
            extra in prop::collection::vec(prop_oneof![Just(0u16), any::<u16>()], 0..2),
            odd in any::<bool>(),
            bound in prop_oneof![2 => Just(usize::MAX), 1 => 0usize..13000],
        ) {
            // Coded symbol streams long and short (the lanes from LANES x LANE_MIN_BYTES
            // bytes), from uniform, zero-heavy, small, mixed or raw random words; then
            // invalid patterns written at random bits, flipped bits, words cut off or
            // added, an odd last byte, and a random bound: the decoder (lanes, fast loop,
            // exact path) equals the exact path alone, for both byte orders.
            let t = table_of(ti);
            let coded = damaged(t, kind, &seed, &invalid, &flips, damage, cut, &extra);
            for little in [false, true] {
                let mut stream = if little {
                    stream_bytes::<Le>(&coded)
                } else {
                    stream_bytes::<Be>(&coded)
                };
                if odd {
                    stream.push(0xA5);
                }
                let (got, want) = if little {
                    let mut out = vec![7u8];
                    let r = decode::<Le>(&stream, t, bound, &mut out);
                    (r.map(|bits| (out.split_off(1), bits)).map_err(|e| (e, out)), exact_only::<Le>(&stream, t, bound))
                } else {
                    let mut out = vec![7u8];
                    let r = decode::<Be>(&stream, t, bound, &mut out);
                    (r.map(|bits| (out.split_off(1), bits)).map_err(|e| (e, out)), exact_only::<Be>(&stream, t, bound))
                };
                match (got, want) {
                    (Ok(g), Ok(w)) => prop_assert_eq!(g, w),
                    (Err((e, out)), Err(w)) => {
                        prop_assert_eq!(e, w);
                        prop_assert_eq!(out, vec![7u8], "out is left as it was");
                    }
                    (g, w) => prop_assert!(false, "decode {:?} against exact {:?}", g.map(|x| x.1), w.map(|x| x.1)),
                }
            }
        }

        #[test]
        fn a_batch_equals_the_exact_path_stream_by_stream(
            streams in prop::collection::vec((
                0u8..5,
                prop::collection::vec(any::<u8>(), 0..3000),
                0u8..4,
                prop_oneof![3 => Just(0usize), 1 => 1usize..4],
                prop_oneof![3 => Just(usize::MAX), 1 => 0usize..6000],
                any::<bool>(),
            ), 0..12),
            ti in 0u8..2,
            invalid in prop::collection::vec((any::<prop::sample::Index>(), any::<prop::sample::Index>()), 1..3),
            flips in prop::collection::vec((any::<prop::sample::Index>(), 0u32..16), 1..3),
        ) {
            // A batch of streams of every kind, damaged or not, with their own bounds and
            // odd last bytes, decoded side by side, twice in the same batch (its buffers
            // reused): each stream gives what the exact path alone gives, in both byte
            // orders.
            let t = table_of(ti);
            let mut batch = Batch::default();
            for little in [false, true, false, true] {
                let made: Vec<(Vec<u8>, usize)> = streams
                    .iter()
                    .map(|(kind, seed, damage, cut, bound, odd)| {
                        let coded = damaged(t, *kind, seed, &invalid, &flips, *damage, *cut, &[0x5A5A]);
                        let mut stream = if little {
                            stream_bytes::<Le>(&coded)
                        } else {
                            stream_bytes::<Be>(&coded)
                        };
                        if *odd {
                            stream.push(0xA5);
                        }
                        (stream, *bound)
                    })
                    .collect();
                let jobs: Vec<(&[u8], usize)> = made.iter().map(|(s, b)| (s.as_slice(), *b)).collect();
                if little {
                    batch.decode::<Le>(&jobs, t);
                } else {
                    batch.decode::<Be>(&jobs, t);
                }
                prop_assert_eq!(batch.len(), jobs.len());
                for (i, &(stream, bound)) in jobs.iter().enumerate() {
                    let want = if little {
                        exact_only::<Le>(stream, t, bound)
                    } else {
                        exact_only::<Be>(stream, t, bound)
                    };
                    let got = batch.get(i).map(|r| r.map(|(b, bits)| (b.to_vec(), bits)));
                    prop_assert_eq!(got, Some(want), "stream {} of {}", i, jobs.len());
                }
                prop_assert!(batch.get(jobs.len()).is_none());
            }
        }
    }
}
