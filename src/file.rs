//! An opened block file or stream: its bytes, byte order, block index and decoders.

use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};

use crate::columns::BlockColumns;
use crate::decode::{self, Tables, Want};
use crate::detectors::lef::{self, LefRawColumns};
use crate::dialect::{self, Dialect};
use crate::envelope::{self, Nested, NestedBlockColumns};
use crate::index::{self, BlockIndex};
use crate::problems::{Error, Problem, Result};
use crate::source::Source;
use crate::trd::TrdMap;
use crate::words::{self, Be, ByteOrder, Le, Order};

/// An AMS block file (or reassembled stream), indexed and ready to decode.
pub struct AmsFile {
    source: Source,
    order: ByteOrder,
    /// The walk of the whole data: made when first needed, or by the first whole-file
    /// decode, which walks and decodes in one pass ([`AmsFile::decode_all`]).
    indexed: OnceLock<Indexed>,
    /// The dialect asked for; `None` reads the events in the one found in the data.
    dialect_asked: Option<Dialect>,
    /// A walk under way of a streaming read of event ranges ([`AmsFile::walk_to`]).
    partial: Mutex<Option<Partial>>,
    map: Arc<TrdMap>,
    threads: usize,
    /// Problems from outside the block data (e.g. the packet layer of a reassembled stream).
    extra_problems: Vec<Problem>,
    all_problems: OnceLock<Vec<Problem>>,
}

/// What the walk of the whole data finds.
struct Indexed {
    index: BlockIndex,
    /// The blocks inside envelopes (FORMAT.md 10).
    nested: Nested,
    /// The dialect found in the data (FORMAT.md 11.2), or the one asked for when the
    /// walk was a streaming decode in it.
    dialect: Dialect,
}

/// Adds the events and problems of the envelopes' inner blocks to the index (FORMAT.md
/// 10); the rest of the walk is kept.
fn merge_nested(index: &mut BlockIndex, mut nested: Nested) -> Nested {
    if !nested.events.is_empty() {
        index.events.append(&mut nested.events);
        index.events.sort_unstable();
        index.events.dedup();
    }
    if !nested.problems.is_empty() {
        index.problems.append(&mut nested.problems);
        index.problems.sort_by_key(|p| p.offset);
    }
    nested
}

/// Removes repeated values from a sorted slice, keeping the first of each; the number
/// of values kept, which are then at the start.
fn dedup_sorted(v: &mut [u64]) -> usize {
    let mut kept = 0;
    for i in 0..v.len() {
        if kept == 0 || v[i] != v[kept - 1] {
            v[kept] = v[i];
            kept += 1;
        }
    }
    kept
}

/// What a walk taken a stretch at a time has found so far beyond the top-level blocks.
struct Found {
    /// The blocks inside envelopes.
    nested: Nested,
    /// Every science event found, those inside envelopes included, in file order.
    events: Vec<u64>,
    /// Top-level blocks and events of the walk already absorbed.
    top_blocks: usize,
    top_events: usize,
    /// The dialect, once known: asked for, or found (FORMAT.md 11.2: the PC-DAQ dialect
    /// when every event fits it, so the first event that does not decides).
    dialect: Option<Dialect>,
}

impl Found {
    fn new(dialect: Option<Dialect>) -> Found {
        Found {
            nested: Nested::default(),
            events: Vec::new(),
            top_blocks: 0,
            top_events: 0,
            dialect,
        }
    }

    /// Takes in what the walk found since the last call: the envelopes among its new
    /// blocks, its new events, and the dialect when they decide it (`more`: the walk has
    /// not reached the end).
    fn absorb<O: Order>(
        &mut self,
        bytes: &[u8],
        order: ByteOrder,
        walk: &index::Stepper<'_, O>,
        more: bool,
    ) {
        let new_blocks = &walk.blocks()[self.top_blocks..];
        let inner = envelope::walk(bytes, order, new_blocks);
        let first_new = self.events.len();
        self.events
            .extend_from_slice(&walk.events()[self.top_events..]);
        if !inner.events.is_empty() {
            self.events.extend_from_slice(&inner.events);
            let part = &mut self.events[first_new..];
            part.sort_unstable();
            let kept = dedup_sorted(part);
            self.events.truncate(first_new + kept);
        }
        self.nested
            .append(inner, &walk.blocks()[..self.top_blocks], new_blocks);
        self.top_blocks = walk.blocks().len();
        self.top_events = walk.events().len();
        if self.dialect.is_none() {
            let other = self.events[first_new..]
                .iter()
                .enumerate()
                .any(|(i, &off)| !dialect::fits::<O>(bytes, off as usize, first_new + i));
            if other || (!more && self.events.is_empty()) {
                self.dialect = Some(Dialect::Seed);
            } else if !more {
                self.dialect = Some(Dialect::Pc2009);
            }
        }
    }

    /// The walk of the whole data, from the index of the walk to the end.
    fn into_indexed(mut self, mut index: BlockIndex) -> Indexed {
        index.events = self.events;
        if !self.nested.problems.is_empty() {
            index.problems.append(&mut self.nested.problems);
            index.problems.sort_by_key(|p| p.offset);
        }
        if !self.nested.any_envelope {
            self.nested.rows = Vec::new();
        }
        Indexed {
            index,
            nested: self.nested,
            dialect: self.dialect.unwrap_or(Dialect::Seed),
        }
    }
}

/// A walk suspended between two calls of a streaming read.
struct Partial {
    state: index::WalkState,
    found: Found,
}

/// How many bytes a streaming decode walks before it decodes the events found.
const STRETCH: usize = 16 << 20;

impl AmsFile {
    /// Opens a file. `order = None` detects the byte order (FORMAT.md 1); data
    /// that are not AMS block data are refused ([`index::check_block_data`]). A file that
    /// shrinks or changes while it is indexed gives [`Error::FileChanged`].
    pub fn open(path: &Path, order: Option<ByteOrder>, mmap: bool) -> Result<AmsFile> {
        let source = Source::open(path, mmap)?;
        if let Some(why) = lef::words_layout(&source) {
            return Err(Error::format(0, why));
        }
        let order = match order {
            Some(o) => o,
            // A fault or a change while detecting also explains a failure to detect.
            None => match index::detect_byte_order(&source) {
                Ok(o) => o,
                Err(e) => {
                    source.check()?;
                    return Err(e);
                }
            },
        };
        if let Err(e) = index::check_block_data(&source, order) {
            source.check()?;
            return Err(e);
        }
        let file = AmsFile::lazy(source, order, Vec::new());
        file.check()?;
        Ok(file)
    }

    /// A file whose data are walked when first needed (the byte order is known, the data
    /// checked).
    fn lazy(source: Source, order: ByteOrder, extra_problems: Vec<Problem>) -> AmsFile {
        AmsFile {
            source,
            order,
            indexed: OnceLock::new(),
            dialect_asked: None,
            partial: Mutex::new(None),
            map: Arc::new(TrdMap::flight()),
            threads: 0,
            extra_problems,
            all_problems: OnceLock::new(),
        }
    }

    /// Checks that the file has not shrunk or changed since it was opened (and that no
    /// read of its map faulted): [`Error::FileChanged`] otherwise, after which nothing
    /// decoded from it is to be trusted. Cheap (one `fstat`): the bindings call it after
    /// every call that reads the data.
    pub fn check(&self) -> Result<()> {
        self.source.check()
    }

    /// Whether the data are a memory map of the file (else read into memory, or owned).
    pub fn is_mapped(&self) -> bool {
        self.source.is_mapped()
    }

    /// Asks that the first `len` bytes of `next`, the next file of a multi-file read, be
    /// read ahead once the streaming walk of this file has asked the disk for its last
    /// byte ([`Source::read_ahead_after`]). False (nothing asked) when this file is walked
    /// already (its next decode streams nothing), not a shared map, or `next` cannot be
    /// opened: the caller may then advise the next file itself.
    pub fn read_ahead_after(&self, next: &std::path::Path, len: u64) -> bool {
        !self.is_indexed() && self.source.read_ahead_after(next, len)
    }

    /// Indexes bytes already in memory.
    pub fn from_source(
        source: Source,
        order: Option<ByteOrder>,
        extra_problems: Vec<Problem>,
    ) -> Result<AmsFile> {
        if let Some(why) = lef::words_layout(&source) {
            return Err(Error::format(0, why));
        }
        let order = match order {
            Some(o) => o,
            None => index::detect_byte_order(&source)?,
        };
        let file = AmsFile::from_source_lazy(source, order, extra_problems)?;
        file.indexed();
        Ok(file)
    }

    /// [`AmsFile::from_source`] in a known byte order, without walking the data yet: the
    /// first call that needs the index walks them, and a first whole-file decode walks
    /// and decodes in one pass ([`AmsFile::decode_all`]).
    pub fn from_source_lazy(
        source: Source,
        order: ByteOrder,
        extra_problems: Vec<Problem>,
    ) -> Result<AmsFile> {
        if let Some(why) = lef::words_layout(&source) {
            return Err(Error::format(0, why));
        }
        Ok(AmsFile::lazy(source, order, extra_problems))
    }

    /// The walk of the whole data, made now if no call has made it yet.
    fn indexed(&self) -> &Indexed {
        self.indexed.get_or_init(|| {
            let source = &self.source;
            let order = self.order;
            let mut index = index::build_releasing(source, order, &|a, b| source.release(a, b));
            // The envelopes' inner blocks: their science events are events, their problems
            // the index's (FORMAT.md 10).
            let nested = envelope::walk(source, order, &index.blocks);
            let nested = merge_nested(&mut index, nested);
            let dialect = dialect::detect(source, order, &index.events);
            // The index read every block header: let those pages go until a decode needs
            // them.
            source.release(0, source.len());
            Indexed {
                index,
                nested,
                dialect,
            }
        })
    }

    /// Whether the data have been walked (by a call that needed the index, or by a
    /// whole-file decode).
    pub fn is_indexed(&self) -> bool {
        self.indexed.get().is_some()
    }

    /// Uses another TRD map for decoding.
    pub fn with_map(mut self, map: Arc<TrdMap>) -> AmsFile {
        self.map = map;
        self.all_problems = OnceLock::new();
        self
    }

    /// Reads the events in `dialect` (FORMAT.md 11.2); `None` keeps the one found in the
    /// data when opening (`dialect="auto"`).
    pub fn with_dialect(mut self, dialect: Option<Dialect>) -> AmsFile {
        if let Some(d) = dialect {
            self.dialect_asked = Some(d);
            self.all_problems = OnceLock::new();
        }
        self
    }

    /// The dialect the events are read in.
    pub fn dialect(&self) -> Dialect {
        self.dialect_asked.unwrap_or_else(|| self.indexed().dialect)
    }

    /// The `blocks(nested=True)` table: every block, those inside envelopes right after
    /// their envelope, with depth, envelope row and fine-time microseconds.
    pub fn blocks_nested(&self) -> (BlockColumns, NestedBlockColumns) {
        let ix = self.indexed();
        let rows = ix.nested.all_rows(&ix.index.blocks);
        envelope::nested_table(&self.source, self.order, &rows)
    }

    /// The `lef_raw()` table: the LEF raw events (FORMAT.md 11.1), in file order.
    pub fn lef_raw(&self) -> LefRawColumns {
        let ix = self.indexed();
        let rows = ix.nested.all_rows(&ix.index.blocks);
        lef::lef_raw(&self.source, self.order, &rows)
    }

    /// Sets the thread count: 0 = all cores, 1 = serial.
    pub fn with_threads(mut self, threads: usize) -> AmsFile {
        self.threads = threads;
        self
    }

    /// The byte order.
    pub fn byte_order(&self) -> ByteOrder {
        self.order
    }
    /// The bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.source
    }
    /// The block index.
    pub fn index(&self) -> &BlockIndex {
        &self.indexed().index
    }
    /// The TRD map in use.
    pub fn map(&self) -> &Arc<TrdMap> {
        &self.map
    }
    /// The thread count (0 = all cores).
    pub fn threads(&self) -> usize {
        self.threads
    }
    /// Number of top-level blocks.
    pub fn n_blocks(&self) -> usize {
        self.index().blocks.len()
    }
    /// Number of science events.
    pub fn n_events(&self) -> usize {
        self.index().events.len()
    }

    /// Checks an event range against the number of events.
    pub fn event_range(&self, start: Option<i64>, stop: Option<i64>) -> Result<(usize, usize)> {
        let n = self.n_events() as i64;
        let fix = |v: i64| if v < 0 { (n + v).max(0) } else { v.min(n) };
        let a = start.map(fix).unwrap_or(0);
        let b = stop.map(fix).unwrap_or(n);
        Ok((a as usize, (b.max(a)) as usize))
    }

    /// The `blocks()` table.
    pub fn blocks(&self) -> BlockColumns {
        decode::block_table(&self.source, self.order, &self.index().blocks)
    }

    /// Decodes events `start..stop` into the tables in `want`. The problems returned are
    /// complete when `want.complete()`; a whole-file decode that found them all caches
    /// them for [`AmsFile::problems`].
    pub fn decode(&self, start: usize, stop: usize, want: Want) -> Tables {
        let stop = stop.min(self.n_events());
        let start = start.min(stop);
        let events = &self.index().events;
        let tables = self.decode_of(
            events,
            self.dialect(),
            start,
            stop,
            want,
            Tables::default(),
            0,
        );
        if start == 0 && stop == self.n_events() && want.complete() {
            let _ = self.all_problems.set(self.merge(tables.problems.clone()));
        }
        tables
    }

    /// Decodes events `start..stop` (`start <= stop <= events.len()`) of the science
    /// events at `events`, in `dialect`, on the file's threads, appended to `into` with
    /// the rows of `events()` numbered from `base + start`.
    #[allow(clippy::too_many_arguments)]
    fn decode_of(
        &self,
        events: &[u64],
        dialect: Dialect,
        start: usize,
        stop: usize,
        want: Want,
        into: Tables,
        base: usize,
    ) -> Tables {
        decode::decode_events(
            &self.source,
            self.order,
            dialect,
            &events[start..stop],
            base + start,
            want,
            &self.map,
            self.threads,
            &|a, b| self.source.release(a, b),
            into,
        )
    }

    /// Decodes every event into the tables in `want`, as `decode(0, n_events, want)`.
    /// When the data have not been walked yet, the walk and the decode are one pass: the
    /// events of each stretch of the walk are decoded while the next is still to be read
    /// (a cold file is then read once, behind the kernel's read-ahead, instead of once to
    /// index and again to decode), and the index is kept. The tables and problems are
    /// the same either way.
    pub fn decode_all(&self, want: Want) -> Tables {
        self.decode_all_by(want, STRETCH)
    }

    /// [`AmsFile::decode_all`], walking `stretch` bytes (at least one block) between two
    /// decodes: for tests, which cut small files into many stretches.
    #[doc(hidden)]
    pub fn decode_all_by(&self, want: Want, stretch: usize) -> Tables {
        if self.is_indexed() {
            return self.decode(0, usize::MAX, want);
        }
        let (indexed, tables) = match self.order {
            ByteOrder::Little => self.stream::<Le>(want, stretch, Tables::default(), 0),
            ByteOrder::Big => self.stream::<Be>(want, stretch, Tables::default(), 0),
        };
        // Another thread may have walked the data meanwhile: the walks are the same.
        let _ = self.indexed.set(indexed);
        if want.complete() {
            let _ = self.all_problems.set(self.merge(tables.problems.clone()));
        }
        tables
    }

    /// Every event decoded into the tables in `want` appended to `into` (the tables of
    /// other files decoded before), the rows of `events()` numbered on from `base`: the
    /// columns of many files built without joining them afterwards. The data are walked
    /// and decoded in one pass as in [`AmsFile::decode_all`] (when not walked yet); the
    /// file's own problems are not kept for [`AmsFile::problems`].
    pub fn decode_all_into(&self, want: Want, into: Tables, base: usize) -> Tables {
        if self.is_indexed() {
            let n = self.n_events();
            return self.decode_of(&self.index().events, self.dialect(), 0, n, want, into, base);
        }
        let (indexed, tables) = match self.order {
            ByteOrder::Little => self.stream::<Le>(want, STRETCH, into, base),
            ByteOrder::Big => self.stream::<Be>(want, STRETCH, into, base),
        };
        let _ = self.indexed.set(indexed);
        tables
    }

    /// The streaming walk and decode of [`AmsFile::decode_all`], appending to `into`
    /// with events numbered from `base` ([`AmsFile::decode_all_into`]).
    fn stream<O: Order>(
        &self,
        want: Want,
        stretch: usize,
        into: Tables,
        base: usize,
    ) -> (Indexed, Tables) {
        let mut into = Some(into);
        let bytes: &[u8] = &self.source;
        let release = |a: usize, b: usize| self.source.release(a, b);
        let mut walk = index::Stepper::<O>::new(bytes);
        let mut found = Found::new(self.dialect_asked);
        let mut decoding: Option<decode::Decoding<'_, O>> = None;
        // Events `decoded..` wait for decoding; they all end before byte `pending`.
        let mut decoded = 0usize;
        let mut pending: Option<usize> = None;
        // The walk's side of a round: the next stretch walked, the disk asked to read on,
        // and what was found taken in (envelopes and their events parsed), so that the
        // thread that decodes never waits for it.
        // The first stretch, walked before anything can be decoded, is an eighth of the
        // others: the cores wait less at the start of each file (many files in turn).
        let step = |walk: &mut index::Stepper<'_, O>, found: &mut Found| {
            let first = walk.pos() == 0;
            let len = if first { stretch / 8 } else { stretch };
            let until = walk.pos().saturating_add(len.max(1));
            let more = walk.advance(until);
            self.source
                .stream_ahead(if more { walk.pos() } else { bytes.len() });
            found.absorb(bytes, self.order, walk, more);
            more
        };
        let mut batch: Vec<u64> = Vec::new();
        loop {
            // Walk the next stretch while the events of the last are decoded (on two
            // threads of the pool when there is one).
            let more = match (pending.take(), decoding.as_mut()) {
                (Some(end), Some(dec)) => {
                    // The events to decode, apart from those the walk goes on finding.
                    batch.clear();
                    batch.extend_from_slice(&found.events[decoded..]);
                    let first = decoded;
                    decoded = found.events.len();
                    match dec.pool() {
                        Some(pool) => {
                            pool.install(|| {
                                rayon::join(
                                    || step(&mut walk, &mut found),
                                    || dec.push(&batch, base + first, end, &release),
                                )
                            })
                            .0
                        }
                        None => {
                            dec.push(&batch, base + first, end, &release);
                            step(&mut walk, &mut found)
                        }
                    }
                }
                _ => step(&mut walk, &mut found),
            };
            let pos = if more { walk.pos() } else { bytes.len() };
            if let Some(d) = found.dialect {
                decoding.get_or_insert_with(|| {
                    decode::Decoding::new(bytes, d, want, &self.map, self.threads)
                        .appending_to(into.take().unwrap_or_default())
                });
                pending = Some(pos);
            }
            if !more {
                break;
            }
        }
        if let (Some(end), Some(dec)) = (pending, decoding.as_mut()) {
            dec.push_in_pool(&found.events[decoded..], base + decoded, end, &release);
        }
        let indexed = found.into_indexed(walk.finish());
        self.source.release(0, bytes.len());
        let tables = match decoding {
            Some(d) => d.finish(),
            None => into.unwrap_or_default(),
        };
        (indexed, tables)
    }

    /// Walks the data on, if they have not been walked whole yet, until the events
    /// before byte `upto` are all known or, with `events`, until `events` events are
    /// known (or the end): the number of events known then and whether that is all of
    /// them. A streaming read of event ranges ([`AmsFile::decode_known`]) goes on from
    /// there; the walk to the end leaves the index as [`AmsFile::index`] would make it.
    pub fn walk_to(&self, upto: usize, events: Option<usize>) -> (usize, bool) {
        if let Some(ix) = self.indexed.get() {
            return (ix.index.events.len(), true);
        }
        let mut guard = self.partial.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(ix) = self.indexed.get() {
            return (ix.index.events.len(), true);
        }
        let partial = guard.get_or_insert_with(|| Partial {
            state: index::WalkState::default(),
            found: Found::new(self.dialect_asked),
        });
        let done = match self.order {
            ByteOrder::Little => self.walk_partial::<Le>(partial, upto, events),
            ByteOrder::Big => self.walk_partial::<Be>(partial, upto, events),
        };
        let n = partial.found.events.len();
        if done {
            if let Some(p) = guard.take() {
                let bytes: &[u8] = &self.source;
                let index = match self.order {
                    ByteOrder::Little => index::Stepper::<Le>::resume(bytes, p.state).finish(),
                    ByteOrder::Big => index::Stepper::<Be>::resume(bytes, p.state).finish(),
                };
                let _ = self.indexed.set(p.found.into_indexed(index));
            }
            return (self.n_events(), true);
        }
        (n, false)
    }

    fn walk_partial<O: Order>(&self, p: &mut Partial, upto: usize, events: Option<usize>) -> bool {
        let bytes: &[u8] = &self.source;
        let mut walk = index::Stepper::<O>::resume(bytes, std::mem::take(&mut p.state));
        let mut more = true;
        loop {
            let enough = p.found.dialect.is_some()
                && match events {
                    Some(n) => p.found.events.len() >= n,
                    None => walk.pos() >= upto,
                };
            if enough || !more {
                break;
            }
            let until = match events {
                Some(_) => walk.pos().saturating_add(STRETCH / 4),
                None => upto.max(walk.pos().saturating_add(1)),
            };
            more = walk.advance(until);
            self.source
                .stream_ahead(if more { walk.pos() } else { bytes.len() });
            p.found.absorb(bytes, self.order, &walk, more);
        }
        p.state = walk.suspend();
        !more
    }

    /// Decodes the known events `start..stop` of a streaming read ([`AmsFile::walk_to`]),
    /// as [`AmsFile::decode`] would once the data are walked whole (the same tables and
    /// problems). Events beyond those known are left out.
    pub fn decode_known(&self, start: usize, stop: usize, want: Want) -> Tables {
        if self.is_indexed() {
            return self.decode(start, stop, want);
        }
        let guard = self.partial.lock().unwrap_or_else(|e| e.into_inner());
        let Some(p) = guard.as_ref().filter(|p| p.found.dialect.is_some()) else {
            drop(guard);
            return self.decode(start, stop, want);
        };
        let events = &p.found.events;
        let stop = stop.min(events.len());
        let start = start.min(stop);
        let dialect = p.found.dialect.unwrap_or(Dialect::Seed);
        self.decode_of(events, dialect, start, stop, want, Tables::default(), 0)
    }

    /// The byte offset of known event `k` of a streaming read (or of the walked file),
    /// `None` beyond those known.
    pub fn known_event(&self, k: usize) -> Option<u64> {
        if let Some(ix) = self.indexed.get() {
            return ix.index.events.get(k).copied();
        }
        let guard = self.partial.lock().unwrap_or_else(|e| e.into_inner());
        guard.as_ref().and_then(|p| p.found.events.get(k).copied())
    }

    /// The first known event of a streaming read at or after byte `offset` (the number of
    /// known events before it).
    pub fn known_events_before(&self, offset: u64) -> usize {
        if let Some(ix) = self.indexed.get() {
            return ix.index.events.partition_point(|&o| o < offset);
        }
        let guard = self.partial.lock().unwrap_or_else(|e| e.into_inner());
        guard
            .as_ref()
            .map_or(0, |p| p.found.events.partition_point(|&o| o < offset))
    }

    fn merge(&self, mut decoded: Vec<Problem>) -> Vec<Problem> {
        let mut all = self.extra_problems.clone();
        all.extend(self.index().problems.iter().cloned());
        let first_event = self.index().events.first().map_or(0, |&o| o as usize);
        all.extend(self.dialect().problem(
            first_event,
            self.n_events(),
            self.dialect_asked.is_none(),
        ));
        all.append(&mut decoded);
        all.sort_by_key(|p| p.offset);
        all
    }

    /// The row in `blocks()` of the block that holds byte `offset` (or the next block).
    pub fn block_number(&self, offset: u64) -> usize {
        self.index()
            .blocks
            .partition_point(|&b| b <= offset)
            .saturating_sub(1)
    }

    /// A strict-mode error for a problem: the file, byte offset, block or event and what
    /// was expected.
    pub fn strict_error(&self, p: &Problem) -> Error {
        let n = self.block_number(p.offset);
        let blocks = &self.index().blocks;
        let at_block = blocks.get(n) == Some(&p.offset);
        let place = if p.event_index >= 0 {
            format!("event {} (block {n})", p.event_index)
        } else if at_block {
            format!("block {n}")
        } else if blocks.first().is_some_and(|&b| b < p.offset) {
            format!("after block {n}")
        } else {
            "before the first block".to_string()
        };
        Error::Format {
            offset: p.offset,
            what: format!("{place}: {}: {}", p.kind, p.detail),
        }
    }

    /// The byte ranges of the data, each a block or skipped, covering every byte once.
    pub fn coverage(&self) -> Vec<(u64, u64, crate::index::Coverage)> {
        crate::index::coverage(&self.source, self.order, self.index())
    }

    /// Every problem in the file, sorted by offset (decodes the whole file once).
    pub fn problems(&self) -> &[Problem] {
        if self.all_problems.get().is_none() && !self.is_indexed() {
            // One streaming pass walks the data and finds the problems of the events.
            self.decode_all(Want::NONE);
        }
        self.all_problems.get_or_init(|| {
            let events = &self.index().events;
            let t = self.decode_of(
                events,
                self.dialect(),
                0,
                events.len(),
                Want::NONE,
                Tables::default(),
                0,
            );
            self.merge(t.problems)
        })
    }

    /// `n` words at byte `offset`, in the file's byte order resolved.
    pub fn words(&self, offset: u64, n: u64) -> Result<Vec<u16>> {
        let out_of_range = || {
            Error::Value(format!(
                "{n} words at byte {offset} lie outside the data ({} bytes)",
                self.source.len()
            ))
        };
        let pos = usize::try_from(offset).map_err(|_| out_of_range())?;
        let n = usize::try_from(n).map_err(|_| out_of_range())?;
        words::read_words(&self.source, self.order, pos, n).ok_or_else(out_of_range)
    }
}
