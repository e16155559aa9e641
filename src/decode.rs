//! The parallel driver: event blocks are split into chunks, each decoded on a rayon worker
//! into its own tables, and the chunks joined in file order.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use rayon::prelude::*;

use crate::block;
use crate::columns::BlockColumns;
use crate::dialect::Dialect;
use crate::event::EventDecoder;
use crate::group::AHEAD_EVENTS;
pub use crate::tables::{Tables, Want};
use crate::trd::TrdMap;
use crate::words::{Be, ByteOrder, Le, Order};

/// The rayon pool for a thread count (`0` = all cores), made once and kept.
pub fn pool(threads: usize) -> Option<Arc<rayon::ThreadPool>> {
    static POOLS: OnceLock<Mutex<HashMap<usize, Arc<rayon::ThreadPool>>>> = OnceLock::new();
    let pools = POOLS.get_or_init(|| Mutex::new(HashMap::new()));
    let mut guard = pools.lock().ok()?;
    if let Some(p) = guard.get(&threads) {
        return Some(p.clone());
    }
    let p = Arc::new(
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("ams02-{i}"))
            .build()
            .ok()?,
    );
    guard.insert(threads, p.clone());
    Some(p)
}

/// Events a thread decodes in one round of a parallel decode, at most (in chunks of
/// [`chunk_size`], at most [`MAX_CHUNKS_PER_THREAD`] of them): the staging memory a
/// round holds, a few MB a thread.
const ROUND_EVENTS: usize = 2048;

/// The most chunks a thread takes in one round.
const MAX_CHUNKS_PER_THREAD: usize = 8;

/// Events per parallel chunk: enough work per task, enough tasks per thread.
fn chunk_size(n: usize, threads: usize) -> usize {
    (n / (threads.max(1) * 16)).clamp(256, 16_384)
}

/// Called with each byte range `start..end` of events decoded, so that the caller can
/// release the memory behind it; from any decoding thread, the ranges in any order.
pub type Done<'a> = &'a (dyn Fn(usize, usize) + Sync);

/// Decodes the science events at `offsets` (rows `first_index ..` of `events()`),
/// appending to the tables `into` (empty, or of other data decoded before: the rows of
/// `events()` are then numbered on from `first_index`).
/// `threads`: 1 decodes on the calling thread; 0 uses every core; n uses n threads.
/// The result is the same for every thread count. `done` hears of each range decoded.
/// `dialect` is the file's (FORMAT.md 11.2).
#[allow(clippy::too_many_arguments)]
pub fn decode_events(
    bytes: &[u8],
    order: ByteOrder,
    dialect: Dialect,
    offsets: &[u64],
    first_index: usize,
    want: Want,
    map: &TrdMap,
    threads: usize,
    done: Done<'_>,
    into: Tables,
) -> Tables {
    let args = (offsets, first_index, want, map, threads, done);
    match order {
        ByteOrder::Little => decode_with::<Le>(bytes, dialect, args, into),
        ByteOrder::Big => decode_with::<Be>(bytes, dialect, args, into),
    }
}

/// The arguments of [`decode_events`] after the data, byte order and dialect.
type DecodeArgs<'a, 'd> = (&'a [u64], usize, Want, &'a TrdMap, usize, Done<'d>);

/// The bytes from the first event of `chunk` to the start of the event after it (`next`,
/// or the end of the data).
fn span(chunk: &[u64], next: Option<u64>, len: usize) -> (usize, usize) {
    let start = chunk.first().map_or(len, |&o| o as usize);
    let end = next.map_or(len, |o| o as usize);
    (start.min(len), end.min(len))
}

fn decode_into<O: Order>(
    decoder: &EventDecoder<'_, O>,
    offsets: &[u64],
    first_index: usize,
    t: &mut Tables,
) {
    if decoder.want().events {
        t.events.reserve(offsets.len());
    }
    for (i, &off) in offsets.iter().enumerate() {
        if i % AHEAD_EVENTS == 0 {
            let next = &offsets[i..(i + AHEAD_EVENTS).min(offsets.len())];
            t.ahead.prepare::<O>(decoder.bytes(), next);
        }
        // The walk chases length words through the event, each a dependent load the
        // hardware prefetcher cannot guess once a fragment is skipped: ask for the event
        // after the next now, so that its cache lines are on their way meanwhile.
        if let (Some(&a), Some(&b)) = (offsets.get(i + 2), offsets.get(i + 3)) {
            prefetch(decoder.bytes(), a as usize, b as usize);
        }
        decoder.decode(off as usize, (first_index + i) as i64, t);
    }
}

/// The most bytes asked for ahead of one event.
const PREFETCH_MAX: usize = 16 * 1024;

/// Hints the CPU to bring `bytes[start..end]` (at most [`PREFETCH_MAX`] bytes of it) into
/// the cache. Only a hint: nothing is read, out-of-range parts are ignored.
#[inline]
pub(crate) fn prefetch(bytes: &[u8], start: usize, end: usize) {
    let end = end.min(bytes.len()).min(start.saturating_add(PREFETCH_MAX));
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let mut pos = start;
        while pos < end {
            // `pos < end <= bytes.len()`: the pointer is inside the slice.
            let p = bytes[pos..].as_ptr() as *const i8;
            // SAFETY: PREFETCHT0 is SSE, part of the x86-64 baseline, and only a hint: it
            // reads nothing into the program and never faults, whatever the address.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(p) };
            pos += 64;
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (bytes, start, end);
    }
}

fn decode_with<O: Order>(
    bytes: &[u8],
    dialect: Dialect,
    args: DecodeArgs<'_, '_>,
    into: Tables,
) -> Tables {
    let (offsets, first_index, want, map, threads, done) = args;
    let mut d = Decoding::<O>::new(bytes, dialect, want, map, threads).appending_to(into);
    d.push_in_pool(offsets, first_index, bytes.len(), done);
    d.finish()
}

/// A decode fed with events a batch at a time (all at once for [`decode_events`], a
/// stretch of the block walk at a time for a streaming decode): the result is the same
/// however the events are cut into batches.
pub struct Decoding<'a, O: Order> {
    decoder: EventDecoder<'a, O>,
    /// The pool of a parallel decode (more than one thread).
    pool: Option<Arc<rayon::ThreadPool>>,
    n_threads: usize,
    /// One staging table per thread, reused from round to round.
    staging: Vec<Tables>,
    all: Tables,
}

impl<'a, O: Order> Decoding<'a, O> {
    /// A decode of `bytes` in `dialect` into the tables in `want`; `threads` as in
    /// [`decode_events`].
    pub fn new(
        bytes: &'a [u8],
        dialect: Dialect,
        want: Want,
        map: &'a TrdMap,
        threads: usize,
    ) -> Self {
        let decoder = EventDecoder::<O>::new(bytes, map, want).with_dialect(dialect);
        let n_threads = if threads == 0 {
            rayon::current_num_threads()
        } else {
            threads
        };
        let pool = if n_threads > 1 { pool(threads) } else { None };
        let n_threads = if pool.is_some() { n_threads } else { 1 };
        let staging = if pool.is_some() {
            (0..n_threads)
                .map(|_| Tables {
                    defer_hits: true,
                    ..Tables::default()
                })
                .collect()
        } else {
            Vec::new()
        };
        Decoding {
            decoder,
            pool,
            n_threads,
            staging,
            all: Tables::default(),
        }
    }

    /// The same decode appending its rows to `all` (tables of other data decoded before,
    /// whose fragment rows the new `parent` values then count on from).
    pub fn appending_to(mut self, all: Tables) -> Self {
        self.all = all;
        self
    }

    /// The pool of a parallel decode, `None` on one thread.
    pub fn pool(&self) -> Option<Arc<rayon::ThreadPool>> {
        self.pool.clone()
    }

    /// Decodes the events at `offsets` (rows `first_index ..`), which are followed by the
    /// next event at byte `end` (or end at the end of the data): `done` hears of the byte
    /// ranges decoded, up to `end`. Call it from inside [`Decoding::pool`] (or from any
    /// thread on one thread).
    pub fn push(&mut self, offsets: &[u64], first_index: usize, end: usize, done: Done<'_>) {
        let len = self.decoder.bytes().len();
        let end = end.min(len);
        let after = |k: usize, size: usize| -> (usize, usize) {
            let chunk = &offsets[k * size..((k + 1) * size).min(offsets.len())];
            let (a, b) = span(chunk, offsets.get((k + 1) * size).copied(), len);
            (
                a,
                if (k + 1) * size >= offsets.len() {
                    end.max(a)
                } else {
                    b
                },
            )
        };
        if self.pool.is_none() {
            let size = chunk_size(offsets.len(), 1);
            for (k, chunk) in offsets.chunks(size).enumerate() {
                decode_into(&self.decoder, chunk, first_index + k * size, &mut self.all);
                let (a, b) = after(k, size);
                done(a, b);
            }
            return;
        }
        // Rounds of a few chunks a thread: each chunk is decoded into its own staging tables,
        // then the round is copied in parallel to the end of the result. The staging
        // memory is reused from round to round, so that new memory is touched once, for
        // the result (first touches are most of the cost of writing columns on a virtual
        // machine, and staging whole-file parts would double the peak memory).
        let n_threads = self.n_threads;
        let size = chunk_size(offsets.len(), n_threads);
        let chunks: Vec<&[u64]> = offsets.chunks(size).collect();
        // A round takes several small chunks a thread, so that the threads share them by
        // stealing (a round waits for its slowest chunk) and the join runs less often.
        let per_round = n_threads * (ROUND_EVENTS / size).clamp(1, MAX_CHUNKS_PER_THREAD);
        if self.staging.len() < per_round {
            self.staging.resize_with(per_round, || Tables {
                defer_hits: true,
                ..Tables::default()
            });
        }
        let decoder = &self.decoder;
        for (r, round) in chunks.chunks(per_round).enumerate() {
            let used = &mut self.staging[..round.len()];
            used.par_iter_mut()
                .zip(round.par_iter())
                .enumerate()
                .for_each(|(t, (tables, chunk))| {
                    tables.clear();
                    let k = r * per_round + t;
                    decode_into(decoder, chunk, first_index + k * size, tables);
                    // Each thread hands back its own chunk's bytes as soon as it is done
                    // with them, in parallel with the others' work (the staging tables
                    // hold no reference into them).
                    let (a, b) = after(k, size);
                    done(a, b);
                });
            self.all.extend_parallel(used, decoder.lut());
        }
    }

    /// [`Decoding::push`] from any thread: inside the pool when there is one.
    pub fn push_in_pool(
        &mut self,
        offsets: &[u64],
        first_index: usize,
        end: usize,
        done: Done<'_>,
    ) {
        match self.pool() {
            Some(pool) => pool.install(|| self.push(offsets, first_index, end, done)),
            None => self.push(offsets, first_index, end, done),
        }
    }

    /// The tables decoded.
    pub fn finish(self) -> Tables {
        self.all
    }
}

/// `blocks()`: the header of every block at `offsets`.
pub fn block_table(bytes: &[u8], order: ByteOrder, offsets: &[u64]) -> BlockColumns {
    match order {
        ByteOrder::Little => block_table_with::<Le>(bytes, offsets),
        ByteOrder::Big => block_table_with::<Be>(bytes, offsets),
    }
}

fn block_table_with<O: Order>(bytes: &[u8], offsets: &[u64]) -> BlockColumns {
    let mut t = BlockColumns::default();
    t.reserve(offsets.len());
    for &off in offsets {
        // Offsets come from the index, so headers parse; a default row guards the impossible.
        let h = block::parse::<O>(bytes, off as usize, bytes.len(), true).unwrap_or_default();
        t.offset.push(off);
        t.size.push(h.size);
        t.long.push(h.long);
        t.rr.push(h.rr);
        t.rw.push(h.rw);
        t.node.push(h.node);
        t.type_.push(h.type_);
        t.type_ext.push(h.type_ext);
        t.data_type.push(h.data_type());
        t.status.push(h.status);
        t.tag.push(h.tag);
        t.time.push(h.time);
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jmdc::Layout;
    use crate::problems::ProblemKind;
    use crate::simulate::{simulate_to_writer, SimConfig};
    use crate::source::Source;
    use crate::AmsFile;

    /// A flight-layout run, most of its groups Huffman-coded, with one byte in every
    /// 2,000 or so overwritten at random (most land in coded streams).
    fn damaged_run(order: ByteOrder, seed: u64) -> Vec<u8> {
        let cfg = SimConfig {
            n_events: 300,
            seed,
            byte_order: order,
            layout: Layout::Flight,
            compressed: 0.8,
            ..SimConfig::default()
        };
        let mut bytes = Vec::new();
        simulate_to_writer(&mut bytes, &cfg).expect("simulate");
        let mut x = seed | 1;
        let mut at = 0usize;
        loop {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            at += 1 + (x % 4000) as usize;
            let Some(b) = bytes.get_mut(at) else { break };
            *b = (x >> 32) as u8;
        }
        bytes
    }

    #[test]
    fn groups_decoded_ahead_equal_groups_decoded_where_the_walk_meets_them() {
        // The decode of a chunk decodes the coded groups of its next events side by side
        // (`group::Ahead`); decoding one event at a time, with nothing decoded ahead,
        // decodes each group where the walk meets it. Both give the same tables and
        // problems, on damaged runs, in both byte orders, on 1 and 2 threads.
        let mut invalid = 0;
        for order in [ByteOrder::Little, ByteOrder::Big] {
            for seed in [1u64, 2, 3] {
                let bytes = damaged_run(order, seed);
                let f =
                    AmsFile::from_source(Source::from_vec(bytes.clone()), Some(order), Vec::new())
                        .expect("indexed");
                let offsets = &f.index().events;
                let map = f.map();
                let mut one_by_one = Tables::default();
                match order {
                    ByteOrder::Little => {
                        let d = EventDecoder::<Le>::new(&bytes, map, Want::ALL)
                            .with_dialect(f.dialect());
                        for (i, &o) in offsets.iter().enumerate() {
                            d.decode(o as usize, i as i64, &mut one_by_one);
                        }
                    }
                    ByteOrder::Big => {
                        let d = EventDecoder::<Be>::new(&bytes, map, Want::ALL)
                            .with_dialect(f.dialect());
                        for (i, &o) in offsets.iter().enumerate() {
                            d.decode(o as usize, i as i64, &mut one_by_one);
                        }
                    }
                }
                invalid += one_by_one
                    .problems
                    .iter()
                    .filter(|p| p.kind == ProblemKind::HuffmanInvalid)
                    .count();
                assert!(one_by_one.hits.event_index.len() > 1000, "the run has hits");
                for threads in [1, 2] {
                    let t = decode_events(
                        &bytes,
                        order,
                        f.dialect(),
                        offsets,
                        0,
                        Want::ALL,
                        map,
                        threads,
                        &|_, _| {},
                        Tables::default(),
                    );
                    // Compared as printed: NaN times (events without a valid JMDC) print
                    // alike but are not equal.
                    let rows = |t: &Tables| {
                        format!(
                            "{:?}\n{:?}\n{:?}\n{:?}\n{:?}",
                            t.events, t.fragments, t.hits, t.raw, t.problems
                        )
                    };
                    assert!(
                        rows(&t) == rows(&one_by_one),
                        "{order:?} seed {seed}, {threads} threads: the tables differ"
                    );
                }
            }
        }
        assert!(
            invalid > 20,
            "the damage reached coded streams ({invalid} huffman_invalid)"
        );
    }
}
