//! Blocks between events and the envelopes (FORMAT.md section 10).
//!
//! The index ([`crate::index`]) walks the top-level blocks; this module walks, after it,
//! the inside of every envelope among them, so that the walk itself stays as it is:
//!
//! - `0x1F0380` (**envelope**): after its secondary header, complete blocks (each with its
//!   own primary and secondary header), walked by their sizes to the end of its data;
//! - `0x1F0383` (**fine-time envelope**): after its secondary header, a 32-bit count of
//!   microseconds (two words, MSW first), then one complete block.
//!
//! Every other top-level block (calibration, configuration and housekeeping containers,
//! stand-alone calibration replies, CCEB and TOF slow control, requests) is a row of
//! `blocks()` and is skipped by its size without error.
//!
//! The walk gives the rows of `blocks(nested=True)`: every block in file order, each inner
//! block right after its envelope, with its `depth` (0 at top level), the row of its
//! `envelope` (-1 at top level) and the fine-time envelope's `time_us` (0 elsewhere).
//! Envelopes nest up to [`MAX_DEPTH`]; an envelope at that depth is listed but its inside
//! is reported (`envelope_depth`), not walked. An inner block whose header cannot be read
//! or whose size overruns its envelope is one `envelope_overrun` row; the rest of that
//! envelope is not walked, every other block is. Science events inside envelopes are
//! events ([`Nested::events`]); LEF raw events (FORMAT.md 11.1) are found by
//! [`crate::detectors::lef`] among these rows.
//!
//! The walk reads only block headers (O(1) each) and is linear in the number of blocks.

use crate::block::{self, BlockHeader, HeaderError};
use crate::columns::{table, BlockColumns};
use crate::detectors;
use crate::problems::{Problem, ProblemKind};
use crate::words::{Be, ByteOrder, Le, Order};

/// `data_type` of an envelope.
pub const ENVELOPE: u32 = 0x1F_0380;
/// `data_type` of a fine-time envelope.
pub const FINE_TIME_ENVELOPE: u32 = 0x1F_0383;
/// The deepest level of blocks listed: envelopes nest to this depth (FORMAT.md 10).
pub const MAX_DEPTH: u8 = 4;
/// The largest microseconds value of a fine-time envelope.
pub const MAX_MICROSECONDS: u32 = 999_999;

table! {
    /// `File.blocks(nested=True)`: one row per block, top-level and inside envelopes
    /// (FORMAT.md 10), in file order, each inner block right after its envelope: the
    /// columns of `blocks()`, then `depth`, `envelope` and `time_us`.
    NestedBlockColumns {
        /// nesting depth: 0 at top level, 1 inside a top-level envelope, ... (at most 4)
        depth: u8,
        /// row in this table of the enclosing envelope (-1 at top level)
        envelope: i64,
        /// [us] the enclosing fine-time envelope's microseconds (0 elsewhere)
        time_us: u32,
    }
}

impl NestedBlockColumns {
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.depth.len()
    }
    /// True without rows.
    pub fn is_empty(&self) -> bool {
        self.depth.is_empty()
    }
}

/// One block of the nested walk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NestedRow {
    /// Byte offset of the block.
    pub offset: u64,
    /// 0 at top level, 1 inside a top-level envelope, ...
    pub depth: u8,
    /// Row (in the nested walk) of the enclosing envelope, -1 at top level.
    pub envelope: i64,
    /// The enclosing fine-time envelope's microseconds (0 elsewhere).
    pub time_us: u32,
}

/// What the walk of the envelopes found.
#[derive(Clone, Debug, Default)]
pub struct Nested {
    /// Every block in file order, top-level and nested; empty when the file has no
    /// envelope (then the rows are the top-level blocks, depth 0).
    pub rows: Vec<NestedRow>,
    /// Byte offsets of the science events inside envelopes, in file order.
    pub events: Vec<u64>,
    /// Problems found inside envelopes (and the LEF payload checks of every block).
    pub problems: Vec<Problem>,
    /// Whether any envelope was found.
    pub any_envelope: bool,
}

impl Nested {
    /// The rows of `blocks(nested=True)`: [`Nested::rows`], or the top-level blocks.
    pub fn all_rows(&self, top: &[u64]) -> Vec<NestedRow> {
        if self.any_envelope {
            self.rows.clone()
        } else {
            top.iter()
                .map(|&offset| NestedRow {
                    offset,
                    depth: 0,
                    envelope: -1,
                    time_us: 0,
                })
                .collect()
        }
    }
}

impl Nested {
    /// Appends the walk of the next top-level blocks `top` (the walk of [`walk`] over
    /// the blocks `before` and then `top` is this one followed by `next`): the result is
    /// the walk of all of them at once, except that [`Nested::rows`] are kept even
    /// without an envelope until the caller empties them.
    pub fn append(&mut self, mut next: Nested, before: &[u64], top: &[u64]) {
        if next.any_envelope && !self.any_envelope {
            self.rows = self.all_rows(before);
        }
        if next.any_envelope {
            let shift = self.rows.len() as i64;
            for r in &mut next.rows {
                if r.envelope >= 0 {
                    r.envelope += shift;
                }
            }
            self.rows.append(&mut next.rows);
        } else if self.any_envelope {
            self.rows.extend(next.all_rows(top));
        }
        self.events.append(&mut next.events);
        self.problems.append(&mut next.problems);
        self.any_envelope |= next.any_envelope;
    }
}

/// Walks the envelopes among the top-level blocks at `top` (offsets from the index).
pub fn walk(bytes: &[u8], order: ByteOrder, top: &[u64]) -> Nested {
    match order {
        ByteOrder::Little => walk_with::<Le>(bytes, top),
        ByteOrder::Big => walk_with::<Be>(bytes, top),
    }
}

fn walk_with<O: Order>(bytes: &[u8], top: &[u64]) -> Nested {
    let mut w = Walker::<O> {
        bytes,
        out: Nested::default(),
        _order: std::marker::PhantomData,
    };
    for &off in top {
        let Ok(h) = block::parse::<O>(bytes, off as usize, bytes.len(), true) else {
            continue; // the index accepted it: cannot happen
        };
        let row = w.push(&h, 0, -1, 0);
        w.visit(&h, 0, row);
    }
    if !w.out.any_envelope {
        w.out.rows = Vec::new();
    }
    w.out
}

struct Walker<'a, O: Order> {
    bytes: &'a [u8],
    out: Nested,
    _order: std::marker::PhantomData<O>,
}

impl<O: Order> Walker<'_, O> {
    fn push(&mut self, h: &BlockHeader, depth: u8, envelope: i64, time_us: u32) -> i64 {
        let row = self.out.rows.len() as i64;
        self.out.rows.push(NestedRow {
            offset: h.offset as u64,
            depth,
            envelope,
            time_us,
        });
        if let Some(p) = detectors::lef::check_block(h) {
            self.out.problems.push(p);
        }
        row
    }

    /// Walks the inside of `h` (at `depth`, row `row`) if it is an envelope.
    fn visit(&mut self, h: &BlockHeader, depth: u8, row: i64) {
        let dt = h.data_type();
        if dt != ENVELOPE && dt != FINE_TIME_ENVELOPE {
            return;
        }
        self.out.any_envelope = true;
        if depth >= MAX_DEPTH {
            self.out.problems.push(Problem::new(
                h.offset,
                ProblemKind::EnvelopeDepth,
                format!(
                    "envelope 0x{dt:06X} at depth {depth}: FORMAT.md 10 walks envelopes to depth {MAX_DEPTH}; its {} data bytes are not walked",
                    h.data_end - h.data_start
                ),
            ));
            return;
        }
        if dt == FINE_TIME_ENVELOPE {
            self.fine_time(h, depth, row);
        } else {
            let mut p = h.data_start;
            let mut k = 0usize;
            while p < h.data_end {
                match self.inner(h, p, depth, row, 0, k) {
                    Some(next) => p = next,
                    None => break,
                }
                k += 1;
            }
        }
    }

    fn fine_time(&mut self, h: &BlockHeader, depth: u8, row: i64) {
        let start = h.data_start;
        let us = match (
            word::<O>(self.bytes, start),
            word::<O>(self.bytes, start + 2),
        ) {
            (Some(hi), Some(lo)) if start + 4 <= h.data_end => {
                (u32::from(hi) << 16) | u32::from(lo)
            }
            _ => {
                self.out.problems.push(Problem::new(
                    h.offset,
                    ProblemKind::EnvelopeOverrun,
                    format!(
                        "fine-time envelope of {} data bytes cannot hold its microseconds (4 bytes) and a block",
                        h.data_end - start
                    ),
                ));
                return;
            }
        };
        if us > MAX_MICROSECONDS {
            self.out.problems.push(Problem::new(
                start,
                ProblemKind::EnvelopeOverrun,
                format!(
                    "fine-time envelope microseconds {us} above {MAX_MICROSECONDS}; kept as read"
                ),
            ));
        }
        let Some(next) = self.inner(h, start + 4, depth, row, us, 0) else {
            return;
        };
        if next < h.data_end {
            self.out.problems.push(Problem::new(
                next,
                ProblemKind::EnvelopeOverrun,
                format!(
                    "{} bytes after the inner block of a fine-time envelope (FORMAT.md 10: one block); not walked",
                    h.data_end - next
                ),
            ));
        }
    }

    /// Lists the inner block at `p` of envelope `env` (row `row`, at `depth`) and walks it;
    /// returns where the next inner block starts, or `None` (reported) when it is not valid.
    fn inner(
        &mut self,
        env: &BlockHeader,
        p: usize,
        depth: u8,
        row: i64,
        time_us: u32,
        k: usize,
    ) -> Option<usize> {
        match block::parse::<O>(self.bytes, p, env.data_end, true) {
            Ok(inner) => {
                if inner.is_science_event() {
                    self.out.events.push(p as u64);
                }
                let r = self.push(&inner, depth + 1, row, time_us);
                self.visit(&inner, depth + 1, r);
                Some(inner.next)
            }
            Err(e) => {
                let why = match e {
                    HeaderError::TooSmall { .. } => "cannot be valid",
                    _ => "overruns the envelope",
                };
                self.out.problems.push(Problem::new(
                    p,
                    ProblemKind::EnvelopeOverrun,
                    format!(
                        "inner block {k} of the envelope at byte {} (data type 0x{:X}) {why}: {}; the rest of the envelope ({} bytes) is not walked",
                        env.offset,
                        env.data_type(),
                        e.describe(),
                        env.data_end - p
                    ),
                ));
                None
            }
        }
    }
}

/// Inner blocks [`tiles`] reads before it gives up (bounds the work of one check).
const MAX_TILING_BLOCKS: usize = 1 << 16;

/// Whether `h` is an envelope whose inner blocks (and theirs, to [`MAX_DEPTH`]) tile it
/// exactly: the index's evidence that the science events inside it are its own.
pub fn tiles<O: Order>(bytes: &[u8], h: &BlockHeader) -> bool {
    let mut budget = MAX_TILING_BLOCKS;
    tiles_at::<O>(bytes, h, 0, &mut budget)
}

fn tiles_at<O: Order>(bytes: &[u8], h: &BlockHeader, depth: u8, budget: &mut usize) -> bool {
    let dt = h.data_type();
    let start = match dt {
        ENVELOPE => h.data_start,
        FINE_TIME_ENVELOPE => h.data_start + 4,
        _ => return false,
    };
    if depth >= MAX_DEPTH || start > h.data_end {
        return false;
    }
    let mut p = start;
    let mut n = 0usize;
    while p < h.data_end {
        if *budget == 0 {
            return false;
        }
        *budget -= 1;
        let Ok(inner) = block::parse::<O>(bytes, p, h.data_end, true) else {
            return false;
        };
        let d = inner.data_type();
        if (d == ENVELOPE || d == FINE_TIME_ENVELOPE)
            && !tiles_at::<O>(bytes, &inner, depth + 1, budget)
        {
            return false;
        }
        p = inner.next;
        n += 1;
    }
    (p == h.data_end || p == h.next) && n > 0 && (dt == ENVELOPE || n == 1)
}

#[inline]
fn word<O: Order>(bytes: &[u8], at: usize) -> Option<u16> {
    let b = bytes.get(at..at.checked_add(2)?)?;
    Some(O::word([b[0], b[1]]))
}

/// The `blocks(nested=True)` table: the block columns and the nested columns of `rows`.
pub fn nested_table(
    bytes: &[u8],
    order: ByteOrder,
    rows: &[NestedRow],
) -> (BlockColumns, NestedBlockColumns) {
    let offsets: Vec<u64> = rows.iter().map(|r| r.offset).collect();
    let blocks = crate::decode::block_table(bytes, order, &offsets);
    let mut nested = NestedBlockColumns::default();
    nested.reserve(rows.len());
    for r in rows {
        nested.depth.push(r.depth);
        nested.envelope.push(r.envelope);
        nested.time_us.push(r.time_us);
    }
    (blocks, nested)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reply block: size, ID (TYPE_EXT when `dt` is extended), secondary, TIME, data.
    fn reply(node: u16, dt: u32, tag: u16, time: u32, data: &[u16]) -> Vec<u16> {
        let mut w = Vec::new();
        let (ty, ext) = if dt > 0x1F {
            (0x1F, Some((dt & 0xFFFF) as u16))
        } else {
            (dt as u16, None)
        };
        w.push(0x8000 | (node << 5) | ty);
        w.extend(ext);
        w.push(tag);
        w.push((time >> 16) as u16);
        w.push(time as u16);
        w.extend_from_slice(data);
        let size = (w.len() * 2) as u16;
        let mut out = vec![size];
        out.extend(w);
        out
    }

    fn bytes(words: &[u16]) -> Vec<u8> {
        words.iter().flat_map(|w| w.to_le_bytes()).collect()
    }

    #[test]
    fn envelopes_list_their_blocks_with_depth_and_time() {
        let poll = reply(0x40, 0x13, 7, 100, &[]);
        let mut ft = vec![0x0005, 0x6E57];
        ft.extend(&poll);
        let fte = reply(20, FINE_TIME_ENVELOPE, 7, 100, &ft);
        let mut inside = fte.clone();
        inside.extend(reply(511, 0x0E, 1, 5, &[1, 2, 3]));
        let env = reply(1, ENVELOPE, 2, 100, &inside);
        let mut file = env.clone();
        file.extend(reply(3, 0x08, 0, 9, &[0; 4]));
        let data = bytes(&file);
        let top = vec![0u64, (env.len() * 2) as u64];
        let n = walk(&data, ByteOrder::Little, &top);
        assert!(n.problems.is_empty(), "{:?}", n.problems);
        let got: Vec<(u8, i64, u32)> = n
            .rows
            .iter()
            .map(|r| (r.depth, r.envelope, r.time_us))
            .collect();
        assert_eq!(
            got,
            vec![
                (0, -1, 0),
                (1, 0, 0),
                (2, 1, 355_927),
                (1, 0, 0),
                (0, -1, 0)
            ]
        );
        // The fine-time envelope's inner block: after the envelope's 6 header words, the
        // fine-time envelope's own 6 header words and its 2 microseconds words.
        assert_eq!(n.rows[2].offset, 2 * (6 + 6 + 2));
    }

    #[test]
    fn overrunning_inner_block_and_depth_are_reported() {
        // An inner block whose SIZE runs past its envelope.
        let mut bad = reply(0x40, 0x13, 0, 1, &[0; 3]);
        bad[0] += 40;
        let env = reply(1, ENVELOPE, 0, 1, &bad);
        let data = bytes(&env);
        let n = walk(&data, ByteOrder::Little, &[0]);
        assert_eq!(n.rows.len(), 1);
        assert_eq!(n.problems.len(), 1);
        assert_eq!(n.problems[0].kind, ProblemKind::EnvelopeOverrun);
        assert_eq!(n.problems[0].offset, 2 * 6);
        // Five envelopes deep: the fifth (depth 4) is listed, its inside is not walked.
        let mut b = reply(0x40, 0x13, 0, 1, &[]);
        for _ in 0..5 {
            b = reply(1, ENVELOPE, 0, 1, &b);
        }
        let data = bytes(&b);
        let n = walk(&data, ByteOrder::Little, &[0]);
        assert_eq!(n.rows.len(), 5);
        assert_eq!(n.rows.last().map(|r| r.depth), Some(4));
        assert_eq!(n.problems.len(), 1);
        assert_eq!(n.problems[0].kind, ProblemKind::EnvelopeDepth);
    }

    #[test]
    fn files_without_envelopes_keep_no_rows() {
        let a = reply(3, 0x08, 0, 9, &[0; 4]);
        let data = bytes(&a);
        let n = walk(&data, ByteOrder::Little, &[0]);
        assert!(!n.any_envelope && n.rows.is_empty());
        assert_eq!(n.all_rows(&[0]).len(), 1);
    }
}
