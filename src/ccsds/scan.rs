//! Walking a packet file into packets, with resynchronisation after bad bytes.
//!
//! A packet is accepted where the chain of packet lengths puts it. When the chain
//! breaks (a version other than 0, a length that runs past the end of the file, bytes
//! that are no packet), the walker reports the bad bytes as one problem row and
//! resumes at the next *plausible packet*: a valid header whose length lands exactly
//! on another valid header or on the end of the file.
//!
//! A *valid header* is strict so that random bytes rarely pass one:
//!
//! - version 0;
//! - an APID named by FORMAT.md section 7 (124, 976, 977, 980, 981, 1024, 2000), one
//!   given by the caller, or one already established in this file (below);
//! - the length within the bounds of its APID (HRDL 100..4096 bytes, LRDL commands
//!   48..128, other LRDL 16..2560) and, when the secondary header flag is set, at
//!   least the 16 bytes of both headers.
//!
//! An APID not in the list can still be read where the chain of lengths is intact
//! (never while searching for a resynchronisation point): a header at a chained
//! position is accepted when the chain of version-0 headers of such APIDs from it runs
//! on for [`CONFIRM_HOPS`] packets or to the end of the file, and no plausible packet
//! starts inside it. Its APID is then *established* for the rest of the file. (A lone
//! packet of an unknown APID between AMS-02 packets is therefore reported as bad bytes;
//! name its APID in `extra_apids` to read it.) Six zero bytes are fill, never a header.
//!
//! **Which candidate wins.** Bytes inside damage can read as a plausible packet whose
//! length lands exactly on a real packet further on; its chain then merges into the
//! true one and no later check can tell it from a packet, while the good packets it
//! spans are lost as its body. So a plausible packet `q` is a resynchronisation point
//! only if no *rival* overrules it: a plausible packet starting inside `q` whose chain
//! of valid headers lands exactly on the end of `q` and reads more packets than `q`
//! over the same bytes. The two chains agree from there on. The packets counted are
//! the rival's, plus the *anchor*: the packet read in sync whose bytes hold `q` (the
//! packet where the chain broke, when its header is valid, or the one before it, below),
//! when `q` starts inside it and the rival at or after its end, since `q` would lose it
//! too. So a rival needs two packets of its own tiling the rest of `q`, or one after
//! the anchor's end (a good packet that bad bytes follow, then a packet after the bad
//! bytes landing on the end of `q`). Random bytes inside a real packet practically
//! never tile it so (two chained random headers, the last landing on an exact offset:
//! about 1e-13 per byte; one random header after the anchor landing on the end of `q`,
//! when the anchor's length is what is damaged: about 1e-8 per byte). On a tie (one
//! packet each, landing on the same end) the earlier candidate wins, as the block walk
//! of `src/index.rs` resumes at the earliest offset whose chain lands on its anchor. An
//! overruled `q` is reported with the bad bytes before the next candidate.
//!
//! The same rule decides whether a packet read in sync was no packet: when the chain
//! breaks after it, a plausible packet inside it that no rival overrules means that its
//! length was damaged (it is reported, and the walk resumes there), unless that packet
//! lands exactly on its end with one packet (a tie, which the earlier wins: the break
//! comes after both); and when a chain runs through the packet before, the plausible
//! packet's chain must run further than that one does (its next packet is plausible too,
//! or it ends the file). And where the sequence count of the packet after a packet read
//! in sync does not follow the last one of its APID (the packet itself, or an earlier one:
//! a test on the header the walk reads anyway, so that the clean walk never reads a
//! packet body), the packet is checked as a candidate: a cut packet whose length happens
//! to land on a later packet of the chain is overruled by the packets it spans when two
//! or more of them chain onto its end. (A walk in stretches knows no earlier packet at a
//! stretch's start: where that would matter, the file is walked again as one stretch.)
//!
//! The walk is linear: the resynchronisation search moves forward only and tests every
//! byte offset at most once (each candidate costs two header checks, and at most
//! [`MAX_RIVALS`] rivals of at most [`RIVAL_HOPS`] header checks each are followed for
//! it), and the checks of a packet body (after a break, for an unknown APID, or after a
//! sequence jump) read that one packet, at most 65542 bytes, once.
//!
//! What no walk without checksums can tell (FORMAT.md section 7 gives packets none),
//! about 1e-5 per damaged packet: a valid header inside damage, or inside one of the two
//! packets before damage, whose length lands on a valid header reads as a packet where
//! nothing rivals it (the packets it spans do not chain among themselves, each followed by bad
//! bytes, or it spans none). A damaged length of a packet read in sync that lands
//! exactly on the end of the file, on the first packet of its APID, or on a packet whose
//! sequence count is in step, is not checked (that would read every packet body, not only
//! its header): it cannot be told from a packet. Nor can a damaged length whose end lands
//! on a random valid header, until the chain breaks there (above). A good packet
//! between two damaged ones is no plausible packet (its length lands on no valid
//! header) and is reported with the damage.

use super::apid::{self, ApidSet};
use super::header::{HeaderBytes, PrimaryHeader, HEADER_LEN, PRIMARY_LEN};
use crate::problems::{Problem, ProblemKind};

/// Packets a chain through unknown APIDs must run on for before it is believed.
pub const CONFIRM_HOPS: usize = 8;

/// Rivals of a resynchronisation candidate checked at most (module docs).
pub const MAX_RIVALS: usize = 16;

/// Packets a rival's chain may take to land on the end of the candidate it overrules.
pub const RIVAL_HOPS: usize = 64;

/// Options of the walk.
#[derive(Clone, Debug, Default)]
pub struct ScanOptions {
    /// APIDs to take as valid besides those of FORMAT.md section 7 (any length).
    pub extra_apids: Vec<u16>,
}

/// The packets of a file: one entry per packet, in file order.
#[derive(Clone, Debug, Default)]
pub struct PacketIndex {
    /// Byte offset of each packet in the file.
    pub offsets: Vec<u64>,
    /// The first 16 header bytes of each packet (secondary header zeroed when absent).
    pub headers: Vec<HeaderBytes>,
    /// Packets missing before each packet in its APID's sequence, modulo 16384.
    pub seq_gaps: Vec<u16>,
    /// Problems found by the walk and the sequence check, sorted by offset.
    pub problems: Vec<Problem>,
    /// Bytes in the file.
    pub file_len: u64,
    /// The APIDs taken as valid at the end of the walk (known, given and established).
    pub plausible: ApidSet,
}

impl PacketIndex {
    /// Number of packets.
    pub fn len(&self) -> usize {
        self.offsets.len()
    }

    /// True when there is no packet.
    pub fn is_empty(&self) -> bool {
        self.offsets.is_empty()
    }
}

struct Scanner<'a> {
    data: &'a [u8],
    /// Known, given and established APIDs.
    plausible: ApidSet,
    /// Known and given APIDs.
    base: ApidSet,
    /// Given APIDs (any length).
    extra: ApidSet,
}

#[inline(always)]
fn length_ok(h: &PrimaryHeader, extra: &ApidSet) -> bool {
    let total = h.total_len();
    if h.sec_hdr && total < HEADER_LEN {
        return false;
    }
    if extra.contains(h.apid) {
        return true;
    }
    match apid::bounds(h.apid) {
        Some((lo, hi)) => lo <= total && total <= hi,
        None => true,
    }
}

impl<'a> Scanner<'a> {
    /// A header with version 0 and a length allowed for its APID (APID not checked).
    #[inline(always)]
    fn loose(&self, pos: usize) -> Option<PrimaryHeader> {
        let b = self.data.get(pos..pos.checked_add(PRIMARY_LEN)?)?;
        if b[0] >> 5 != 0 {
            return None;
        }
        let h = PrimaryHeader::from_slice(b)?;
        // Six zero bytes are fill, not a packet of APID 0 (unless APID 0 is given).
        if b.iter().all(|&x| x == 0) && !self.extra.contains(0) {
            return None;
        }
        length_ok(&h, &self.extra).then_some(h)
    }

    /// A valid header (module docs): loose, with a plausible APID.
    #[inline(always)]
    fn strict(&self, pos: usize) -> Option<PrimaryHeader> {
        let h = self.loose(pos)?;
        self.plausible.contains(h.apid).then_some(h)
    }

    /// A valid header whose packet ends on another valid header or on the end of the
    /// file. Returns the end of the packet.
    #[inline(always)]
    fn plausible_packet(&self, pos: usize) -> Option<usize> {
        let h = self.strict(pos)?;
        let end = pos + h.total_len();
        if end == self.data.len() || (end < self.data.len() && self.strict(end).is_some()) {
            Some(end)
        } else {
            None
        }
    }

    /// The chain of version-0 headers of APIDs outside the known and given ones, from
    /// `pos`, runs on for [`CONFIRM_HOPS`] packets or to the end of the file.
    fn chain_confirms(&self, mut pos: usize) -> bool {
        for _ in 0..CONFIRM_HOPS {
            if pos == self.data.len() {
                return true;
            }
            let Some(h) = self.loose(pos) else {
                return false;
            };
            if self.base.contains(h.apid) {
                return false;
            }
            pos += h.total_len();
            if pos > self.data.len() {
                return false;
            }
        }
        true
    }

    /// Accepts the packet at a chained position: its header is valid and its end lands
    /// on a valid header or on the end of the file; or, failing that, the chain of
    /// version-0 headers through APIDs not (yet) valid confirms it ([`Self::chain_confirms`])
    /// and no plausible packet starts inside it (a damaged length, or a random header
    /// whose length happens to land on a real packet, would swallow that packet).
    fn accept_in_sync(&mut self, pos: usize) -> Option<(PrimaryHeader, usize)> {
        let h = self.loose(pos)?;
        let end = pos + h.total_len();
        if end > self.data.len() {
            return None;
        }
        let known = self.plausible.contains(h.apid);
        if known && (end == self.data.len() || self.strict(end).is_some()) {
            return Some((h, end));
        }
        let confirmed = if known {
            self.chain_confirms(end)
        } else {
            self.chain_confirms(pos)
        };
        if !confirmed || self.first_plausible_in(pos + 1, end).is_some() {
            return None;
        }
        if !known {
            self.plausible.insert(h.apid);
        }
        Some((h, end))
    }

    /// The first plausible packet in `from..to` that no rival overrules, if any
    /// ([`Self::next_packet`], no anchor).
    fn first_plausible_in(&self, from: usize, to: usize) -> Option<usize> {
        self.next_packet(from, to, 0).map(|(q, _)| q)
    }

    /// The first resynchronisation point in `from..to` (module docs, "Which candidate
    /// wins"), with its end: the first plausible packet `q` there that no rival overrules.
    /// A *rival* of `q` is a plausible packet starting inside it whose chain of valid
    /// headers lands exactly on the end of `q`, reading more packets than `q` over the
    /// same bytes: both chains then agree from that point on. Counted are the rival's
    /// packets, plus the *anchor* when the rival starts at or after its end and `q`
    /// starts before it: `anchor` is the end of the packet read in sync whose bytes hold
    /// the candidates (0 for none), which `q` would cut into and lose. So a rival needs
    /// two packets of its own to tile the rest of `q`, or one after the anchor's end (a
    /// header inside damaged bytes, or inside a real packet that bad bytes follow, whose
    /// length happens to land on a later packet would swallow the packets between). On
    /// a tie the earlier `q` wins.
    ///
    /// Every byte offset is tested at most once (the plausible packets met while looking
    /// inside a candidate are kept as the next candidates), and each candidate checks at
    /// most [`MAX_RIVALS`] rivals of at most [`RIVAL_HOPS`] headers each: linear.
    fn next_packet(&self, from: usize, to: usize, anchor: usize) -> Option<(usize, usize)> {
        let n = self.data.len();
        // Offsets below `scanned` have been tested; `ahead` holds the plausible packets
        // among them after the current candidate, with their ends.
        let mut scanned = from;
        let mut ahead: std::collections::VecDeque<(usize, usize)> = Default::default();
        loop {
            let (q, end) = match ahead.pop_front() {
                Some(c) => c,
                None => self.scan_plausible(&mut scanned, to)?,
            };
            if q >= to {
                return None;
            }
            // Look inside the candidate for rivals (bytes up to its end, at most once).
            let stop = end.min(n);
            while scanned < stop {
                if let Some(c) = self.scan_plausible(&mut scanned, stop) {
                    ahead.push_back(c);
                }
            }
            let overruled = ahead
                .iter()
                .take_while(|&&(r, _)| r < end)
                .take(MAX_RIVALS)
                .any(|&(r, r_end)| {
                    let own = if q < anchor && r >= anchor { 1 } else { 2 };
                    self.tiles(r_end, end, own)
                });
            if !overruled {
                return Some((q, end));
            }
        }
    }

    /// The next plausible packet at or after `*scanned` and before `to`, with its end;
    /// `*scanned` moves past it (or to `to`).
    #[inline]
    fn scan_plausible(&self, scanned: &mut usize, to: usize) -> Option<(usize, usize)> {
        let from = *scanned;
        let window = self.data.get(from..to.min(self.data.len()))?;
        *scanned = from.max(to.min(self.data.len()));
        for (i, &b0) in window.iter().enumerate() {
            // Fast reject: version bits before anything else.
            if b0 >> 5 == 0 {
                let r = from + i;
                if let Some(end) = self.plausible_packet(r) {
                    *scanned = r + 1;
                    return Some((r, end));
                }
            }
        }
        None
    }

    /// Whether the chain of valid headers from a plausible packet ending at `r_end` lands
    /// exactly on `target` with at least `packets` packets (that one and more), within
    /// [`RIVAL_HOPS`] packets.
    fn tiles(&self, r_end: usize, target: usize, packets: usize) -> bool {
        let mut p = r_end;
        for hops in 1..RIVAL_HOPS {
            if p == target {
                return hops >= packets;
            }
            if p > target {
                return false;
            }
            let Some(h) = self.strict(p) else {
                return false;
            };
            p += h.total_len();
        }
        false
    }

    /// The problem for a packet at `pos` whose length runs over the plausible packet at `r`.
    fn swallowed(&self, pos: usize, r: usize) -> Problem {
        let h = self
            .data
            .get(pos..)
            .and_then(PrimaryHeader::from_slice)
            .unwrap_or_default();
        Problem::new(
            pos,
            ProblemKind::PacketGarbage,
            format!(
                "header of APID {} with length field {} ({} bytes) runs over the plausible packet at byte {r}: \
                 its length is damaged (or it is no packet); skipped {} bytes to that packet",
                h.apid,
                h.length,
                h.total_len(),
                r - pos
            ),
        )
    }

    /// The first resynchronisation point at or after `start` ([`Self::next_packet`]),
    /// or the end of the file.
    fn find_next(&self, start: usize, anchor: usize) -> usize {
        let n = self.data.len();
        self.next_packet(start, n, anchor).map_or(n, |(q, _)| q)
    }

    /// The problem for the bytes `pos..q` that are not a packet.
    fn classify(&self, pos: usize, q: usize) -> Problem {
        let n = self.data.len();
        let skipped = q - pos;
        let resume = if q == n {
            "to the end of the file".to_string()
        } else {
            format!("to the next plausible packet at byte {q}")
        };
        let Some(h) = self.data.get(pos..).and_then(PrimaryHeader::from_slice) else {
            return Problem::new(
                pos,
                ProblemKind::PacketOverrun,
                format!(
                    "truncated last packet: {} bytes left, fewer than the 6 of a primary header",
                    n - pos
                ),
            );
        };
        let total = h.total_len();
        let end = pos.saturating_add(total);
        let apid_ok = self.plausible.contains(h.apid) && length_ok(&h, &self.extra);
        if h.version != 0 {
            let lands = end == n || (end < n && self.strict(end).is_some());
            if apid_ok && lands {
                return Problem::new(
                    pos,
                    ProblemKind::PacketVersion,
                    format!(
                        "version {} (must be 0) in a packet of APID {} and {} bytes; skipped {} bytes {}",
                        h.version, h.apid, total, skipped, resume
                    ),
                );
            }
        } else if end > n && apid_ok {
            return Problem::new(
                pos,
                ProblemKind::PacketOverrun,
                format!(
                    "packet of APID {} with length field {} ({} bytes) runs past the end of the file: {} bytes left; skipped {} bytes {}",
                    h.apid,
                    h.length,
                    total,
                    n - pos,
                    skipped,
                    resume
                ),
            );
        }
        Problem::new(
            pos,
            ProblemKind::PacketGarbage,
            format!("{skipped} bytes that are not a plausible packet, skipped {resume}"),
        )
    }
}

/// The packets and problems of one stretch of the walk, and its state.
#[derive(Default)]
struct Walked {
    /// Where the walk started.
    start: usize,
    /// Where it is; where it stopped when done: the first packet boundary (or
    /// resynchronisation point) at or past its limit.
    end: usize,
    /// Where it stops.
    limit: usize,
    /// The packet accepted last, when the walk reached `end` by its length.
    chained_from: Option<usize>,
    /// Whether the packet accepted last was itself reached by the length of the one
    /// before (a chain runs through it).
    reached: bool,
    /// The header at `end`, when the last step found it valid.
    next: Option<PrimaryHeader>,
    offsets: Vec<u64>,
    headers: Vec<HeaderBytes>,
    problems: Vec<Problem>,
    /// Per APID, the sequence count of its last packet accepted ([`NO_SEQ`]: none yet).
    last_seq: Vec<u16>,
    /// The packets read in sync whose next packet's APID had no packet yet in this walk
    /// (start, end, APID and sequence count of the next packet): a walk from the start
    /// of the file may have checked them ([`scan_with`]).
    unchecked: Vec<(usize, usize, u16, u16)>,
}

/// No packet of the APID yet ([`Walked::last_seq`]); sequence counts have 14 bits.
const NO_SEQ: u16 = u16::MAX;

impl Walked {
    fn new(start: usize, limit: usize, capacity: usize) -> Walked {
        Walked {
            start,
            end: start,
            limit,
            offsets: Vec::with_capacity(capacity),
            headers: Vec::with_capacity(capacity),
            last_seq: vec![NO_SEQ; 2048],
            ..Default::default()
        }
    }

    #[inline(always)]
    fn push(&mut self, data: &[u8], pos: usize, end: usize, h: &PrimaryHeader) {
        self.offsets.push(pos as u64);
        self.headers.push(HeaderBytes::capture(
            data.get(pos..end).unwrap_or(&[]),
            h.sec_hdr,
        ));
        if let Some(s) = self.last_seq.get_mut(h.apid as usize) {
            *s = h.seq_count;
        }
    }

    /// Whether the sequence count of `x`, the header after the packet `h` at `pos..end`
    /// read in sync, jumps from the last packet of its APID (`h` itself, or one before).
    #[inline(always)]
    fn seq_jumps(&mut self, pos: usize, end: usize, h: &PrimaryHeader, x: &PrimaryHeader) -> bool {
        let last = if x.apid == h.apid {
            h.seq_count
        } else {
            match self.last_seq.get(x.apid as usize) {
                Some(&s) if s != NO_SEQ => s,
                _ => {
                    self.unchecked.push((pos, end, x.apid, x.seq_count));
                    return false;
                }
            }
        };
        seq_gap(last, x.seq_count) != 0
    }
}

impl Scanner<'_> {
    /// One step of the walk `w` (module docs): accepts one packet, or reports bad bytes
    /// and resynchronises. Returns false once the walk has reached its limit.
    ///
    /// The common case is inlined: a valid header (checked by the step before, when it
    /// looked at the end of its packet) whose packet ends on another valid header or on
    /// the end of the file.
    #[inline(always)]
    fn step(&mut self, w: &mut Walked) -> bool {
        let pos = w.end;
        if pos >= w.limit {
            return false;
        }
        let n = self.data.len();
        let h = match w.next.take() {
            Some(h) => Some(h),
            None => self.strict(pos),
        };
        if let Some(h) = h {
            let end = pos + h.total_len();
            let next = if end < n { self.strict(end) } else { None };
            if end == n || next.is_some() {
                // A jump of the sequence count of the next packet's APID: the length may
                // be damaged, landing on a later packet (module docs).
                if let Some(x) = next {
                    if w.seq_jumps(pos, end, &h, &x) && self.overrule_in_sync(w, pos, end) {
                        return true;
                    }
                }
                w.push(self.data, pos, end, &h);
                w.reached = w.chained_from.is_some();
                w.chained_from = Some(pos);
                w.end = end;
                w.next = next;
                return true;
            }
        }
        self.slow_step(w);
        true
    }

    /// The packet at `pos`, read in sync and ending on a valid header at `end`, where the
    /// sequence count of its APID jumps: when a rival overrules it as a candidate
    /// ([`Self::next_packet`]), its length was damaged and landed on a later packet of
    /// the chain; it is reported, and the walk resumes at the first packet inside it
    /// that no rival overrules. Returns whether it was overruled.
    #[cold]
    #[inline(never)]
    fn overrule_in_sync(&self, w: &mut Walked, pos: usize, end: usize) -> bool {
        match self.overruling(pos, end) {
            Some(r) => {
                w.problems.push(self.swallowed(pos, r));
                w.chained_from = None;
                w.next = None;
                w.end = r;
                true
            }
            _ => false,
        }
    }

    /// Where the walk resumes when the packet at `pos..end`, read in sync, is overruled
    /// as a candidate ([`Self::overrule_in_sync`]); `None` when it stands.
    fn overruling(&self, pos: usize, end: usize) -> Option<usize> {
        self.next_packet(pos, end, 0)
            .map(|(r, _)| r)
            .filter(|&r| r != pos)
    }

    /// The step when the chain of lengths does not simply continue.
    #[inline(never)]
    fn slow_step(&mut self, w: &mut Walked) {
        let data = self.data;
        let pos = w.end;
        if let Some((h, end)) = self.accept_in_sync(pos) {
            w.push(data, pos, end, &h);
            w.reached = w.chained_from.is_some();
            w.chained_from = Some(pos);
            w.end = end;
            return;
        }
        // The chain breaks here. If the packet before swallowed a plausible packet, its
        // length was wrong (a damaged packet whose length happened to land on a valid
        // header): it was no packet, and the walk resumes inside it.
        // A plausible packet inside it that lands exactly on its end with one packet is a
        // tie, which the earlier packet wins: the chain breaks after both. When a chain
        // runs through the packet before, the plausible packet's chain must run further
        // than that one, which breaks after one packet: its next packet is plausible too
        // (or it ends the file).
        let through = w.reached;
        if let Some(prev) = w.chained_from.take() {
            if let Some((r, r_end)) = self.next_packet(prev + 1, pos, pos) {
                let further =
                    !through || r_end == data.len() || self.plausible_packet(r_end).is_some();
                if r_end != pos && further {
                    w.offsets.pop();
                    w.headers.pop();
                    w.problems.push(self.swallowed(prev, r));
                    w.end = r;
                    return;
                }
            }
        }
        // A valid header here is the anchor of the search: a candidate inside its packet
        // would lose it.
        let anchor = self.strict(pos).map_or(0, |h| pos + h.total_len());
        let q = self.find_next(pos + 1, anchor);
        // A valid packet followed by bytes that are no packet: keep the packet (no
        // resynchronisation point starts inside it, since the first one is at `q`).
        if let Some(h) = self.strict(pos) {
            let end = pos + h.total_len();
            if end <= q {
                w.push(data, pos, end, &h);
                if end < q {
                    w.problems.push(self.classify(end, q));
                }
                w.end = q;
                return;
            }
        }
        w.problems.push(self.classify(pos, q));
        w.end = q;
    }

    /// Walks the stretches together, one step of each in turn: the header reads of
    /// different stretches then overlap instead of waiting for memory one by one. The
    /// steps of a group of four are written out one by one, so that each stretch has
    /// loads of its own for the processor's stride prefetcher to follow.
    fn walk_interleaved(&mut self, ws: &mut [Walked]) {
        for group in ws.chunks_mut(4) {
            match group {
                [a, b, c, d] => loop {
                    let (x, y) = (self.step(a), self.step(b));
                    let (z, u) = (self.step(c), self.step(d));
                    if !(x || y || z || u) {
                        break;
                    }
                },
                [a, b, c] => loop {
                    let (x, y, z) = (self.step(a), self.step(b), self.step(c));
                    if !(x || y || z) {
                        break;
                    }
                },
                [a, b] => loop {
                    let (x, y) = (self.step(a), self.step(b));
                    if !(x || y) {
                        break;
                    }
                },
                [a] => while self.step(a) {},
                _ => {}
            }
        }
    }
}

/// Below this many bytes per stretch the walk is not split.
const MIN_STRETCH: usize = 1 << 20;
/// Stretches walked together by one thread.
const INTERLEAVE: usize = 4;

/// Walks `data` into packets (see the module docs) and checks sequence counts.
///
/// Large files are walked in stretches, several at a time on each thread (their header
/// reads overlap): each stretch but the first starts at the first plausible packet at
/// or after its nominal start and stops at the first packet boundary at or past the
/// next stretch's nominal start. When every stretch stops exactly where the next one
/// starts, and no stretch had to establish an APID, the result is the one of a single
/// walk from the start (the walk's state is its position only); otherwise the file is
/// walked again from the start as one stretch.
pub fn scan(data: &[u8], opts: &ScanOptions) -> PacketIndex {
    scan_with(data, opts, true)
}

/// [`scan`], as one stretch when `split` is false (the result is the same).
pub fn scan_with(data: &[u8], opts: &ScanOptions, split: bool) -> PacketIndex {
    use rayon::prelude::*;

    let mut extra = ApidSet::empty();
    let mut plausible = ApidSet::known();
    for &a in &opts.extra_apids {
        extra.insert(a);
        plausible.insert(a);
    }
    let n = data.len();
    let threads = rayon::current_num_threads().max(1);
    let stretches = if split {
        (n / MIN_STRETCH).min(threads * INTERLEAVE)
    } else {
        1
    };
    let scanner = || Scanner {
        data,
        plausible: plausible.clone(),
        base: plausible.clone(),
        extra: extra.clone(),
    };

    let mut walked: Option<Vec<Walked>> = None;
    if stretches > 1 {
        let bounds: Vec<usize> = (0..stretches)
            .map(|k| k * (n / stretches))
            .chain(std::iter::once(n))
            .collect();
        let groups = threads.min(stretches);
        let per_group = stretches.div_ceil(groups);
        let parts: Vec<(Vec<Walked>, bool)> = (0..groups)
            .into_par_iter()
            .map(|g| {
                let mut sc = scanner();
                let first = g * per_group;
                let last = ((g + 1) * per_group).min(stretches);
                let mut ws: Vec<Walked> = (first..last)
                    .map(|k| {
                        let nominal = bounds.get(k).copied().unwrap_or(n);
                        let limit = bounds.get(k + 1).copied().unwrap_or(n);
                        let start = if k == 0 { 0 } else { sc.find_next(nominal, 0) };
                        Walked::new(start, limit, (limit - nominal) / 1024 + 16)
                    })
                    .collect();
                sc.walk_interleaved(&mut ws);
                let established = sc.plausible.iter().ne(sc.base.iter());
                (ws, established)
            })
            .collect();
        let established = parts.iter().any(|(_, e)| *e);
        let ws: Vec<Walked> = parts.into_iter().flat_map(|(ws, _)| ws).collect();
        if !established
            && ws.windows(2).all(|p| p[0].end == p[1].start)
            && !checked_from_the_start(&scanner(), &ws)
        {
            walked = Some(ws);
        }
    }
    let (walked, plausible) = match walked {
        Some(w) => (w, plausible.clone()),
        None => {
            let mut sc = scanner();
            let mut w = [Walked::new(0, n, n / 1024 + 16)];
            sc.walk_interleaved(&mut w);
            (w.into_iter().collect(), sc.plausible)
        }
    };

    let (offsets, headers, mut problems) = if walked.len() == 1 {
        let w = walked.into_iter().next().unwrap_or_default();
        (w.offsets, w.headers, w.problems)
    } else {
        let total: usize = walked.iter().map(|w| w.offsets.len()).sum();
        let mut offsets = Vec::with_capacity(total);
        let mut headers = Vec::with_capacity(total);
        let mut problems = Vec::new();
        for mut w in walked {
            offsets.append(&mut w.offsets);
            headers.append(&mut w.headers);
            problems.append(&mut w.problems);
        }
        (offsets, headers, problems)
    };

    let (seq_gaps, gap_problems) = sequence_gaps(&offsets, &headers);
    if !gap_problems.is_empty() {
        problems.extend(gap_problems);
        problems.sort_by_key(|p| p.offset);
    }
    PacketIndex {
        offsets,
        headers,
        seq_gaps,
        problems,
        file_len: n as u64,
        plausible,
    }
}

/// Whether a walk from the start of the file would have overruled a packet that the
/// stretches `ws` (in file order) accepted: one whose next packet's APID had no packet yet
/// in its stretch, while the stretches before end on a packet of that APID whose sequence
/// count the next packet's does not follow ([`Scanner::overrule_in_sync`]).
fn checked_from_the_start(sc: &Scanner, ws: &[Walked]) -> bool {
    let mut last = vec![NO_SEQ; 2048];
    for w in ws {
        for &(pos, end, apid, seq) in &w.unchecked {
            let before = last.get(apid as usize).copied().unwrap_or(NO_SEQ);
            if before != NO_SEQ && seq_gap(before, seq) != 0 && sc.overruling(pos, end).is_some() {
                return true;
            }
        }
        for (l, &s) in last.iter_mut().zip(&w.last_seq) {
            if s != NO_SEQ {
                *l = s;
            }
        }
    }
    false
}

/// Packets missing between sequence counts `prev` and `seq` of one APID (14 bits, wrapping).
#[inline]
fn seq_gap(prev: u16, seq: u16) -> u16 {
    seq.wrapping_sub(prev).wrapping_sub(1) & 0x3FFF
}

/// Missing packets before each packet in its APID's sequence (modulo 16384, 0 for the
/// first packet of an APID), and one problem row per non-zero gap.
pub fn sequence_gaps(offsets: &[u64], headers: &[HeaderBytes]) -> (Vec<u16>, Vec<Problem>) {
    const NONE: usize = usize::MAX;
    // Per APID: the sequence count and row of its last packet.
    let mut last_seq = [0u16; 2048];
    let mut last_row = [NONE; 2048];
    let mut gaps = Vec::with_capacity(headers.len());
    let mut problems = Vec::new();
    for (row, h) in headers.iter().enumerate() {
        let apid = (h.apid() & 0x07FF) as usize;
        let seq = h.seq_count();
        let prev_row = last_row[apid];
        let prev = last_seq[apid];
        let gap = if prev_row == NONE {
            0
        } else {
            seq_gap(prev, seq)
        };
        if gap != 0 {
            let off = offsets.get(row).copied().unwrap_or(0);
            let prev_off = offsets.get(prev_row).copied().unwrap_or(0);
            problems.push(Problem {
                offset: off,
                event_index: -1,
                kind: ProblemKind::SequenceGap,
                detail: format!(
                    "APID {apid}: {gap} packets missing before sequence count {seq} \
                     (the previous packet of this APID, at byte {prev_off}, has sequence count {prev})"
                ),
            });
        }
        last_seq[apid] = seq;
        last_row[apid] = row;
        gaps.push(gap);
    }
    (gaps, problems)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ccsds::header::SecondaryHeader;

    pub(crate) fn packet(apid: u16, seq: u16, data_len: usize, fill: u8) -> Vec<u8> {
        let total = HEADER_LEN + data_len;
        let p = PrimaryHeader {
            version: 0,
            type_flag: 1,
            sec_hdr: true,
            apid,
            seq_flags: 3,
            seq_count: seq,
            length: (total - 7) as u16,
        };
        let s = SecondaryHeader {
            coarse_time: 1000 + seq as u32,
            fine_time: 128,
            time_id: 1,
            ..Default::default()
        };
        let mut v = p.to_bytes().to_vec();
        v.extend_from_slice(&s.to_bytes());
        v.extend(std::iter::repeat_n(fill, data_len));
        v
    }

    fn file(packets: &[Vec<u8>]) -> Vec<u8> {
        packets.concat()
    }

    #[test]
    fn clean_file() {
        let data = file(&[
            packet(976, 0, 100, 0xAA),
            packet(977, 7, 200, 0x55),
            packet(976, 1, 84, 0x11),
        ]);
        let ix = scan(&data, &ScanOptions::default());
        assert_eq!(ix.offsets, vec![0, 116, 332]);
        assert!(ix.problems.is_empty(), "{:?}", ix.problems);
        assert_eq!(ix.seq_gaps, vec![0, 0, 0]);
        assert_eq!(ix.headers[1].apid(), 977);
        assert_eq!(ix.headers[1].seq_count(), 7);
    }

    #[test]
    fn sequence_gap_across_wrap() {
        let data = file(&[
            packet(976, 16382, 100, 0),
            packet(976, 16383, 100, 0),
            packet(976, 2, 100, 0), // 0 and 1 missing
        ]);
        let ix = scan(&data, &ScanOptions::default());
        assert_eq!(ix.seq_gaps, vec![0, 0, 2]);
        assert_eq!(ix.problems.len(), 1);
        assert_eq!(ix.problems[0].kind, ProblemKind::SequenceGap);
        assert_eq!(ix.problems[0].offset, 232);
    }

    #[test]
    fn garbage_between_packets() {
        let mut data = packet(976, 0, 100, 0xAA);
        data.extend_from_slice(&[0xFF, 0x13, 0x00, 0x07, 0x99]);
        let second = data.len();
        data.extend(packet(976, 1, 100, 0xAA));
        let ix = scan(&data, &ScanOptions::default());
        assert_eq!(ix.offsets, vec![0, second as u64]);
        assert_eq!(ix.problems.len(), 1);
        assert_eq!(ix.problems[0].kind, ProblemKind::PacketGarbage);
        assert_eq!(ix.problems[0].offset, 116);
    }

    #[test]
    fn garbage_at_start() {
        let mut data = vec![0xE5u8; 37];
        data.extend(packet(976, 0, 100, 0xAA));
        data.extend(packet(976, 1, 100, 0xAA));
        let ix = scan(&data, &ScanOptions::default());
        assert_eq!(ix.offsets, vec![37, 153]);
        assert_eq!(ix.problems.len(), 1);
        assert_eq!(ix.problems[0].kind, ProblemKind::PacketGarbage);
        assert_eq!(ix.problems[0].offset, 0);
    }

    #[test]
    fn version_not_zero() {
        let mut bad = packet(976, 1, 100, 0xAA);
        bad[0] |= 0x20; // version 1
        let data = file(&[packet(976, 0, 100, 0), bad, packet(976, 2, 100, 0)]);
        let ix = scan(&data, &ScanOptions::default());
        assert_eq!(ix.offsets, vec![0, 232]);
        let kinds: Vec<_> = ix.problems.iter().map(|p| (p.kind, p.offset)).collect();
        assert_eq!(
            kinds,
            vec![
                (ProblemKind::PacketVersion, 116),
                (ProblemKind::SequenceGap, 232)
            ]
        );
    }

    #[test]
    fn truncated_last_packet() {
        let mut data = file(&[packet(976, 0, 100, 0), packet(976, 1, 100, 0)]);
        data.truncate(data.len() - 10);
        let ix = scan(&data, &ScanOptions::default());
        assert_eq!(ix.offsets, vec![0]);
        assert_eq!(ix.problems.len(), 1);
        assert_eq!(ix.problems[0].kind, ProblemKind::PacketOverrun);
        assert_eq!(ix.problems[0].offset, 116);
    }

    #[test]
    fn truncated_header() {
        let mut data = packet(976, 0, 100, 0);
        data.extend_from_slice(&[0x1B, 0xD0, 0xC0]);
        let ix = scan(&data, &ScanOptions::default());
        assert_eq!(ix.offsets, vec![0]);
        assert_eq!(ix.problems.len(), 1);
        assert_eq!(ix.problems[0].kind, ProblemKind::PacketOverrun);
        assert_eq!(ix.problems[0].offset, 116);
    }

    #[test]
    fn length_past_end_mid_file() {
        let mut bad = packet(976, 1, 100, 0);
        bad[4] = 0x0F; // length 0x0F63: 3946 + 7 bytes, past the end, within HRDL bounds
        let data = file(&[packet(976, 0, 100, 0), bad, packet(976, 2, 100, 0)]);
        let ix = scan(&data, &ScanOptions::default());
        assert_eq!(ix.offsets, vec![0, 232]);
        let kinds: Vec<_> = ix.problems.iter().map(|p| (p.kind, p.offset)).collect();
        assert_eq!(
            kinds,
            vec![
                (ProblemKind::PacketOverrun, 116),
                (ProblemKind::SequenceGap, 232)
            ]
        );
    }

    #[test]
    fn overrun_length_in_last_packet() {
        let mut bad = packet(976, 1, 100, 0);
        bad[4] = 0x0F;
        let data = file(&[packet(976, 0, 100, 0), bad]);
        let ix = scan(&data, &ScanOptions::default());
        assert_eq!(ix.offsets, vec![0]);
        assert_eq!(ix.problems.len(), 1);
        assert_eq!(ix.problems[0].kind, ProblemKind::PacketOverrun);
    }

    #[test]
    fn unknown_apids_read_in_chain() {
        let data = file(&[packet(5, 0, 3, 0), packet(6, 0, 1, 0), packet(5, 1, 3, 0)]);
        let ix = scan(&data, &ScanOptions::default());
        assert_eq!(ix.offsets.len(), 3);
        assert!(ix.problems.is_empty());
        assert!(ix.plausible.contains(5) && ix.plausible.contains(6));
    }

    #[test]
    fn random_bytes_are_not_packets() {
        // xorshift noise: nothing in it may be read as a packet.
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let noise: Vec<u8> = (0..200_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect();
        let ix = scan(&noise, &ScanOptions::default());
        assert!(
            ix.offsets.len() <= 1,
            "{} packets in noise",
            ix.offsets.len()
        );
        let mut data = packet(976, 0, 1000, 1);
        data.extend_from_slice(&noise);
        data.extend(packet(976, 1, 1000, 2));
        let ix = scan(&data, &ScanOptions::default());
        assert_eq!(ix.offsets.first(), Some(&0));
        assert_eq!(ix.offsets.last(), Some(&((1016 + noise.len()) as u64)));
        assert!(ix.offsets.len() <= 3);
    }

    /// A file of `n` science and housekeeping packets with garbage and cuts at random
    /// places, from a seed.
    /// Returns the bytes and, per packet, (offset, length, damaged).
    fn damaged_file(seed: u64, n: usize, damage: usize) -> (Vec<u8>, Vec<(usize, usize, bool)>) {
        let mut rng = crate::ccsds::packetize::SplitMix::new(seed);
        let mut data = Vec::new();
        let mut spans = Vec::new();
        for i in 0..n {
            let apid = if rng.range(0, 9) == 0 { 977 } else { 976 };
            let len = rng.range(84, 4080);
            let mut p = packet(apid, (i % 16384) as u16, len, 0);
            for b in p.iter_mut().skip(16) {
                *b = (rng.next_u64() >> 32) as u8;
            }
            let damaged = damage > 0 && rng.range(0, damage) == 0;
            if damaged {
                match rng.range(0, 3) {
                    0 => {
                        // garbage before the packet
                        let g = rng.range(1, 300);
                        data.extend((0..g).map(|_| (rng.next_u64() >> 40) as u8));
                    }
                    1 => p[0] |= 0x40, // version 2
                    2 => {
                        // cut the packet short
                        let keep = rng.range(1, p.len() - 1);
                        p.truncate(keep);
                    }
                    _ => p[5] ^= 0x10, // wrong length
                }
            }
            spans.push((data.len(), p.len(), damaged));
            data.extend(p);
        }
        (data, spans)
    }

    /// Holes between accepted packets each begin with a problem row.
    fn assert_covered(ix: &PacketIndex, n: usize) {
        let mut pos = 0u64;
        let starts: std::collections::HashSet<u64> = ix
            .problems
            .iter()
            .filter(|p| p.kind != ProblemKind::SequenceGap)
            .map(|p| p.offset)
            .collect();
        for (o, h) in ix.offsets.iter().zip(&ix.headers) {
            assert!(*o >= pos, "packets overlap at {o}");
            if *o > pos {
                assert!(
                    starts.contains(&pos),
                    "bytes {pos}..{o} dropped without a row"
                );
            }
            pos = o + h.total_len() as u64;
        }
        assert!(pos <= n as u64);
        if pos < n as u64 {
            assert!(
                starts.contains(&pos),
                "bytes {pos}..{n} dropped without a row"
            );
        }
    }

    /// The bytes of a primary header of APID 980 without a secondary header whose packet
    /// is `total` bytes: a fake header to plant inside damaged bytes.
    fn fake_header(total: usize) -> [u8; PRIMARY_LEN] {
        PrimaryHeader {
            version: 0,
            type_flag: 1,
            sec_hdr: false,
            apid: 980,
            seq_flags: 3,
            seq_count: 9,
            length: (total - 7) as u16,
        }
        .to_bytes()
    }

    /// Plants a fake header at `at` whose length lands exactly on `target`.
    fn plant(data: &mut [u8], at: usize, target: usize) {
        data[at..at + PRIMARY_LEN].copy_from_slice(&fake_header(target - at));
    }

    fn rows(ix: &PacketIndex) -> Vec<(ProblemKind, u64)> {
        ix.problems.iter().map(|p| (p.kind, p.offset)).collect()
    }

    #[test]
    fn fake_header_in_a_damaged_packet_swallows_no_good_packet() {
        // A version-damaged packet holds, near its end, bytes that read as a header of
        // APID 980 whose length lands exactly on a later good packet (D): the good
        // packets B and C between are read, the damaged one is the one row.
        let mut bad = packet(976, 1, 300, 0x11);
        bad[0] |= 0x40; // version 2
        let parts = [
            packet(976, 0, 100, 0),
            bad,
            packet(976, 2, 100, 0x22), // B
            packet(977, 0, 200, 0x33), // C
            packet(976, 3, 150, 0x44), // D
            packet(976, 4, 90, 0x55),
        ];
        let starts: Vec<usize> = parts
            .iter()
            .scan(0, |o, p| {
                let s = *o;
                *o += p.len();
                Some(s)
            })
            .collect();
        let mut data = file(&parts);
        let fake = starts[1] + 250;
        plant(&mut data, fake, starts[4]);
        let ix = scan(&data, &ScanOptions::default());
        let want: Vec<u64> = [0, 2, 3, 4, 5].iter().map(|&k| starts[k] as u64).collect();
        assert_eq!(ix.offsets, want);
        assert_eq!(ix.headers[1].apid(), 976);
        assert_eq!(ix.headers[2].apid(), 977);
        assert_eq!(
            rows(&ix),
            vec![
                (ProblemKind::PacketVersion, starts[1] as u64),
                (ProblemKind::SequenceGap, starts[2] as u64)
            ]
        );
        assert!(
            ix.problems[0]
                .detail
                .contains(&format!("next plausible packet at byte {}", starts[2])),
            "{}",
            ix.problems[0].detail
        );
        assert_covered(&ix, data.len());
        // The same walk in stretches (the fake at a stretch's start).
        assert_eq!(
            scan_with(&data, &ScanOptions::default(), false).offsets,
            want
        );
    }

    #[test]
    fn fake_header_in_junk_or_after_a_good_packet_swallows_nothing() {
        // In junk before the good packets.
        let mut data = packet(976, 0, 100, 0);
        let junk = data.len();
        data.extend_from_slice(&[0xEE; 40]);
        let b = data.len();
        data.extend(packet(976, 1, 120, 1));
        let c = data.len();
        data.extend(packet(976, 2, 130, 2));
        let d = data.len();
        data.extend(packet(977, 5, 140, 3));
        plant(&mut data, junk + 10, d);
        let ix = scan(&data, &ScanOptions::default());
        assert_eq!(ix.offsets, vec![0, b as u64, c as u64, d as u64]);
        assert_eq!(rows(&ix), vec![(ProblemKind::PacketGarbage, junk as u64)]);
        assert_covered(&ix, data.len());

        // Inside a good packet that bad bytes follow: the packet is kept too (the fake
        // starting inside it no longer makes its length look damaged).
        let mut data = packet(976, 0, 300, 0);
        let junk = data.len();
        data.extend_from_slice(&[0xEE; 21]);
        let b = data.len();
        data.extend(packet(976, 1, 120, 1));
        let c = data.len();
        data.extend(packet(976, 2, 130, 2));
        let d = data.len();
        data.extend(packet(976, 3, 140, 3));
        plant(&mut data, 200, d);
        let ix = scan(&data, &ScanOptions::default());
        assert_eq!(ix.offsets, vec![0, b as u64, c as u64, d as u64]);
        assert_eq!(rows(&ix), vec![(ProblemKind::PacketGarbage, junk as u64)]);
        assert_covered(&ix, data.len());
    }

    #[test]
    fn a_rival_of_one_packet_does_not_overrule() {
        // After junk, a good packet whose body holds a header landing exactly on its end
        // (one packet against one): the earlier, the good packet, wins.
        let mut data = vec![0xEEu8; 30];
        let q = data.len();
        data.extend(packet(976, 0, 400, 0x5A));
        let d = data.len();
        data.extend(packet(976, 1, 100, 0));
        plant(&mut data, q + 100, d);
        let ix = scan(&data, &ScanOptions::default());
        assert_eq!(ix.offsets, vec![q as u64, d as u64]);
        assert_eq!(rows(&ix), vec![(ProblemKind::PacketGarbage, 0)]);
    }

    #[test]
    fn a_cut_packet_read_in_sync_does_not_swallow_the_chain_it_lands_on() {
        // Packet 1 is cut short; its length lands exactly on packet 4, and the sequence
        // count of APID 976 jumps there: packets 2 and 3 chain onto that end and overrule
        // it. With packet 1 of APID 977, the jump is seen against packet 0.
        for apid in [976u16, 977] {
            let cut = packet(apid, 1, 1000, 0x11);
            let b = packet(976, 2, 300, 0x22);
            let c = packet(976, 3, 200, 0x33);
            let mut cut = cut;
            let keep = 400;
            let total = keep + b.len() + c.len();
            cut[4..6].copy_from_slice(&((total - 7) as u16).to_be_bytes());
            cut.truncate(keep);
            let parts = [packet(976, 0, 100, 0), cut, b, c, packet(976, 4, 90, 0x44)];
            let starts: Vec<u64> = parts
                .iter()
                .scan(0u64, |o, p| {
                    let s = *o;
                    *o += p.len() as u64;
                    Some(s)
                })
                .collect();
            let data = file(&parts);
            for split in [false, true] {
                let ix = scan_with(&data, &ScanOptions::default(), split);
                let want = vec![starts[0], starts[2], starts[3], starts[4]];
                assert_eq!(ix.offsets, want, "APID {apid}");
                let bad: Vec<_> = rows(&ix)
                    .into_iter()
                    .filter(|r| r.0 != ProblemKind::SequenceGap)
                    .collect();
                assert_eq!(bad, vec![(ProblemKind::PacketGarbage, starts[1])]);
                assert!(ix.problems[0]
                    .detail
                    .contains(&format!("at byte {}", starts[2])));
                assert_covered(&ix, data.len());
            }
        }
    }

    #[test]
    fn a_sequence_jump_across_a_stretch_start_is_checked() {
        // Packet T of APID 977 is cut short, its length landing on packet X of APID 976
        // over two packets of 976 that chain onto it. A walk from the start knows the
        // last packet of 976 before T (a jump at X: T is overruled); the stretch holding
        // T starts in the run of 977 before it and knows none: the file is walked again.
        let mut parts = Vec::new();
        let mut len = 0;
        let mut seq976 = 0u16;
        while len < 1_100_000 {
            parts.push(packet(976, seq976, 1000, 0));
            seq976 += 1;
            len += 1016;
        }
        let run = len;
        for k in 0..50 {
            parts.push(packet(977, k, 1000, 0));
        }
        let b = packet(976, seq976, 300, 0x22);
        let c = packet(976, seq976 + 1, 200, 0x33);
        let mut cut = packet(977, 50, 1000, 0x11);
        cut[4..6].copy_from_slice(&((400 + b.len() + c.len() - 7) as u16).to_be_bytes());
        cut.truncate(400);
        let t = run + 50 * 1016;
        parts.extend([cut, b, c]);
        let mut seq = seq976 + 2;
        let target = 4 * (run + 20_000);
        while parts.iter().map(Vec::len).sum::<usize>() < target {
            parts.push(packet(976, seq, 1000, 0));
            seq += 1;
        }
        let data = file(&parts);
        assert!((run..t).contains(&(data.len() / 4)));
        assert_eq!(data.len() / MIN_STRETCH, 4);
        let one = scan_with(&data, &ScanOptions::default(), false);
        let split = scan_with(&data, &ScanOptions::default(), true);
        assert!(!one.offsets.contains(&(t as u64)));
        assert!(one.offsets.contains(&((t + 400) as u64)));
        assert!(
            one.offsets == split.offsets,
            "the walk in stretches differs"
        );
        assert_eq!(one.problems, split.problems);
        assert_eq!(
            rows(&one)[0],
            (ProblemKind::PacketGarbage, t as u64),
            "{:?}",
            one.problems
        );
    }

    #[test]
    fn parallel_walk_equals_serial_walk() {
        for (seed, damage) in [(1u64, 0usize), (2, 40), (3, 7)] {
            let (data, _) = damaged_file(seed, 4_000, damage);
            assert!(data.len() > 4 * MIN_STRETCH);
            let a = scan_with(&data, &ScanOptions::default(), false);
            let b = scan_with(&data, &ScanOptions::default(), true);
            assert_eq!(a.offsets, b.offsets);
            assert_eq!(a.headers, b.headers);
            assert_eq!(a.seq_gaps, b.seq_gaps);
            assert_eq!(a.problems, b.problems);
            assert_covered(&a, data.len());
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig {
            cases: 256,
            failure_persistence: None,
            ..Default::default()
        })]
        /// A header inside damage (a version-damaged packet or junk) whose length lands
        /// exactly on a later good packet loses none of the good packets it spans.
        #[test]
        fn fake_header_spanning_good_packets_loses_none(
            seed in 0u64..1_000_000,
            spanned in 2usize..6,
            junk in proptest::bool::ANY,
        ) {
            let mut rng = crate::ccsds::packetize::SplitMix::new(seed);
            let mut data = packet(976, 0, rng.range(84, 2000), 1);
            let damage = data.len();
            // The damage's random bytes hold no version-0 header (bit 5 set): the one fake
            // header of the shape under test is the planted one (random headers chained in
            // the damage, landing on the chain, are the limitation of the module docs).
            if junk {
                data.extend((0..rng.range(20, 400)).map(|_| (rng.next_u64() >> 40) as u8 | 0x20));
            } else {
                let mut bad = packet(977, 0, rng.range(84, 2000), 0);
                for b in bad.iter_mut().skip(16) {
                    *b = (rng.next_u64() >> 32) as u8 | 0x20;
                }
                bad[0] |= (rng.range(1, 7) as u8) << 5;
                data.extend(bad);
            }
            let mut good = Vec::new();
            for k in 0..spanned + 2 {
                good.push(data.len());
                let mut p = packet(976, 1 + k as u16, rng.range(84, 600), 0);
                for b in p.iter_mut().skip(16) {
                    *b = (rng.next_u64() >> 32) as u8;
                }
                data.extend(p);
            }
            // The fake: at least 6 bytes before the first good packet, its length landing
            // on the good packet after the spanned ones, within the HRDL bounds.
            let target = good[spanned];
            let lo = target.saturating_sub(4096).max(damage + 1);
            let hi = (good[0] - PRIMARY_LEN).min(target - 100);
            proptest::prop_assume!(lo <= hi);
            let at = rng.range(lo, hi);
            plant(&mut data, at, target);
            // Packet 0's length field and secondary header can read as a header at byte 4
            // (and its fill as headers further on): one whose length lands on a header of
            // the chain reads as the damaged length of packet 0, read in sync (the module
            // docs' limitation), drawn about once in 10^4 cases: not the shape under test.
            let landings: Vec<usize> = good.iter().copied().chain([at, data.len()]).collect();
            let second = (1..good[0] - PRIMARY_LEN).filter(|&p| p != at).any(|p| {
                data[p] >> 5 == 0
                    && PrimaryHeader::from_slice(&data[p..p + PRIMARY_LEN])
                        .is_some_and(|h| landings.contains(&(p + h.total_len())))
            });
            proptest::prop_assume!(!second);
            let ix = scan(&data, &ScanOptions::default());
            let found: Vec<usize> = ix.offsets.iter().map(|&o| o as usize).collect();
            let mut want = vec![0];
            want.extend(&good);
            proptest::prop_assert_eq!(found, want);
            let bad_rows: Vec<_> = rows(&ix).into_iter().filter(|r| r.0 != ProblemKind::SequenceGap).collect();
            proptest::prop_assert_eq!(bad_rows.len(), 1);
            proptest::prop_assert_eq!(bad_rows[0].1, damage as u64);
            assert_covered(&ix, data.len());
        }
    }

    /// The claims of `damage_is_reported_and_clean_packets_are_found` for one file of
    /// [`damaged_file`]: every byte is a packet or in a problem row; every packet found
    /// starts where one was written, and is that packet whole unless its header was
    /// damaged (a damaged length field cannot be told from a packet followed by bad
    /// bytes, which are then reported), or else starts inside damage or inside a packet
    /// next to damage (a header there whose length lands on a valid header is told from
    /// a packet by no checksum: the module docs' limitation); and every packet whose
    /// neighbours are undamaged is found.
    fn damage_claims(seed: u64, damage: usize) -> Result<(), String> {
        let (data, spans) = damaged_file(seed, 60, damage);
        let ix = scan(&data, &ScanOptions::default());
        assert_covered(&ix, data.len());
        let written: std::collections::HashMap<usize, (usize, bool)> =
            spans.iter().map(|&(o, l, d)| (o, (l, d))).collect();
        let near_damage = |k: usize| {
            spans[k].2 || (k > 0 && spans[k - 1].2) || spans.get(k + 1).is_some_and(|s| s.2)
        };
        for (&o, h) in ix.offsets.iter().zip(&ix.headers) {
            let o = o as usize;
            match written.get(&o) {
                Some(&(len, damaged)) if !damaged && len != h.total_len() => {
                    return Err(format!("packet at {o} has the wrong length"));
                }
                Some(_) => {}
                None => {
                    // The span whose bytes hold `o` (garbage written before a span is
                    // that span's damage).
                    let k = spans.partition_point(|s| s.0 <= o);
                    let holder = match k.checked_sub(1) {
                        Some(j) if o < spans[j].0 + spans[j].1 => j,
                        _ => k,
                    };
                    if holder >= spans.len() || !near_damage(holder) {
                        return Err(format!("packet at {o} not written"));
                    }
                }
            }
        }
        let found: std::collections::HashSet<u64> = ix.offsets.iter().copied().collect();
        for k in 1..spans.len().saturating_sub(1) {
            let (o, _, d) = spans[k];
            if !d && !spans[k - 1].2 && !spans[k + 1].2 && !found.contains(&(o as u64)) {
                return Err(format!("packet at {o} lost"));
            }
        }
        Ok(())
    }

    #[test]
    fn resynchronisation_regressions() {
        // Draws of `damage_is_reported_and_clean_packets_are_found` that lost good packets
        // before the rules of the module docs' "Which candidate wins", and the packets
        // then lost.
        for (seed, damage, lost) in [
            // A cut packet read in sync whose length lands exactly on a later packet of
            // the same APID (the sequence count jumps): the two packets it spans chain
            // onto its end and overrule it.
            (346_461u64, 9usize, &[48_685usize, 49_626][..]),
            (697, 5, &[41_240, 41_534]),
            (3938, 6, &[77_467, 77_591, 79_146]),
            // The same, landing on a packet of another APID whose sequence count does not
            // follow the last packet of that APID.
            (331_414, 5, &[50_981, 52_324]),
            (454_008, 3, &[85_137, 85_460]),
            (536_509, 10, &[115_010, 116_043]),
            // A header inside a packet that lands on its end, where the chain breaks:
            // a tie, which the earlier, the packet, wins.
            (756, 4, &[21_523]),
            (1493, 8, &[79_200]),
            // A header inside a packet that bad bytes follow, whose length lands on the
            // end of a packet after them: that packet and the one it cuts into read two.
            (1847, 2, &[113_939]),
            (2115, 10, &[45_877]),
            // A header inside a packet that a chain runs through, landing on a random valid
            // header inside damage: its chain runs no further than the packet's.
            (252_098, 9, &[36_860, 39_019]),
        ] {
            let (data, spans) = damaged_file(seed, 60, damage);
            let ix = scan(&data, &ScanOptions::default());
            for &o in lost {
                let k = spans.iter().position(|s| s.0 == o);
                assert!(
                    k.is_some_and(|k| !spans[k].2),
                    "{seed}: no good packet at {o}"
                );
                assert!(
                    ix.offsets.contains(&(o as u64)),
                    "seed {seed}, damage {damage}: packet at {o} lost"
                );
            }
            if let Err(e) = damage_claims(seed, damage) {
                panic!("seed {seed}, damage {damage}: {e}");
            }
        }
        // The first: the cut packet at 48144 is the one row of its bytes.
        let (data, _) = damaged_file(346_461, 60, 9);
        let ix = scan(&data, &ScanOptions::default());
        let near: Vec<_> = rows(&ix)
            .into_iter()
            .filter(|r| (48_000..50_000).contains(&r.1) && r.0 != ProblemKind::SequenceGap)
            .collect();
        assert_eq!(near, vec![(ProblemKind::PacketGarbage, 48_144)]);
    }

    proptest::proptest! {
        // A fixed seed keeps the run reproducible; PROPTEST_RNG_SEED overrides it (CI sets
        // 20261201). What no walk without checksums can do (module docs) is kept out of
        // the claims (`damage_claims`): a header inside damage or inside a packet next to
        // damage whose length lands on a valid header reads as a packet, and a packet
        // between two damaged ones is lost. 5 of seeds 1..=1500 still fail here (256
        // cases each; 46 before the rules of the module docs' "Which candidate wins"
        // were extended, 164 with the claims of then), each a shape the module docs name:
        // 3 a cut packet read in sync whose length lands on the end of the file or on the
        // first packet of its APID, 2 a header inside a good packet landing past the next
        // one, which bad bytes follow, on the packet after them.
        #![proptest_config(proptest::prelude::ProptestConfig {
            cases: 256,
            rng_seed: proptest::test_runner::RngSeed::Fixed(0xA5_02),
            failure_persistence: None,
            ..Default::default()
        })]
        #[test]
        fn damage_is_reported_and_clean_packets_are_found(seed in 0u64..1_000_000, damage in 2usize..12) {
            let claims = damage_claims(seed, damage);
            proptest::prop_assert!(claims.is_ok(), "{:?}", claims);
        }
    }
}
