//! Walking a file into top-level blocks: byte-order detection and resynchronisation.
//!
//! **Sound events are the anchors.** A *sound event* is a science event block whose data
//! start with a JMDC sub-block that parses, whose sub-blocks tile it exactly, and whose
//! chain continues (the next header is valid, or it ends at the end of the data). Sub-block
//! headers share the top-level layout, so detector data are full of words that read as
//! valid headers, and chains of them (even 16 deep) merge into the true chain; a sound
//! event is evidence that such data practically never give (the JMDC shape plus an exact
//! tiling). The walk keeps every block whose header is valid and fits, in sync from
//! offset 0, with two checks:
//!
//! - a block that is not a sound event is kept only if no sound event starts strictly
//!   inside it (else its SIZE is corrupt or it is junk read as a header: the walk breaks
//!   at it), and it is not an event's group sub-block (its CRC checks);
//! - a science event that is not sound, or whose successor is not a sound event, is
//!   checked for damage ([`Walk::after_damaged_event`]).
//!
//! **Resynchronisation** after a break at `p`: the scan looks for the first sound event
//! `S` after `p`, at every byte offset (odd ones too: junk of odd length shifts the rest of
//! the data by an odd number of bytes, and a block's `next` is counted from its own
//! start). It resumes at the earliest offset `q` in `p+1..=S` whose chain of valid headers
//! lands exactly on `S` (found by one backwards pass over `q..S`), so that undamaged
//! non-event blocks before `S` are kept; an event's sub-blocks orphaned by the damage
//! (JMDC or Level-3 shapes, groups whose CRC checks) are never taken as top-level blocks.
//! With no sound event ahead, the older rule applies: resume at the first offset whose
//! chain holds for [`CHAIN_DEPTH`] headers. Every byte offset is tested for a sound event
//! at most once ([`SoundScan`]), each test and each chain check is bounded
//! (`MAX_SUBBLOCKS`, `MAX_GROUP_CRC_WORDS`, `MAX_EVENT_SEARCH`, `RESUME_WINDOW`), so the
//! walk is linear in the size of the data even on adversarial input.

use crate::block::{self, BlockHeader, HeaderError};
use crate::dialect::Dialect;
use crate::group::group_crc;
use crate::huffman;
use crate::jmdc;
use crate::problems::{Error, Problem, ProblemKind, Result};
use crate::words::{Be, ByteOrder, Le, Order};

/// Number of chained block headers that make an offset trustworthy when no sound event
/// follows it.
pub const CHAIN_DEPTH: usize = 16;

/// Where the top-level blocks of a file are.
#[derive(Clone, Debug, Default)]
pub struct BlockIndex {
    /// Byte offset of every accepted top-level block, in file order.
    pub blocks: Vec<u64>,
    /// Byte offset of every science event block, in file order.
    pub events: Vec<u64>,
    /// Byte ranges `[start, end)` not covered by an accepted block.
    pub skipped: Vec<(u64, u64)>,
    /// Problems found while walking.
    pub problems: Vec<Problem>,
}

/// Sub-blocks walked by [`tiling_event`] before it gives up.
const MAX_SUBBLOCKS: usize = 64;
/// Data words of a TYPE 1 block whose CRC [`looks_like_subblock`] checks: a real group is
/// a few hundred to a few thousand words; the cap bounds the work of one check.
const MAX_GROUP_CRC_WORDS: usize = 8192;
/// How far after a damaged event [`Walk::after_damaged_event`] looks for a sound event.
const MAX_EVENT_SEARCH: usize = 1 << 20;
/// How far before a sound event the resume point is looked for (the backwards pass keeps
/// one flag per byte of this window).
const RESUME_WINDOW: usize = 4 << 20;
/// How much of the start of the data byte-order detection scans for sound events.
const DETECT_WINDOW: usize = 1 << 20;

/// The end of the data for a chain at `p`: blocks are whole words counted from their own
/// start, so a chain at an odd offset of even-length data ends one byte before the end.
#[inline]
fn end_at(total: usize, p: usize) -> usize {
    if p >= total {
        total
    } else {
        total - ((total - p) & 1)
    }
}

#[inline]
fn word<O: Order>(bytes: &[u8], at: usize) -> Option<u16> {
    let b = bytes.get(at..at.checked_add(2)?)?;
    Some(O::word([b[0], b[1]]))
}

/// The next block after the top-level block at `pos`, if its header is valid and it fits
/// in `bytes[..len]`.
#[inline]
fn next_block<O: Order>(bytes: &[u8], pos: usize, len: usize) -> Option<usize> {
    block::parse::<O>(bytes, pos, len, true)
        .ok()
        .map(|h| h.next)
}

/// Whether the chain of block sizes from `pos` stays valid for `depth` blocks or ends
/// exactly at the end of `bytes[..len]` (in the chain's word alignment). Each hop is a
/// header parse only (O(1)).
pub fn chain_ok<O: Order>(bytes: &[u8], pos: usize, len: usize, depth: usize) -> bool {
    let mut p = pos;
    for _ in 0..depth {
        if p == end_at(len, p) {
            return true;
        }
        match next_block::<O>(bytes, p, len) {
            Some(n) => p = n,
            None => return false,
        }
    }
    true
}

/// How many valid blocks chain from `pos` (at most `max`), and whether the chain ends
/// exactly at the end of `bytes[..len]`.
pub fn chain_length<O: Order>(bytes: &[u8], pos: usize, len: usize, max: usize) -> (usize, bool) {
    let mut p = pos;
    for n in 0..max {
        if p == end_at(len, p) {
            return (n, true);
        }
        match next_block::<O>(bytes, p, len) {
            Some(next) => p = next,
            None => return (n, false),
        }
    }
    (max, p == end_at(len, p))
}

/// O(1) filter for [`sound_event`]: a science event header (RR = 1, RW = 0, NODE 0..15,
/// TYPE 5, STATUS 0) whose data start with a sub-block of a JMDC header's shape (either
/// layout: [`jmdc::header_shape`]).
#[inline]
fn event_signature<O: Order>(bytes: &[u8], q: usize) -> bool {
    let Some(w0) = word::<O>(bytes, q) else {
        return false;
    };
    let id_at = q.saturating_add(if w0 & 0x8000 != 0 { 4 } else { 2 });
    let (Some(id), Some(sec)) = (
        word::<O>(bytes, id_at),
        word::<O>(bytes, id_at.saturating_add(2)),
    ) else {
        return false;
    };
    if !jmdc::is_event_id(id, sec) {
        return false;
    }
    // Secondary header, TIME (2 words), then the JMDC header sub-block.
    let j = id_at.saturating_add(8);
    match (word::<O>(bytes, j), word::<O>(bytes, j.saturating_add(2))) {
        (Some(size), Some(jid)) => jmdc::header_shape(size, jid),
        _ => false,
    }
}

/// The `next` of the block at `pos` if it is a science event whose first sub-block is the
/// JMDC sub-block and whose sub-blocks tile its data exactly.
fn tiling_event<O: Order>(bytes: &[u8], pos: usize) -> Option<usize> {
    let h = block::parse::<O>(bytes, pos, bytes.len(), true).ok()?;
    if !h.is_science_event() {
        return None;
    }
    // The first sub-block must be a JMDC header (FORMAT.md 4.1, 9.1); the walk is capped
    // so that a check costs O(1) whatever the input (an event has a handful of sub-blocks).
    match block::parse::<O>(bytes, h.data_start, h.next, false) {
        Ok(j) if jmdc::header_shape_of(&j) => {}
        _ => return None,
    }
    // A later sub-block of the JMDC's TYPE and NODE is no sub-block of this event: the
    // JMDC comes once (FORMAT.md 4), and top-level blocks read as sub-blocks have the same
    // extents, so an event whose corrupt SIZE lands on a later block boundary would
    // otherwise tile and swallow the events after it.
    let mut p = h.data_start;
    for k in 0..MAX_SUBBLOCKS {
        if p >= h.next {
            break;
        }
        let sub = block::parse::<O>(bytes, p, h.next, false).ok()?;
        if k > 0 && jmdc::header_layout(sub.type_, sub.node).is_some() {
            return None;
        }
        p = sub.next;
    }
    (p == h.next).then_some(h.next)
}

/// Whether a block ending at `next` is followed by a valid header or by the end of the
/// data.
#[inline]
fn continues<O: Order>(bytes: &[u8], next: usize) -> bool {
    next == end_at(bytes.len(), next) || next_block::<O>(bytes, next, bytes.len()).is_some()
}

/// Whether a sound event starts at `q`: a science event whose first sub-block is the
/// JMDC sub-block, whose sub-blocks tile it exactly, and whose chain continues.
#[inline]
fn sound_event<O: Order>(bytes: &[u8], q: usize) -> bool {
    event_signature::<O>(bytes, q)
        && tiling_event::<O>(bytes, q).is_some_and(|next| continues::<O>(bytes, next))
}

/// Whether the sound event at `s` is the long-form alias of a block at `s + 2`: a word
/// 0x8000 (L = 1, high size bits 0) followed by a short-form header reads as the same block
/// in long form (SIZE_EXT = the short SIZE), ending at the same byte. Which of the two is
/// real only the block before can tell: in sync it does, unless it is damaged; after damage
/// the short form is taken ([`short_form`]): a word 0x8000 just before an event is what
/// the zero-padded last word of a Huffman-coded group (FORMAT.md 9.3) often is, while small
/// events in long form are rare (the DAQ uses L = 1 for blocks of 32768 bytes or more).
/// Two bytes inserted in a block ending in 0x8000 make its SIZE end on that word: the
/// walk then lands on the alias in sync, and takes the short form when the block before
/// is a science event that is not sound ([`Walk::after_damaged_event`]) or holds an
/// event's sub-blocks that run on to the short form ([`subblocks_run_to`]).
fn long_alias<O: Order>(bytes: &[u8], s: usize) -> bool {
    word::<O>(bytes, s) == Some(0x8000)
        && next_block::<O>(bytes, s + 2, bytes.len())
            .is_some_and(|n| next_block::<O>(bytes, s, bytes.len()) == Some(n))
}

/// How far into a block [`subblocks_run_to`] looks for a JMDC header sub-block: an
/// event's JMDC sub-block starts 10 or 12 bytes into it (short or long size), a few more
/// when junk was inserted in its header.
const SUBBLOCK_LOOKIN: usize = 32;

/// When the block `h` holds, in its first [`SUBBLOCK_LOOKIN`] bytes, a sub-block of a JMDC
/// header's shape from which sub-blocks chain exactly to `end` (past the block's own end):
/// the offset of that sub-block. That is an event's data running on past a SIZE that bytes
/// inserted into the event (its header turned into another block's, say) made short.
/// Costs at most `SUBBLOCK_LOOKIN / 2` chains of `MAX_SUBBLOCKS` header parses.
fn subblocks_run_to<O: Order>(bytes: &[u8], h: &BlockHeader, end: usize) -> Option<usize> {
    let from = h.offset.saturating_add(2);
    let to = h.offset.saturating_add(SUBBLOCK_LOOKIN).min(h.next);
    (from..to).step_by(2).find(|&q| {
        let Ok(j) = block::parse::<O>(bytes, q, end, false) else {
            return false;
        };
        jmdc::header_shape_of(&j) && subblocks_land::<O>(bytes, j.next, end)
    })
}

/// Whether the chain of sub-blocks from `from` lands exactly on `target` (at most
/// [`MAX_SUBBLOCKS`] header parses; zero sub-blocks when `from == target`).
fn subblocks_land<O: Order>(bytes: &[u8], from: usize, target: usize) -> bool {
    let mut p = from;
    for _ in 0..MAX_SUBBLOCKS {
        if p >= target {
            break;
        }
        match block::parse::<O>(bytes, p, target, false) {
            Ok(sub) => p = sub.next,
            Err(_) => return false,
        }
    }
    p == target
}

/// Whether the block at `q` holds contents that tile it (FORMAT.md 10): a container, whose
/// data start with a sub-block of a JMDC header's shape and whose sub-blocks tile it, or an
/// envelope whose blocks tile it.
fn tiling_container<O: Order>(bytes: &[u8], q: usize) -> bool {
    let Ok(h) = block::parse::<O>(bytes, q, bytes.len(), true) else {
        return false;
    };
    let container = block::parse::<O>(bytes, h.data_start, h.next, false)
        .is_ok_and(|j| jmdc::header_shape_of(&j))
        && subblocks_land::<O>(bytes, h.data_start, h.next);
    container || crate::envelope::tiles::<O>(bytes, &h)
}

/// Header lengths of a top-level block, in bytes: size word(s), ID word(s), secondary
/// header and TIME (FORMAT.md 2): 6 (a short request) to 14 (a long reply with TYPE_EXT).
const HEADER_BYTES: std::ops::RangeInclusive<usize> = 6..=14;

/// F6: when the non-event block `h` is a container whose contents are sub-blocks
/// (FORMAT.md 10: a JMDC header, then sub-blocks) into which `d = f - h.next` bytes were
/// inserted, so that its unchanged SIZE ends `d` bytes before its true end `f` and its
/// last `d` bytes (its last sub-block, or the tail of one) read as the top-level block
/// `[h.next, f)`: where. The test is exact: with `d` bytes taken out at that place, the
/// container's sub-blocks tile it up to `f`:
///
/// - its data start with a sub-block of a JMDC header's shape whose sub-blocks do not
///   tile it, and from one of the points that chain reaches, `b`, the sub-blocks from
///   `b + d` land exactly on `f` (bytes inserted among or inside its sub-blocks);
/// - or its data start with the size word of a JMDC header whose ID word is `d` bytes
///   on, and the sub-blocks after that header land exactly on `f` (bytes inserted
///   between the two words);
/// - or its data hold a sub-block of a JMDC header's shape `d` bytes after where a
///   header of [`HEADER_BYTES`] would put it, from which sub-blocks land exactly on `f`
///   (bytes inserted into its header, or right after it); at `h.next` itself (the block
///   after it is that JMDC header) only when the words before it are a container's header
///   of just the length that puts the JMDC header there (its ID word `d` bytes after the
///   size word), and that JMDC-shaped block is not itself a container that tiles.
///
/// Costs at most `MAX_SUBBLOCKS` chains of `MAX_SUBBLOCKS` header parses on a container
/// that does not tile, and six chains otherwise.
fn container_insertion<O: Order>(bytes: &[u8], h: &BlockHeader, f: usize) -> Option<Insertion> {
    let e = h.next;
    // The inserted bytes are inside the block, before its end: fewer than its length.
    let d = f
        .checked_sub(e)
        .filter(|&d| d > 0 && d.saturating_add(2) <= e - h.offset)?;
    let jmdc_at =
        |q: usize| block::parse::<O>(bytes, q, e, false).is_ok_and(|j| jmdc::header_shape_of(&j));
    if jmdc_at(h.data_start) {
        // The points the container's chain of sub-blocks reaches inside it (at most
        // MAX_SUBBLOCKS; walked twice, so that a container that tiles costs one walk and
        // nothing is allocated).
        let points = || {
            let mut p = h.data_start;
            (0..MAX_SUBBLOCKS).map_while(move |_| {
                p = block::parse::<O>(bytes, p, e, false).ok()?.next;
                Some(p)
            })
        };
        if points().any(|p| p == e) {
            return None; // it tiles
        }
        return points()
            .take_while(|&p| p < e)
            .find(|&b| {
                b.checked_add(d)
                    .is_some_and(|t| subblocks_land::<O>(bytes, t, f))
            })
            .map(Insertion::Contents);
    }
    // Between the size and the ID word of the JMDC header at its data start.
    let d0 = h.data_start;
    if let (Some(size), Some(id)) = (
        word::<O>(bytes, d0),
        d0.checked_add(2 + d).and_then(|i| word::<O>(bytes, i)),
    ) {
        let after = d0 + 2 + usize::from(size) + usize::from(size & 1) + d;
        if size & 0x8000 == 0
            && jmdc::header_shape(size, id)
            && subblocks_land::<O>(bytes, after, f)
        {
            return Some(Insertion::Contents(d0 + 2));
        }
    }
    let at = |n: usize| h.offset.checked_add(n)?.checked_add(d);
    let (Some(lo), Some(hi)) = (at(*HEADER_BYTES.start()), at(*HEADER_BYTES.end())) else {
        return None;
    };
    let jmdc_to =
        |q: usize| block::parse::<O>(bytes, q, f, false).is_ok_and(|j| jmdc::header_shape_of(&j));
    // A JMDC header at the block's end is the block after it: the container held nothing
    // else (a TYPE 5 request to a JMDC, say), and a block of `d` data bytes followed by a
    // JMDC-shaped block of `d` bytes reads the same. Then the words before it must be the
    // container's header: its ID word (no TYPE_EXT) and secondary header, and TIME when
    // the ID says reply, right before it, of a container's TYPE (FORMAT.md 10: 5 not an
    // event, or 6, 7, 8 from a JMDC node).
    // The header is exactly those words: `d` bytes after the size word(s), the ID word
    // (without TYPE_EXT) is where the header's length puts the JMDC header (`j`). And the
    // JMDC-shaped block at `j` is no container whose contents tile it: a small request or
    // reply to a JMDC (SIZE 34, the 2007 header's with GPS) holding one JMDC header is a
    // block of its own, not the sub-block of the one before it.
    let id_at = h.offset + if h.long { 4 } else { 2 } + d;
    let container_id_before = |j: usize| {
        word::<O>(bytes, id_at).is_some_and(|id| {
            let (node, type_) = ((id >> 5) & 0x1FF, (id & 0x1F) as u8);
            // ID and secondary header, and TIME in a reply.
            let header = if id & 0x8000 != 0 { 8 } else { 4 };
            j == id_at + header
                && (type_ == 5 || ((6..=8).contains(&type_) && jmdc::is_jmdc_node(node)))
        })
    };
    (lo..=hi.min(e))
        .step_by(2)
        .find(|&j| {
            jmdc_to(j)
                && subblocks_land::<O>(bytes, j, f)
                && (j < e || (container_id_before(j) && !tiling_container::<O>(bytes, j)))
        })
        .map(Insertion::Header)
}

/// Where [`container_insertion`] finds that bytes were inserted into a container.
#[derive(Clone, Copy)]
enum Insertion {
    /// Among or inside its sub-blocks: its chain of sub-blocks resumes `d` bytes after
    /// this point of it.
    Contents(usize),
    /// In its header (or right after it): its JMDC header sub-block is at this offset.
    Header(usize),
}

/// The sound event to resume at when the scan found `s`: its short form when `s` is a
/// long-form alias ([`long_alias`]).
fn short_form<O: Order>(bytes: &[u8], s: usize) -> usize {
    if long_alias::<O>(bytes, s) {
        s + 2
    } else {
        s
    }
}

/// The first sound event in a range, remembering what has been scanned: the walk asks
/// with ranges that only move forward, so every byte offset is tested once.
#[derive(Default)]
struct SoundScan {
    /// No sound event starts in `[from, to)`.
    from: usize,
    to: usize,
}

impl SoundScan {
    fn first_in<O: Order>(&mut self, bytes: &[u8], from: usize, to: usize) -> Option<usize> {
        let start = if (self.from..=self.to).contains(&from) {
            self.to
        } else {
            self.from = from;
            from
        };
        let to = to.min(bytes.len());
        let mut q = start;
        while q < to {
            if sound_event::<O>(bytes, q) {
                self.to = q;
                return Some(q);
            }
            q += 1;
        }
        self.to = q.max(start);
        None
    }
}

/// Counts the sound events that start in the first `window` bytes.
fn count_sound<O: Order>(bytes: &[u8], window: usize) -> usize {
    (0..window.min(bytes.len()))
        .filter(|&q| sound_event::<O>(bytes, q))
        .count()
}

/// Decides the byte order of a block file (FORMAT.md section 1).
///
/// First by the sound events (science events that start with a JMDC sub-block, tile
/// exactly and chain) found at any byte offset of the first MB in each order: under the
/// wrong order there are none in practice, under the right one every event is one, even
/// when damage (an odd number of inserted bytes, say) breaks the chain from the first
/// header. When neither order has sound events, or both have, by the chain of block sizes
/// from the first header: the order in which it holds and not in the other. When damage
/// near the start breaks that chain in both orders, the order whose first header chains
/// to a second one and that skips as damaged less than half of the data, and under a
/// quarter of what the other order skips, is taken. Otherwise it never guesses: it says
/// so.
pub fn detect_byte_order(bytes: &[u8]) -> Result<ByteOrder> {
    let len = bytes.len();
    if len < 4 {
        return Err(Error::format(
            0,
            format!(
                "{} bytes cannot hold an AMS block, so the byte order cannot be detected",
                bytes.len()
            ),
        ));
    }
    let el = count_sound::<Le>(bytes, DETECT_WINDOW);
    let eb = count_sound::<Be>(bytes, DETECT_WINDOW);
    if el > eb.saturating_mul(4) {
        return Ok(ByteOrder::Little);
    }
    if eb > el.saturating_mul(4) {
        return Ok(ByteOrder::Big);
    }
    let le = chain_ok::<Le>(bytes, 0, len, CHAIN_DEPTH);
    let be = chain_ok::<Be>(bytes, 0, len, CHAIN_DEPTH);
    match (le, be) {
        (true, false) => Ok(ByteOrder::Little),
        (false, true) => Ok(ByteOrder::Big),
        (false, false) => {
            // Damage near the start: fall back on how much of the data each order has to
            // skip as damaged. (Bytes covered would mislead: one spurious header with a
            // large SIZE can cover most of a small file.)
            let skipped = |order: ByteOrder| -> u64 {
                build(bytes, order).skipped.iter().map(|(a, b)| b - a).sum()
            };
            let starts = |order: ByteOrder| match order {
                ByteOrder::Little => chain_ok::<Le>(bytes, 0, len, 2),
                ByteOrder::Big => chain_ok::<Be>(bytes, 0, len, 2),
            };
            let (sl, sb) = (skipped(ByteOrder::Little), skipped(ByteOrder::Big));
            let half = bytes.len() as u64 / 2;
            if sl < half && sl.saturating_mul(4) < sb && starts(ByteOrder::Little) {
                return Ok(ByteOrder::Little);
            }
            if sb < half && sb.saturating_mul(4) < sl && starts(ByteOrder::Big) {
                return Ok(ByteOrder::Big);
            }
            // `len >= 4`, checked at the top: the first two bytes exist.
            let b = [bytes[0], bytes[1]];
            Err(Error::format(
                0,
                format!(
                    "not AMS block data: in neither byte order do block sizes chain from the \
                     start (first word reads 0x{:04X} little-endian, 0x{:04X} big-endian)",
                    u16::from_le_bytes(b),
                    u16::from_be_bytes(b)
                ),
            ))
        }
        (true, true) => {
            const MAX: usize = 1024;
            let (nl, _) = chain_length::<Le>(bytes, 0, len, MAX);
            let (nb, _) = chain_length::<Be>(bytes, 0, len, MAX);
            if nl > nb {
                Ok(ByteOrder::Little)
            } else if nb > nl {
                Ok(ByteOrder::Big)
            } else {
                Err(Error::format(
                    0,
                    format!(
                        "byte order is ambiguous: block sizes chain for {nl} blocks in both \
                         orders; pass byte_order='little' or 'big'"
                    ),
                ))
            }
        }
    }
}

/// Refuses data that are not AMS block data (FORMAT.md section 1): the chain of block
/// sizes from the start must reach the end of the data exactly or hold for
/// [`CHAIN_DEPTH`] blocks, or a sound event must start in the first
/// [`DETECT_WINDOW`] bytes, or a block of the chain (or the block cut by the end of the
/// data) must be a science event with a JMDC header's shape. A short chain that breaks is
/// what text, DSP program images or
/// editor swap files give (their first bytes read as a few plausible sizes); a real block
/// file, however short, chains to its end, and a damaged one still holds its events.
pub fn check_block_data(bytes: &[u8], order: ByteOrder) -> Result<()> {
    match order {
        ByteOrder::Little => check_block_data_with::<Le>(bytes),
        ByteOrder::Big => check_block_data_with::<Be>(bytes),
    }
}

fn check_block_data_with<O: Order>(bytes: &[u8]) -> Result<()> {
    let len = bytes.len();
    let (n, ends) = chain_length::<O>(bytes, 0, len, CHAIN_DEPTH);
    if ends || n >= CHAIN_DEPTH {
        return Ok(());
    }
    let window = DETECT_WINDOW.min(len);
    if SoundScan::default()
        .first_in::<O>(bytes, 0, window)
        .is_some()
    {
        return Ok(());
    }
    // A truncated file: a block of the chain, or the one cut by the end of the data, is a
    // science event whose JMDC header has its shape (evidence text never gives).
    let mut p = 0;
    for k in 0..=n {
        if event_signature::<O>(bytes, p) {
            return Ok(());
        }
        if k < n {
            p = next_block::<O>(bytes, p, len).unwrap_or(p);
        }
    }
    Err(Error::format(
        p,
        format!(
            "not AMS block data: {} block sizes chain from the start for only {n} block{} \
             and break at byte {p} of {len}, and no science event starts in the first {} \
             bytes (a text file, a DSP program image or an editor swap file reads like this)",
            O::ORDER.name(),
            if n == 1 { "" } else { "s" },
            window
        ),
    ))
}

/// Walks the whole data into top-level blocks.
pub fn build(bytes: &[u8], order: ByteOrder) -> BlockIndex {
    build_releasing(bytes, order, &|_, _| {})
}

/// How far behind the walk bytes are released (the resync may look back into them).
const RELEASE_LAG: usize = 8 << 20;
/// How many bytes the walk passes between two releases.
const RELEASE_STEP: usize = 32 << 20;

/// How far ahead of its position the walk asks the CPU for the data
/// ([`Stepper::advance`]).
const WALK_AHEAD: usize = 8 << 10;

/// [`build`], telling `release` of each byte range the walk has left well behind, so that
/// the caller can let go of the memory behind it (the walk reads every block header, which
/// maps every page of a memory-mapped file).
pub fn build_releasing(
    bytes: &[u8],
    order: ByteOrder,
    release: &dyn Fn(usize, usize),
) -> BlockIndex {
    match order {
        ByteOrder::Little => build_with::<Le>(bytes, release),
        ByteOrder::Big => build_with::<Be>(bytes, release),
    }
}

/// Why the walk broke at an offset.
#[derive(Clone, Copy)]
enum Break {
    /// The header is not valid or the block does not fit.
    Header,
    /// A sound event starts inside the block.
    EventInside(usize),
    /// The block is an event's group sub-block (its CRC checks).
    Orphan,
}

fn describe<O: Order>(
    bytes: &[u8],
    pos: usize,
    why: Break,
    resume: usize,
) -> (ProblemKind, String) {
    let len = bytes.len();
    let skipped = resume - pos;
    let tail = if resume >= len {
        format!("{skipped} bytes skipped to the end of the data")
    } else {
        format!("{skipped} bytes skipped; block chain resumes at byte {resume}")
    };
    let parsed = block::parse::<O>(bytes, pos, len, true);
    match (why, parsed) {
        (_, Err(HeaderError::Overrun { end, limit })) if resume >= len => (
            ProblemKind::BlockOverrun,
            format!("block ends at byte {end}, past the end of the data at byte {limit} (truncated); {tail}"),
        ),
        (_, Err(HeaderError::Truncated { need, have })) if resume >= len => (
            ProblemKind::BlockOverrun,
            format!(
                "block header cut by the end of the data (needs {need} bytes, {have} remain; truncated); {tail}"
            ),
        ),
        (_, Err(e @ HeaderError::Overrun { .. })) => {
            (ProblemKind::BlockOverrun, format!("{}; {tail}", e.describe()))
        }
        (_, Err(e)) => (ProblemKind::BadBlockHeader, format!("{}; {tail}", e.describe())),
        (Break::EventInside(s), Ok(h)) => (
            ProblemKind::BadChain,
            format!(
                "block SIZE {} runs to byte {} over the science event at byte {s}, so it is \
                 junk or its SIZE is corrupt; {tail}",
                h.size, h.next
            ),
        ),
        (Break::Orphan, Ok(_)) => (
            ProblemKind::BadChain,
            format!(
                "a group sub-block (its CRC checks) where a top-level block should start: \
                 part of a damaged event; {tail}"
            ),
        ),
        (Break::Header, Ok(h)) => (
            ProblemKind::BadChain,
            format!(
                "block SIZE {} does not chain to a valid block header (next would be at byte {}); {tail}",
                h.size, h.next
            ),
        ),
    }
}

/// Whether the scan with no sound event ahead may resume at `q`: `q` is not an orphaned
/// sub-block, and the chain from `q` holds for `CHAIN_DEPTH` blocks, or it ends exactly at
/// the end of the data and holds a science event whose sub-blocks tile it. Near the end of
/// the data the depth criterion degenerates: inside a truncated last block, words read as
/// sizes chain to the very end in one or two hops often enough to matter (seen in tests
/// that cut simulated runs at random points), so a short chain alone is weak evidence.
fn resync_ok<O: Order>(bytes: &[u8], q: usize) -> bool {
    let len = bytes.len();
    // The chain first: header parses only. The sub-block test may compute a group CRC.
    let chained = match chain_length::<O>(bytes, q, len, CHAIN_DEPTH) {
        (n, _) if n >= CHAIN_DEPTH => true,
        (n, true) => {
            // A short chain to the end: it must hold a science event that tiles exactly.
            let mut p = q;
            for _ in 0..n {
                if tiling_event::<O>(bytes, p).is_some() {
                    return true;
                }
                match next_block::<O>(bytes, p, len) {
                    Some(next) => p = next,
                    None => return false,
                }
            }
            false
        }
        _ => false,
    };
    chained && !looks_like_subblock::<O>(bytes, q, true)
}

/// Whether the words at `q` are an event's sub-block orphaned by damage rather than a
/// top-level block. Sub-block headers have the same size and ID words as top-level blocks,
/// so an event's sub-blocks chain by their sizes to the event's end and merge into the
/// true chain: a damaged size that lands on one, or a resynchronisation inside a damaged
/// event, would otherwise adopt them as top-level blocks (or as a fake event).
///
/// Always: a group (TYPE 1) whose CRC checks when read as a sub-block (a chain that lands
/// on a JMDC sub-block runs into its event's group next). With `resync`, when choosing a
/// place to resume, also the JMDC (TYPE 5, NODE 0..3, SIZE 24 or 34, unless it tiles as
/// an event) and Level-3 (TYPE 6, NODE 0..3) shapes; they are not used in sync because
/// top-level blocks of those shapes exist (small requests to a JMDC).
fn looks_like_subblock<O: Order>(bytes: &[u8], q: usize, resync: bool) -> bool {
    match subblock_shape::<O>(bytes, q) {
        Shape::Group => true,
        Shape::Jmdc | Shape::Level3 => resync,
        Shape::Other => false,
    }
}

/// What the words at `q` are when read as a sub-block.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// A group (TYPE 1) whose CRC checks.
    Group,
    /// A JMDC header's shape ([`jmdc::header_shape`]), and not a tiling event.
    Jmdc,
    /// TYPE 6, NODE 0..15.
    Level3,
    /// Anything else.
    Other,
}

fn subblock_shape<O: Order>(bytes: &[u8], q: usize) -> Shape {
    let Ok(h) = block::parse::<O>(bytes, q, bytes.len(), false) else {
        return Shape::Other;
    };
    let jmdc_node = jmdc::is_jmdc_node(h.node);
    match h.type_ {
        _ if jmdc::header_shape_of(&h) && tiling_event::<O>(bytes, q).is_none() => Shape::Jmdc,
        // A calibration container (TYPE 6 from a JMDC node, FORMAT.md 10) is no Level-3.
        6 if jmdc_node && !tiling_container::<O>(bytes, q) => Shape::Level3,
        1 => {
            let n = h.data_words();
            let crc_ok = (3..=MAX_GROUP_CRC_WORDS).contains(&n) && {
                let (stored, computed) = group_crc::<O>(bytes, h.data_start, n);
                stored == Some(computed)
            };
            if crc_ok {
                Shape::Group
            } else {
                Shape::Other
            }
        }
        _ => Shape::Other,
    }
}

/// Whether the sub-blocks of the event `h` after its JMDC header are what an event holds
/// (FORMAT.md 4): groups whose CRC checks, a plain group's (TYPE 1, 4.2) on its words, a
/// Huffman-coded group's (TYPE 4, 9.3) on its decoded words (the stream must decode, with
/// the table of the event's run ID), and Level-3 sub-blocks (TYPE 6 from a JMDC node). A
/// sub-block of another type is reported by the decoder: the event is damaged.
///
/// Without `strict`, only the plain groups' CRCs are checked (coded groups and other
/// sub-blocks pass): the test of an event whose successor is no tiling event, where a
/// stricter test would send more walks to [`Walk::redirect`], whose resume point does
/// not land on an event inside an envelope (FORMAT.md 10) that follows.
fn subblocks_sound<O: Order>(bytes: &[u8], h: &BlockHeader, strict: bool) -> bool {
    let mut p = h.data_start;
    let mut run_id = None;
    for _ in 0..MAX_SUBBLOCKS {
        if p >= h.next {
            return true;
        }
        let Ok(sub) = block::parse::<O>(bytes, p, h.next, false) else {
            return false;
        };
        if strict && p == h.data_start {
            // The JMDC header (first, FORMAT.md 4): the run ID that picks the code table,
            // its block TIME when the header cannot be read (9.3).
            let mut ignored = Vec::new();
            run_id = jmdc::parse::<O>(bytes, &sub, h.time, Dialect::Seed, &mut ignored)
                .map(|j| j.run_tag);
        }
        let ok = match sub.type_ {
            1 => {
                let n = sub.data_words();
                n >= 3 && {
                    let (stored, computed) = group_crc::<O>(bytes, sub.data_start, n);
                    stored == Some(computed)
                }
            }
            _ if !strict => true,
            4 => coded_group_crc_ok::<O>(bytes, &sub, run_id.unwrap_or(h.time)),
            6 => jmdc::is_jmdc_node(sub.node),
            // The JMDC header (its shape is checked by `tiling_event`).
            _ => p == h.data_start,
        };
        if !ok {
            return false;
        }
        p = sub.next;
    }
    p >= h.next
}

/// Whether the Huffman-coded group `sub` (TYPE 4) decodes with the table of `run_id` to
/// plain words (event number .. CRC) whose CRC checks (FORMAT.md 9.3, 4.2).
fn coded_group_crc_ok<O: Order>(bytes: &[u8], sub: &BlockHeader, run_id: u32) -> bool {
    // `floor((SIZE - 2) / 2)` whole words: an odd last byte is not read.
    let Some(stream) = bytes.get(sub.data_start..sub.data_start + 2 * sub.data_words()) else {
        return false;
    };
    // What a plain group of the same size form can hold (as the group decoder bounds it).
    let bound = if sub.long {
        stream.len().saturating_mul(8)
    } else {
        2 * 0x7FFF
    };
    let mut words = Vec::new();
    if huffman::decode::<O>(stream, huffman::table_for_run(run_id), bound, &mut words).is_err()
        || words.len() % 2 != 0
        || words.len() < 6
    {
        return false;
    }
    // Decoded bytes pair into words first byte high: big-endian words.
    let (stored, computed) = group_crc::<Be>(&words, 0, words.len() / 2);
    stored == Some(computed)
}

/// The state of one block walk.
struct Walk<'a, O: Order> {
    bytes: &'a [u8],
    index: BlockIndex,
    scan: SoundScan,
    _order: std::marker::PhantomData<O>,
}

impl<'a, O: Order> Walk<'a, O> {
    fn accept(&mut self, pos: usize) {
        self.index.blocks.push(pos as u64);
        if block::parse::<O>(self.bytes, pos, self.bytes.len(), true)
            .is_ok_and(|h| h.is_science_event())
        {
            self.index.events.push(pos as u64);
        }
    }

    fn skip(&mut self, start: usize, end: usize, kind: ProblemKind, detail: String) {
        self.index.problems.push(Problem::new(start, kind, detail));
        self.index.skipped.push((start as u64, end as u64));
    }

    /// One step in sync at `pos` (a block is expected there): the offset to go on from.
    fn step(&mut self, pos: usize) -> usize {
        let bytes = self.bytes;
        let Ok(h) = block::parse::<O>(bytes, pos, bytes.len(), true) else {
            return self.resync(pos, Break::Header);
        };
        if h.is_science_event() {
            if let Some(s) = self.after_damaged_event(pos, &h) {
                return self.redirect(pos, h.next, s);
            }
            if tiling_event::<O>(bytes, pos).is_some() {
                self.accept(pos);
                return h.next;
            }
        } else if crate::envelope::tiles::<O>(bytes, &h) {
            // An envelope whose inner blocks tile it exactly (FORMAT.md 10): the events
            // inside are its own, not evidence of a corrupt SIZE.
            self.accept(pos);
            return h.next;
        } else if looks_like_subblock::<O>(bytes, pos, false) {
            return self.resync(pos, Break::Orphan);
        }
        if let Some(s) = self.scan.first_in::<O>(bytes, pos + 1, h.next) {
            // The block's last word 0x8000 with the next block read as one long-form block
            // is no evidence of damage.
            if !(s + 2 == h.next && long_alias::<O>(bytes, s)) {
                return self.resync(pos, Break::EventInside(s));
            }
        }
        if long_alias::<O>(bytes, h.next) {
            let s = h.next + 2;
            if let Some(j) = subblocks_run_to::<O>(bytes, &h, s) {
                let detail = format!(
                    "block SIZE {} ends at byte {}, 2 bytes before the block at byte {s}, but \
                     its data hold an event's sub-blocks (a JMDC header at byte {j}) that run \
                     on to byte {s}: a damaged event (bytes inserted into it), skipped; the \
                     word 0x8000 at byte {} is its last word, not a long-form size word",
                    h.size, h.next, h.next
                );
                self.skip(pos, s, ProblemKind::BadChain, detail);
                return s;
            }
        }
        if !h.is_science_event() {
            if let Some(f) = self.container_tail(&h) {
                return f;
            }
        }
        self.accept(pos);
        h.next
    }

    /// F6: when the non-event block `h` is a container with bytes inserted into it whose
    /// last sub-block reads as the block after it ([`container_insertion`]), skips and
    /// reports both as one damaged block; the offset to go on from.
    fn container_tail(&mut self, h: &BlockHeader) -> Option<usize> {
        let bytes = self.bytes;
        let e = h.next;
        let x = block::parse::<O>(bytes, e, bytes.len(), true).ok()?;
        if x.is_science_event() {
            return None;
        }
        let f = x.next;
        let insertion = container_insertion::<O>(bytes, h, f)?;
        // A sound event inside the block after it: that block is junk or damaged, and the
        // walk breaks there (`step`).
        if self.scan.first_in::<O>(bytes, e + 1, f).is_some() {
            return None;
        }
        let d = f - e;
        let place = match insertion {
            Insertion::Contents(b) => format!(
                "the sub-blocks of its data (a JMDC header first) chain to byte {b} and on \
                 from byte {}, {d} bytes later, to byte {f}",
                b + d
            ),
            Insertion::Header(j) => format!(
                "its JMDC header sub-block is at byte {j}, {d} bytes after where a header \
                 would put it, and its sub-blocks chain from there to byte {f}"
            ),
        };
        let detail = format!(
            "block SIZE {} ends at byte {e} on a block of {d} bytes, but its data are a \
             container's (FORMAT.md 10) and {place}: {d} bytes inserted into a container, \
             whose SIZE they left unchanged, so that its last {d} bytes read as the block at \
             byte {e}; {} bytes skipped (the container and those bytes), the chain resumes \
             at byte {f}",
            h.size,
            f - h.offset
        );
        self.skip(h.offset, f, ProblemKind::BadChain, detail);
        Some(f)
    }

    /// When the science event `h` at `pos` is not sound (its sub-blocks do not tile it, or
    /// a group's CRC fails) and the block at its `next` is not a tiling event (or is the
    /// long-form alias of one, [`long_alias`]), the next sound event (in short form),
    /// searched from inside the damaged one; `None` when there is nothing to
    /// correct (or no sound event follows within `MAX_EVENT_SEARCH`).
    fn after_damaged_event(&mut self, pos: usize, h: &BlockHeader) -> Option<usize> {
        let bytes = self.bytes;
        let next = h.next;
        if next == end_at(bytes.len(), next) {
            return None;
        }
        // A successor that tiles is trusted, unless it is the long-form alias of the block
        // two bytes on: then this event's last word may be the 0x8000 ([`long_alias`]).
        let tiles = tiling_event::<O>(bytes, next).is_some();
        let alias = tiles && long_alias::<O>(bytes, next);
        if tiles && !alias {
            return None;
        }
        // The successor is not a sound event (or reads two ways): is this event sound (its
        // sub-blocks tile it, every group's CRC checks, no sub-block is out of place)?
        // Junk inside its last sub-block shortens that sub-block and the event alike, and
        // two bytes inserted before a sub-block's last word 0x8000 are absorbed by the
        // long-form alias of the next sub-block, so tiling alone does not tell.
        if tiling_event::<O>(bytes, pos).is_some() && subblocks_sound::<O>(bytes, h, alias) {
            return None;
        }
        let limit = next.saturating_add(MAX_EVENT_SEARCH);
        // A long-form event's short-form alias two bytes on is this event again.
        let from = if long_alias::<O>(bytes, pos) {
            pos + 3
        } else {
            pos + 1
        };
        self.scan
            .first_in::<O>(bytes, from, limit)
            .map(|s| short_form::<O>(bytes, s))
    }

    /// The damaged science event at `pos` (ending at `next`) is followed by the sound event
    /// `s`: keep the event unless `s` starts inside it, skip to where a chain lands on `s`.
    fn redirect(&mut self, pos: usize, next: usize, s: usize) -> usize {
        let start = if s < next {
            pos // it overlaps the sound event: the damaged event is dropped
        } else {
            self.accept(pos);
            next
        };
        let q = self.resume_point(start, s);
        if q > start {
            let detail = format!(
                "the science event at byte {pos} is damaged (its sub-blocks do not tile it or a \
                 group CRC fails) and no sound event follows it, so its SIZE is suspect; {} \
                 bytes skipped{}; the chain resumes at byte {q}, before the sound event at \
                 byte {s}",
                q - start,
                if start == pos {
                    " (the event overlaps a sound event and is dropped)"
                } else {
                    ""
                }
            );
            self.skip(start, q, ProblemKind::BadChain, detail);
        }
        self.accept_chain(q, s);
        s
    }

    /// Accepts the chain of blocks from `q` up to (not including) `s`, which lands on `s`.
    fn accept_chain(&mut self, q: usize, s: usize) {
        let mut p = q;
        while p < s {
            let Some(n) = next_block::<O>(self.bytes, p, self.bytes.len()) else {
                break; // cannot happen: `resume_point` checked the chain
            };
            self.accept(p);
            p = n;
        }
    }

    /// The resume point before the sound event `s`: the earliest offset in `lo..=s` (at
    /// most `RESUME_WINDOW` before `s`) whose chain of valid headers lands exactly on `s`
    /// and that no *rival* overrules, past any orphaned sub-block on that chain. A rival of
    /// a candidate `q` is an offset inside its block whose chain lands exactly on the end
    /// of `q` with two blocks or more: a header inside junk whose SIZE happens to land on
    /// a later real block would otherwise read the real blocks between as its data
    /// (docs/format.md 2). A candidate that is a container whose sub-blocks tile it or an
    /// envelope whose blocks tile it (FORMAT.md 10) is not overruled: its own contents
    /// chain to its end. With one block, the rival ties and the earlier candidate wins.
    ///
    /// One backwards pass over `lo..s` finds, for every offset, its next block if its
    /// chain lands on `s`, and for every offset the latest offset two blocks before it on
    /// such a chain: `q` is overruled when that offset, for the end of `q`, is after `q`
    /// (it is then inside `q`, and its chain lands on the end of `q` with two blocks).
    fn resume_point(&self, lo: usize, s: usize) -> usize {
        let bytes = self.bytes;
        let lo = lo.max(s.saturating_sub(RESUME_WINDOW));
        if lo >= s {
            return s;
        }
        const NONE: u32 = u32::MAX;
        // Offsets relative to `lo`; `n` stands for `s`. `RESUME_WINDOW` fits in a u32.
        let n = s - lo;
        // next[i]: the next block of lo + i when its chain lands on s, else NONE.
        let mut next = vec![NONE; n];
        // grand[m]: the latest i whose chain reaches m in exactly two blocks, else NONE.
        let mut grand = vec![NONE; n + 1];
        for i in (0..n).rev() {
            let Some(m) = next_block::<O>(bytes, lo + i, s).map(|nx| nx - lo) else {
                continue;
            };
            let lands = m == n || next.get(m).is_some_and(|&x| x != NONE);
            if !lands {
                continue;
            }
            if let Some(x) = next.get_mut(i) {
                *x = m as u32;
            }
            if let Some(&mm) = next.get(m) {
                if let Some(g) = grand.get_mut(mm as usize) {
                    if *g == NONE {
                        *g = i as u32; // the first found going backwards is the latest
                    }
                }
            }
        }
        let first = (0..n)
            .find(|&i| {
                let Some(&m) = next.get(i).filter(|&&m| m != NONE) else {
                    return false;
                };
                let overruled = grand
                    .get(m as usize)
                    .is_some_and(|&g| g != NONE && g as usize > i);
                !overruled || tiling_container::<O>(bytes, lo + i)
            })
            .unwrap_or(n);
        // Resume after the last orphaned sub-block of the chain (a damaged event's tail).
        let mut resume = lo + first;
        let mut p = resume;
        while p < s {
            let Some(next) = next_block::<O>(bytes, p, s) else {
                return s;
            };
            if self.orphan_on_chain(p, next, s) {
                resume = next;
            }
            p = next;
        }
        resume
    }

    /// Whether the block at `p` (ending at `next`) on a chain that lands on `s` is an
    /// event's sub-block orphaned by damage: a group whose CRC checks, a Level-3 shape, or
    /// a JMDC shape that would read as a science event or that an orphaned group or
    /// Level-3 shape follows. (Top-level blocks of the JMDC shape exist: a JMDC reply
    /// with STATUS != 0 that carries a JMDC sub-block has SIZE 34.)
    fn orphan_on_chain(&self, p: usize, next: usize, s: usize) -> bool {
        let bytes = self.bytes;
        match subblock_shape::<O>(bytes, p) {
            Shape::Group | Shape::Level3 => true,
            Shape::Jmdc => {
                block::parse::<O>(bytes, p, s, true).is_ok_and(|h| h.is_science_event())
                    || (next < s
                        && matches!(
                            subblock_shape::<O>(bytes, next),
                            Shape::Group | Shape::Level3
                        ))
            }
            Shape::Other => false,
        }
    }

    /// The walk broke at `p`: skips to the next trustworthy offset and reports it once.
    fn resync(&mut self, p: usize, why: Break) -> usize {
        let bytes = self.bytes;
        let len = bytes.len();
        let target = self
            .scan
            .first_in::<O>(bytes, p + 1, len)
            .map(|s| short_form::<O>(bytes, s));
        // Without a sound event ahead (or before one that is far), the older rule: a chain
        // of CHAIN_DEPTH headers.
        let generic_to = match target {
            Some(s) => s.saturating_sub(RESUME_WINDOW),
            None => len,
        };
        let mut q = p + 1;
        while q < generic_to && !resync_ok::<O>(bytes, q) {
            q += 1;
        }
        let (resume, chain_to) = if q < generic_to {
            (q, None)
        } else if let Some(s) = target {
            (self.resume_point(p + 1, s), Some(s))
        } else {
            (len, None)
        };
        let (kind, detail) = describe::<O>(bytes, p, why, resume);
        self.skip(p, resume, kind, detail);
        match chain_to {
            Some(s) => {
                self.accept_chain(resume, s);
                s
            }
            None => resume,
        }
    }

    fn finish(mut self, pos: usize) -> BlockIndex {
        let len = self.bytes.len();
        if pos < len {
            // A single byte after the last whole word of the chain. A skipped range running
            // to it absorbs it: one cut, one row.
            let index = &mut self.index;
            match index.skipped.last_mut() {
                Some(last) if last.1 == pos as u64 => {
                    last.1 = len as u64;
                    if let Some(p) = index.problems.last_mut() {
                        p.detail.push_str(" (and a single trailing byte)");
                    }
                }
                _ => {
                    index.problems.push(Problem::new(
                        pos,
                        ProblemKind::TrailingByte,
                        "the data end with a single byte that cannot be part of a 16-bit word",
                    ));
                    index.skipped.push((pos as u64, len as u64));
                }
            }
        }
        self.index
    }
}

fn build_with<O: Order>(bytes: &[u8], release: &dyn Fn(usize, usize)) -> BlockIndex {
    let mut walk = Stepper::<O>::new(bytes);
    let mut released = 0usize;
    while walk.advance(walk.pos().saturating_add(RELEASE_STEP)) {
        let pos = walk.pos();
        if pos.saturating_sub(RELEASE_LAG) >= released + RELEASE_STEP {
            let upto = pos - RELEASE_LAG;
            release(released, upto);
            released = upto;
        }
    }
    walk.finish()
}

/// A suspended [`Stepper`]: what it has found and where it goes on.
#[derive(Default)]
pub struct WalkState {
    index: BlockIndex,
    scan: SoundScan,
    pos: usize,
}

/// The block walk of [`build`] taken a stretch at a time, so that a caller can decode the
/// events found so far while the rest of the data is still to be walked (a streaming
/// decode). Blocks and events are only ever appended, in file order, and an event once
/// found is never taken back: every offset before [`Stepper::pos`] is final.
pub struct Stepper<'a, O: Order> {
    walk: Walk<'a, O>,
    pos: usize,
}

impl<'a, O: Order> Stepper<'a, O> {
    /// A walk from the start of `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        Stepper {
            walk: Walk::<O> {
                bytes,
                index: BlockIndex::default(),
                scan: SoundScan::default(),
                _order: std::marker::PhantomData,
            },
            pos: 0,
        }
    }

    /// Walks on until the position reaches `until` (or a little beyond: a block is walked
    /// whole) or the end of the data; whether data remain to be walked.
    pub fn advance(&mut self, until: usize) -> bool {
        let bytes = self.walk.bytes;
        let len = bytes.len();
        while self.pos < end_at(len, self.pos) && self.pos < until {
            let next = self.walk.step(self.pos);
            // The walk reads each block's header and scans its words, a chain of dependent
            // loads that the hardware prefetcher does not carry over page boundaries: ask
            // for the bytes it reaches WALK_AHEAD bytes on, each once.
            crate::decode::prefetch(
                bytes,
                self.pos.saturating_add(WALK_AHEAD),
                next.saturating_add(WALK_AHEAD),
            );
            self.pos = next;
        }
        self.pos < end_at(len, self.pos)
    }

    /// The offset the walk goes on from: every block and event before it is final.
    pub fn pos(&self) -> usize {
        self.pos
    }

    /// The top-level blocks found so far.
    pub fn blocks(&self) -> &[u64] {
        &self.walk.index.blocks
    }

    /// The science events found so far.
    pub fn events(&self) -> &[u64] {
        &self.walk.index.events
    }

    /// The state of the walk without the data, to go on later from
    /// [`Stepper::resume`] (with the same data).
    pub fn suspend(self) -> WalkState {
        WalkState {
            index: self.walk.index,
            scan: self.walk.scan,
            pos: self.pos,
        }
    }

    /// Goes on with a walk of `bytes` suspended by [`Stepper::suspend`].
    pub fn resume(bytes: &'a [u8], state: WalkState) -> Self {
        Stepper {
            walk: Walk::<O> {
                bytes,
                index: state.index,
                scan: state.scan,
                _order: std::marker::PhantomData,
            },
            pos: state.pos,
        }
    }

    /// The index, once [`Stepper::advance`] has answered `false`; a walk stopped earlier
    /// is completed first.
    pub fn finish(mut self) -> BlockIndex {
        self.advance(usize::MAX);
        self.walk.finish(self.pos)
    }
}

/// What a byte range of the data is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Coverage {
    /// A top-level block that was indexed.
    Block,
    /// Bytes skipped as damaged (each skipped range has a problem row at its start).
    Skipped,
}

/// The byte ranges `[start, end)` of the data in order, each a block or skipped, covering
/// every byte exactly once.
pub fn coverage(bytes: &[u8], order: ByteOrder, index: &BlockIndex) -> Vec<(u64, u64, Coverage)> {
    let len = bytes.len();
    let next = |off: u64| match order {
        ByteOrder::Little => next_block::<Le>(bytes, off as usize, len),
        ByteOrder::Big => next_block::<Be>(bytes, off as usize, len),
    };
    let mut out = Vec::with_capacity(index.blocks.len() + index.skipped.len());
    let mut skipped = index.skipped.iter().peekable();
    for &b in &index.blocks {
        while let Some(&&(s, e)) = skipped.peek() {
            if s >= b {
                break;
            }
            out.push((s, e, Coverage::Skipped));
            skipped.next();
        }
        // Indexed blocks always parse; `b` itself guards the impossible.
        out.push((b, next(b).map_or(b, |n| n as u64), Coverage::Block));
    }
    out.extend(skipped.map(|&(s, e)| (s, e, Coverage::Skipped)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A request block (no TIME) with `n` data words.
    fn request(n: usize) -> Vec<u16> {
        let mut w = vec![(4 + 2 * n) as u16, 0x4000 | (300 << 5) | 2, 0x0001];
        w.extend((0..n).map(|i| i as u16 * 3));
        w
    }
    /// A science event block (reply, JMDC node 0, TYPE 5): a JMDC sub-block and a Level-3
    /// sub-block of `n` words, so that its sub-blocks tile it.
    fn event(n: usize) -> Vec<u16> {
        let mut data = vec![24u16, 0x8005];
        data.extend([0u16; 11]);
        data.extend([(2 + 2 * n) as u16, 0x8006]);
        data.extend((0..n).map(|i| 0x5000 + i as u16));
        let mut w = vec![(8 + 2 * data.len()) as u16, 0x8005, 0x0007, 0x1000, 0x0002];
        w.extend(data);
        w
    }
    fn to_bytes(words: &[u16], order: ByteOrder) -> Vec<u8> {
        words
            .iter()
            .flat_map(|w| match order {
                ByteOrder::Little => w.to_le_bytes(),
                ByteOrder::Big => w.to_be_bytes(),
            })
            .collect()
    }
    fn run() -> (Vec<u16>, Vec<u64>, Vec<u64>) {
        let mut words = Vec::new();
        let mut blocks = Vec::new();
        let mut events = Vec::new();
        for i in 0..20 {
            blocks.push(words.len() as u64 * 2);
            if i % 3 == 0 {
                words.extend(request(i));
            } else {
                events.push(words.len() as u64 * 2);
                words.extend(event(i + 5));
            }
        }
        (words, blocks, events)
    }

    #[test]
    fn detects_both_orders_and_indexes_every_block() {
        let (words, blocks, events) = run();
        for order in [ByteOrder::Little, ByteOrder::Big] {
            let bytes = to_bytes(&words, order);
            assert_eq!(detect_byte_order(&bytes).ok(), Some(order));
            let index = build(&bytes, order);
            assert_eq!(index.blocks, blocks);
            assert_eq!(index.events, events);
            assert!(index.problems.is_empty());
            assert!(index.skipped.is_empty());
        }
    }

    #[test]
    fn not_block_data_is_a_format_error() {
        let text = b"This is a text file, not AMS data at all. ".repeat(20);
        assert!(matches!(
            detect_byte_order(&text),
            Err(Error::Format { offset: 0, .. })
        ));
        assert!(detect_byte_order(&[]).is_err());
        assert!(detect_byte_order(&[1]).is_err());
    }

    #[test]
    fn junk_between_blocks_is_skipped_and_reported() {
        let (words, blocks, _) = run();
        let mut bytes = to_bytes(&words, ByteOrder::Big);
        let at = blocks[7] as usize;
        let junk = [0xEEu8; 10];
        bytes.splice(at..at, junk.iter().copied());
        let index = build(&bytes, ByteOrder::Big);
        let expected: Vec<u64> = blocks
            .iter()
            .map(|&b| if b >= at as u64 { b + 10 } else { b })
            .collect();
        assert_eq!(index.blocks, expected);
        assert_eq!(index.problems.len(), 1);
        assert_eq!(index.problems[0].offset, at as u64);
        assert_eq!(index.skipped, vec![(at as u64, at as u64 + 10)]);
        let cov = coverage(&bytes, ByteOrder::Big, &index);
        assert!(
            cov.windows(2).all(|w| w[0].1 == w[1].0),
            "ranges tile the data"
        );
        assert_eq!(cov.last().map(|c| c.1), Some(bytes.len() as u64));
        assert_eq!(cov.iter().filter(|c| c.2 == Coverage::Skipped).count(), 1);
    }

    #[test]
    fn overrunning_size_loses_only_that_block() {
        let (mut words, blocks, _) = run();
        let at = blocks[5] as usize / 2;
        words[at] = 0x7FF0; // size overruns the data
        let bytes = to_bytes(&words, ByteOrder::Little);
        let index = build(&bytes, ByteOrder::Little);
        let expected: Vec<u64> = blocks.iter().copied().filter(|&b| b != blocks[5]).collect();
        assert_eq!(index.blocks, expected);
        assert_eq!(index.problems.len(), 1);
        assert_eq!(index.problems[0].kind, ProblemKind::BlockOverrun);
        assert_eq!(index.problems[0].offset, blocks[5]);
        assert_eq!(index.skipped, vec![(blocks[5], blocks[6])]);
    }

    #[test]
    fn truncation_keeps_every_complete_block() {
        let (words, blocks, _) = run();
        let bytes = to_bytes(&words, ByteOrder::Big);
        let cut = blocks[12] as usize + 7;
        let index = build(&bytes[..cut], ByteOrder::Big);
        assert_eq!(index.blocks, blocks[..12].to_vec());
        // One row for the cut block, which absorbs the odd trailing byte.
        assert_eq!(index.problems.len(), 1);
        assert_eq!(index.problems[0].kind, ProblemKind::BlockOverrun);
        assert_eq!(index.problems[0].offset, blocks[12]);
        assert_eq!(index.skipped, vec![(blocks[12], cut as u64)]);
        let cov = coverage(&bytes[..cut], ByteOrder::Big, &index);
        assert_eq!(cov.len(), 13);
        assert_eq!(cov[0].0, 0);
        assert!(
            cov.windows(2).all(|w| w[0].1 == w[1].0),
            "ranges tile the data"
        );
        assert_eq!(
            cov.last().map(|c| (c.1, c.2)),
            Some((cut as u64, Coverage::Skipped))
        );
    }

    #[test]
    fn random_bytes_rarely_chain() {
        // xorshift bytes: count word positions that pass one and CHAIN_DEPTH hops.
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let bytes: Vec<u8> = (0..200_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let len = bytes.len();
        let positions = (0..len - 70_000).step_by(2);
        let one = positions
            .clone()
            .filter(|&p| chain_ok::<Be>(&bytes, p, len, 1))
            .count();
        let deep = positions
            .clone()
            .filter(|&p| chain_ok::<Be>(&bytes, p, len, CHAIN_DEPTH))
            .count();
        let n = positions.count();
        assert!(
            one * 20 > n,
            "one hop passes often in random data: {one} of {n}"
        );
        assert!(
            deep * 2000 < n,
            "deep chains are rare in random data: {deep} of {n}"
        );
    }
}
