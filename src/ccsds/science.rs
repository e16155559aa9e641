//! The science stream: AMS blocks carried by APID 976 packets (FORMAT.md section 7,
//! "Science stream (convention)").
//!
//! The user data of consecutive APID 976 packets, in file order, concatenate into one
//! big-endian AMS block stream. A jump in the sequence count (anything but +1 modulo
//! 16384) is a gap. Packets between two gaps form a *segment*; within a segment the
//! blocks are walked by their sizes (FORMAT.md section 2):
//!
//! - the block that runs over the end of a segment into a gap is cut: its bytes before
//!   the gap are dropped;
//! - after a gap, decoding resumes at the first offset where a science event block
//!   starts (the signature of FORMAT.md section 4: `RR = 1`, `RW = 0`, `NODE` 0..3,
//!   `TYPE = 5`, `STATUS = 0`, then a JMDC sub-block of `SIZE` 24 or 34 and `TYPE` 5)
//!   *and* whose size lands exactly on another valid block header within the segment or
//!   on the end of the stream; only when the segment holds no such event, the first
//!   event start whose size runs into the next gap (where it is cut in turn). The bytes skipped are
//!   the rest of the cut block (and anything else that is not an event start: a
//!   non-event block right after a gap is dropped with them, never guessed at).
//!
//! The FORMAT.md rule alone ("a valid header whose size lands on another valid
//! header") cannot tell a top-level block from the sub-blocks of the cut event, whose
//! sizes chain exactly into the next block; hence the event signature.
//!
//! Each gap is one [`ProblemKind::StreamGap`] row whose offset is the byte offset in
//! the *packet file* of the packet where the cut block started, with the packet range
//! in the detail. Within a segment, a block header that is not valid ends the walk:
//! the rest of the segment is kept as it is, for the block decoder to report.

use super::apid;
use super::header::SEQ_MODULUS;
use super::scan::PacketIndex;
use crate::problems::{Problem, ProblemKind};

/// One packet's contribution to the raw concatenation.
#[derive(Clone, Copy, Debug)]
struct Piece {
    /// Offset of the packet in the file.
    packet_offset: u64,
    /// Offset of its user data in the file.
    data_offset: u64,
    /// Offset of its user data in the raw concatenation.
    raw_start: usize,
    /// Bytes of user data.
    len: usize,
    /// Sequence count.
    seq: u16,
}

crate::columns::table! {
    /// `CcsdsFile.stream_map()`: where each byte of the reassembled science stream came
    /// from in the packet file, one row per contiguous piece, ascending.
    StreamMap {
        /// [B] start of the piece in the reassembled stream
        stream_start: u64,
        /// [B] its start in the packet file
        file_start: u64,
        /// [B] its length
        len: u64,
    }
}

impl StreamMap {
    /// The packet-file offset of stream byte `pos`, or `None` past the end.
    pub fn file_offset(&self, pos: u64) -> Option<u64> {
        let i = self
            .stream_start
            .partition_point(|&s| s <= pos)
            .checked_sub(1)?;
        let start = *self.stream_start.get(i)?;
        let len = *self.len.get(i)?;
        let file = *self.file_start.get(i)?;
        (pos - start < len).then_some(file + (pos - start))
    }

    fn push(&mut self, stream_start: u64, file_start: u64, len: u64) {
        if len == 0 {
            return;
        }
        if let (Some(&s), Some(&f), Some(l)) = (
            self.stream_start.last(),
            self.file_start.last(),
            self.len.last_mut(),
        ) {
            if s + *l == stream_start && f + *l == file_start {
                *l += len;
                return;
            }
        }
        self.stream_start.push(stream_start);
        self.file_start.push(file_start);
        self.len.push(len);
    }
}

/// The reassembled science stream.
#[derive(Clone, Debug, Default)]
pub struct Reassembled {
    /// The big-endian AMS block stream.
    pub stream: Vec<u8>,
    /// Stream offset to packet-file offset.
    pub map: StreamMap,
    /// StreamGap rows, with packet-file offsets.
    pub problems: Vec<Problem>,
    /// Packets of the APID used.
    pub packets: usize,
    /// Sequence gaps met.
    pub gaps: usize,
    /// Bytes of user data dropped.
    pub dropped_bytes: u64,
}

/// A big-endian word of the raw stream.
#[inline(always)]
fn word(raw: &[u8], pos: usize) -> Option<u16> {
    let b = raw.get(pos..pos.checked_add(2)?)?;
    Some(u16::from_be_bytes([b[0], b[1]]))
}

/// The primary header of the block at `pos`: `(size, bytes of size words)`.
#[inline(always)]
fn block_size(raw: &[u8], pos: usize) -> Option<(usize, usize)> {
    let w0 = word(raw, pos)?;
    if w0 & 0x8000 != 0 {
        let ext = word(raw, pos + 2)?;
        Some(((((w0 & 0x7FFF) as usize) << 16) | ext as usize, 4))
    } else {
        Some((w0 as usize, 2))
    }
}

/// Total bytes of the block at `pos` if its header is a valid top-level header: the
/// size covers the ID word(s), the secondary header and, in replies, the time.
#[inline(always)]
fn top_level_total(raw: &[u8], pos: usize) -> Option<usize> {
    let (size, hdr) = block_size(raw, pos)?;
    let id = word(raw, pos + hdr)?;
    let rr = id & 0x8000 != 0;
    let ty = id & 0x1F;
    let min = 2 + if ty == 0x1F { 2 } else { 0 } + 2 + if rr { 4 } else { 0 };
    (size >= min).then_some(hdr + size + (size & 1))
}

/// Total bytes of the block at `pos` if it starts a science event (module docs).
#[inline(always)]
pub(crate) fn event_total(raw: &[u8], pos: usize) -> Option<usize> {
    let (size, hdr) = block_size(raw, pos)?;
    let id = word(raw, pos + hdr)?;
    if !crate::jmdc::is_event_id(id, word(raw, pos + hdr + 2)?) {
        return None;
    }
    let j = pos + hdr + 8;
    let jsize = word(raw, j)?;
    if !crate::jmdc::header_shape(jsize, word(raw, j + 2)?) {
        return None;
    }
    (size >= 2 + 2 + 4 + 2 + jsize as usize).then_some(hdr + size + (size & 1))
}

/// The stream starts with a block at `pos`: the chain of block sizes from it reaches a
/// science event start, or lands exactly on the end of the segment or of the stream.
/// (Random data chain from one plausible size to the next easily; they rarely land
/// exactly on an event start or a segment end.)
fn start_verified(raw: &[u8], mut pos: usize, seg_end: usize) -> bool {
    loop {
        if pos == seg_end || pos == raw.len() || event_total(raw, pos).is_some() {
            return true;
        }
        let Some(total) = top_level_total(raw, pos) else {
            return false;
        };
        pos += total;
        if pos > seg_end {
            return false;
        }
    }
}

/// The first event start at or after `from` before `seg_end`, else `seg_end`.
///
/// Candidates are ranked: an event whose size lands on a valid header inside the
/// segment, or exactly on the end of the stream, first; then one that ends exactly at
/// the end of the segment (where the next gap starts); last, one whose size runs past
/// it, which cannot be checked (and is cut by that gap in turn). A word with its top
/// bit set just before a real event reads as a long (`L = 1`) event header of absurd
/// size that passes every other test: the ranking keeps it from hiding the real one.
fn find_resume(raw: &[u8], from: usize, seg_end: usize) -> usize {
    let mut at_end: Option<usize> = None;
    let mut past_end: Option<usize> = None;
    for r in from..seg_end {
        let Some(total) = event_total(raw, r) else {
            continue;
        };
        let next = r + total;
        if verified_landing(raw, next, seg_end) {
            return r;
        }
        if next == seg_end {
            at_end.get_or_insert(r);
        } else if next > seg_end {
            past_end.get_or_insert(r);
        }
    }
    at_end.or(past_end).unwrap_or(seg_end)
}

/// A block ending at `next` lands on a valid header inside the segment or exactly on
/// the end of the stream.
#[inline(always)]
fn verified_landing(raw: &[u8], next: usize, seg_end: usize) -> bool {
    next == raw.len() || (next < seg_end && top_level_total(raw, next).is_some())
}

/// True when an event start whose size lands verifiably lies in `from..seg_end`.
fn verified_event_in(raw: &[u8], from: usize, seg_end: usize) -> bool {
    (from..seg_end)
        .any(|r| event_total(raw, r).is_some_and(|t| verified_landing(raw, r + t, seg_end)))
}

/// Reassembles the science stream of APID `apid` (976 for AMS-02 science).
pub fn reassemble(data: &[u8], index: &PacketIndex, apid: u16) -> Reassembled {
    // 1. The raw concatenation and the packets it came from.
    let mut pieces: Vec<Piece> = Vec::new();
    let mut raw_len = 0usize;
    for (h, &off) in index.headers.iter().zip(&index.offsets) {
        if h.apid() != apid {
            continue;
        }
        let len = h.total_len() - h.header_len();
        pieces.push(Piece {
            packet_offset: off,
            data_offset: off + h.header_len() as u64,
            raw_start: raw_len,
            len,
            seq: h.seq_count(),
        });
        raw_len += len;
    }
    let mut raw = Vec::with_capacity(raw_len);
    for p in &pieces {
        let s = p.data_offset as usize;
        raw.extend_from_slice(data.get(s..s + p.len).unwrap_or(&[]));
    }
    // Defensive: a short read (cannot happen for an index of `data`) shrinks nothing.
    raw.resize(raw_len, 0);

    // 2. Segments: runs of packets whose sequence counts follow each other.
    let mut seg_first: Vec<usize> = Vec::new(); // index into pieces
    for (i, p) in pieces.iter().enumerate() {
        let follows = i
            .checked_sub(1)
            .and_then(|j| pieces.get(j))
            .is_some_and(|q| (q.seq + 1) % SEQ_MODULUS == p.seq);
        if i == 0 || !follows {
            seg_first.push(i);
        }
    }

    let piece_at = |pos: usize| -> Option<&Piece> {
        let i = pieces
            .partition_point(|p| p.raw_start <= pos)
            .checked_sub(1)?;
        pieces.get(i)
    };
    // Where raw byte `pos` lies in the packet file.
    let file_pos = |pos: usize| -> u64 {
        piece_at(pos).map_or(0, |p| p.data_offset + (pos - p.raw_start) as u64)
    };
    let describe = |from: usize, to: usize| -> String {
        // packets holding raw bytes from..to (to exclusive, > from)
        match (piece_at(from), piece_at(to.saturating_sub(1))) {
            (Some(a), Some(b)) => format!(
                "packets at bytes {}..{} (sequence counts {}..{})",
                a.packet_offset, b.packet_offset, a.seq, b.seq
            ),
            _ => "no packet".to_string(),
        }
    };

    // 3. Walk each segment; collect kept ranges and gap rows.
    let mut kept: Vec<(usize, usize)> = Vec::new();
    let mut problems: Vec<Problem> = Vec::new();
    let mut dropped_bytes = 0u64;
    let mut cut_before: Option<(usize, usize)> = None; // (cut block start, segment end)
    for (s, &first) in seg_first.iter().enumerate() {
        let a = pieces.get(first).map_or(raw_len, |p| p.raw_start);
        let b = seg_first
            .get(s + 1)
            .and_then(|&i| pieces.get(i))
            .map_or(raw_len, |p| p.raw_start);
        // Where decoding starts in this segment.
        let r = if s == 0 {
            // The stream should start with a block; believe it only when the chain of
            // sizes from it proves it (a first block that runs into the first gap would
            // be cut anyway).
            if a == b || start_verified(&raw, a, b) {
                a
            } else {
                find_resume(&raw, a, b)
            }
        } else {
            find_resume(&raw, a, b)
        };
        if s == 0 && r > a {
            dropped_bytes += (r - a) as u64;
            let off = piece_at(a).map_or(0, |p| p.packet_offset);
            problems.push(Problem::new(
                off as usize,
                ProblemKind::StreamGap,
                format!(
                    "APID {apid} stream does not start with a block: dropped {} bytes ({}) up to the first event start",
                    r - a,
                    describe(a, r)
                ),
            ));
        }
        if s > 0 {
            let prev = seg_first
                .get(s)
                .and_then(|&i| i.checked_sub(1))
                .and_then(|i| pieces.get(i));
            let this = pieces.get(first);
            let (prev_seq, prev_off) = prev.map_or((0, 0), |p| (p.seq, p.packet_offset));
            let (this_seq, this_off) = this.map_or((0, 0), |p| (p.seq, p.packet_offset));
            let missing = this_seq.wrapping_sub(prev_seq).wrapping_sub(1) & (SEQ_MODULUS - 1);
            let mut detail = format!(
                "APID {apid}: sequence count jumps from {prev_seq} (packet at byte {prev_off}) to {this_seq} (packet at byte {this_off}), {missing} packets missing"
            );
            let mut offset = this_off;
            match cut_before {
                Some((c, e)) if e > c => {
                    offset = piece_at(c).map_or(this_off, |p| p.packet_offset);
                    detail.push_str(&format!(
                        "; the block starting at byte {} of the file is cut: dropped its {} bytes before the gap ({})",
                        file_pos(c),
                        e - c,
                        describe(c, e)
                    ));
                    dropped_bytes += (e - c) as u64;
                }
                _ => detail.push_str("; no block was cut before the gap"),
            }
            if r > a {
                detail.push_str(&format!(
                    " and {} bytes after it ({}) up to the next event start",
                    r - a,
                    describe(a, r)
                ));
                dropped_bytes += (r - a) as u64;
            } else {
                detail.push_str("; decoding resumes at the first byte after the gap");
            }
            problems.push(Problem::new(
                offset as usize,
                ProblemKind::StreamGap,
                detail,
            ));
        }
        // Walk blocks from r. A header that is not valid ends the walk (the rest is kept
        // for the block decoder to report). A block that runs past the end of the stream
        // is cut like one that runs into a gap (the last packets are missing, or the
        // file is cut), unless a verified event start follows it: then its size is
        // damaged, and the rest is kept for the block decoder to resynchronise.
        let mut p = r;
        let mut cut: Option<(usize, usize)> = None;
        while p < b {
            let Some(total) = top_level_total(&raw, p) else {
                break;
            };
            if p + total <= b {
                p += total;
            } else {
                if b < raw_len || !verified_event_in(&raw, p + 1, b) {
                    cut = Some((p, b));
                }
                break;
            }
        }
        if b == raw_len {
            if let Some((c, e)) = cut {
                dropped_bytes += (e - c) as u64;
                let off = piece_at(c).map_or(0, |p| p.packet_offset);
                problems.push(Problem::new(
                    off as usize,
                    ProblemKind::StreamGap,
                    format!(
                        "APID {apid} stream ends inside the block starting at byte {} of the file (its last packets are missing or the file is cut): dropped its {} bytes ({})",
                        file_pos(c),
                        e - c,
                        describe(c, e)
                    ),
                ));
            }
        }
        let keep_end = cut.map_or(b, |(c, _)| c);
        if keep_end > r {
            kept.push((r, keep_end));
        }
        cut_before = cut;
    }

    // 4. Compact the kept ranges and build the map.
    let mut map = StreamMap::default();
    let mut out_len = 0usize;
    for &(x, y) in &kept {
        // map: split [x, y) by packets
        let mut pos = x;
        while pos < y {
            let Some(pc) = piece_at(pos) else { break };
            let end = (pc.raw_start + pc.len).min(y);
            if end <= pos {
                break;
            }
            map.push(
                (out_len + (pos - x)) as u64,
                pc.data_offset + (pos - pc.raw_start) as u64,
                (end - pos) as u64,
            );
            pos = end;
        }
        raw.copy_within(x..y, out_len);
        out_len += y - x;
    }
    raw.truncate(out_len);
    raw.shrink_to_fit();

    Reassembled {
        stream: raw,
        map,
        problems,
        packets: pieces.len(),
        gaps: seg_first.len().saturating_sub(1),
        dropped_bytes,
    }
}

/// Reassembles the AMS-02 science APID (976).
pub fn reassemble_science(data: &[u8], index: &PacketIndex) -> Reassembled {
    reassemble(data, index, apid::SCIENCE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ccsds::header::{PrimaryHeader, SecondaryHeader};
    use crate::ccsds::scan::{scan, ScanOptions};

    /// A science event block (big-endian): JMDC sub-block of 24, then `extra` words.
    fn event(n: u16, extra: usize) -> Vec<u8> {
        let mut w: Vec<u16> = vec![0, 0x8000 | (1 << 5) | 5, n & 0xFFF, 0, n];
        w.extend_from_slice(&[24, 0x8000 | (1 << 5) | 5, 0, 1, 0, 2, 0, n, 0, 3, 0, 4, 0]);
        w.push((2 + 2 * extra) as u16);
        w.push(0x8000 | (128 << 5) | 1);
        w.extend((0..extra).map(|i| (i as u16 * 37 + n) & 0x0FFF));
        w[0] = (w.len() * 2 - 2) as u16;
        w.iter().flat_map(|x| x.to_be_bytes()).collect()
    }

    fn packets(stream: &[u8], sizes: &[usize], drop: &[usize]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut pos = 0;
        let mut i = 0;
        while pos < stream.len() {
            let len = sizes[i % sizes.len()].min(stream.len() - pos);
            if !drop.contains(&i) {
                let total = 16 + len;
                out.extend_from_slice(
                    &PrimaryHeader {
                        version: 0,
                        type_flag: 1,
                        sec_hdr: true,
                        apid: 976,
                        seq_flags: 3,
                        seq_count: (i % 16384) as u16,
                        length: (total - 7) as u16,
                    }
                    .to_bytes(),
                );
                out.extend_from_slice(&SecondaryHeader::default().to_bytes());
                out.extend_from_slice(&stream[pos..pos + len]);
            }
            pos += len;
            i += 1;
        }
        out
    }

    fn run(n: u16) -> (Vec<u8>, Vec<(usize, usize)>) {
        let mut s = Vec::new();
        let mut blocks = Vec::new();
        for k in 0..n {
            let e = event(k + 1, 10 + (k as usize * 13) % 300);
            blocks.push((s.len(), e.len()));
            s.extend(e);
        }
        (s, blocks)
    }

    #[test]
    fn no_gap_gives_the_stream_back() {
        let (s, _) = run(50);
        let file = packets(&s, &[100, 977, 4000, 333], &[]);
        let ix = scan(&file, &ScanOptions::default());
        assert!(ix.problems.is_empty(), "{:?}", ix.problems);
        let r = reassemble_science(&file, &ix);
        assert_eq!(r.stream, s);
        assert!(r.problems.is_empty());
        assert_eq!(r.map.file_offset(0), Some(16));
        assert_eq!(r.map.file_offset(100), Some(116 + 16));
    }

    #[test]
    fn gap_drops_exactly_the_cut_blocks() {
        let (s, blocks) = run(80);
        let sizes = [301usize, 1200, 517, 90];
        let drop = [3usize, 9, 10];
        let file = packets(&s, &sizes, &drop);
        let ix = scan(&file, &ScanOptions::default());
        let r = reassemble_science(&file, &ix);
        // dropped stream ranges
        let mut ranges = Vec::new();
        let (mut pos, mut i) = (0, 0);
        while pos < s.len() {
            let len = sizes[i % sizes.len()].min(s.len() - pos);
            if drop.contains(&i) {
                ranges.push((pos, pos + len));
            }
            pos += len;
            i += 1;
        }
        let expected: Vec<u8> = blocks
            .iter()
            .filter(|(o, l)| ranges.iter().all(|&(a, b)| o + l <= a || *o >= b))
            .flat_map(|&(o, l)| s[o..o + l].to_vec())
            .collect();
        assert_eq!(r.stream, expected);
        assert_eq!(r.gaps, 2);
        assert_eq!(r.problems.len(), 2);
        assert!(r.problems.iter().all(|p| p.kind == ProblemKind::StreamGap));
    }
}
