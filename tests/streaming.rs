//! The streaming decode (issue 17): a file whose first call is a whole-file decode walks
//! and decodes in one pass (`AmsFile::decode_all`). Whatever the stretch the walk is cut
//! into, the thread count and the damage, it must give the same tables, problems, index,
//! envelope rows and dialect as walking the whole file first and decoding after.
//!
//! Run: `cargo test --release --test streaming`.

use ams02::decode::{Tables, Want};
use ams02::jmdc::Layout;
use ams02::simulate::{simulate_to_writer, SimConfig};
use ams02::source::Source;
use ams02::words::ByteOrder;
use ams02::AmsFile;
use proptest::prelude::*;

fn sim(n_events: u64, seed: u64, order: ByteOrder, layout: Layout, compressed: f64) -> Vec<u8> {
    let mut bytes = Vec::new();
    let cfg = SimConfig {
        n_events,
        seed,
        byte_order: order,
        other_block_every: 3,
        raw_fraction: 0.05,
        mixed_fraction: 0.05,
        layout,
        compressed,
        ..SimConfig::default()
    };
    simulate_to_writer(&mut bytes, &cfg).expect("simulate");
    bytes
}

/// Everything a decode and the index of an opened file give.
fn summary(f: &AmsFile, t: &Tables) -> String {
    let (blocks, nested) = f.blocks_nested();
    format!(
        "{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}",
        t.events,
        t.fragments,
        t.hits,
        t.raw,
        t.problems,
        f.index(),
        f.problems(),
        blocks,
        nested,
        f.dialect(),
        f.blocks(),
        f.coverage(),
    )
}

fn lazy(bytes: &[u8], order: ByteOrder, threads: usize) -> AmsFile {
    AmsFile::from_source_lazy(Source::from_vec(bytes.to_vec()), order, Vec::new())
        .expect("explicit order")
        .with_threads(threads)
}

/// Streams `bytes` in stretches of `stretch` bytes on `threads` threads and compares
/// with the walk-first decode.
fn same(bytes: &[u8], order: ByteOrder, want: Want, stretch: usize, threads: usize) {
    let first = lazy(bytes, order, threads);
    let n = first.n_events();
    let expected = summary(&first, &first.decode(0, n, want));
    let streamed = lazy(bytes, order, threads);
    assert!(!streamed.is_indexed());
    let t = streamed.decode_all_by(want, stretch);
    assert!(
        streamed.is_indexed(),
        "the streaming decode keeps its index"
    );
    let got = summary(&streamed, &t);
    assert!(
        got == expected,
        "stretch {stretch}, {threads} threads, {want:?}: the streaming decode differs"
    );
}

/// Wants whose problems are complete and one whose are not.
const WANTS: [Want; 3] = [
    Want::ALL,
    Want::NONE,
    Want {
        events: true,
        fragments: false,
        hits: true,
        raw: false,
        checks: false,
    },
];

#[test]
fn undamaged_runs_of_both_layouts_stream_as_they_index() {
    for (layout, compressed) in [
        (Layout::Flight, 1.0),
        (Layout::Flight, 0.5),
        (Layout::Seed2007, 0.0),
    ] {
        for order in [ByteOrder::Little, ByteOrder::Big] {
            let bytes = sim(60, 7, order, layout, compressed);
            for want in WANTS {
                for (stretch, threads) in [(1, 1), (3000, 1), (3000, 3), (1 << 30, 2)] {
                    same(&bytes, order, want, stretch, threads);
                }
            }
        }
    }
}

#[test]
fn empty_and_eventless_data_stream() {
    for bytes in [Vec::new(), vec![0u8; 3], vec![0x02, 0x00, 0x00, 0x00]] {
        same(&bytes, ByteOrder::Little, Want::ALL, 1, 1);
        same_ranges(&bytes, ByteOrder::Little, Want::ALL, 3, 1);
    }
}

#[test]
fn event_ranges_stream_as_they_index() {
    for (layout, compressed) in [(Layout::Flight, 1.0), (Layout::Seed2007, 0.0)] {
        for order in [ByteOrder::Little, ByteOrder::Big] {
            let bytes = sim(50, 11, order, layout, compressed);
            for (step, threads) in [(1, 1), (7, 2), (100, 1)] {
                same_ranges(&bytes, order, Want::ALL, step, threads);
            }
        }
    }
}

#[test]
fn a_second_decode_uses_the_index_of_the_first() {
    let order = ByteOrder::Little;
    let bytes = sim(40, 3, order, Layout::Flight, 1.0);
    let f = lazy(&bytes, order, 2);
    let a = f.decode_all_by(Want::ALL, 5000);
    let b = f.decode_all(Want::ALL);
    assert_eq!(a.events, b.events);
    assert_eq!(a.hits, b.hits);
    assert_eq!(f.n_events(), 40);
}

/// A streaming read of event ranges: the walk taken on as far as each range needs
/// (`walk_to`), each range decoded from the events known (`decode_known`).
fn same_ranges(bytes: &[u8], order: ByteOrder, want: Want, step: usize, threads: usize) {
    let first = lazy(bytes, order, threads);
    let n = first.n_events();
    let streamed = lazy(bytes, order, threads);
    let mut a = 0;
    loop {
        let (known, done) = streamed.walk_to(0, Some(a + step));
        assert!(
            done || known >= a + step,
            "walk_to stops short: {known} < {}",
            a + step
        );
        let b = (a + step).min(known);
        if b <= a {
            assert!(done);
            break;
        }
        assert_eq!(
            streamed.known_event(a),
            first.index().events.get(a).copied()
        );
        let got = streamed.decode_known(a, b, want);
        let expected = first.decode(a, b, want);
        assert!(
            format!(
                "{:?}{:?}{:?}{:?}{:?}",
                got.events, got.fragments, got.hits, got.raw, got.problems
            ) == format!(
                "{:?}{:?}{:?}{:?}{:?}",
                expected.events, expected.fragments, expected.hits, expected.raw, expected.problems
            ),
            "events {a}..{b} differ"
        );
        a = b;
    }
    assert_eq!(a, n);
    assert!(streamed.is_indexed(), "the walk to the end keeps its index");
    assert_eq!(
        summary(&streamed, &Tables::default()),
        summary(&first, &Tables::default())
    );
    // Byte targets: every event before the target is known.
    let bytes_file = lazy(bytes, order, threads);
    for (k, &off) in first.index().events.iter().enumerate().step_by(step) {
        let (known, _) = bytes_file.walk_to(off as usize + 1, None);
        assert!(known > k);
        assert_eq!(bytes_file.known_events_before(off + 1), k + 1);
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 48,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Damaged runs (bit flips, junk, a cut) stream as they index, whatever the stretch
    /// and the thread count.
    #[test]
    fn damaged_runs_stream_as_they_index(seed in 0u64..1_000_000, n in 10u64..=40, big: bool,
                                         flight: bool, kind: u8, a: u64, b: u64,
                                         junk in prop::collection::vec(any::<u8>(), 1..48),
                                         stretch in 1usize..20_000, threads in 1usize..=3) {
        let order = if big { ByteOrder::Big } else { ByteOrder::Little };
        let layout = if flight { Layout::Flight } else { Layout::Seed2007 };
        let mut bytes = sim(n, seed, order, layout, if flight { 0.7 } else { 0.0 });
        let len = bytes.len() as u64;
        match kind % 4 {
            0 => bytes.truncate((a % len) as usize),
            1 => {
                for k in 0..1 + b % 8 {
                    let at = (a.wrapping_add(k.wrapping_mul(b | 1)) % len) as usize;
                    bytes[at] ^= (b >> 8) as u8 | 1;
                }
            }
            2 => {
                let at = (a % len) as usize;
                bytes.splice(at..at, junk.iter().copied());
            }
            _ => {}
        }
        for want in WANTS {
            same(&bytes, order, want, stretch, threads);
        }
        same_ranges(&bytes, order, Want::ALL, 1 + stretch % 13, threads);
    }
}
