//! The parallel driver: event blocks are split into chunks, each decoded on a rayon worker
//! into its own tables, and the chunks joined in file order.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use rayon::prelude::*;

use crate::block;
use crate::columns::{BlockColumns, EventColumns, FragmentColumns, HitColumns, RawColumns};
use crate::event::EventDecoder;
use crate::problems::Problem;
use crate::trd::TrdMap;
use crate::words::{Be, ByteOrder, Le, Order};

/// Which tables to fill. Problems are always collected, and are the same whatever is asked.
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
}

impl Want {
    /// Every table.
    pub const ALL: Want = Want {
        events: true,
        fragments: true,
        hits: true,
        raw: true,
    };
    /// No table: problems only.
    pub const NONE: Want = Want {
        events: false,
        fragments: false,
        hits: false,
        raw: false,
    };
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
}

impl Tables {
    /// Appends `other`, re-basing its fragment parents onto this table's rows.
    pub fn append(&mut self, mut other: Tables) {
        let base = self.fragments.len() as i64;
        if base > 0 {
            for p in other.fragments.parent.iter_mut().filter(|p| **p >= 0) {
                *p += base;
            }
        }
        self.events.append(&mut other.events);
        self.fragments.append(&mut other.fragments);
        self.hits.append(&mut other.hits);
        self.raw.append(&mut other.raw);
        self.problems.append(&mut other.problems);
    }

    fn reserve_like(&mut self, parts: &[Tables]) {
        let sum = |f: &dyn Fn(&Tables) -> usize| parts.iter().map(f).sum::<usize>();
        self.events.reserve(sum(&|t| t.events.len()));
        self.fragments.reserve(sum(&|t| t.fragments.len()));
        self.hits.reserve(sum(&|t| t.hits.len()));
        let raw_rows = sum(&|t| t.raw.len());
        self.raw.event_index.reserve(raw_rows);
        self.raw.crate_.reserve(raw_rows);
        self.raw.slot.reserve(raw_rows);
        self.raw.udr.reserve(raw_rows);
        self.raw.adc.reserve(raw_rows * crate::trd::UDR_CHANNELS);
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

/// Decodes the science events at `offsets` (rows `first_index ..` of `events()`).
/// `threads`: 1 decodes on the calling thread; 0 uses every core; n uses n threads.
/// The result is the same for every thread count.
pub fn decode_events(
    bytes: &[u8],
    order: ByteOrder,
    offsets: &[u64],
    first_index: usize,
    want: Want,
    map: &TrdMap,
    threads: usize,
) -> Tables {
    match order {
        ByteOrder::Little => decode_with::<Le>(bytes, offsets, first_index, want, map, threads),
        ByteOrder::Big => decode_with::<Be>(bytes, offsets, first_index, want, map, threads),
    }
}

fn decode_chunk<O: Order>(
    decoder: &EventDecoder<'_, O>,
    offsets: &[u64],
    first_index: usize,
) -> Tables {
    let mut t = Tables::default();
    if t.events.offset.capacity() == 0 {
        t.events.reserve(offsets.len());
    }
    for (i, &off) in offsets.iter().enumerate() {
        decoder.decode(off as usize, (first_index + i) as i64, &mut t);
    }
    t
}

fn decode_with<O: Order>(
    bytes: &[u8],
    offsets: &[u64],
    first_index: usize,
    want: Want,
    map: &TrdMap,
    threads: usize,
) -> Tables {
    let decoder = EventDecoder::<O>::new(bytes, map, want);
    let n_threads = if threads == 0 {
        rayon::current_num_threads()
    } else {
        threads
    };
    let pool = if n_threads > 1 { pool(threads) } else { None };
    let Some(pool) = pool else {
        return decode_chunk(&decoder, offsets, first_index);
    };
    let size = chunk_size(offsets.len(), n_threads);
    let parts: Vec<Tables> = pool.install(|| {
        offsets
            .par_chunks(size)
            .enumerate()
            .map(|(k, chunk)| decode_chunk(&decoder, chunk, first_index + k * size))
            .collect()
    });
    let mut all = Tables::default();
    all.reserve_like(&parts);
    for part in parts {
        all.append(part);
    }
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
