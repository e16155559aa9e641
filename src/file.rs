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
use crate::words::{self, ByteOrder};

/// An AMS block file (or reassembled stream), indexed and ready to decode.
pub struct AmsFile {
    source: Source,
    order: ByteOrder,
    index: BlockIndex,
    /// The blocks inside envelopes (FORMAT.md 10).
    nested: Nested,
    /// The dialect the events are read in, and whether it was found in the data.
    dialect: Dialect,
    dialect_detected: bool,
    map: Arc<TrdMap>,
    threads: usize,
    /// Problems from outside the block data (e.g. the packet layer of a reassembled stream).
    extra_problems: Vec<Problem>,
    all_problems: OnceLock<Vec<Problem>>,
}

impl AmsFile {
    /// Opens and indexes a file. `order = None` detects the byte order (FORMAT.md 1); data
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
        let file = AmsFile::from_source(source, Some(order), Vec::new())?;
        file.check()?;
        Ok(file)
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
        let mut index = index::build_releasing(&source, order, &|a, b| source.release(a, b));
        // The envelopes' inner blocks: their science events are events, their problems
        // the index's (FORMAT.md 10).
        let mut nested = envelope::walk(&source, order, &index.blocks);
        if !nested.events.is_empty() {
            index.events.append(&mut nested.events);
            index.events.sort_unstable();
            index.events.dedup();
        }
        if !nested.problems.is_empty() {
            index.problems.append(&mut nested.problems);
            index.problems.sort_by_key(|p| p.offset);
        }
        let dialect = dialect::detect(&source, order, &index.events);
        // The index read every block header: let those pages go until a decode needs them.
        source.release(0, source.len());
        Ok(AmsFile {
            source,
            order,
            index,
            nested,
            dialect,
            dialect_detected: true,
            map: Arc::new(TrdMap::flight()),
            threads: 0,
            extra_problems,
            all_problems: OnceLock::new(),
        })
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
            self.dialect = d;
            self.dialect_detected = false;
            self.all_problems = OnceLock::new();
        }
        self
    }

    /// The dialect the events are read in.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// The `blocks(nested=True)` table: every block, those inside envelopes right after
    /// their envelope, with depth, envelope row and fine-time microseconds.
    pub fn blocks_nested(&self) -> (BlockColumns, NestedBlockColumns) {
        let rows = self.nested.all_rows(&self.index.blocks);
        envelope::nested_table(&self.source, self.order, &rows)
    }

    /// The `lef_raw()` table: the LEF raw events (FORMAT.md 11.1), in file order.
    pub fn lef_raw(&self) -> LefRawColumns {
        let rows = self.nested.all_rows(&self.index.blocks);
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
        &self.index
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
        self.index.blocks.len()
    }
    /// Number of science events.
    pub fn n_events(&self) -> usize {
        self.index.events.len()
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
        decode::block_table(&self.source, self.order, &self.index.blocks)
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
            self.dialect,
            &self.index.events[start..stop],
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

    fn merge(&self, mut decoded: Vec<Problem>) -> Vec<Problem> {
        let mut all = self.extra_problems.clone();
        all.extend(self.index.problems.iter().cloned());
        let first_event = self.index.events.first().map_or(0, |&o| o as usize);
        all.extend(
            self.dialect
                .problem(first_event, self.n_events(), self.dialect_detected),
        );
        all.append(&mut decoded);
        all.sort_by_key(|p| p.offset);
        all
    }

    /// The row in `blocks()` of the block that holds byte `offset` (or the next block).
    pub fn block_number(&self, offset: u64) -> usize {
        self.index
            .blocks
            .partition_point(|&b| b <= offset)
            .saturating_sub(1)
    }

    /// A strict-mode error for a problem: the file, byte offset, block or event and what
    /// was expected.
    pub fn strict_error(&self, p: &Problem) -> Error {
        let n = self.block_number(p.offset);
        let at_block = self.index.blocks.get(n) == Some(&p.offset);
        let place = if p.event_index >= 0 {
            format!("event {} (block {n})", p.event_index)
        } else if at_block {
            format!("block {n}")
        } else if self.index.blocks.first().is_some_and(|&b| b < p.offset) {
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
        crate::index::coverage(&self.source, self.order, &self.index)
    }

    /// Every problem in the file, sorted by offset (decodes the whole file once).
    pub fn problems(&self) -> &[Problem] {
        self.all_problems.get_or_init(|| {
            let t = decode::decode_events(
                &self.source,
                self.order,
                self.dialect,
                &self.index.events,
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
