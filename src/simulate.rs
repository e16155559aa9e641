//! The synthetic-run writer: AMS block files that follow FORMAT.md, for tests, benchmarks
//! and demonstrations. Deterministic for a seed; writes about 2 KB per event.
//!
//! A run is a sequence of science events with, between them, other blocks: housekeeping
//! replies with `TYPE_EXT`, requests without `TIME`, and now and then a long (`L = 1`)
//! block. The events are in the **flight layout** by default (FORMAT.md 9: JMDC header
//! 0x10..0x13 with level-3 and GPS records, Unix times, JINF slave masks, CDP set on the
//! xDRs, UDR slaves on the A and B sides) or in the 2007 layout (`layout`: JMDC header of
//! TYPE 5 with GPS in some events, a Level-3 sub-block in some). Each event holds one or
//! two group sub-blocks with correct CRCs. The first group comes from a JINJ whose slaves
//! follow the port table of FORMAT.md 4.2: tracker JINF-Ts (with TDRs), the two JINF-Us
//! with six UDR2 each (compressed, and a few per cent raw or mixed), SDRs, a JINF-R, a
//! JINF-E and a JLV1; the second from a JLV1 node (a leaf).
//!
//! In the flight layout the blocks between events are those of FORMAT.md 10 besides the
//! older mix: calibration bursts (TYPE 6 containers numbered `sequence << 16 | total`),
//! configuration (7) and housekeeping (8) containers, TYPE-5 blocks that fail the event
//! test, stand-alone calibration replies (0x13, 0x14), CCEB (0x1B) and TOF slow-control
//! (0x18, 0x19) blocks; and `envelope_fraction` of the events and of these blocks are
//! wrapped in envelopes (0x1F0380) and fine-time envelopes (0x1F0383, whose microseconds
//! are the event's fine time), nested two deep now and then. [`SimSummary`] counts every
//! kind, by the table of FORMAT.md 10 ([`BlockKind`]). The 2007 layout writes the same
//! bytes as before these blocks existed.

use std::io::{self, Write};

use crate::crc;
use crate::jmdc::Layout;
use crate::trd::{STATUS_CDP, STATUS_COMPRESSED, STATUS_RAW, UDR_CHANNELS};
use crate::words::ByteOrder;

/// What to simulate.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Number of science events.
    pub n_events: u64,
    /// Random seed: the same seed writes the same bytes.
    pub seed: u64,
    /// Byte order of the words on disk.
    pub byte_order: ByteOrder,
    /// Run number: in the flight layout the run ID (Unix seconds of the run's start; after
    /// 2011-06-02 the groups use the B606 Huffman table), in the 2007 layout JMDC words 0-1.
    pub run: u32,
    /// Active JMDC node (0..3).
    pub jmdc_node: u16,
    /// Fraction of events with GPS data in the JMDC sub-block.
    pub gps_fraction: f64,
    /// Fraction of events with a Level-3 sub-block.
    pub level3_fraction: f64,
    /// Fraction of events with a second group sub-block.
    pub second_group_fraction: f64,
    /// Fraction of UDR read-outs in raw mode.
    pub raw_fraction: f64,
    /// Fraction of UDR read-outs in mixed mode.
    pub mixed_fraction: f64,
    /// Mean number of compressed hits per UDR read-out.
    pub hits_per_udr: f64,
    /// Mean number of events between two non-event blocks (0: none).
    pub other_block_every: u64,
    /// The events' layout: [`Layout::Flight`] (the default) or [`Layout::Seed2007`].
    pub layout: Layout,
    /// Fraction of flight-layout groups written Huffman-coded (TYPE 4), as on board.
    pub compressed: f64,
    /// Flight layout only: fraction of the events, and of the slots of blocks between
    /// events, written inside an envelope (0x1F0380) or a fine-time envelope (0x1F0383).
    pub envelope_fraction: f64,
}

impl SimConfig {
    /// The flight layout's run type word (a fixed value of this simulator).
    fn run_type(&self) -> u16 {
        0x0A03
    }
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            n_events: 1000,
            seed: 0,
            byte_order: ByteOrder::Little,
            run: 1_400_000_000,
            jmdc_node: 1,
            gps_fraction: 0.3,
            level3_fraction: 0.2,
            second_group_fraction: 0.1,
            raw_fraction: 0.01,
            mixed_fraction: 0.01,
            hits_per_udr: 3.0,
            other_block_every: 20,
            layout: Layout::Flight,
            compressed: 1.0,
            envelope_fraction: 0.05,
        }
    }
}

/// What a simulation wrote. The per-kind counts ([`BlockKind`]) count blocks at every
/// depth, top level and inside envelopes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SimSummary {
    /// Science events (those inside envelopes included).
    pub n_events: u64,
    /// Top-level blocks (events included): the rows of `blocks()`.
    pub n_blocks: u64,
    /// Blocks inside envelopes, at any depth: `blocks(nested=True)` has
    /// `n_blocks + n_nested_blocks` rows.
    pub n_nested_blocks: u64,
    /// Science events inside envelopes.
    pub n_events_in_envelopes: u64,
    /// Envelopes (0x1F0380).
    pub n_envelopes: u64,
    /// Fine-time envelopes (0x1F0383).
    pub n_fine_time_envelopes: u64,
    /// Calibration containers (TYPE 6 replies from a JMDC node).
    pub n_calibration: u64,
    /// Configuration containers (TYPE 7 replies from a JMDC node).
    pub n_configuration: u64,
    /// Housekeeping containers (TYPE 8 replies from a JMDC node).
    pub n_housekeeping: u64,
    /// TYPE-5 blocks that fail the event test.
    pub n_not_event: u64,
    /// Stand-alone calibration replies (TYPE 0x13, 0x14).
    pub n_calibration_replies: u64,
    /// CCEB housekeeping (TYPE 0x1B from nodes 24..31).
    pub n_cceb: u64,
    /// TOF slow control (TYPE 0x18, 0x19 from nodes 40..47).
    pub n_tof_slow_control: u64,
    /// Every other block (TYPE_EXT replies, requests, long blocks).
    pub n_other_blocks: u64,
    /// Bytes written.
    pub bytes: u64,
    /// Compressed TRD hits.
    pub n_trd_hits: u64,
    /// Raw or mixed UDR read-outs.
    pub n_trd_raw: u64,
}

/// SplitMix64: small, fast and stable across versions (the output must not change).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            ((self.next() >> 32) * n) >> 32
        }
    }
    fn chance(&mut self, p: f64) -> bool {
        ((self.next() >> 11) as f64) < p * (1u64 << 53) as f64
    }
    /// Poisson-distributed count (Knuth), for small means.
    fn poisson(&mut self, mean: f64) -> u64 {
        let l = (-mean).exp();
        let mut k = 0;
        let mut p = 1.0;
        loop {
            p *= (self.next() >> 11) as f64 / (1u64 << 53) as f64;
            if p <= l || k > 1000 {
                return k;
            }
            k += 1;
        }
    }
}

/// Starts a fragment: a length word to fill in later.
fn frag_begin(buf: &mut Vec<u16>) -> usize {
    buf.push(0);
    buf.len() - 1
}

/// Ends a fragment with its node status word and fills in its length.
fn frag_end(buf: &mut Vec<u16>, start: usize, status: u16) {
    buf.push(status);
    buf[start] = (buf.len() - start - 1) as u16;
}

/// Node status of a replying node (DATA set) with its slave ID.
fn status(port: u8, extra: u16) -> u16 {
    0x8000 | extra | u16::from(port & 0x1F)
}

/// The kinds of blocks of FORMAT.md 10 (and science events), by their headers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockKind {
    /// A science event (FORMAT.md 4).
    Event,
    /// An envelope, 0x1F0380.
    Envelope,
    /// A fine-time envelope, 0x1F0383.
    FineTimeEnvelope,
    /// A calibration container: TYPE 6, a reply from a JMDC node.
    Calibration,
    /// A configuration container: TYPE 7, a reply from a JMDC node.
    Configuration,
    /// A housekeeping container: TYPE 8, a reply from a JMDC node.
    Housekeeping,
    /// TYPE 5 failing the event test.
    NotEvent,
    /// A stand-alone calibration reply: TYPE 0x13 or 0x14.
    CalibrationReply,
    /// CCEB housekeeping: TYPE 0x1B from nodes 24..31.
    Cceb,
    /// TOF slow control: TYPE 0x18 or 0x19 from nodes 40..47.
    TofSlowControl,
    /// Anything else.
    Other,
}

/// A top-level block's header fields, as the simulator writes them.
#[derive(Clone, Copy, Debug)]
struct Head {
    rr: bool,
    rw: bool,
    node: u16,
    type_: u8,
    type_ext: Option<u16>,
    status: u8,
    tag: u16,
    time: u32,
}

impl Head {
    /// A reply (RR = 1, RW = 0, STATUS 0).
    fn reply(node: u16, type_: u8, type_ext: Option<u16>, tag: u16, time: u32) -> Head {
        Head {
            rr: true,
            rw: false,
            node,
            type_,
            type_ext,
            status: 0,
            tag,
            time,
        }
    }

    /// The kind of block by the table of FORMAT.md 10.
    fn kind(&self) -> BlockKind {
        let jmdc = self.node <= 15;
        match (self.type_, self.type_ext) {
            (0x1F, Some(0x0380)) => BlockKind::Envelope,
            (0x1F, Some(0x0383)) => BlockKind::FineTimeEnvelope,
            (5, _) if self.rr && !self.rw && jmdc && self.status == 0 => BlockKind::Event,
            (5, _) => BlockKind::NotEvent,
            (6, _) if self.rr && jmdc => BlockKind::Calibration,
            (7, _) if self.rr && jmdc => BlockKind::Configuration,
            (8, _) if self.rr && jmdc => BlockKind::Housekeeping,
            (0x13 | 0x14, _) if self.rr => BlockKind::CalibrationReply,
            (0x1B, _) if (24..=31).contains(&self.node) => BlockKind::Cceb,
            (0x18 | 0x19, _) if (40..=47).contains(&self.node) => BlockKind::TofSlowControl,
            _ => BlockKind::Other,
        }
    }
}

/// A block to write: its header, data words, odd SIZE, forced `L = 1`.
struct Spec {
    head: Head,
    data: Vec<u16>,
    odd_byte: bool,
    force_long: bool,
}

impl Spec {
    fn new(head: Head, data: Vec<u16>) -> Spec {
        Spec {
            head,
            data,
            odd_byte: false,
            force_long: false,
        }
    }
}

/// The words of a block: size word(s), ID, TYPE_EXT, secondary header, TIME, data.
fn block_words(h: &Head, data: &[u16], odd_byte: bool, force_long: bool) -> Vec<u16> {
    let mut header: Vec<u16> = Vec::with_capacity(8);
    header.push(
        (u16::from(h.rr) << 15)
            | (u16::from(h.rw) << 14)
            | ((h.node & 0x1FF) << 5)
            | u16::from(h.type_ & 0x1F),
    );
    if let Some(x) = h.type_ext {
        header.push(x);
    }
    header.push((u16::from(h.status & 0xF) << 12) | (h.tag & 0x0FFF));
    if h.rr {
        header.push((h.time >> 16) as u16);
        header.push(h.time as u16);
    }
    let size = 2 * (header.len() + data.len()) - usize::from(odd_byte);
    let mut out = Vec::with_capacity(header.len() + data.len() + 2);
    if size > 0x7FFF || force_long {
        out.push(0x8000 | ((size >> 16) as u16 & 0x7FFF));
        out.push(size as u16);
    } else {
        out.push(size as u16);
    }
    out.extend_from_slice(&header);
    out.extend_from_slice(data);
    out
}

struct Writer<'a, W: Write> {
    out: &'a mut W,
    order: ByteOrder,
    bytes: Vec<u8>,
    summary: SimSummary,
}

impl<W: Write> Writer<'_, W> {
    /// The words of a block at `depth` (0: top level), counted by its kind.
    fn build(&mut self, spec: &Spec, depth: u8) -> Vec<u16> {
        let s = &mut self.summary;
        let kind = spec.head.kind();
        match kind {
            BlockKind::Event => s.n_events += 1,
            BlockKind::Envelope => s.n_envelopes += 1,
            BlockKind::FineTimeEnvelope => s.n_fine_time_envelopes += 1,
            BlockKind::Calibration => s.n_calibration += 1,
            BlockKind::Configuration => s.n_configuration += 1,
            BlockKind::Housekeeping => s.n_housekeeping += 1,
            BlockKind::NotEvent => s.n_not_event += 1,
            BlockKind::CalibrationReply => s.n_calibration_replies += 1,
            BlockKind::Cceb => s.n_cceb += 1,
            BlockKind::TofSlowControl => s.n_tof_slow_control += 1,
            BlockKind::Other => s.n_other_blocks += 1,
        }
        if depth > 0 {
            s.n_nested_blocks += 1;
            if kind == BlockKind::Event {
                s.n_events_in_envelopes += 1;
            }
        }
        block_words(&spec.head, &spec.data, spec.odd_byte, spec.force_long)
    }

    /// Writes the words of a top-level block.
    fn put(&mut self, words: &[u16]) -> io::Result<()> {
        self.bytes.clear();
        self.bytes.reserve(2 * words.len());
        for &w in words {
            match self.order {
                ByteOrder::Little => self.bytes.extend_from_slice(&w.to_le_bytes()),
                ByteOrder::Big => self.bytes.extend_from_slice(&w.to_be_bytes()),
            }
        }
        self.out.write_all(&self.bytes)?;
        self.summary.bytes += self.bytes.len() as u64;
        self.summary.n_blocks += 1;
        Ok(())
    }

    /// Writes a top-level block.
    fn write(&mut self, spec: &Spec) -> io::Result<()> {
        let words = self.build(spec, 0);
        self.put(&words)
    }

    /// Writes `blocks` (specs) between events, `wrap` deciding how: at top level, in one
    /// envelope, or (a single block) in a fine-time envelope with microseconds `us`.
    fn write_wrapped(&mut self, blocks: &[Spec], wrap: Wrap, env: Head, us: u32) -> io::Result<()> {
        match wrap {
            Wrap::None => blocks.iter().try_for_each(|b| self.write(b)),
            Wrap::Envelope => {
                let mut inner = Vec::new();
                for b in blocks {
                    inner.extend(self.build(b, 1));
                }
                let e = self.build(&Spec::new(envelope_head(env), inner), 0);
                self.put(&e)
            }
            Wrap::FineTime | Wrap::EnvelopeFineTime => {
                let nested = wrap == Wrap::EnvelopeFineTime;
                let depth = 1 + u8::from(nested);
                let mut inner = vec![(us >> 16) as u16, us as u16];
                for b in blocks {
                    inner.extend(self.build(b, depth));
                }
                let ft = Spec::new(fine_time_head(env), inner);
                if nested {
                    let ft = self.build(&ft, 1);
                    let e = self.build(&Spec::new(envelope_head(env), ft), 0);
                    self.put(&e)
                } else {
                    self.write(&ft)
                }
            }
        }
    }
}

/// How a block (or a slot of blocks) is wrapped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Wrap {
    /// Not wrapped: top-level blocks.
    None,
    /// In one envelope 0x1F0380.
    Envelope,
    /// In a fine-time envelope 0x1F0383 (one block).
    FineTime,
    /// In a fine-time envelope inside an envelope (depth 2).
    EnvelopeFineTime,
}

/// The header of an envelope around blocks whose time and tag are those of `h`: from the
/// JMDC (`h.node` when it is one, else JMDC 0).
fn envelope_head(h: Head) -> Head {
    let node = if h.node <= 15 { h.node } else { 0 };
    Head::reply(node, 0x1F, Some(0x0380), h.tag, h.time)
}

/// The header of a fine-time envelope: node 20, as the real files of FORMAT.md 11.1.
fn fine_time_head(h: Head) -> Head {
    Head::reply(20, 0x1F, Some(0x0383), h.tag, h.time)
}

/// Appends a sub-block (no secondary header) to `buf`.
fn sub_block(buf: &mut Vec<u16>, node: u16, type_: u8, data: &[u16]) {
    let size = 2 * (1 + data.len());
    if size > 0x7FFF {
        buf.push(0x8000 | ((size >> 16) as u16 & 0x7FFF));
    }
    buf.push(size as u16);
    buf.push(0x8000 | ((node & 0x1FF) << 5) | u16::from(type_ & 0x1F));
    buf.extend_from_slice(data);
}

struct EventBuilder<'c> {
    cfg: &'c SimConfig,
    rng: Rng,
    hits: u64,
    raw: u64,
}

impl EventBuilder<'_> {
    fn random_words(&mut self, buf: &mut Vec<u16>, n: usize) {
        buf.reserve(n);
        let mut k = 0;
        while k < n {
            let r = self.rng.next();
            for s in 0..4 {
                if k == n {
                    break;
                }
                // Detector-like data: small values mostly, full range sometimes.
                let w = (r >> (16 * s)) as u16;
                buf.push(if w & 0x8000 != 0 { w & 0x0FFF } else { w });
                k += 1;
            }
        }
    }

    /// One UDR2 fragment in a JINF-U.
    fn udr(&mut self, buf: &mut Vec<u16>, udr: u8, crate_: u8) {
        let flight = self.flight();
        let start = frag_begin(buf);
        let roll = (self.rng.next() >> 11) as f64 / (1u64 << 53) as f64;
        let (raw, compressed) = if roll < self.cfg.raw_fraction {
            (true, false)
        } else if roll < self.cfg.raw_fraction + self.cfg.mixed_fraction {
            (true, true)
        } else {
            (false, true)
        };
        if raw {
            self.raw += 1;
            for _ in 0..UDR_CHANNELS {
                buf.push(380 + (self.rng.below(40) as u16));
            }
        }
        if compressed {
            let n = self.rng.poisson(self.cfg.hits_per_udr).min(64) as usize;
            // Distinct channels, uniform over the connected links, in increasing order.
            let links: u64 = if (crate_ == 1 && udr == 1) || (crate_ == 0 && udr == 4) {
                6
            } else {
                7
            };
            let mut channels: Vec<u16> =
                (0..n).map(|_| self.rng.below(links * 64) as u16).collect();
            channels.sort_unstable();
            channels.dedup();
            for channel in channels {
                // Landau-like energy deposit: a peak near 40 ADC counts and a long tail,
                // pedestal-subtracted and scaled by 8 (three extra bits).
                let u = ((self.rng.next() >> 11) as f64 + 1.0) / (1u64 << 53) as f64;
                let adc = (25.0 + self.rng.below(30) as f64 - 18.0 * u.ln()).min(4000.0);
                let amp = (adc * 8.0) as u16 | self.rng.below(8) as u16;
                buf.push(channel);
                buf.push(amp & 0x7FFF);
                self.hits += 1;
            }
        }
        let mode =
            if raw { STATUS_RAW } else { 0 } | if compressed { STATUS_COMPRESSED } else { 0 };
        // Flight data: the A (4k) or B (4k + 1) side, CDP set on the xDR.
        let (side, cdp) = if flight {
            (self.rng.below(2) as u8, STATUS_CDP)
        } else {
            (0, 0)
        };
        frag_end(buf, start, status(udr * 4 + side, mode | cdp));
    }

    fn flight(&self) -> bool {
        self.cfg.layout == Layout::Flight
    }

    /// CDP of a concentrator: set in this project's 2007-layout data (the 2007 layout does
    /// not check the bit), clear in flight data.
    fn concentrator_cdp(&self) -> u16 {
        if self.flight() {
            0
        } else {
            STATUS_CDP
        }
    }

    /// CDP of an xDR: set in flight data.
    fn xdr_cdp(&self) -> u16 {
        if self.flight() {
            STATUS_CDP
        } else {
            0
        }
    }

    /// Ends a JINF's fragment: its slave mask in flight data (FORMAT.md 9.2), then status.
    fn jinf_end(&mut self, buf: &mut Vec<u16>, start: usize, port: u8) {
        if self.flight() {
            let mask = if self.rng.chance(0.1) {
                1u32 << self.rng.below(24)
            } else {
                0
            };
            buf.extend([(mask >> 16) as u16, mask as u16]);
        }
        let cdp = self.concentrator_cdp();
        frag_end(buf, start, status(port, cdp));
    }

    /// A JINF on JINJ `port` with xDR `slaves` of random data, `size` words each on average.
    fn concentrator(&mut self, buf: &mut Vec<u16>, port: u8, slaves: &[u8], size: usize) {
        let start = frag_begin(buf);
        let cdp = self.xdr_cdp();
        for &s in slaves {
            let f = frag_begin(buf);
            let n = size / 2 + self.rng.below(size as u64) as usize;
            self.random_words(buf, n);
            frag_end(buf, f, status(s, cdp));
        }
        self.jinf_end(buf, start, port);
    }

    /// A leaf on JINJ `port` (an SDR, a JLV1) with `n` random words.
    fn leaf(&mut self, buf: &mut Vec<u16>, port: u8, n: usize, cdp: u16) {
        let f = frag_begin(buf);
        self.random_words(buf, n);
        frag_end(buf, f, status(port, cdp));
    }

    /// The first group's JINJ content, by the port table of FORMAT.md 4.2: other
    /// detectors and the TRD.
    fn jinj_content(&mut self, buf: &mut Vec<u16>) {
        // Tracker: JINF-T on ports 0, 1, 3 with three TDRs each, and on port 9 with three.
        for port in [0u8, 1, 3] {
            self.concentrator(buf, port, &[0, 1, 2], 60);
        }
        self.concentrator(buf, 9, &[0, 1, 7], 35);
        // TRD: JINF-U1 on port 2, JINF-U0 on port 8, six UDR2 each.
        for (port, crate_) in [(2u8, 1u8), (8, 0)] {
            let j = frag_begin(buf);
            for udr in 0..6u8 {
                self.udr(buf, udr, crate_);
            }
            self.jinf_end(buf, j, port);
        }
        // TOF/ACC: SDRs on ports 4 and 5 (leaves); RICH: a JINF-R; ECAL: a JINF-E.
        let sdr_cdp = self.xdr_cdp();
        for port in [4u8, 5] {
            let n = 20 + self.rng.below(40) as usize;
            self.leaf(buf, port, n, sdr_cdp);
        }
        self.concentrator(buf, 12, &[0, 1], 25);
        self.concentrator(buf, 10, &[0, 1, 2, 3], 12);
        // JLV1-A trigger data (a leaf; its CDP is not checked).
        self.leaf(buf, 14, 20, 0);
    }

    fn group(&mut self, buf: &mut Vec<u16>, node: u16, event: u32, first: bool) {
        let mut g: Vec<u16> = Vec::with_capacity(1200);
        g.push(event as u16);
        let top = if first {
            self.jinj_content(&mut g);
            status(0, self.concentrator_cdp())
        } else {
            // A single-level group: the top node's own data (a JLV1 node, a leaf).
            let n = 10 + self.rng.below(20) as usize;
            self.random_words(&mut g, n);
            status(3, 0)
        };
        g.push(top);
        let c = crc_words(&g);
        g.push(c);
        if self.flight() && self.rng.chance(self.cfg.compressed) {
            let table = crate::huffman::table_for_run(self.cfg.run);
            let coded = crate::huffman::encode(&g, table);
            sub_block(buf, node, crate::event::TYPE_GROUP_COMPRESSED, &coded);
        } else {
            sub_block(buf, node, 1, &g);
        }
    }
}

/// CRC-16/CCITT-FALSE of words given as numbers.
fn crc_words(words: &[u16]) -> u16 {
    words.iter().fold(crc::INIT, |c, w| {
        let b = w.to_be_bytes();
        crc::update_byte(crc::update_byte(c, b[0]), b[1])
    })
}

/// Writes a simulated run.
pub fn simulate_to_writer<W: Write>(out: &mut W, cfg: &SimConfig) -> io::Result<SimSummary> {
    let mut w = Writer {
        out,
        order: cfg.byte_order,
        bytes: Vec::with_capacity(8192),
        summary: SimSummary::default(),
    };
    let mut b = EventBuilder {
        cfg,
        rng: Rng(cfg.seed ^ 0xA0A5_02D0_0000_0000),
        hits: 0,
        raw: 0,
    };
    let run_tag: u32 = 1_000_000_000 + (cfg.seed % 100_000) as u32;
    let flight = cfg.layout == Layout::Flight;
    let mut data: Vec<u16> = Vec::with_capacity(4096);
    let mut micros: u64 = 0;
    for i in 0..cfg.n_events {
        if cfg.other_block_every > 0 && b.rng.below(cfg.other_block_every) == 0 {
            if flight {
                let t = cfg.run + (micros / 1_000_000) as u32;
                let us = (micros % 1_000_000) as u32;
                flight_other_blocks(&mut w, &mut b, t, us, i)?;
            } else {
                let spec = other_block(&mut b, run_tag + (micros / 1_000_000) as u32, i);
                w.write(&spec)?;
            }
        }
        micros += 100 + b.rng.below(4000);
        let time = run_tag + (micros / 1_000_000) as u32;
        let fine = (micros % 1_000_000) as u32;
        let event = (i + 1) as u32;
        let gps = b.rng.chance(cfg.gps_fraction);
        let two = b.rng.chance(cfg.second_group_fraction);
        let n_groups = 1 + u16::from(two);
        data.clear();
        let mut j: Vec<u16> = Vec::with_capacity(24);
        // The flight layout's times are Unix seconds from the run ID on.
        let (time, block_time) = if flight {
            let t = cfg.run + (micros / 1_000_000) as u32;
            (t, t)
        } else {
            (time, time + u32::from(fine > 500_000))
        };
        // (The 2007 layout draws its Level-3 chance after the groups, as it always has.)
        let level3 = flight && b.rng.chance(cfg.level3_fraction);
        if flight {
            // FORMAT.md 9.1: fine time (ms), run type, run ID, event number, records.
            let type_ = 0x10 | u8::from(level3) | u8::from(gps) << 1;
            j.extend(flight_jmdc_words(cfg, fine, event));
            if level3 {
                // A level-3 record of 9 bytes: 5 words, the length in the first word's high byte.
                let mut l3 = Vec::with_capacity(5);
                b.random_words(&mut l3, 5);
                l3[0] = 0x0900 | (l3[0] & 0x00FF);
                j.extend(l3);
            }
            if gps {
                // A GPS record of 15 bytes: 8 words, four u32 values.
                let mut g = Vec::with_capacity(8);
                b.random_words(&mut g, 8);
                g[0] = 0x0F00 | (g[0] & 0x00FF);
                j.extend(g);
            }
            sub_block(&mut data, cfg.jmdc_node, type_, &j);
        } else {
            for v in [cfg.run, run_tag, event, time, fine] {
                j.push((v >> 16) as u16);
                j.push(v as u16);
            }
            j.push(if gps { 0x8000 } else { 0 } | n_groups);
            if gps {
                let gps_seconds = time.wrapping_add(18);
                j.push((gps_seconds / 604_800) as u16);
                let sec = gps_seconds % 604_800;
                j.extend([(sec >> 16) as u16, sec as u16]);
                let frac = b.rng.below(1 << 32) as u32;
                j.extend([(frac >> 16) as u16, frac as u16]);
            }
            sub_block(&mut data, cfg.jmdc_node, 5, &j);
        }
        b.group(&mut data, 130, event, true);
        if two {
            b.group(&mut data, 136, event, false);
        }
        if !flight && b.rng.chance(cfg.level3_fraction) {
            let mut l3 = Vec::with_capacity(8);
            let n = 2 + b.rng.below(6) as usize;
            b.random_words(&mut l3, n);
            sub_block(&mut data, cfg.jmdc_node, 6, &l3);
        }
        let head = Head::reply(cfg.jmdc_node, 5, None, (event & 0x0FFF) as u16, block_time);
        let mut blocks = vec![Spec::new(head, std::mem::take(&mut data))];
        // Flight data: some events inside envelopes (FORMAT.md 10); a fine-time envelope
        // carries the event's fine time in microseconds.
        let wrap = if flight && b.rng.chance(cfg.envelope_fraction) {
            match b.rng.below(10) {
                0..=4 => Wrap::FineTime,
                5..=7 => {
                    // An envelope with the event, and now and then a TOF slow-control block.
                    if b.rng.chance(0.5) {
                        blocks.push(tof_slow_control(&mut b, head.tag, block_time));
                    }
                    Wrap::Envelope
                }
                _ => Wrap::EnvelopeFineTime,
            }
        } else {
            Wrap::None
        };
        w.write_wrapped(&blocks, wrap, head, fine)?;
        if let Some(first) = blocks.into_iter().next() {
            data = first.data;
        }
    }
    w.summary.n_trd_hits = b.hits;
    w.summary.n_trd_raw = b.raw;
    w.out.flush()?;
    Ok(w.summary)
}

/// The flight layout's JMDC header words 0-5 (FORMAT.md 9.1): fine time in milliseconds
/// (`fine` is microseconds), run type, run ID, event number.
fn flight_jmdc_words(cfg: &SimConfig, fine: u32, event: u32) -> [u16; 6] {
    [
        (fine / 1000) as u16,
        cfg.run_type(),
        (cfg.run >> 16) as u16,
        cfg.run as u16,
        (event >> 16) as u16,
        event as u16,
    ]
}

/// A container's data (FORMAT.md 10): a flight JMDC header sub-block with event number
/// `number`, then `n` sub-blocks of TYPE `type_` from nodes drawn in `nodes`, `words`
/// words each on average.
fn container_data(
    b: &mut EventBuilder<'_>,
    fine: u32,
    number: u32,
    type_: u8,
    nodes: std::ops::Range<u16>,
    n: u64,
    words: u64,
) -> Vec<u16> {
    let mut data = Vec::new();
    sub_block(
        &mut data,
        b.cfg.jmdc_node,
        0x10,
        &flight_jmdc_words(b.cfg, fine, number),
    );
    for _ in 0..n {
        let node = nodes.start + b.rng.below(u64::from(nodes.end - nodes.start)) as u16;
        let mut d = Vec::new();
        let k = (words / 2 + b.rng.below(words)) as usize;
        b.random_words(&mut d, k);
        sub_block(&mut data, node, type_, &d);
    }
    data
}

/// A TOF slow-control block: TYPE 0x18 or 0x19 from an S-crate node 40..47, temperatures.
fn tof_slow_control(b: &mut EventBuilder<'_>, tag: u16, time: u32) -> Spec {
    let node = 40 + b.rng.below(8) as u16;
    let type_ = 0x18 + b.rng.below(2) as u8;
    let n = 8 + b.rng.below(16);
    let data = (0..n).map(|_| 2900 + b.rng.below(200) as u16).collect();
    Spec::new(Head::reply(node, type_, None, tag, time), data)
}

/// The blocks of one slot between flight-layout events (FORMAT.md 10), sometimes wrapped in
/// an envelope or a fine-time envelope. `time` is Unix seconds, `us` the microseconds.
fn flight_other_blocks<W: Write>(
    w: &mut Writer<'_, W>,
    b: &mut EventBuilder<'_>,
    time: u32,
    us: u32,
    i: u64,
) -> io::Result<()> {
    let tag = (i & 0x0FFF) as u16;
    let jmdc = b.cfg.jmdc_node;
    let event = i as u32;
    let reply = |node: u16, type_: u8| Head::reply(node, type_, None, tag, time);
    let blocks: Vec<Spec> = match b.rng.below(20) {
        0..=5 => vec![other_block(b, time, i)],
        6 | 7 => {
            // A calibration burst: containers numbered sequence << 16 | expected total,
            // each with TDR calibration data (pedestals, sigmas).
            let total = 2 + b.rng.below(3) as u32;
            (1..=total)
                .map(|seq| {
                    let data = container_data(b, us, seq << 16 | total, 6, 282..474, 2, 200);
                    Spec::new(reply(jmdc, 6), data)
                })
                .collect()
        }
        8 | 9 => {
            // A configuration container: JINF sub-blocks.
            let n = 1 + b.rng.below(3);
            let data = container_data(b, us, event, 7, 150..206, n, 24);
            vec![Spec::new(reply(jmdc, 7), data)]
        }
        10 | 11 => {
            // A housekeeping container: xDR and JINF sub-blocks.
            let n = 1 + b.rng.below(3);
            let data = container_data(b, us, event, 8, 150..474, n, 16);
            vec![Spec::new(reply(jmdc, 8), data)]
        }
        12 | 13 => {
            // TYPE 5 with a JMDC header that fails the event test in one of four ways.
            let mut data = Vec::new();
            sub_block(&mut data, jmdc, 0x10, &flight_jmdc_words(b.cfg, us, event));
            let mut h = reply(jmdc, 5);
            match b.rng.below(4) {
                0 => h.status = 8,
                1 => h.rw = true,
                2 => h.node = 128 + b.rng.below(4) as u16,
                _ => h.rr = false,
            }
            vec![Spec::new(h, data)]
        }
        14 | 15 => {
            // A stand-alone calibration reply from a TDR or a UDR.
            let node = 282 + b.rng.below(228) as u16;
            let type_ = 0x13 + b.rng.below(2) as u8;
            let mut data = Vec::new();
            let n = 16 + b.rng.below(48) as usize;
            b.random_words(&mut data, n);
            vec![Spec::new(reply(node, type_), data)]
        }
        16 | 17 => {
            // Cryocooler electronics housekeeping from a CCEB node 24..31.
            let node = 24 + b.rng.below(8) as u16;
            let n = 20 + b.rng.below(20);
            let data = (0..n).map(|_| b.rng.below(4096) as u16).collect();
            vec![Spec::new(reply(node, 0x1B), data)]
        }
        _ => vec![tof_slow_control(b, tag, time)],
    };
    let wrap = if b.rng.chance(b.cfg.envelope_fraction) {
        if blocks.len() == 1 && b.rng.chance(0.5) {
            Wrap::FineTime
        } else {
            Wrap::Envelope
        }
    } else {
        Wrap::None
    };
    w.write_wrapped(&blocks, wrap, reply(jmdc, 0), us)
}

/// A non-event block: a housekeeping reply with TYPE_EXT, a request, or a long block.
/// (The 2007 layout's mix, drawn as it always has been.)
fn other_block(b: &mut EventBuilder<'_>, time: u32, i: u64) -> Spec {
    let mut data = Vec::new();
    let tag = (i & 0x0FFF) as u16;
    match b.rng.below(10) {
        0..=4 => {
            // Housekeeping reply from a JINF, with TYPE_EXT.
            let n = 4 + b.rng.below(60) as usize;
            b.random_words(&mut data, n);
            let node = 150 + b.rng.below(56) as u16;
            let ext = 0x0100 + b.rng.below(16) as u16;
            Spec::new(Head::reply(node, 0x1F, Some(ext), tag, time), data)
        }
        5..=7 => {
            // A request (no TIME), write only or write-and-read, sometimes with an odd size.
            let n = b.rng.below(8) as usize;
            b.random_words(&mut data, n);
            let odd = n > 0 && b.rng.chance(0.3);
            if odd {
                if let Some(last) = data.last_mut() {
                    *last &= 0xFF00;
                }
            }
            let node = 282 + b.rng.below(192) as u16;
            let rw = b.rng.chance(0.5);
            let type_ = 2 + b.rng.below(20) as u8;
            let status = b.rng.below(16) as u8;
            Spec {
                head: Head {
                    rr: false,
                    rw,
                    node,
                    type_,
                    type_ext: None,
                    status,
                    tag,
                    time: 0,
                },
                data,
                odd_byte: odd,
                force_long: false,
            }
        }
        8 => {
            // A reply with L = 1 although short, as some nodes write.
            let n = 3 + b.rng.below(10) as usize;
            b.random_words(&mut data, n);
            let node = 128 + b.rng.below(4) as u16;
            Spec {
                head: Head::reply(node, 0x0D, None, tag, time),
                data,
                odd_byte: false,
                force_long: true,
            }
        }
        _ => {
            // Now and then a long dump (more than 32767 bytes: L = 1 by size).
            let n = if b.rng.chance(0.1) {
                17_000 + b.rng.below(4000) as usize
            } else {
                40
            };
            b.random_words(&mut data, n);
            Spec::new(Head::reply(511, 0x1F, Some(0x0002), tag, time), data)
        }
    }
}

/// Writes a simulated run to a file.
pub fn simulate_to_path(path: &std::path::Path, cfg: &SimConfig) -> io::Result<SimSummary> {
    let file = std::fs::File::create(path)?;
    let mut out = io::BufWriter::with_capacity(1 << 20, file);
    let s = simulate_to_writer(&mut out, cfg)?;
    out.flush()?;
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::{Tables, Want};
    use crate::file::AmsFile;
    use crate::source::Source;

    fn run(cfg: &SimConfig) -> (Vec<u8>, SimSummary) {
        let mut v = Vec::new();
        let s = simulate_to_writer(&mut v, cfg).expect("writes to memory");
        (v, s)
    }

    #[test]
    fn deterministic_and_decodes_cleanly_in_both_orders() {
        for order in [ByteOrder::Little, ByteOrder::Big] {
            let cfg = SimConfig {
                n_events: 400,
                seed: 7,
                byte_order: order,
                raw_fraction: 0.05,
                mixed_fraction: 0.05,
                ..SimConfig::default()
            };
            let (a, sa) = run(&cfg);
            let (b, _) = run(&cfg);
            assert_eq!(a, b);
            assert_eq!(sa.bytes as usize, a.len());
            let f = AmsFile::from_source(Source::from_vec(a), None, Vec::new()).expect("opens");
            assert_eq!(f.byte_order(), order);
            assert_eq!(f.n_events(), 400);
            assert_eq!(f.n_blocks() as u64, sa.n_blocks);
            let t = f.decode(0, f.n_events(), Want::ALL);
            assert!(t.problems.is_empty(), "{:?}", t.problems.first());
            assert!(f.problems().is_empty());
            assert!(t.events.crc_ok.iter().all(|&c| c));
            assert!(t.events.jmdc_ok.iter().all(|&c| c));
            assert_eq!(t.events.event, (1..=400).collect::<Vec<u32>>());
            assert_eq!(t.hits.len() as u64, sa.n_trd_hits);
            assert_eq!(t.raw.len() as u64, sa.n_trd_raw);
            assert_eq!(
                t.events
                    .n_trd_hits
                    .iter()
                    .map(|&n| u64::from(n))
                    .sum::<u64>(),
                sa.n_trd_hits
            );
            assert!(t.hits.module.iter().all(|&m| m >= 0));
            // Parallel decoding gives the same tables.
            let f4 = f.with_threads(4);
            let t4 = f4.decode(0, f4.n_events(), Want::ALL);
            assert_eq!(t4.events, t.events);
            assert_eq!(t4.fragments, t.fragments);
            assert_eq!(t4.hits, t.hits);
            assert_eq!(t4.raw, t.raw);
        }
    }

    #[test]
    fn parallel_rounds_equal_the_serial_decode_with_damage() {
        // 3000 events: 256-event chunks decoded in rounds of one chunk per thread (some
        // rounds partial), joined in parallel; damage inside events gives problems in
        // many chunks, which must come out in the same order.
        let (mut bytes, _) = run(&SimConfig {
            n_events: 3000,
            seed: 11,
            raw_fraction: 0.05,
            mixed_fraction: 0.05,
            ..SimConfig::default()
        });
        let n = bytes.len();
        for k in 1..40 {
            let at = k * n / 40 + 1000;
            if let Some(b) = bytes.get_mut(at) {
                *b ^= 0x5A;
            }
        }
        let open = |threads: usize| {
            AmsFile::from_source(Source::from_vec(bytes.clone()), None, Vec::new())
                .expect("opens")
                .with_threads(threads)
        };
        let f = open(1);
        let serial = f.decode(0, f.n_events(), Want::ALL);
        assert!(serial.problems.len() >= 20, "{}", serial.problems.len());
        let hits_only = Want {
            hits: true,
            fragments: true,
            checks: false,
            ..Want::NONE
        };
        let serial_hits = f.decode(0, f.n_events(), hits_only);
        for threads in [2, 3, 5] {
            let f = open(threads);
            let t = f.decode(0, f.n_events(), Want::ALL);
            assert_eq!(t.events, serial.events, "{threads} threads");
            assert_eq!(t.fragments, serial.fragments, "{threads} threads");
            assert_eq!(t.hits, serial.hits, "{threads} threads");
            assert_eq!(t.raw, serial.raw, "{threads} threads");
            assert_eq!(t.problems, serial.problems, "{threads} threads");
            let h = f.decode(0, f.n_events(), hits_only);
            assert_eq!(h.hits, serial_hits.hits);
            assert_eq!(h.problems, serial_hits.problems);
            // A part of the file: rows numbered from the start of the part.
            let p = f.decode(700, 2100, Want::ALL);
            assert_eq!(p.events.offset[..], serial.events.offset[700..2100]);
            assert_eq!(p.hits.event_index.first(), Some(&700));
        }
        // Without `checks`, the hits are the same and only CRC problems go missing.
        assert_eq!(serial_hits.hits, serial.hits);
        assert!(serial
            .problems
            .iter()
            .any(|p| p.kind == crate::problems::ProblemKind::CrcMismatch));
        let others = |t: &Tables| {
            t.problems
                .iter()
                .filter(|p| p.kind != crate::problems::ProblemKind::CrcMismatch)
                .cloned()
                .collect::<Vec<_>>()
        };
        assert_eq!(others(&serial_hits), others(&serial));
        assert!(serial_hits
            .problems
            .iter()
            .all(|p| p.kind != crate::problems::ProblemKind::CrcMismatch));
        // TRD tables alone, without checks: only the JINJ -> JINF-U -> UDR2 paths are
        // walked. Same hits and raw read-outs; the problems are those on these paths, a
        // part of the full list in the same order.
        let trd_only = Want {
            hits: true,
            raw: true,
            checks: false,
            ..Want::NONE
        };
        for threads in [1, 3] {
            // The events alone (lenient): CRCs computed, TRD paths walked; same rows.
            let events_only = Want {
                events: true,
                checks: false,
                ..Want::NONE
            };
            let e = open(threads).decode(0, f.n_events(), events_only);
            assert_eq!(e.events, serial.events, "{threads} threads");
            assert!(!events_only.complete() && trd_only.hits && Want::ALL.complete());
            let t = open(threads).decode(0, f.n_events(), trd_only);
            assert_eq!(t.hits, serial.hits, "{threads} threads");
            assert_eq!(t.raw, serial.raw, "{threads} threads");
            assert!(t.problems.len() < others(&serial).len());
            let mut rest = others(&serial).into_iter();
            for p in &t.problems {
                assert!(
                    rest.any(|q| q == *p),
                    "{p:?} not among the full decode's problems"
                );
            }
        }
    }

    #[test]
    fn section_10_blocks_and_envelopes_in_flight_runs() {
        for order in [ByteOrder::Little, ByteOrder::Big] {
            let cfg = SimConfig {
                n_events: 3000,
                seed: 4,
                byte_order: order,
                ..SimConfig::default()
            };
            let (bytes, s) = run(&cfg);
            for n in [
                s.n_envelopes,
                s.n_fine_time_envelopes,
                s.n_events_in_envelopes,
                s.n_calibration,
                s.n_configuration,
                s.n_housekeeping,
                s.n_not_event,
                s.n_calibration_replies,
                s.n_cceb,
                s.n_tof_slow_control,
                s.n_other_blocks,
            ] {
                assert!(n > 0, "{s:?}");
            }
            let f = AmsFile::from_source(Source::from_vec(bytes), None, Vec::new()).expect("opens");
            assert!(f.problems().is_empty(), "{:?}", f.problems().first());
            assert_eq!(f.n_events() as u64, s.n_events);
            assert_eq!(f.n_blocks() as u64, s.n_blocks);
            let (blocks, nested) = f.blocks_nested();
            assert_eq!(nested.len() as u64, s.n_blocks + s.n_nested_blocks);
            let count = |dt: u32| blocks.data_type.iter().filter(|&&d| d == dt).count() as u64;
            assert_eq!(count(crate::envelope::ENVELOPE), s.n_envelopes);
            assert_eq!(
                count(crate::envelope::FINE_TIME_ENVELOPE),
                s.n_fine_time_envelopes
            );
            assert_eq!(nested.depth.iter().copied().max(), Some(2));
            let t = f.decode(0, f.n_events(), Want::ALL);
            assert!(t.problems.is_empty(), "{:?}", t.problems.first());
            assert_eq!(t.events.event, (1..=3000).collect::<Vec<u32>>());
        }
        // The blocks of section 10 and the envelopes are the flight layout's only.
        let (_, s) = run(&SimConfig {
            n_events: 3000,
            layout: Layout::Seed2007,
            envelope_fraction: 1.0,
            ..SimConfig::default()
        });
        assert_eq!(
            s.n_envelopes + s.n_fine_time_envelopes + s.n_nested_blocks,
            0
        );
        assert_eq!(s.n_calibration + s.n_cceb + s.n_tof_slow_control, 0);
    }

    #[test]
    fn about_two_kilobytes_per_event() {
        let (bytes, s) = run(&SimConfig {
            n_events: 3000,
            ..SimConfig::default()
        });
        let per_event = bytes.len() as f64 / s.n_events as f64;
        assert!(
            (1500.0..2600.0).contains(&per_event),
            "{per_event} bytes per event"
        );
        let hits_per_event = s.n_trd_hits as f64 / s.n_events as f64;
        assert!(
            (15.0..60.0).contains(&hits_per_event),
            "{hits_per_event} hits per event"
        );
    }
}
