//! An opened block file or stream: its bytes, byte order, block index and decoders.

use std::path::Path;
use std::sync::{Arc, OnceLock};

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
        let tables = decode::decode_events(
            &self.source,
            self.order,
            self.dialect(),
            &self.index().events[start..stop],
            start,
            want,
            &self.map,
            self.threads,
            &|a, b| self.source.release(a, b),
        );
        if start == 0 && stop == self.n_events() && want.complete() {
            let _ = self.all_problems.set(self.merge(tables.problems.clone()));
        }
        tables
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
            ByteOrder::Little => self.stream::<Le>(want, stretch),
            ByteOrder::Big => self.stream::<Be>(want, stretch),
        };
        // Another thread may have walked the data meanwhile: the walks are the same.
        let _ = self.indexed.set(indexed);
        if want.complete() {
            let _ = self.all_problems.set(self.merge(tables.problems.clone()));
        }
        tables
    }

    /// The streaming walk and decode of [`AmsFile::decode_all`].
    fn stream<O: Order>(&self, want: Want, stretch: usize) -> (Indexed, Tables) {
        let bytes: &[u8] = &self.source;
        let order = self.order;
        let release = |a: usize, b: usize| self.source.release(a, b);
        let mut walk = index::Stepper::<O>::new(bytes);
        let mut nested = Nested::default();
        // Every science event found, those inside envelopes included, in file order.
        let mut events: Vec<u64> = Vec::new();
        let (mut top_blocks, mut top_events) = (0usize, 0usize);
        // The dialect, once known: asked for, or found (FORMAT.md 11.2: the PC-DAQ
        // dialect when every event fits it, so the first event that does not decides).
        let mut dialect = self.dialect_asked;
        let mut decoding: Option<decode::Decoding<'_, O>> = None;
        // Events `decoded..` wait for decoding; they all end before byte `pending`.
        let mut decoded = 0usize;
        let mut pending: Option<usize> = None;
        loop {
            // Walk the next stretch while the events of the last are decoded (on two
            // threads of the pool when there is one).
            let until = walk.pos().saturating_add(stretch.max(1));
            let more = match (pending.take(), decoding.as_mut()) {
                (Some(end), Some(dec)) => {
                    let batch = &events[decoded..];
                    let first = decoded;
                    decoded = events.len();
                    match dec.pool() {
                        Some(pool) => {
                            pool.install(|| {
                                rayon::join(
                                    || walk.advance(until),
                                    || dec.push(batch, first, end, &release),
                                )
                            })
                            .0
                        }
                        None => {
                            dec.push(batch, first, end, &release);
                            walk.advance(until)
                        }
                    }
                }
                _ => walk.advance(until),
            };
            let pos = if more { walk.pos() } else { bytes.len() };
            self.source.stream_ahead(pos);
            let new_blocks = &walk.blocks()[top_blocks..];
            let inner = envelope::walk(bytes, order, new_blocks);
            let first_new = events.len();
            events.extend_from_slice(&walk.events()[top_events..]);
            if !inner.events.is_empty() {
                events.extend_from_slice(&inner.events);
                let part = &mut events[first_new..];
                part.sort_unstable();
                let kept = dedup_sorted(part);
                events.truncate(first_new + kept);
            }
            nested.append(inner, &walk.blocks()[..top_blocks], new_blocks);
            top_blocks = walk.blocks().len();
            top_events = walk.events().len();
            if dialect.is_none() {
                let other = events[first_new..]
                    .iter()
                    .enumerate()
                    .any(|(i, &off)| !dialect::fits::<O>(bytes, off as usize, first_new + i));
                if other || (!more && events.is_empty()) {
                    dialect = Some(Dialect::Seed);
                } else if !more {
                    dialect = Some(Dialect::Pc2009);
                }
            }
            if let Some(d) = dialect {
                decoding.get_or_insert_with(|| {
                    decode::Decoding::new(bytes, d, want, &self.map, self.threads)
                });
                pending = Some(pos);
            }
            if !more {
                break;
            }
        }
        if let (Some(end), Some(dec)) = (pending, decoding.as_mut()) {
            let batch = &events[decoded..];
            match dec.pool() {
                Some(pool) => pool.install(|| dec.push(batch, decoded, end, &release)),
                None => dec.push(batch, decoded, end, &release),
            }
        }
        let mut index = walk.finish();
        index.events = events;
        if !nested.problems.is_empty() {
            index.problems.append(&mut nested.problems);
            index.problems.sort_by_key(|p| p.offset);
        }
        if !nested.any_envelope {
            nested.rows = Vec::new();
        }
        self.source.release(0, bytes.len());
        let tables = decoding.map(decode::Decoding::finish).unwrap_or_default();
        let dialect = dialect.unwrap_or(Dialect::Seed);
        (
            Indexed {
                index,
                nested,
                dialect,
            },
            tables,
        )
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
            let t = decode::decode_events(
                &self.source,
                self.order,
                self.dialect(),
                &self.index().events,
                0,
                Want::NONE,
                &self.map,
                self.threads,
                &|a, b| self.source.release(a, b),
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
