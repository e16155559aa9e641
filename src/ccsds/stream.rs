//! Incremental decoding of a CCSDS packet stream (the `ams02 monitor` ingest).
//!
//! A live source (a TCP connection, a UDP port, a growing file) delivers bytes in pieces
//! cut anywhere. [`StreamDecoder::feed`] takes the next piece and returns, for the whole
//! packets it completes, one [`Batch`] of columns (never an object per packet):
//!
//! - the packets' header fields and their sequence gaps, counted per APID **across**
//!   pieces (FORMAT.md section 7: a jump other than +1 modulo 16384);
//! - the H&S records of the health APID (subset 308, [`super::health`]);
//! - the bytes that are no packet, as problem rows with their stream offsets and the
//!   count of bytes skipped (the walk of [`super::scan`] resynchronises at the next
//!   plausible packet);
//! - the complete AMS blocks of the science APID, in order (FORMAT.md section 7,
//!   "Science stream"), ready for the block decoder.
//!
//! Bytes after the last whole packet are kept for the next piece (a packet cut by the
//! piece boundary is completed by the next one), at most [`MAX_CARRY`] of them: beyond
//! that they cannot belong to one packet, and the older ones are reported as skipped.
//! [`StreamDecoder::finish`] walks what is left as the end of the stream.
//!
//! The science stream is walked block by block, by the sizes of FORMAT.md section 2. A
//! sequence gap of the science APID cuts the block being assembled: its bytes are
//! dropped and counted, and the walk resumes at the first science event start (the
//! signature of [`super::science`]) whose size lands on another valid block header. A
//! block header that cannot be valid, or a block larger than [`MAX_BLOCK`], loses the
//! synchronisation in the same way.
//!
//! [`BlockStream`] does the same for a growing AMS block file (no packets): it returns
//! the complete blocks of each piece.

use super::apid;
use super::header::{PrimaryHeader, HEADER_LEN, PRIMARY_LEN, SEQ_MODULUS};
use super::health::{self, HealthTable};
use super::scan::{scan_with, PacketIndex, ScanOptions};
use crate::problems::{Problem, ProblemKind};
use crate::words::ByteOrder;

/// The largest packet: a length field of 65535 gives 65542 bytes.
pub const MAX_PACKET: usize = 65_542;
/// Bytes after the last whole packet kept for the next piece.
pub const MAX_CARRY: usize = MAX_PACKET + 6;
/// The largest block the stream walker waits for (larger sizes are taken as damage).
pub const MAX_BLOCK: usize = 8 << 20;
/// Bytes an unsynchronised science stream keeps while it looks for an event start.
const MAX_UNSYNCED: usize = 1 << 20;

/// What one [`StreamDecoder::feed`] completed.
#[derive(Clone, Debug, Default)]
pub struct Batch {
    /// Stream offset of each packet.
    pub offset: Vec<u64>,
    /// APID of each packet.
    pub apid: Vec<u16>,
    /// Sequence count of each packet.
    pub seq_count: Vec<u16>,
    /// Packets missing before each packet in its APID's sequence (0 for an APID's first
    /// packet in the stream).
    pub seq_gap: Vec<u16>,
    /// Total bytes of each packet.
    pub length: Vec<u32>,
    /// Secondary-header coarse time (0 without a secondary header).
    pub coarse_time: Vec<u32>,
    /// Secondary-header fine time, 1/256 s.
    pub fine_time: Vec<u8>,
    /// H&S records of the health APID (stream offsets).
    pub health: HealthTable,
    /// Problems: bad bytes (with the count skipped in the detail), sequence gaps, H&S
    /// layout problems, science stream gaps; stream offsets, in order of discovery.
    pub problems: Vec<Problem>,
    /// Bytes that were no packet, skipped.
    pub skipped_bytes: u64,
    /// Complete AMS blocks of the science APID (big-endian), in order.
    pub blocks: Vec<u8>,
    /// Science user-data bytes dropped (cut blocks, bytes before an event start).
    pub science_dropped: u64,
    /// Stream gaps of the science APID (sequence jumps that cut the stream).
    pub science_gaps: u64,
}

/// The state of a science (or block-file) stream walk.
#[derive(Clone, Debug)]
struct BlockWalker {
    order: ByteOrder,
    buf: Vec<u8>,
    /// The walk is at a block boundary (else it looks for an event start).
    synced: bool,
    /// No byte has been walked yet: a first block that chains is believed.
    initial: bool,
}

impl BlockWalker {
    fn new(order: ByteOrder) -> BlockWalker {
        BlockWalker {
            order,
            buf: Vec::new(),
            synced: false,
            initial: true,
        }
    }

    #[inline(always)]
    fn word(&self, pos: usize) -> Option<u16> {
        let b = self.buf.get(pos..pos.checked_add(2)?)?;
        Some(match self.order {
            ByteOrder::Big => u16::from_be_bytes([b[0], b[1]]),
            ByteOrder::Little => u16::from_le_bytes([b[0], b[1]]),
        })
    }

    /// `(size, bytes of size words)` of the block at `pos`.
    #[inline(always)]
    fn block_size(&self, pos: usize) -> Option<(usize, usize)> {
        let w0 = self.word(pos)?;
        if w0 & 0x8000 != 0 {
            let ext = self.word(pos + 2)?;
            Some(((((w0 & 0x7FFF) as usize) << 16) | ext as usize, 4))
        } else {
            Some((w0 as usize, 2))
        }
    }

    /// Total bytes of a valid top-level block at `pos` (as `science::top_level_total`).
    /// `Err(())` when the header cannot be valid; `Ok(None)` when too few bytes are there
    /// to tell.
    fn top_level_total(&self, pos: usize) -> Result<Option<usize>, ()> {
        let Some((size, hdr)) = self.block_size(pos) else {
            return Ok(None);
        };
        let Some(id) = self.word(pos + hdr) else {
            return Ok(None);
        };
        let rr = id & 0x8000 != 0;
        let ty = id & 0x1F;
        let min = 2 + if ty == 0x1F { 2 } else { 0 } + 2 + if rr { 4 } else { 0 };
        let total = hdr + size + (size & 1);
        if size < min || total > MAX_BLOCK {
            return Err(());
        }
        Ok(Some(total))
    }

    /// Total bytes of the block at `pos` if it starts a science event: the signature of
    /// [`super::science`] (one definition), read from the first 16 bytes put in
    /// big-endian order.
    fn event_total(&self, pos: usize) -> Option<usize> {
        let head = self.buf.get(pos..pos.checked_add(16)?)?;
        let total = match self.order {
            ByteOrder::Big => super::science::event_total(head, 0)?,
            ByteOrder::Little => {
                let mut be = [0u8; 16];
                for (d, s) in be.chunks_exact_mut(2).zip(head.chunks_exact(2)) {
                    d[0] = s[1];
                    d[1] = s[0];
                }
                super::science::event_total(&be, 0)?
            }
        };
        (total <= MAX_BLOCK).then_some(total)
    }

    /// Cuts the stream: the bytes held are dropped (returned).
    fn cut(&mut self) -> usize {
        let n = self.buf.len();
        self.buf.clear();
        self.synced = false;
        n
    }

    /// Appends bytes and moves the complete blocks into `out`. Returns the bytes
    /// dropped while looking for an event start. With `end`, the stream ends here: a
    /// partial block left is dropped too.
    fn push(&mut self, data: &[u8], out: &mut Vec<u8>, end: bool) -> usize {
        self.buf.extend_from_slice(data);
        let mut dropped = 0usize;
        let mut p = 0usize;
        let n = self.buf.len();
        loop {
            if !self.synced {
                match self.find_start(p, end) {
                    Some(r) => {
                        dropped += r - p;
                        p = r;
                        self.synced = true;
                    }
                    None => {
                        // Keep the bytes an event start might still begin in.
                        let keep_from = if end {
                            n
                        } else {
                            n.saturating_sub(MAX_UNSYNCED).max(p)
                        };
                        dropped += keep_from - p;
                        p = keep_from;
                        break;
                    }
                }
            }
            let start = p;
            let mut lost = false;
            while p < n {
                match self.top_level_total(p) {
                    Ok(Some(total)) if p + total <= n => p += total,
                    Ok(_) => break,
                    Err(()) => {
                        lost = true;
                        break;
                    }
                }
            }
            out.extend_from_slice(self.buf.get(start..p).unwrap_or(&[]));
            self.initial = false;
            if lost {
                self.synced = false;
                continue;
            }
            break;
        }
        if end && p < n {
            dropped += n - p;
            p = n;
            self.synced = false;
        }
        self.buf.drain(..p);
        dropped
    }

    /// The first offset at or after `from` where the walk can resume: an event start
    /// whose size lands on a valid block header (or exactly on the end of the stream
    /// when `end`); at the very start of the stream, also a block whose size lands so.
    fn find_start(&self, from: usize, end: bool) -> Option<usize> {
        let n = self.buf.len();
        let lands = |next: usize| -> bool {
            (end && next == n) || matches!(self.top_level_total(next), Ok(Some(_)))
        };
        if self.initial && from == 0 {
            if let Ok(Some(t)) = self.top_level_total(0) {
                if lands(t) {
                    return Some(0);
                }
            }
        }
        (from..n).find(|&r| self.event_total(r).is_some_and(|t| lands(r + t)))
    }
}

/// Decodes a CCSDS packet stream piece by piece (module docs).
#[derive(Clone, Debug)]
pub struct StreamDecoder {
    opts: ScanOptions,
    health_apid: Option<u16>,
    science_apid: Option<u16>,
    /// Bytes after the last whole packet.
    carry: Vec<u8>,
    /// Stream offset of `carry[0]`.
    base: u64,
    /// Per APID: the sequence count of its last packet, when there was one.
    last_seq: Vec<Option<u16>>,
    science: BlockWalker,
    /// `carry` starts right after a whole packet (or at the start of the stream).
    in_sync: bool,
    /// Totals since the start.
    pub packets: u64,
    /// Bytes taken in since the start.
    pub bytes_in: u64,
}

impl StreamDecoder {
    /// A decoder; `health_apid` names the H&S packets, `science_apid` the science
    /// stream (None: not reassembled).
    pub fn new(
        opts: ScanOptions,
        health_apid: Option<u16>,
        science_apid: Option<u16>,
    ) -> StreamDecoder {
        StreamDecoder {
            opts,
            health_apid,
            science_apid,
            carry: Vec::new(),
            base: 0,
            last_seq: vec![None; 2048],
            science: BlockWalker::new(ByteOrder::Big),
            in_sync: true,
            packets: 0,
            bytes_in: 0,
        }
    }

    /// A decoder with the AMS-02 defaults (H&S on 977, science on 976).
    pub fn ams02() -> StreamDecoder {
        StreamDecoder::new(
            ScanOptions::default(),
            Some(apid::HOUSEKEEPING),
            Some(apid::SCIENCE),
        )
    }

    /// Bytes held for the next piece.
    pub fn pending(&self) -> usize {
        self.carry.len() + self.science.buf.len()
    }

    /// Stream offset of the next byte fed.
    pub fn position(&self) -> u64 {
        self.base + self.carry.len() as u64
    }

    /// Breaks the stream (a new connection, a rewritten file): the partial packet and
    /// block held are dropped and the science stream resumes at the next event start.
    /// With `keep_sequence`, the sequence counts carry on (packets lost while the link
    /// was down show as gaps); else every APID starts again. Returns the bytes dropped.
    pub fn reset(&mut self, keep_sequence: bool) -> u64 {
        let n = (self.carry.len() + self.science.buf.len()) as u64;
        self.base += self.carry.len() as u64;
        self.carry.clear();
        // a new connection or file starts at a packet (if not, the walk resynchronises)
        self.in_sync = true;
        if !keep_sequence {
            self.last_seq.iter_mut().for_each(|s| *s = None);
        }
        self.science.cut();
        n
    }

    /// Takes the next piece of the stream.
    pub fn feed(&mut self, data: &[u8]) -> Batch {
        self.bytes_in += data.len() as u64;
        self.step(data, false)
    }

    /// Ends the stream: what is held is walked as its end.
    pub fn finish(&mut self) -> Batch {
        self.step(&[], true)
    }

    fn step(&mut self, data: &[u8], end: bool) -> Batch {
        let mut buf = std::mem::take(&mut self.carry);
        buf.extend_from_slice(data);
        let mut batch = Batch::default();
        if buf.is_empty() {
            if end {
                let d = self.science.push(&[], &mut batch.blocks, true);
                batch.science_dropped += d as u64;
            }
            return batch;
        }
        let n = buf.len();
        // Where the bytes stop is no end of a file: a packet cut there would break the
        // walk's chain of lengths, and the walk would take that for damage (and look for
        // packets inside the one before). While the chain holds up to a packet that is
        // not whole yet, only the whole packets are walked.
        let scan_len = if end || !self.in_sync {
            n
        } else {
            self.chain_limit(&buf).unwrap_or(n)
        };
        let mut index = scan_with(buf.get(..scan_len).unwrap_or(&buf), &self.opts, false);
        // The walk takes the end of its bytes for the end of a file, where a packet may
        // land. Here it is only where the bytes stop for now: a packet found by the
        // resynchronisation search (not chained to the packet before it) that ends
        // exactly there is unconfirmed, and waits for the bytes after it.
        if !end {
            if let (Some(&o), Some(h)) = (index.offsets.last(), index.headers.last()) {
                let k = index.len() - 1;
                let prev_end = match k {
                    0 if self.in_sync => Some(0usize),
                    0 => None,
                    _ => index
                        .offsets
                        .get(k - 1)
                        .zip(index.headers.get(k - 1))
                        .map(|(&po, ph)| po as usize + ph.total_len()),
                };
                if o as usize + h.total_len() == n && prev_end != Some(o as usize) {
                    index.offsets.truncate(k);
                    index.headers.truncate(k);
                    index.seq_gaps.truncate(k);
                }
            }
        }
        // Where the whole packets end.
        let done = match (index.offsets.last(), index.headers.last()) {
            (Some(&o), Some(h)) => o as usize + h.total_len(),
            _ => 0,
        };
        if !index.is_empty() {
            self.in_sync = true;
        }
        let mut consumed = if end { n } else { done };
        if !end && n - consumed > MAX_CARRY {
            self.in_sync = false;
            // Too much for one packet: the older bytes are no packet.
            let cut = n - MAX_CARRY;
            let skipped = cut - consumed;
            batch.problems.push(Problem::new(
                self.base as usize + consumed,
                ProblemKind::PacketGarbage,
                format!(
                    "{skipped} bytes that are not a plausible packet, skipped (more than one packet's {MAX_PACKET} bytes without a packet)"
                ),
            ));
            batch.skipped_bytes += skipped as u64;
            consumed = cut;
        }
        // The walk's problems before `done` are final; those after it are found again
        // with the next piece (unless the stream ends).
        for p in &index.problems {
            if p.kind == ProblemKind::SequenceGap {
                continue;
            }
            if (p.offset as usize) < done || end {
                batch.skipped_bytes += skipped_of(p, &index, scan_len);
                let mut q = p.clone();
                q.offset += self.base;
                if self.base > 0 {
                    q.detail = format!(
                        "{} (byte positions in this message count from stream byte {})",
                        q.detail, self.base
                    );
                }
                batch.problems.push(q);
            }
        }
        self.collect(&buf, &index, &mut batch);
        if end {
            let d = self.science.push(&[], &mut batch.blocks, true);
            batch.science_dropped += d as u64;
        }
        self.carry = buf.split_off(consumed.min(n));
        self.base += consumed as u64;
        batch.problems.sort_by_key(|p| p.offset);
        batch
    }

    /// The end of the whole packets when the chain of valid headers from the start of
    /// `buf` runs, unbroken, to a packet that is not whole yet (or exactly to the end);
    /// `None` when it meets a header that is not valid (bad bytes: the walk's
    /// resynchronisation is needed).
    fn chain_limit(&self, buf: &[u8]) -> Option<usize> {
        let n = buf.len();
        let mut q = 0usize;
        loop {
            if q == n {
                return Some(q);
            }
            let Some(h) = buf.get(q..).and_then(PrimaryHeader::from_slice) else {
                return Some(q); // a header not whole yet
            };
            let total = h.total_len();
            let ok_len = if self.opts.extra_apids.contains(&h.apid) {
                true
            } else {
                apid::bounds(h.apid).is_some_and(|(lo, hi)| lo <= total && total <= hi)
            };
            let fill = buf
                .get(q..q + PRIMARY_LEN)
                .is_some_and(|b| b.iter().all(|&x| x == 0));
            if h.version != 0 || !ok_len || fill || (h.sec_hdr && total < HEADER_LEN) {
                return None;
            }
            if q + total > n {
                return Some(q);
            }
            q += total;
        }
    }

    /// The packet columns, sequence gaps, H&S records and science blocks of `index`.
    fn collect(&mut self, buf: &[u8], index: &PacketIndex, batch: &mut Batch) {
        let k = index.len();
        batch.offset.reserve(k);
        batch.apid.reserve(k);
        batch.seq_count.reserve(k);
        batch.seq_gap.reserve(k);
        batch.length.reserve(k);
        batch.coarse_time.reserve(k);
        batch.fine_time.reserve(k);
        let base = self.base;
        for (h, &off) in index.headers.iter().zip(&index.offsets) {
            let a = h.apid();
            let seq = h.seq_count();
            let slot = self.last_seq.get_mut(a as usize);
            let gap = match slot {
                Some(s) => {
                    let g = match *s {
                        Some(prev) => seq.wrapping_sub(prev).wrapping_sub(1) & (SEQ_MODULUS - 1),
                        None => 0,
                    };
                    if g != 0 {
                        batch.problems.push(Problem::new(
                            (base + off) as usize,
                            ProblemKind::SequenceGap,
                            format!(
                                "APID {a}: {g} packets missing before sequence count {seq} (the previous packet of this APID has sequence count {})",
                                s.unwrap_or(0)
                            ),
                        ));
                    }
                    *s = Some(seq);
                    g
                }
                None => 0,
            };
            let sec = h.secondary();
            batch.offset.push(base + off);
            batch.apid.push(a);
            batch.seq_count.push(seq);
            batch.seq_gap.push(gap);
            batch.length.push(h.total_len() as u32);
            batch.coarse_time.push(sec.coarse_time);
            batch.fine_time.push(sec.fine_time);
            if Some(a) == self.science_apid {
                if gap != 0 {
                    let cut = self.science.cut();
                    batch.science_dropped += cut as u64;
                    batch.science_gaps += 1;
                    batch.problems.push(Problem::new(
                        (base + off) as usize,
                        ProblemKind::StreamGap,
                        format!(
                            "APID {a}: {gap} packets missing before sequence count {seq}; the block being assembled is cut: dropped its {cut} bytes before the gap, decoding resumes at the next event start"
                        ),
                    ));
                }
                let s = off as usize + h.header_len();
                let e = off as usize + h.total_len();
                let user = buf.get(s..e).unwrap_or(&[]);
                let d = self.science.push(user, &mut batch.blocks, false);
                batch.science_dropped += d as u64;
            }
        }
        self.packets += k as u64;
        if let Some(ha) = self.health_apid {
            let (mut t, probs) = health::health_status(buf, index, ha);
            t.offset.iter_mut().for_each(|o| *o += base);
            batch.health = t;
            batch.problems.extend(probs.into_iter().map(|mut p| {
                p.offset += base;
                p
            }));
        }
    }
}

/// Bytes skipped by a walk problem: the gap from its offset to the next packet (or the
/// end of the buffer).
fn skipped_of(p: &Problem, index: &PacketIndex, n: usize) -> u64 {
    let at = p.offset;
    let i = index.offsets.partition_point(|&o| o <= at);
    let next = index.offsets.get(i).copied().unwrap_or(n as u64);
    next.saturating_sub(at)
}

/// The complete blocks of a growing AMS block file, piece by piece (module docs).
#[derive(Clone, Debug)]
pub struct BlockStream {
    walker: BlockWalker,
    /// Bytes dropped (no valid block chain) since the start.
    pub dropped: u64,
}

impl BlockStream {
    /// A walker of blocks written in `order`.
    pub fn new(order: ByteOrder) -> BlockStream {
        BlockStream {
            walker: BlockWalker::new(order),
            dropped: 0,
        }
    }

    /// Takes the next piece; returns the complete blocks and the bytes dropped.
    pub fn feed(&mut self, data: &[u8], end: bool) -> (Vec<u8>, u64) {
        let mut out = Vec::new();
        let d = self.walker.push(data, &mut out, end) as u64;
        self.dropped += d;
        (out, d)
    }

    /// Bytes held for the next piece.
    pub fn pending(&self) -> usize {
        self.walker.buf.len()
    }

    /// The byte order of the blocks.
    pub fn order(&self) -> ByteOrder {
        self.walker.order
    }
}

/// Header bytes of a packet with a secondary header (for callers sizing pieces).
pub const PACKET_HEADER_LEN: usize = HEADER_LEN;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ccsds::packetize::{packetize, CcsdsSimConfig};
    use crate::ccsds::scan::scan;
    use crate::ccsds::science::reassemble_science;
    use crate::simulate::{simulate_to_writer, SimConfig};

    fn sim_stream(n: u64) -> Vec<u8> {
        let mut s = Vec::new();
        simulate_to_writer(
            &mut s,
            &SimConfig {
                n_events: n,
                seed: 3,
                byte_order: ByteOrder::Big,
                ..Default::default()
            },
        )
        .unwrap();
        s
    }

    fn feed_all(d: &mut StreamDecoder, data: &[u8], pieces: &[usize]) -> Vec<Batch> {
        let mut out = Vec::new();
        let mut pos = 0;
        let mut i = 0;
        while pos < data.len() {
            let k = pieces[i % pieces.len()].min(data.len() - pos);
            out.push(d.feed(&data[pos..pos + k]));
            pos += k;
            i += 1;
        }
        out.push(d.finish());
        out
    }

    #[test]
    fn pieces_give_the_whole_file_walk() {
        let stream = sim_stream(400);
        let cfg = CcsdsSimConfig {
            housekeeping_every: 5,
            drop: vec![7, 30, 31],
            ..Default::default()
        };
        let mut file = Vec::new();
        packetize(&mut file, &stream, &cfg).unwrap();
        // garbage in the middle
        let mid = {
            let ix = scan(&file, &ScanOptions::default());
            ix.offsets[ix.len() / 2] as usize
        };
        file.splice(mid..mid, [0xEEu8; 77]);
        let ix = scan(&file, &ScanOptions::default());
        let r = reassemble_science(&file, &ix);
        for pieces in [vec![1usize << 20], vec![1000, 17, 4096, 3], vec![65_000]] {
            let mut d = StreamDecoder::ams02();
            let batches = feed_all(&mut d, &file, &pieces);
            let offs: Vec<u64> = batches.iter().flat_map(|b| b.offset.clone()).collect();
            assert_eq!(offs, ix.offsets);
            let gaps: Vec<u16> = batches.iter().flat_map(|b| b.seq_gap.clone()).collect();
            assert_eq!(gaps, ix.seq_gaps);
            let skipped: u64 = batches.iter().map(|b| b.skipped_bytes).sum();
            assert_eq!(skipped, 77);
            let hs: Vec<u16> = batches.iter().flat_map(|b| b.health.chd.clone()).collect();
            let (t, _) = health::health_status(&file, &ix, 977);
            assert_eq!(hs, t.chd);
            let blocks: Vec<u8> = batches.iter().flat_map(|b| b.blocks.clone()).collect();
            assert_eq!(blocks, r.stream, "pieces {pieces:?}");
            let sg: u64 = batches.iter().map(|b| b.science_gaps).sum();
            assert_eq!(sg as usize, r.gaps);
        }
    }

    #[test]
    fn byte_by_byte_finds_no_packet_inside_random_payloads() {
        use crate::ccsds::header::SecondaryHeader;
        use crate::ccsds::packetize::{encode_packet, SplitMix};
        let mut rng = SplitMix::new(77);
        let mut data = Vec::new();
        let mut offsets = Vec::new();
        for i in 0..40u16 {
            // payloads full of plausible-looking headers of every length
            let n = rng.range(84, 3000);
            let mut user = Vec::with_capacity(n);
            while user.len() < n {
                let len = rng.range(100, 4000) as u16 - 7;
                user.extend_from_slice(&[0x1B, 0xD0, 0xC0, 0x00]);
                user.extend_from_slice(&len.to_be_bytes());
                user.extend((0..rng.range(0, 40)).map(|_| (rng.next_u64() >> 56) as u8));
            }
            user.truncate(n);
            offsets.push(data.len() as u64);
            data.extend(encode_packet(977, i, &SecondaryHeader::default(), &user).unwrap());
        }
        let mut d = StreamDecoder::new(ScanOptions::default(), None, None);
        let mut got = Vec::new();
        for b in data.chunks(1) {
            got.extend(d.feed(b).offset);
        }
        got.extend(d.finish().offset);
        assert_eq!(got, offsets);
    }

    #[test]
    fn carry_is_bounded_and_noise_is_counted() {
        let mut d = StreamDecoder::ams02();
        let mut x = 0x1234_5678_9ABC_DEF1u64;
        let noise: Vec<u8> = (0..300_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8 | 0xE0 // version bits never 0
            })
            .collect();
        let mut skipped = 0;
        for c in noise.chunks(10_000) {
            let b = d.feed(c);
            assert!(b.offset.is_empty());
            skipped += b.skipped_bytes;
            assert!(d.pending() <= MAX_CARRY);
        }
        skipped += d.finish().skipped_bytes;
        assert_eq!(skipped, noise.len() as u64);
    }

    #[test]
    fn block_stream_little_endian() {
        let mut s = Vec::new();
        simulate_to_writer(
            &mut s,
            &SimConfig {
                n_events: 200,
                seed: 5,
                ..Default::default()
            },
        )
        .unwrap();
        let mut b = BlockStream::new(ByteOrder::Little);
        let mut out = Vec::new();
        for c in s.chunks(333) {
            out.extend(b.feed(c, false).0);
        }
        out.extend(b.feed(&[], true).0);
        assert_eq!(out, s);
        assert_eq!(b.dropped, 0);
    }
}
