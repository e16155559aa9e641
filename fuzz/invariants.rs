//! Invariants that must hold for ANY input, shared by the fuzz targets
//! (`fuzz/fuzz_targets/*.rs`) and the stable corpus replay (`tests/mutations.rs`), which
//! both include this file with `#[path]`. Every check panics with a message when it fails;
//! the decoders themselves must never panic.

#![allow(dead_code)]

use ams02::block;
use ams02::ccsds::scan::{self, ScanOptions};
use ams02::ccsds::table::PacketColumn;
use ams02::ccsds::{OpenOptions, PacketFile};
use std::collections::BTreeMap;

use ams02::decode::{Tables, Want};
use ams02::detectors::lef;
use ams02::dialect::Dialect;
use ams02::index::{self, BlockIndex};
use ams02::source::Source;
use ams02::words::{Be, Le};
use ams02::{AmsFile, ByteOrder, Problem};

/// Both byte orders.
pub const ORDERS: [ByteOrder; 2] = [ByteOrder::Little, ByteOrder::Big];

/// `next` of the top-level block at `pos`, if a valid header fits in the data (a block's
/// `next` is counted from its own start, so a block at an odd offset may end at an odd
/// length).
pub fn block_next(data: &[u8], order: ByteOrder, pos: u64) -> Option<u64> {
    let len = data.len();
    let pos = usize::try_from(pos).ok()?;
    let r = match order {
        ByteOrder::Little => block::parse::<Le>(data, pos, len, true),
        ByteOrder::Big => block::parse::<Be>(data, pos, len, true),
    };
    r.ok().map(|h| h.next as u64)
}

/// Whether the top-level block at `pos` is a science event.
fn is_event(data: &[u8], order: ByteOrder, pos: u64) -> bool {
    let len = data.len();
    let r = match order {
        ByteOrder::Little => block::parse::<Le>(data, pos as usize, len, true),
        ByteOrder::Big => block::parse::<Be>(data, pos as usize, len, true),
    };
    r.is_ok_and(|h| h.is_science_event())
}

/// Whether the block at `pos` is an envelope (FORMAT.md 10) that holds byte `inner`.
fn envelope_holds(data: &[u8], order: ByteOrder, pos: u64, inner: u64) -> bool {
    let len = data.len();
    let r = match order {
        ByteOrder::Little => block::parse::<Le>(data, pos as usize, len, true),
        ByteOrder::Big => block::parse::<Be>(data, pos as usize, len, true),
    };
    r.is_ok_and(|h| {
        matches!(
            h.data_type(),
            ams02::envelope::ENVELOPE | ams02::envelope::FINE_TIME_ENVELOPE
        ) && (h.data_start as u64) <= inner
            && inner < h.data_end as u64
    })
}

fn check_problems(what: &str, problems: &[Problem], len: usize) {
    for p in problems {
        assert!(
            p.offset <= len as u64,
            "{what}: problem offset {} past the data ({len} bytes): {:?}",
            p.offset,
            p
        );
    }
}

/// The index of `data` in `order`: blocks strictly increasing and in the data, each a
/// valid header; blocks and skipped ranges never overlap and tile the data; every event
/// is a block and a science event; problems inside the data.
pub fn check_index(data: &[u8], order: ByteOrder, ix: &BlockIndex) {
    let len = data.len() as u64;
    assert!(
        ix.blocks.windows(2).all(|w| w[0] < w[1]),
        "{order}: block offsets not strictly increasing"
    );
    assert!(
        ix.events.windows(2).all(|w| w[0] < w[1]),
        "{order}: event offsets not strictly increasing"
    );
    let mut ranges: Vec<(u64, u64, &str)> = Vec::with_capacity(ix.blocks.len() + ix.skipped.len());
    for &b in &ix.blocks {
        assert!(b < len, "{order}: block offset {b} not < data length {len}");
        let next = block_next(data, order, b)
            .unwrap_or_else(|| panic!("{order}: indexed block at {b} has no valid header"));
        assert!(next > b && next <= len, "{order}: block {b} ends at {next}");
        ranges.push((b, next, "block"));
    }
    for &(s, e) in &ix.skipped {
        assert!(
            s < e && e <= len,
            "{order}: skipped range {s}..{e} (data {len})"
        );
        ranges.push((s, e, "skipped"));
    }
    ranges.sort();
    let mut at = 0u64;
    for &(s, e, what) in &ranges {
        assert!(
            s >= at,
            "{order}: {what} {s}..{e} overlaps the range before it (ends at {at})"
        );
        assert!(
            s == at,
            "{order}: bytes {at}..{s} are neither a block nor skipped"
        );
        at = e;
    }
    assert_eq!(
        at, len,
        "{order}: blocks and skipped ranges stop at {at} of {len}"
    );
    let mut top_events = 0usize;
    for &e in &ix.events {
        if ix.blocks.binary_search(&e).is_ok() {
            top_events += 1;
        } else {
            // An event inside an envelope (FORMAT.md 10): inside the top-level block
            // before it, which is an envelope.
            let k = ix.blocks.partition_point(|&b| b <= e);
            assert!(
                k > 0 && envelope_holds(data, order, ix.blocks[k - 1], e),
                "{order}: event offset {e} is neither a block offset nor inside an envelope"
            );
        }
        assert!(
            is_event(data, order, e),
            "{order}: event at {e} is not a science event"
        );
    }
    let n_events = ix
        .blocks
        .iter()
        .filter(|&&b| is_event(data, order, b))
        .count();
    assert_eq!(
        n_events, top_events,
        "{order}: a science event block missing from events"
    );
    check_problems(&format!("{order} index"), &ix.problems, data.len());
}

/// Byte-order detection and the block walk in both orders.
pub fn block_walker(data: &[u8]) {
    let detected = index::detect_byte_order(data);
    for order in ORDERS {
        let ix = index::build(data, order);
        check_index(data, order, &ix);
        // Deterministic.
        let again = index::build(data, order);
        assert_eq!(ix.blocks, again.blocks);
        assert_eq!(ix.skipped, again.skipped);
    }
    if let Ok(order) = detected {
        let f = match AmsFile::from_source(Source::from_vec(data.to_vec()), None, Vec::new()) {
            Ok(f) => f,
            Err(e) => {
                assert!(
                    lef::words_layout(data).is_some(),
                    "detect_byte_order succeeded, so from_source(None) must too: {e}"
                );
                return;
            }
        };
        assert_eq!(f.byte_order(), order);
        let ix = index::build(data, order);
        assert_eq!(f.index().blocks, ix.blocks);
        assert_eq!(f.blocks().len(), ix.blocks.len());
    }
}

/// Structural invariants of decoded tables over `data`.
pub fn check_tables(what: &str, data: &[u8], events: &[u64], first: usize, t: &Tables, want: Want) {
    let len = data.len() as u64;
    let n = events.len();
    if want.events {
        assert_eq!(
            t.events.len(),
            n,
            "{what}: events rows != number of indexed events"
        );
        assert_eq!(
            t.events.offset, events,
            "{what}: event rows not at the indexed offsets"
        );
    }
    let f = &t.fragments;
    let rows = f.len();
    for v in [
        f.group.len(),
        f.depth.len(),
        f.parent.len(),
        f.slave_id.len(),
        f.node_status.len(),
        f.data_offset.len(),
        f.n_words.len(),
        f.role.len(),
        f.port.len(),
        f.cdp.len(),
        f.jinf_mask.len(),
        f.compressed.len(),
        f.coded_words.len(),
    ] {
        assert_eq!(v, rows, "{what}: fragment columns of different lengths");
    }
    for i in 0..rows {
        // A Huffman-coded group's offsets count from its decoded words (checked against
        // the decoded size in `check_layouts`).
        let end = f.data_offset[i] + 2 * u64::from(f.n_words[i]);
        assert!(
            f.compressed[i] || end <= len,
            "{what}: fragment {i} data {}+2*{} runs past the data ({len} bytes)",
            f.data_offset[i],
            f.n_words[i]
        );
        let ev = f.event_index[i];
        assert!(
            ev >= first as i64 && ev < (first + n) as i64,
            "{what}: fragment {i} event_index {ev} outside {first}..{}",
            first + n
        );
        let p = f.parent[i];
        assert!(
            p == -1 || (p >= 0 && (p as usize) < i),
            "{what}: fragment {i} parent {p}"
        );
        if p >= 0 {
            assert_eq!(
                f.event_index[p as usize], ev,
                "{what}: fragment {i} parent in another event"
            );
            assert_eq!(
                f.depth[p as usize] + 1,
                f.depth[i],
                "{what}: fragment {i} depth"
            );
        } else {
            assert_eq!(f.depth[i], 0, "{what}: top fragment {i} depth");
        }
    }
    let h = &t.hits;
    for i in 0..h.len() {
        assert!(
            h.channel[i] < 448,
            "{what}: hit {i} channel {}",
            h.channel[i]
        );
        assert!(h.ufe[i] < 7, "{what}: hit {i} ufe {}", h.ufe[i]);
        assert!(h.udr[i] < 6, "{what}: hit {i} udr {}", h.udr[i]);
        assert!(h.crate_[i] < 2, "{what}: hit {i} crate {}", h.crate_[i]);
        assert_eq!(
            u16::from(h.ufe[i]),
            h.channel[i] / 64,
            "{what}: hit {i} ufe != channel / 64"
        );
        let ev = h.event_index[i];
        assert!(
            ev >= first as i64 && ev < (first + n) as i64,
            "{what}: hit {i} event_index {ev}"
        );
    }
    let r = &t.raw;
    assert_eq!(
        r.adc.len(),
        448 * r.len(),
        "{what}: raw adc is not 448 values a row"
    );
    for i in 0..r.len() {
        assert!(
            r.udr[i] < 6 && r.crate_[i] < 2,
            "{what}: raw row {i} udr/crate"
        );
    }
    if want.events {
        let hits_per_event: u64 = t.events.n_trd_hits.iter().map(|&x| u64::from(x)).sum();
        if want.hits {
            assert_eq!(
                hits_per_event,
                h.len() as u64,
                "{what}: n_trd_hits != hit rows"
            );
        }
    }
    check_problems(what, &t.problems, data.len());
    for p in &t.problems {
        assert!(
            p.event_index >= first as i64 && p.event_index < (first + n) as i64,
            "{what}: decode problem with event_index {} outside {first}..{}: {p:?}",
            p.event_index,
            first + n
        );
    }
}

// ---------------------------------------------------------------------------------------
// The two event layouts (FORMAT.md 4, 9): event rows, fragment rows and problems checked
// against the bytes, for any input.

/// A block header at `pos` that must end by `limit`, in `order`.
fn parse_at(
    data: &[u8],
    order: ByteOrder,
    pos: usize,
    limit: usize,
    top: bool,
) -> Option<block::BlockHeader> {
    match order {
        ByteOrder::Little => block::parse::<Le>(data, pos, limit, top),
        ByteOrder::Big => block::parse::<Be>(data, pos, limit, top),
    }
    .ok()
}

/// The word at byte `at`.
fn word_at(data: &[u8], order: ByteOrder, at: u64) -> Option<u16> {
    let at = usize::try_from(at).ok()?;
    let b = data.get(at..at.checked_add(2)?)?;
    Some(match order {
        ByteOrder::Little => u16::from_le_bytes([b[0], b[1]]),
        ByteOrder::Big => u16::from_be_bytes([b[0], b[1]]),
    })
}

/// The layout a JMDC header sub-block announces (FORMAT.md 4: NODE 0..15, TYPE 5 the
/// 2007 layout, 0x10..0x13 the flight layout), as the `layout` code; `None` for any other
/// sub-block.
fn announced_layout(sub: &block::BlockHeader) -> Option<u8> {
    if sub.node > 15 {
        return None;
    }
    match sub.type_ {
        5 => Some(1),
        0x10..=0x13 => Some(2),
        _ => None,
    }
}

/// An event's sub-blocks as FORMAT.md 4 walks them: the first one, and the group
/// sub-blocks (TYPE 1 or 4, after the first, not a second JMDC header) in order.
pub struct EventShape {
    /// The event block.
    pub block: block::BlockHeader,
    /// Its first sub-block.
    pub first: Option<block::BlockHeader>,
    /// Its group sub-blocks.
    pub groups: Vec<block::BlockHeader>,
}

pub fn event_shape(data: &[u8], order: ByteOrder, offset: u64) -> Option<EventShape> {
    let block = parse_at(data, order, usize::try_from(offset).ok()?, data.len(), true)?;
    let mut first = None;
    let mut groups = Vec::new();
    let mut pos = block.data_start;
    let mut index = 0usize;
    while pos < block.next {
        let Some(sub) = parse_at(data, order, pos, block.next, false) else {
            break;
        };
        if index == 0 {
            first = Some(sub);
        } else if announced_layout(&sub).is_none() && (sub.type_ == 1 || sub.type_ == 4) {
            groups.push(sub);
        }
        index += 1;
        pos = sub.next;
    }
    Some(EventShape {
        block,
        first,
        groups,
    })
}

/// The role codes of `fragments().role` (`ams02.ROLES`).
mod role {
    pub const JINJ: u8 = 0;
    pub const JINF_T: u8 = 1;
    pub const JINF_U: u8 = 2;
    pub const JINF_R: u8 = 3;
    pub const JINF_E: u8 = 4;
    pub const JINF: u8 = 5;
    pub const SDR: u8 = 6;
    pub const JLV1: u8 = 7;
    pub const XDR: u8 = 8;
    pub const UDR: u8 = 9;
    pub const UNKNOWN_PORT: u8 = 10;
    pub const NODE: u8 = 11;
}

/// The role of the slave on JINJ port `port` (the port table of FORMAT.md 4.2).
fn jinj_port_role(port: u8) -> u8 {
    match port {
        0 | 1 | 3 | 9 | 16 | 17 | 22 | 23 => role::JINF_T,
        2 | 8 => role::JINF_U,
        10 | 11 => role::JINF_R,
        12 | 13 => role::JINF_E,
        4..=7 | 18..=21 => role::SDR,
        14 | 15 => role::JLV1,
        _ => role::UNKNOWN_PORT,
    }
}

/// The role of a group's top node from its NODE (FORMAT.md 4.2, 4.3).
fn top_node_role(node: u16) -> u8 {
    match node {
        128..=135 => role::JINJ,
        198..=205 => role::JINF_U,
        150..=197 => role::JINF,
        474..=509 => role::UDR,
        282..=473 => role::XDR,
        _ => role::NODE,
    }
}

fn is_jinf_role(r: u8) -> bool {
    (role::JINF_T..=role::JINF).contains(&r)
}

fn is_concentrator_role(r: u8) -> bool {
    r == role::JINJ || is_jinf_role(r)
}

/// The CDP bit the flight layout expects of a role (`None`: not checked).
fn expected_cdp(r: u8) -> Option<bool> {
    match r {
        role::SDR | role::XDR | role::UDR => Some(true),
        role::JLV1 | role::UNKNOWN_PORT | role::NODE => None,
        _ => Some(false),
    }
}

/// Unix seconds by the time rule of FORMAT.md 3.
fn time_rule(t: u32) -> f64 {
    if t < 1_000_000_000 {
        f64::from(t) + 315_964_800.0
    } else {
        f64::from(t)
    }
}

/// The layout facts of a full (`Want::ALL`) decode of `events` (rows `first..`), for any
/// input: each event's `layout` is the one its first sub-block announces, the JMDC columns
/// follow their layout (FORMAT.md 4.1, 9.1), level-3 and GPS records lie in their
/// sub-blocks; fragments' roles follow the port table and their parents, JINF masks are
/// the words before the status, compressed groups carry both sizes and decode to at most
/// the group's size bound (9.3), every fragment lies inside its parent after its elder
/// siblings and ends with its status word; `cdp_mismatch` and `unknown_port` rows are
/// exactly the flight-layout fragments they describe; problems lie in their event.
pub fn check_layouts(
    what: &str,
    data: &[u8],
    order: ByteOrder,
    dialect: Dialect,
    events: &[u64],
    first: usize,
    t: &Tables,
) {
    use ams02::ProblemKind as K;
    let e = &t.events;
    let n = events.len();
    assert_eq!(e.gps_values.len(), 7 * n, "{what}: gps_values not 7 a row");
    let mut shapes = Vec::with_capacity(n);
    for (k, &o) in events.iter().enumerate() {
        let sh = event_shape(data, order, o)
            .unwrap_or_else(|| panic!("{what}: indexed event at {o} has no block header"));
        let layout = e.layout[k];
        let announced = sh.first.as_ref().and_then(announced_layout);
        assert_eq!(
            layout,
            announced.unwrap_or(0),
            "{what}: event {k} at {o}: layout {layout}, its first sub-block announces {announced:?}"
        );
        assert!(e.jmdc_node[k] <= 15, "{what}: event {k} jmdc_node");
        let ok = e.jmdc_ok[k];
        let ty = e.jmdc_type[k];
        let values = &e.gps_values[7 * k..7 * k + 7];
        let gps_n = usize::from(e.gps_n[k]);
        assert!(gps_n <= 7, "{what}: event {k} gps_n {gps_n}");
        assert!(
            values[gps_n..].iter().all(|&v| v == 0),
            "{what}: event {k}: gps_values past gps_n not 0"
        );
        let (l3, l3_off, l3_words) = (e.level3[k], e.level3_offset[k], e.level3_words[k]);
        if l3 {
            assert!(
                o < l3_off && l3_off + 2 * u64::from(l3_words) <= sh.block.data_end as u64,
                "{what}: event {k} at {o}: level-3 words {l3_off}+2*{l3_words} outside the event"
            );
        } else {
            assert_eq!(
                (l3_off, l3_words),
                (0, 0),
                "{what}: event {k} level3 columns"
            );
        }
        if ok {
            let s = sh
                .first
                .as_ref()
                .expect("a valid JMDC header is a first sub-block");
            assert_ne!(layout, 0, "{what}: event {k}: jmdc_ok without a layout");
            assert_eq!(ty, s.type_, "{what}: event {k} jmdc_type");
            assert_eq!(e.jmdc_node[k], s.node, "{what}: event {k} jmdc_node");
            assert_eq!(
                e.unix_time[k].to_bits(),
                (time_rule(e.time[k]) + f64::from(e.fine_time[k]) / 1e6).to_bits(),
                "{what}: event {k} unix_time"
            );
        } else {
            assert!(
                e.unix_time[k].is_nan(),
                "{what}: event {k}: unix_time without JMDC"
            );
            assert_eq!(
                (
                    ty,
                    e.run[k],
                    e.run_tag[k],
                    e.run_type[k],
                    e.event[k],
                    e.time[k]
                ),
                (0, 0, 0, 0, 0, 0),
                "{what}: event {k}: JMDC columns not 0 without a valid JMDC header"
            );
            assert_eq!(
                (e.fine_time[k], e.jmdc_status[k], e.gps[k], e.gps_week[k]),
                (0, 0, false, 0),
                "{what}: event {k}: JMDC columns not 0 without a valid JMDC header"
            );
            assert_eq!(
                (
                    e.gps_second[k],
                    e.gps_fraction[k],
                    e.gps_offset[k],
                    e.gps_words[k],
                    gps_n
                ),
                (0, 0, 0, 0, 0),
                "{what}: event {k}: GPS columns not 0 without a valid JMDC header"
            );
            if layout == 2 {
                assert!(
                    !l3,
                    "{what}: event {k}: a flight level-3 record without JMDC"
                );
            }
        }
        if layout == 2 && ok {
            let s = sh.first.as_ref().expect("checked above");
            assert!(
                (0x10..=0x13).contains(&ty),
                "{what}: event {k} jmdc_type {ty}"
            );
            assert_eq!(
                e.run[k], e.run_tag[k],
                "{what}: event {k}: flight run != run_tag"
            );
            assert_eq!(e.time[k], e.block_time[k], "{what}: event {k}: flight time");
            assert!(
                e.fine_time[k] % 1000 == 0 && e.fine_time[k] <= 65_535_000,
                "{what}: event {k}: flight fine_time {} is not milliseconds x 1000",
                e.fine_time[k]
            );
            assert_eq!(e.jmdc_status[k], 0, "{what}: event {k}: flight jmdc_status");
            assert_eq!(
                (e.gps_week[k], e.gps_second[k], e.gps_fraction[k]),
                (0, 0, 0),
                "{what}: event {k}: 2007 GPS fields in a flight event"
            );
            assert_eq!(e.gps[k], ty & 2 != 0, "{what}: event {k}: gps vs TYPE");
            assert_eq!(l3, ty & 1 != 0, "{what}: event {k}: level3 vs TYPE");
            let lo = (s.data_start + 12) as u64;
            let hi = (s.data_start + 2 * s.data_words()) as u64;
            let mut at = lo;
            if l3 {
                assert!(
                    l3_off == lo && l3_words >= 1 && l3_off + 2 * u64::from(l3_words) <= hi,
                    "{what}: event {k}: level-3 record {l3_off}+2*{l3_words} not at word 6 of the JMDC header {lo}..{hi}"
                );
                at = l3_off + 2 * u64::from(l3_words);
            }
            let (g_off, g_words) = (e.gps_offset[k], e.gps_words[k]);
            if e.gps[k] {
                assert!(
                    g_off == at && g_words >= 1 && g_off + 2 * u64::from(g_words) <= hi,
                    "{what}: event {k}: GPS record {g_off}+2*{g_words} not after word 5 and the level-3 record ({at}) in the JMDC header (..{hi})"
                );
                if gps_n > 0 {
                    assert_eq!(
                        2 * gps_n as u32,
                        g_words,
                        "{what}: event {k}: {gps_n} GPS values in {g_words} words"
                    );
                    for (i, &v) in values[..gps_n].iter().enumerate() {
                        let at = g_off + 4 * i as u64;
                        let hi = word_at(data, order, at).expect("inside the record");
                        let lo = word_at(data, order, at + 2).expect("inside the record");
                        assert_eq!(
                            v,
                            u32::from(hi) << 16 | u32::from(lo),
                            "{what}: event {k}: GPS value {i}"
                        );
                    }
                }
            } else {
                assert_eq!(
                    (g_off, g_words, gps_n),
                    (0, 0, 0),
                    "{what}: event {k}: GPS record without TYPE bit 1"
                );
            }
        } else {
            assert_eq!(
                (e.gps_offset[k], e.gps_words[k], gps_n),
                (0, 0, 0),
                "{what}: event {k}: a GPS record outside the flight layout"
            );
            if ok {
                assert_eq!(ty, 5, "{what}: event {k}: 2007 jmdc_type");
                assert_eq!(e.run_type[k], 0, "{what}: event {k}: 2007 run_type");
            }
        }
        shapes.push(sh);
    }

    // Fragments.
    let f = &t.fragments;
    let layout_of = |ev: i64| e.layout[(ev as usize) - first];
    let mut top_of_group: Option<usize> = None;
    let mut last_end: BTreeMap<i64, u64> = BTreeMap::new();
    let mut cdp_expected: BTreeMap<i64, usize> = BTreeMap::new();
    let mut unknown_expected: BTreeMap<i64, usize> = BTreeMap::new();
    for i in 0..f.len() {
        let (r, depth, ev, st) = (f.role[i], f.depth[i], f.event_index[i], f.node_status[i]);
        let k = (ev as usize) - first;
        let layout = layout_of(ev);
        assert!(r <= role::NODE, "{what}: fragment {i} role {r}");
        assert!(depth <= 2, "{what}: fragment {i} depth {depth}");
        assert_eq!(
            f.slave_id[i],
            (st & 0x1F) as u8,
            "{what}: fragment {i} slave_id"
        );
        assert_eq!(f.cdp[i], st & 0x20 != 0, "{what}: fragment {i} cdp");
        let (off, words) = (f.data_offset[i], u64::from(f.n_words[i]));
        let end = off + 2 * words;
        if f.jinf_mask[i] != 0 {
            assert!(is_jinf_role(r), "{what}: fragment {i}: a mask on role {r}");
        }
        let masks = layout == 2 || dialect == Dialect::Pc2009;
        if !masks {
            assert_eq!(
                f.jinf_mask[i], 0,
                "{what}: fragment {i}: a mask outside the flight layout"
            );
        }
        if f.coded_words[i] != 0 {
            assert!(
                depth == 0 && f.compressed[i],
                "{what}: fragment {i}: coded_words on a row that is no compressed top"
            );
        }
        if !f.compressed[i] {
            // A plain fragment's status word follows its data words.
            assert_eq!(
                word_at(data, order, end),
                Some(st),
                "{what}: fragment {i}: node_status is not the word after its data ({off}+2*{words})"
            );
            if masks && is_jinf_role(r) {
                let want = if words >= 2 {
                    let hi = word_at(data, order, end - 4).expect("inside the data");
                    let lo = word_at(data, order, end - 2).expect("inside the data");
                    u32::from(hi) << 16 | u32::from(lo)
                } else {
                    0
                };
                assert_eq!(
                    f.jinf_mask[i], want,
                    "{what}: fragment {i}: jinf_mask is not the two words before the status"
                );
            }
        }
        if depth == 0 {
            assert_eq!(f.port[i], -1, "{what}: top fragment {i} port");
            let g = usize::from(f.group[i]);
            let groups = &shapes[k].groups;
            assert!(
                g < groups.len(),
                "{what}: fragment {i}: group {g} of {} group sub-blocks",
                groups.len()
            );
            top_of_group = Some(i);
            if g == 255 && groups.len() > 256 {
                continue; // the group number saturates
            }
            let sub = &groups[g];
            assert_eq!(
                r,
                top_node_role(sub.node),
                "{what}: fragment {i}: top role {r} of NODE {}",
                sub.node
            );
            let decoded = 2 * (words + 3);
            if f.compressed[i] {
                let cw = u64::from(f.coded_words[i]);
                assert_eq!(
                    sub.type_, 4,
                    "{what}: fragment {i}: compressed group of TYPE {}",
                    sub.type_
                );
                assert_eq!(
                    cw,
                    sub.data_words() as u64,
                    "{what}: fragment {i}: coded_words"
                );
                assert_eq!(off, 2, "{what}: fragment {i}: compressed top data_offset");
                // Every code is at least a bit, and a short-form block holds 2 x 32767 bytes.
                assert!(
                    cw >= 1 && decoded <= 16 * cw && (sub.long || decoded <= 2 * 0x7FFF),
                    "{what}: fragment {i}: {cw} coded words decode to {decoded} bytes (long form: {})",
                    sub.long
                );
            } else {
                assert_eq!(
                    sub.type_, 1,
                    "{what}: fragment {i}: plain group of TYPE {}",
                    sub.type_
                );
                assert_eq!(
                    off,
                    sub.data_start as u64 + 2,
                    "{what}: fragment {i}: top data_offset"
                );
                assert_eq!(
                    words + 3,
                    sub.data_words() as u64,
                    "{what}: fragment {i}: top n_words"
                );
            }
        } else {
            let p = f.parent[i];
            let pu = p as usize;
            let pr = f.role[pu];
            assert_eq!(f.port[i], f.slave_id[i] as i8, "{what}: fragment {i} port");
            assert!(
                is_concentrator_role(pr),
                "{what}: fragment {i}: parent role {pr} is no concentrator"
            );
            let want = match pr {
                role::JINJ => jinj_port_role(f.slave_id[i]),
                role::JINF_U => role::UDR,
                _ => role::XDR,
            };
            assert_eq!(
                r, want,
                "{what}: fragment {i}: role {r} under role {pr} on port {}",
                f.slave_id[i]
            );
            let top = top_of_group.expect("a top row comes first");
            assert!(
                f.group[i] == f.group[top]
                    && f.event_index[top] == ev
                    && f.compressed[i] == f.compressed[top],
                "{what}: fragment {i}: not in the group of top row {top}"
            );
            // Inside the parent's content (before its mask words), after the elder siblings.
            let (po, pw) = (f.data_offset[pu], u64::from(f.n_words[pu]));
            let mut pend = po + 2 * pw;
            if (layout == 2 || dialect == Dialect::Pc2009) && is_jinf_role(pr) {
                pend = pend.saturating_sub(4);
            }
            assert!(
                off >= po + 2 && end + 2 <= pend,
                "{what}: fragment {i} ({off}+2*{words}) outside its parent {p}'s content {po}..{pend}"
            );
            let prev = last_end.get(&p).copied().unwrap_or(po);
            assert!(
                off >= prev + 2,
                "{what}: fragment {i} at {off} overlaps its elder sibling (ends at {prev})"
            );
            last_end.insert(p, end + 2);
        }
        if layout == 2 {
            if expected_cdp(r).is_some_and(|c| c != f.cdp[i]) {
                *cdp_expected.entry(ev).or_default() += 1;
            }
            if r == role::UNKNOWN_PORT {
                *unknown_expected.entry(ev).or_default() += 1;
            }
        }
    }

    // Problems.
    let mut cdp_found: BTreeMap<i64, usize> = BTreeMap::new();
    let mut unknown_found: BTreeMap<i64, usize> = BTreeMap::new();
    for p in &t.problems {
        let k = (p.event_index as usize) - first;
        let b = &shapes[k].block;
        assert!(
            b.offset as u64 <= p.offset && p.offset <= b.next as u64,
            "{what}: problem of event {k} at {} outside the event {}..{}: {p:?}",
            p.offset,
            b.offset,
            b.next
        );
        let layout = e.layout[k];
        match p.kind {
            K::CdpMismatch | K::UnknownPort | K::Level3Length | K::GpsLength | K::JmdcShort => {
                assert_eq!(
                    layout, 2,
                    "{what}: a flight-layout problem in a {layout} event: {p:?}"
                )
            }
            K::JmdcSize | K::JmdcGpsMismatch => {
                assert_eq!(
                    layout, 1,
                    "{what}: a 2007-layout problem in a {layout} event: {p:?}"
                )
            }
            K::HuffmanInvalid | K::CrcMismatch => {
                assert!(!e.crc_ok[k], "{what}: {p:?} but crc_ok")
            }
            _ => {}
        }
        match p.kind {
            K::CdpMismatch => *cdp_found.entry(p.event_index).or_default() += 1,
            K::UnknownPort => *unknown_found.entry(p.event_index).or_default() += 1,
            _ => {}
        }
    }
    assert_eq!(
        cdp_found, cdp_expected,
        "{what}: cdp_mismatch rows != flight fragments whose CDP bit disagrees with their role"
    );
    assert_eq!(
        unknown_found, unknown_expected,
        "{what}: unknown_port rows != flight fragments on unknown ports"
    );

    // TRD: 2007 amplitudes are 15-bit fields, raw ADC values 12-bit.
    let h = &t.hits;
    for i in 0..h.len() {
        let layout = layout_of(h.event_index[i]);
        assert!(
            layout == 2 || h.amplitude[i] >= 0,
            "{what}: hit {i}: negative amplitude in a {layout} event"
        );
    }
    assert!(
        t.raw.adc.iter().all(|&v| v <= 0x0FFF),
        "{what}: raw ADC above 12 bits"
    );
}

/// One opened file: index, full decode, problems, and the same through `Want::NONE`
/// and a split range.
/// `blocks(nested=True)` and `lef_raw()` (FORMAT.md 10, 11.1): rows in file order, each
/// inner block inside its envelope, one level deeper, at most 4 deep; the top-level rows
/// are `blocks()`; LEF rows hold 1024 samples of 14 bits and are nested or top-level rows.
fn check_nested(what: &str, data: &[u8], f: &AmsFile) {
    let (b, nest) = f.blocks_nested();
    let n = b.len();
    assert_eq!(nest.len(), n, "{what}: nested columns");
    assert!(
        b.offset.windows(2).all(|w| w[0] < w[1]),
        "{what}: nested rows not in file order"
    );
    let top: Vec<u64> = (0..n)
        .filter(|&i| nest.depth[i] == 0)
        .map(|i| b.offset[i])
        .collect();
    assert_eq!(
        top,
        f.index().blocks,
        "{what}: nested top-level rows != blocks()"
    );
    for i in 0..n {
        let (d, e) = (nest.depth[i], nest.envelope[i]);
        assert!(d <= 4, "{what}: depth {d}");
        if d == 0 {
            assert_eq!(e, -1, "{what}: top-level row with an envelope");
            assert_eq!(nest.time_us[i], 0);
        } else {
            let e = usize::try_from(e).expect("inner row has an envelope");
            assert!(
                e < i && nest.depth[e] + 1 == d,
                "{what}: envelope row {e} of row {i}"
            );
            assert!(
                envelope_holds(data, f.byte_order(), b.offset[e], b.offset[i]),
                "{what}: row {i} outside its envelope"
            );
        }
    }
    let l = f.lef_raw();
    assert_eq!(l.adc.len(), 1024 * l.len(), "{what}: LEF adc length");
    assert!(
        l.adc.iter().all(|&v| v < 1 << 14),
        "{what}: LEF sample above 14 bits"
    );
    assert!(
        l.offset.iter().all(|o| b.offset.binary_search(o).is_ok()),
        "{what}: LEF row not a block"
    );
}

pub fn check_file(what: &str, data: &[u8], f: &AmsFile) {
    let order = f.byte_order();
    check_index(data, order, f.index());
    check_nested(what, data, f);
    let n = f.n_events();
    let all = f.decode(0, n, Want::ALL);
    check_tables(what, data, &f.index().events, 0, &all, Want::ALL);
    check_layouts(what, data, order, f.dialect(), &f.index().events, 0, &all);
    let none = f.decode(0, n, Want::NONE);
    assert_eq!(
        none.problems.len(),
        all.problems.len(),
        "{what}: problems depend on Want"
    );
    // Lenient table decodes walk only the TRD paths (and events alone compute the CRCs):
    // the same rows, and problems that are some of the full decode's, in order.
    for lenient in [
        Want {
            events: true,
            checks: false,
            ..Want::NONE
        },
        Want {
            hits: true,
            raw: true,
            checks: false,
            ..Want::NONE
        },
    ] {
        let t = f.decode(0, n, lenient);
        if lenient.events {
            // unix_time is NaN without a JMDC: compare it bit for bit, the rest as is.
            let bits = |e: &ams02::columns::EventColumns| {
                e.unix_time.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
            };
            assert_eq!(
                bits(&t.events),
                bits(&all.events),
                "{what}: lenient unix_time"
            );
            let (mut a, mut b) = (t.events.clone(), all.events.clone());
            a.unix_time.clear();
            b.unix_time.clear();
            assert_eq!(a, b, "{what}: lenient events");
        }
        if lenient.hits {
            assert_eq!(t.hits, all.hits, "{what}: lenient hits");
            assert_eq!(t.raw, all.raw, "{what}: lenient raw");
        }
        let mut rest = all.problems.iter();
        for p in &t.problems {
            assert!(
                rest.any(|q| q == p),
                "{what}: lenient problem {p:?} not among the full decode's"
            );
        }
    }
    let k = n / 2;
    let a = f.decode(0, k, Want::ALL);
    let b = f.decode(k, n, Want::ALL);
    check_tables(what, data, &f.index().events[..k], 0, &a, Want::ALL);
    check_tables(what, data, &f.index().events[k..], k, &b, Want::ALL);
    check_layouts(
        what,
        data,
        order,
        f.dialect(),
        &f.index().events[..k],
        0,
        &a,
    );
    check_layouts(
        what,
        data,
        order,
        f.dialect(),
        &f.index().events[k..],
        k,
        &b,
    );
    assert_eq!(a.events.len() + b.events.len(), n);
    assert_eq!(
        a.problems.len() + b.problems.len(),
        all.problems.len(),
        "{what}: split decode problems"
    );
    assert_eq!(
        a.hits.len() + b.hits.len(),
        all.hits.len(),
        "{what}: split decode hits"
    );
    let problems = f.problems();
    check_problems(what, problems, data.len());
    assert!(
        problems.windows(2).all(|w| w[0].offset <= w[1].offset),
        "{what}: problems() not sorted"
    );
    assert_eq!(
        problems.len(),
        f.index().problems.len() + all.problems.len()
    );
    let blocks = f.blocks();
    assert_eq!(blocks.offset, f.index().blocks);
}

/// `data` opened in an explicit byte order, which never fails but for a btdaq LEF file of
/// the word-size layout (FORMAT.md 11.1), refused whatever the order.
pub fn open_explicit(data: &[u8], order: ByteOrder) -> Option<AmsFile> {
    match AmsFile::from_source(Source::from_vec(data.to_vec()), Some(order), Vec::new()) {
        Ok(f) => Some(f),
        Err(e) => {
            assert!(
                lef::words_layout(data).is_some(),
                "{order}: an explicit byte order never fails but for a LEF words file: {e}"
            );
            None
        }
    }
}

/// Index and decode of every table in both explicit orders, and with detection.
pub fn event_decoder(data: &[u8]) {
    for order in ORDERS {
        let Some(f) = open_explicit(data, order) else {
            continue;
        };
        check_file(&format!("{order}"), data, &f);
    }
    if let Ok(f) = AmsFile::from_source(Source::from_vec(data.to_vec()), None, Vec::new()) {
        check_file("auto", data, &f);
    }
}

/// The packet walk, the packet tables and the science-stream reassembly, then the block
/// decoder on the reassembled stream.
pub fn ccsds(data: &[u8]) {
    // A second walk with an extra APID taken from the data, to reach that code too.
    let extra = data
        .first()
        .map(|&b| u16::from(b) << 3 & 0x7FF)
        .unwrap_or(0);
    for opts in [
        OpenOptions::default(),
        OpenOptions {
            scan: ScanOptions {
                extra_apids: vec![extra],
            },
            ..OpenOptions::default()
        },
    ] {
        let pf = PacketFile::from_source(Source::from_vec(data.to_vec()), "fuzz".into(), &opts)
            .expect("non-strict open never fails");
        check_packets(data, &pf);
        let serial = scan::scan_with(data, &opts.scan, false);
        assert_eq!(
            serial.offsets,
            pf.index().offsets,
            "parallel and serial walks differ"
        );
    }
}

fn check_packets(data: &[u8], pf: &PacketFile) {
    let len = data.len();
    let ix = pf.index();
    assert_eq!(ix.file_len, len as u64);
    assert_eq!(ix.offsets.len(), ix.headers.len());
    assert_eq!(ix.offsets.len(), ix.seq_gaps.len());
    let mut end = 0u64;
    for (i, (&off, h)) in ix.offsets.iter().zip(&ix.headers).enumerate() {
        assert!(
            off >= end,
            "packet {i} at {off} overlaps the one before (ends at {end})"
        );
        end = off + h.total_len() as u64;
        assert!(
            end <= len as u64,
            "packet {i} at {off} ends at {end}, past {len}"
        );
        assert!(
            h.header_len() <= h.total_len(),
            "packet {i} shorter than its headers"
        );
        assert_eq!(
            &data[off as usize..off as usize + 6],
            &h.0[..6],
            "packet {i} header bytes"
        );
    }
    check_problems("packet index", &ix.problems, len);
    let problems = pf.problems();
    check_problems("packet problems", &problems, len);
    let cols = pf.columns(&PacketColumn::ALL, None);
    assert_eq!(cols.len(), PacketColumn::ALL.len());
    let _ = pf.apid_summary();
    for apid in [977u16, 976, 124] {
        let (t, p) = pf.health_status(apid);
        assert!(t.len() <= ix.len());
        check_problems("health", &p, len);
    }
    let (c, p) = pf.verify_commands();
    assert!(c.ok.len() <= ix.len());
    check_problems("commands", &p, len);

    for apid in [976u16, 977] {
        let r = pf.reassemble(apid);
        check_problems("reassembly", &r.problems, len);
        assert_eq!(r.packets, ix.rows_of_apid(apid).len());
        // The map covers the stream, in order, and points at the same bytes.
        let m = &r.map;
        assert_eq!(m.stream_start.len(), m.file_start.len());
        assert_eq!(m.stream_start.len(), m.len.len());
        let mut at = 0u64;
        for i in 0..m.len.len() {
            assert_eq!(
                m.stream_start[i], at,
                "stream map piece {i} does not follow the one before"
            );
            let (s, f, l) = (
                m.stream_start[i] as usize,
                m.file_start[i] as usize,
                m.len[i] as usize,
            );
            assert!(
                f + l <= len,
                "stream map piece {i} runs past the packet file"
            );
            assert_eq!(
                &r.stream[s..s + l],
                &data[f..f + l],
                "stream map piece {i} bytes differ"
            );
            at += l as u64;
        }
        assert_eq!(
            at,
            r.stream.len() as u64,
            "stream map does not cover the stream"
        );
        if apid == 976 {
            if let Some(f) = open_explicit(&r.stream, ByteOrder::Big) {
                check_file("stream", &r.stream, &f);
            }
        }
    }
}
