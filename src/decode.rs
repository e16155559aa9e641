//! The parallel driver: event blocks are split into chunks, each decoded on a rayon worker
//! into its own tables, and the chunks joined in file order.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use rayon::prelude::*;

use crate::block;
use crate::columns::{
    extend_from_iters, BlockColumns, EventColumns, FragmentColumns, HitColumns, RawColumns,
};
use crate::dialect::Dialect;
use crate::event::EventDecoder;
use crate::problems::Problem;
use crate::trd::{lut_columns, HitLut, TrdMap};
use crate::words::{Be, ByteOrder, Le, Order};

/// Which tables to fill. Problems are always collected, and are the same whatever is asked
/// as long as `checks` is set (or both `events` and `fragments`: see [`Want::complete`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Want {
    /// `events()` rows.
    pub events: bool,
    /// `fragments()` rows.
    pub fragments: bool,
    /// `trd_hits()` rows.
    pub hits: bool,
    /// `trd_raw()` rows.
    pub raw: bool,
    /// Run every check even when no table needs it, so that the problems are complete
    /// ([`Want::complete`]). Without it, the CRC is computed only for `events`
    /// (`crc_ok`), and the fragment trees are walked whole only for `fragments`
    /// ([`Want::walk_all`]): a decode of the events, hits or raw read-outs then reports
    /// only the problems on the paths it reads.
    pub checks: bool,
}

impl Want {
    /// Every table.
    pub const ALL: Want = Want {
        events: true,
        fragments: true,
        hits: true,
        raw: true,
        checks: true,
    };
    /// No table: problems only (complete, CRCs included).
    pub const NONE: Want = Want {
        events: false,
        fragments: false,
        hits: false,
        raw: false,
        checks: true,
    };

    /// Whether the group CRCs are computed.
    pub fn crc(&self) -> bool {
        self.checks || self.events
    }

    /// Whether every fragment tree is walked whole. Otherwise only the JINJ -> JINF-U ->
    /// UDR2 paths are, which is all that the events (`n_trd_hits`), hits and raw
    /// read-outs need; the problems inside the other detectors' subtrees then go
    /// unreported.
    pub fn walk_all(&self) -> bool {
        self.checks || self.fragments
    }

    /// Whether the problems found are every problem of the events decoded.
    pub fn complete(&self) -> bool {
        self.crc() && self.walk_all()
    }
}

/// The decoded tables of a range of events.
#[derive(Clone, Debug, Default)]
pub struct Tables {
    /// One row per event.
    pub events: EventColumns,
    /// One row per fragment; `parent` refers to rows of this table.
    pub fragments: FragmentColumns,
    /// One row per compressed TRD hit.
    pub hits: HitColumns,
    /// One row per raw read-out (448 `adc` values a row).
    pub raw: RawColumns,
    /// Problems, in file order.
    pub problems: Vec<Problem>,
    /// Hits not yet in `hits`: `key << 16 | amplitude` each (key from [`HitLut::key`]).
    /// [`Tables::flush_hits`] moves a group's hits into `hits`, or, with `defer_hits`,
    /// keeps them all with their events in `hit_runs` for the parallel join to expand
    /// straight into the result (a copy of twelve columns saved).
    pub(crate) pending_hits: Vec<u32>,
    /// `(event_index, end)`: the pending hits before `end` and after the previous run's
    /// end belong to that event.
    pub(crate) hit_runs: Vec<(i64, usize)>,
    /// Keep the hits pending (staging tables of the parallel decode).
    pub(crate) defer_hits: bool,
}

impl Tables {
    /// Removes every row, keeping the memory.
    fn clear(&mut self) {
        self.events.clear();
        self.fragments.clear();
        self.hits.clear();
        self.raw.clear();
        self.problems.clear();
        self.pending_hits.clear();
        self.hit_runs.clear();
    }

    /// Moves the pending hits of event `event_index` into `hits`, one tight loop a column
    /// (with `defer_hits`, records them as that event's instead).
    pub(crate) fn flush_hits(&mut self, event_index: i64, lut: &HitLut) {
        if self.defer_hits {
            let end = self.pending_hits.len();
            if end > self.hit_runs.last().map_or(0, |r| r.1) {
                self.hit_runs.push((event_index, end));
            }
            return;
        }
        let keys = &self.pending_hits;
        if keys.is_empty() {
            return;
        }
        let h = &mut self.hits;
        h.event_index
            .extend(std::iter::repeat_n(event_index, keys.len()));
        h.amplitude.extend(keys.iter().map(|&k| k as u16));
        macro_rules! fill {
            ($($col:ident),*) => {
                $(h.$col.extend(keys.iter().map(|&k| lut.$col[HitLut::at_packed(k)]));)*
            };
        }
        lut_columns!(fill);
        self.pending_hits.clear();
    }

    /// Appends the deferred hits of `parts` in order, each column filled from the keys in
    /// parallel on the current rayon pool.
    fn extend_deferred_hits(&mut self, parts: &[Tables], lut: &HitLut) {
        let lens: Vec<usize> = parts.iter().map(|t| t.pending_hits.len()).collect();
        let lens = &lens[..];
        let h = &mut self.hits;
        let keys = |i: usize| parts[i].pending_hits.iter();
        rayon::scope(|s| {
            s.spawn(|_| {
                extend_from_iters(&mut h.event_index, lens, |i| {
                    let mut start = 0;
                    parts[i].hit_runs.iter().flat_map(move |&(event, end)| {
                        let n = end.saturating_sub(start);
                        start = end;
                        std::iter::repeat_n(event, n)
                    })
                })
            });
            s.spawn(|_| extend_from_iters(&mut h.amplitude, lens, |i| keys(i).map(|&k| k as u16)));
            macro_rules! fill {
                ($($col:ident),*) => {
                    $(
                        let col = &mut h.$col;
                        s.spawn(move |_| {
                            extend_from_iters(col, lens, |i| {
                                keys(i).map(|&k| lut.$col[HitLut::at_packed(k)])
                            })
                        });
                    )*
                };
            }
            lut_columns!(fill);
        });
    }

    /// Appends `parts` in order, re-basing their fragment parents onto this table's rows,
    /// copying in parallel on the current rayon pool; the parts keep their memory.
    fn extend_parallel(&mut self, parts: &[Tables], lut: &HitLut) {
        let mut base = self.fragments.len() as i64;
        let mut parent_start = self.fragments.parent.len();
        let events: Vec<_> = parts.iter().map(|t| &t.events).collect();
        let fragments: Vec<_> = parts.iter().map(|t| &t.fragments).collect();
        let raw: Vec<_> = parts.iter().map(|t| &t.raw).collect();
        self.events.extend_parallel(&events);
        self.fragments.extend_parallel(&fragments);
        // Staging tables defer their hits (`defer_hits`): their hit columns stay empty.
        if parts.iter().any(|t| !t.pending_hits.is_empty()) {
            self.extend_deferred_hits(parts, lut);
        }
        self.raw.extend_parallel(&raw);
        // Fragment parents were rows of their part: re-base them onto this table.
        for part in parts {
            let n = part.fragments.len();
            if base > 0 {
                if let Some(parents) = self
                    .fragments
                    .parent
                    .get_mut(parent_start..parent_start + n)
                {
                    for p in parents.iter_mut().filter(|p| **p >= 0) {
                        *p += base;
                    }
                }
            }
            base += n as i64;
            parent_start += n;
        }
        for part in parts {
            self.problems.extend(part.problems.iter().cloned());
        }
    }
}

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

/// Events per parallel chunk: enough work per task, enough tasks per thread.
fn chunk_size(n: usize, threads: usize) -> usize {
    (n / (threads.max(1) * 16)).clamp(256, 16_384)
}

/// Called with each byte range `start..end` of events decoded, so that the caller can
/// release the memory behind it; from any decoding thread, the ranges in any order.
pub type Done<'a> = &'a (dyn Fn(usize, usize) + Sync);

/// Decodes the science events at `offsets` (rows `first_index ..` of `events()`).
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
) -> Tables {
    let args = (offsets, first_index, want, map, threads, done);
    match order {
        ByteOrder::Little => decode_with::<Le>(bytes, dialect, args),
        ByteOrder::Big => decode_with::<Be>(bytes, dialect, args),
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
fn prefetch(bytes: &[u8], start: usize, end: usize) {
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

fn decode_with<O: Order>(bytes: &[u8], dialect: Dialect, args: DecodeArgs<'_, '_>) -> Tables {
    let (offsets, first_index, want, map, threads, done) = args;
    let decoder = EventDecoder::<O>::new(bytes, map, want).with_dialect(dialect);
    let n_threads = if threads == 0 {
        rayon::current_num_threads()
    } else {
        threads
    };
    let pool = if n_threads > 1 { pool(threads) } else { None };
    let Some(pool) = pool else {
        let mut t = Tables::default();
        let size = chunk_size(offsets.len(), 1);
        for (k, chunk) in offsets.chunks(size).enumerate() {
            decode_into(&decoder, chunk, first_index + k * size, &mut t);
            let (a, b) = span(chunk, offsets.get((k + 1) * size).copied(), bytes.len());
            done(a, b);
        }
        return t;
    };
    // Rounds of one chunk per thread: each thread decodes into its own staging tables,
    // then the round is copied in parallel to the end of the result. The staging memory is
    // reused from round to round, so that new memory is touched once, for the result
    // (first touches are most of the cost of writing columns on a virtual machine, and
    // staging whole-file parts would double the peak memory).
    let size = chunk_size(offsets.len(), n_threads);
    let chunks: Vec<&[u64]> = offsets.chunks(size).collect();
    let mut staging: Vec<Tables> = (0..n_threads)
        .map(|_| Tables {
            defer_hits: true,
            ..Tables::default()
        })
        .collect();
    let mut all = Tables::default();
    pool.install(|| {
        for (r, round) in chunks.chunks(n_threads).enumerate() {
            let used = &mut staging[..round.len()];
            used.par_iter_mut()
                .zip(round.par_iter())
                .enumerate()
                .for_each(|(t, (tables, chunk))| {
                    tables.clear();
                    let k = r * n_threads + t;
                    decode_into(&decoder, chunk, first_index + k * size, tables);
                    // Each thread hands back its own chunk's bytes as soon as it is done
                    // with them, in parallel with the others' work (the staging tables
                    // hold no reference into them).
                    let (a, b) = span(chunk, offsets.get((k + 1) * size).copied(), bytes.len());
                    done(a, b);
                });
            all.extend_parallel(used, decoder.lut());
        }
    });
    all
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
