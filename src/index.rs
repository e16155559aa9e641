//! Walking a file into top-level blocks: byte-order detection and resynchronisation.
//!
//! A block at `p` is trusted when its header is valid, it fits in the data, and the chain of
//! block sizes from `p` stays valid for [`CHAIN_DEPTH`] blocks or reaches the end of the data
//! exactly. FORMAT.md asks for one further valid header; a deeper chain is used because in
//! random bytes about half of all word positions pass a one-header check (see the test
//! `random_bytes_rarely_chain`), so a single hop would lock onto garbage.
//!
//! When the chain from `p` breaks within `CHAIN_DEPTH` blocks, the blocks up to the break are
//! kept (each is valid and fits), and the scan for the next trustworthy offset starts at the
//! break, word by word. It does not start earlier: inside good blocks, detector data often
//! contain a word whose value, read as a size, lands on a true block boundary further on,
//! and starting there would replace a good block with a spurious one. Every check is
//! bounded by `CHAIN_DEPTH` header reads, so the walk is linear in the size of the data even
//! on adversarial input.

use std::collections::VecDeque;

use crate::block::{self, HeaderError};
use crate::group::group_crc;
use crate::problems::{Error, Problem, ProblemKind, Result};
use crate::words::{Be, ByteOrder, Le, Order};

/// Number of chained block headers that make an offset trustworthy.
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

#[inline]
fn next_block<O: Order>(bytes: &[u8], pos: usize, len: usize) -> Option<usize> {
    block::parse::<O>(bytes, pos, len, true)
        .ok()
        .map(|h| h.next)
}

/// The next block after a valid top-level block at `pos`: its header parses, it fits,
/// and it is not an event's sub-block (a JMDC sub-block, or a group whose CRC checks)
/// that a damaged size landed on.
#[inline]
fn next_valid<O: Order>(bytes: &[u8], pos: usize, len: usize) -> Option<usize> {
    let next = next_block::<O>(bytes, pos, len)?;
    if looks_like_subblock::<O>(bytes, pos, len, false) {
        return None;
    }
    Some(next)
}

/// Whether the chain of block sizes from `pos` stays valid for `depth` blocks or ends
/// exactly at `len`. Each hop is a header parse only (O(1)); the walk itself validates
/// each block it keeps once more (`next_valid`, with the orphaned-group check).
pub fn chain_ok<O: Order>(bytes: &[u8], pos: usize, len: usize, depth: usize) -> bool {
    let mut p = pos;
    for _ in 0..depth {
        if p == len {
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
/// exactly at `len`.
pub fn chain_length<O: Order>(bytes: &[u8], pos: usize, len: usize, max: usize) -> (usize, bool) {
    let mut p = pos;
    for n in 0..max {
        if p == len {
            return (n, true);
        }
        match next_block::<O>(bytes, p, len) {
            Some(next) => p = next,
            None => return (n, false),
        }
    }
    (max, p == len)
}

/// Decides the byte order of a block file (FORMAT.md section 1): under the right order the
/// block sizes chain from the first header onwards. When damage near the start breaks the
/// chain in both orders, the order whose first header chains to a second one and that skips
/// as damaged less than half of the data, and under a quarter of what the other order
/// skips, is taken. Otherwise it never guesses: it says so.
pub fn detect_byte_order(bytes: &[u8]) -> Result<ByteOrder> {
    let len = bytes.len() & !1;
    if len < 4 {
        return Err(Error::format(
            0,
            format!(
                "{} bytes cannot hold an AMS block, so the byte order cannot be detected",
                bytes.len()
            ),
        ));
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
            let w = |o: ByteOrder| {
                let b = [bytes[0], bytes[1]];
                match o {
                    ByteOrder::Little => u16::from_le_bytes(b),
                    ByteOrder::Big => u16::from_be_bytes(b),
                }
            };
            Err(Error::format(
                0,
                format!(
                    "not AMS block data: in neither byte order do block sizes chain from the \
                     start (first word reads 0x{:04X} little-endian, 0x{:04X} big-endian)",
                    w(ByteOrder::Little),
                    w(ByteOrder::Big)
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

/// Walks the whole data into top-level blocks.
pub fn build(bytes: &[u8], order: ByteOrder) -> BlockIndex {
    match order {
        ByteOrder::Little => build_with::<Le>(bytes),
        ByteOrder::Big => build_with::<Be>(bytes),
    }
}

fn describe<O: Order>(
    bytes: &[u8],
    pos: usize,
    len: usize,
    resume: usize,
) -> (ProblemKind, String) {
    let skipped = resume - pos;
    let tail = if resume == len {
        format!("{skipped} bytes skipped to the end of the data")
    } else {
        format!("{skipped} bytes skipped; block chain resumes at byte {resume}")
    };
    match block::parse::<O>(bytes, pos, len, true) {
        Err(HeaderError::Overrun { end, limit }) if resume == len => (
            ProblemKind::BlockOverrun,
            format!("block ends at byte {end}, past the end of the data at byte {limit} (truncated); {tail}"),
        ),
        Err(HeaderError::Truncated { need, have }) if resume == len => (
            ProblemKind::BlockOverrun,
            format!(
                "block header cut by the end of the data (needs {need} bytes, {have} remain; truncated); {tail}"
            ),
        ),
        Err(e @ HeaderError::Overrun { .. }) => (ProblemKind::BlockOverrun, format!("{}; {tail}", e.describe())),
        Err(e) => (ProblemKind::BadBlockHeader, format!("{}; {tail}", e.describe())),
        Ok(h) => (
            ProblemKind::BadChain,
            format!(
                "block SIZE {} does not chain to a valid block header (next would be at byte {}); {tail}",
                h.size, h.next
            ),
        ),
    }
}

/// Whether the scan after damage may resume at `q`: `q` is not an orphaned sub-block, and
/// the chain from `q` holds for `CHAIN_DEPTH` blocks, or it ends exactly at the end of the
/// data and holds a science event whose sub-blocks tile it. Near the end of the data the depth criterion
/// degenerates: inside a truncated last block, words read as sizes chain to the very end
/// in one or two hops often enough to matter (seen in tests that cut simulated runs at
/// random points), so a short chain alone is weak evidence.
fn resync_ok<O: Order>(bytes: &[u8], q: usize, len: usize) -> bool {
    if looks_like_subblock::<O>(bytes, q, len, true) {
        return false;
    }
    match chain_length::<O>(bytes, q, len, CHAIN_DEPTH) {
        (n, _) if n >= CHAIN_DEPTH => true,
        (_, true) => {
            // A short chain to the end: it must hold a science event that tiles exactly.
            let mut p = q;
            while p < len {
                if event_tiles::<O>(bytes, p, len) {
                    return true;
                }
                match next_valid::<O>(bytes, p, len) {
                    Some(n) => p = n,
                    None => return false,
                }
            }
            false
        }
        _ => false,
    }
}

/// Whether the words at `q` are an event's sub-block orphaned by damage rather than a
/// top-level block. Sub-block headers have the same size and ID words as top-level blocks,
/// so an event's sub-blocks chain by their sizes to the event's end and merge into the
/// true chain: a damaged size that lands on one, or a resynchronisation inside a damaged
/// event, would otherwise adopt them as top-level blocks (or as a fake event).
///
/// Always: a group (TYPE 1) whose CRC checks when read as a sub-block (a chain that lands
/// on a JMDC sub-block runs into its event's group next). With `resync`, when scanning
/// for a place to resume, also the JMDC (TYPE 5, NODE 0..3, SIZE 24 or 34, unless it tiles
/// as an event) and Level-3 (TYPE 6, NODE 0..3) shapes; they are not used on the chain
/// itself because top-level blocks of those shapes exist (small requests to a JMDC).
fn looks_like_subblock<O: Order>(bytes: &[u8], q: usize, len: usize, resync: bool) -> bool {
    let Ok(h) = block::parse::<O>(bytes, q, len, false) else {
        return false;
    };
    let jmdc_node = h.node <= 3;
    match h.type_ {
        5 => {
            resync
                && jmdc_node
                && !h.long
                && (h.size == 24 || h.size == 34)
                && !event_tiles::<O>(bytes, q, len)
        }
        6 => resync && jmdc_node,
        1 => {
            let n = h.data_words();
            (3..=MAX_GROUP_CRC_WORDS).contains(&n) && {
                let (stored, computed) = group_crc::<O>(bytes, h.data_start, n);
                stored == Some(computed)
            }
        }
        _ => false,
    }
}

/// When the block at `pos` (ending at `next`) is a science event that is not sound (its
/// sub-blocks do not tile it, or a group's CRC fails) and the block at `next` is not a sound
/// event, the offset of the next sound
/// event (a science event that tiles and chains), searched from inside the damaged one;
/// `None` when there is nothing to correct (or no sound event follows).
fn after_damaged_event<O: Order>(
    bytes: &[u8],
    pos: usize,
    next: usize,
    len: usize,
) -> Option<usize> {
    let h = block::parse::<O>(bytes, pos, len, true).ok()?;
    if !h.is_science_event() || next >= len || event_tiles::<O>(bytes, next, len) {
        return None;
    }
    // The successor is not a sound event: is this event sound (its sub-blocks tile it and
    // every group's CRC checks)? Junk inside its last sub-block shortens that sub-block and
    // the event alike, so tiling alone does not tell.
    if event_tiles::<O>(bytes, pos, len) && groups_crc_ok::<O>(bytes, &h) {
        return None;
    }
    let mut q = pos + 2;
    let limit = len.min(next.saturating_add(MAX_EVENT_SEARCH));
    while q < limit {
        if q != next && event_tiles::<O>(bytes, q, len) && chain_ok::<O>(bytes, q, len, CHAIN_DEPTH)
        {
            return (q != next).then_some(q);
        }
        q += 2;
    }
    None
}

/// Whether every group sub-block of the event `h` has a CRC that checks.
fn groups_crc_ok<O: Order>(bytes: &[u8], h: &block::BlockHeader) -> bool {
    let mut p = h.data_start;
    while p < h.next {
        let Ok(sub) = block::parse::<O>(bytes, p, h.next, false) else {
            return false;
        };
        if sub.type_ == 1 {
            let n = sub.data_words();
            if n < 3 {
                return false;
            }
            let (stored, computed) = group_crc::<O>(bytes, sub.data_start, n);
            if stored != Some(computed) {
                return false;
            }
        }
        p = sub.next;
    }
    true
}

/// Whether the block at `pos` is a science event whose sub-blocks tile its data exactly.
fn event_tiles<O: Order>(bytes: &[u8], pos: usize, len: usize) -> bool {
    let Ok(h) = block::parse::<O>(bytes, pos, len, true) else {
        return false;
    };
    if !h.is_science_event() {
        return false;
    }
    // The first sub-block must be the JMDC sub-block (FORMAT.md 4.1); the walk is capped
    // so that a check costs O(1) whatever the input (an event has a handful of sub-blocks).
    match block::parse::<O>(bytes, h.data_start, h.next, false) {
        Ok(j) if j.type_ == 5 && j.node <= 3 && !j.long && (j.size == 24 || j.size == 34) => {}
        _ => return false,
    }
    let mut p = h.data_start;
    for _ in 0..MAX_SUBBLOCKS {
        if p >= h.next {
            break;
        }
        match block::parse::<O>(bytes, p, h.next, false) {
            Ok(sub) => p = sub.next,
            Err(_) => return false,
        }
    }
    p == h.next
}

/// Sub-blocks walked by [`event_tiles`] before it gives up.
const MAX_SUBBLOCKS: usize = 64;
/// Data words of a TYPE 1 block whose CRC [`looks_like_subblock`] checks: a real group is
/// a few hundred to a few thousand words; the cap bounds the work of one check.
const MAX_GROUP_CRC_WORDS: usize = 8192;
/// How far after a damaged event [`after_damaged_event`] looks for a sound event.
const MAX_EVENT_SEARCH: usize = 1 << 20;

fn build_with<O: Order>(bytes: &[u8]) -> BlockIndex {
    let mut index = BlockIndex::default();
    let len = bytes.len() & !1;
    let accept = |index: &mut BlockIndex, pos: usize| {
        index.blocks.push(pos as u64);
        if let Ok(h) = block::parse::<O>(bytes, pos, len, true) {
            if h.is_science_event() {
                index.events.push(pos as u64);
            }
        }
    };
    // A science event that is not sound, followed by no sound event: its SIZE cannot be
    // trusted to point at the next block, so the walk resumes at the next sound event `q`.
    let redirect =
        |index: &mut BlockIndex, pos: usize, next: usize, q: usize| {
            let start = if q < next {
                pos // it overlaps the sound event: the damaged event is dropped
            } else {
                accept(index, pos);
                next
            };
            index.problems.push(Problem::new(
                start,
                ProblemKind::BadChain,
                format!(
                "the science event at byte {pos} is damaged (its sub-blocks do not tile it or a \
                 group CRC fails) and no sound event follows it, so its SIZE is suspect; {} \
                 bytes skipped{}; the chain resumes at the next sound event at byte {q}",
                q - start,
                if start == pos { " (the event overlaps it and is dropped)" } else { "" }
            ),
            ));
            index.skipped.push((start as u64, q as u64));
        };
    let mut pos = 0usize;
    // The valid chain ahead of `pos` (pos first) and where it continues: each header is
    // validated once, however many windows of CHAIN_DEPTH blocks it belongs to.
    let mut ahead: VecDeque<usize> = VecDeque::with_capacity(CHAIN_DEPTH + 1);
    let mut tail = 0usize;
    while pos < len {
        if ahead.front() != Some(&pos) {
            ahead.clear();
            tail = pos;
        }
        while ahead.len() < CHAIN_DEPTH && tail != len {
            match next_valid::<O>(bytes, tail, len) {
                Some(n) => {
                    ahead.push_back(tail);
                    tail = n;
                }
                None => break,
            }
        }
        // The same test as chain_ok(pos, CHAIN_DEPTH).
        if !ahead.is_empty() && (ahead.len() >= CHAIN_DEPTH || tail == len) {
            ahead.pop_front();
            let next = ahead.front().copied().unwrap_or(tail);
            if let Some(q) = after_damaged_event::<O>(bytes, pos, next, len) {
                redirect(&mut index, pos, next, q);
                pos = q;
                continue;
            }
            accept(&mut index, pos);
            pos = next;
            continue;
        }
        ahead.clear();
        // The chain breaks within CHAIN_DEPTH blocks: keep the blocks up to the break.
        let mut p = pos;
        let mut redirected = None;
        for _ in 0..CHAIN_DEPTH {
            match next_valid::<O>(bytes, p, len) {
                Some(n) => {
                    if let Some(q) = after_damaged_event::<O>(bytes, p, n, len) {
                        redirect(&mut index, p, n, q);
                        redirected = Some(q);
                        break;
                    }
                    accept(&mut index, p);
                    p = n;
                }
                None => break,
            }
        }
        if let Some(q) = redirected {
            pos = q;
            continue;
        }
        if p >= len {
            break;
        }
        // Was the last block kept the damaged one (a corrupt SIZE that still fits)? Then a
        // sound event starts inside it. A science event whose sub-blocks tile it is sound.
        if let Some(&last) = index.blocks.last() {
            let last = last as usize;
            if next_block::<O>(bytes, last, len) == Some(p) && !event_tiles::<O>(bytes, last, len) {
                let mut q = last + 2;
                // Only a science event that tiles exactly is evidence enough here: inside a
                // good block, data words often read as sizes that merge into the true chain.
                while q < p
                    && !(event_tiles::<O>(bytes, q, len)
                        && chain_ok::<O>(bytes, q, len, CHAIN_DEPTH))
                {
                    q += 2;
                }
                if q < p {
                    index.blocks.pop();
                    if index.events.last() == Some(&(last as u64)) {
                        index.events.pop();
                    }
                    let size = block::parse::<O>(bytes, last, len, true)
                        .map(|h| h.size)
                        .unwrap_or(0);
                    index.problems.push(Problem::new(
                        last,
                        ProblemKind::BadChain,
                        format!(
                            "block SIZE {size} runs to byte {p}, where no valid block header is; \
                             the block chain resumes inside it at byte {q}, so its size is \
                             corrupt; {} bytes skipped",
                            q - last
                        ),
                    ));
                    index.skipped.push((last as u64, q as u64));
                    pos = q;
                    continue;
                }
            }
        }
        // Resume at the next trustworthy offset after the break.
        let mut resume = p + 2;
        while resume < len && !resync_ok::<O>(bytes, resume, len) {
            resume += 2;
        }
        let resume = resume.min(len);
        let (kind, detail) = describe::<O>(bytes, p, len, resume);
        index.problems.push(Problem::new(p, kind, detail));
        index.skipped.push((p as u64, resume as u64));
        pos = resume;
    }
    if bytes.len() > len {
        // A skipped range running to the end absorbs the odd byte: one cut, one row.
        match index.skipped.last_mut() {
            Some(last) if last.1 == len as u64 => {
                last.1 = bytes.len() as u64;
                if let Some(p) = index.problems.last_mut() {
                    p.detail.push_str(" (and a single trailing byte)");
                }
            }
            _ => {
                index.problems.push(Problem::new(
                    len,
                    ProblemKind::TrailingByte,
                    "the data end with a single byte that cannot be part of a 16-bit word",
                ));
                index.skipped.push((len as u64, bytes.len() as u64));
            }
        }
    }
    index
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
    let len = bytes.len() & !1;
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
