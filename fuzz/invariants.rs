//! Invariants that must hold for ANY input, shared by the fuzz targets
//! (`fuzz/fuzz_targets/*.rs`) and the stable corpus replay (`tests/mutations.rs`), which
//! both include this file with `#[path]`. Every check panics with a message when it fails;
//! the decoders themselves must never panic.

#![allow(dead_code)]

use ams02::block;
use ams02::ccsds::scan::{self, ScanOptions};
use ams02::ccsds::table::PacketColumn;
use ams02::ccsds::{OpenOptions, PacketFile};
use ams02::decode::{Tables, Want};
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
        let f = AmsFile::from_source(Source::from_vec(data.to_vec()), None, Vec::new())
            .expect("detect_byte_order succeeded, so from_source(None) must too");
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
    ] {
        assert_eq!(v, rows, "{what}: fragment columns of different lengths");
    }
    for i in 0..rows {
        let end = f.data_offset[i] + 2 * u64::from(f.n_words[i]);
        assert!(
            end <= len,
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

/// Index and decode of every table in both explicit orders, and with detection.
pub fn event_decoder(data: &[u8]) {
    for order in ORDERS {
        let f = AmsFile::from_source(Source::from_vec(data.to_vec()), Some(order), Vec::new())
            .expect("an explicit byte order never fails");
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
            let f = AmsFile::from_source(
                Source::from_vec(r.stream.clone()),
                Some(ByteOrder::Big),
                Vec::new(),
            )
            .expect("explicit order");
            check_file("stream", &r.stream, &f);
        }
    }
}
