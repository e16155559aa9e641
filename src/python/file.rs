//! Bindings of an opened block file.

use std::path::PathBuf;
use std::sync::Arc;

use numpy::IntoPyArray;
use pyo3::exceptions::{PyKeyError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::trd::TrdMap;
use super::{columns_to_dict, to_pyerr};
use crate::decode::Want;
use crate::dialect::Dialect;
use crate::file::AmsFile;
use crate::problems::Problem;
use crate::simulate::{simulate_to_path, SimConfig};
use crate::source::Source;
use crate::words::ByteOrder;

/// The decodable tables of `RawFile.decode`.
pub const TABLES: [&str; 4] = ["events", "fragments", "trd_hits", "trd_raw"];

pub(crate) fn parse_order(byte_order: &str) -> PyResult<Option<ByteOrder>> {
    match byte_order {
        "auto" => Ok(None),
        other => ByteOrder::from_name(other).map(Some).ok_or_else(|| {
            PyValueError::new_err(format!(
                "byte_order must be 'auto', 'little' or 'big', not {other:?}"
            ))
        }),
    }
}

pub(crate) fn parse_dialect(dialect: &str) -> PyResult<Option<Dialect>> {
    match dialect {
        "auto" => Ok(None),
        other => Dialect::from_name(other).map(Some).ok_or_else(|| {
            PyValueError::new_err(format!(
                "dialect must be 'auto', 'seed' or 'pc-2009', not {other:?}"
            ))
        }),
    }
}

/// The most threads a file may ask for: 4 x the cores available to this process (beyond,
/// threads only wait for cores; `threads=10**6` once started 1,802 OS threads).
pub fn max_threads() -> usize {
    4 * std::thread::available_parallelism().map_or(1, |n| n.get())
}

pub(crate) fn parse_threads(threads: Option<i64>) -> PyResult<usize> {
    let max = max_threads();
    match threads {
        None | Some(0) => Ok(0),
        Some(n) if n > 0 && n as u64 <= max as u64 => Ok(n as usize),
        Some(n) if n > 0 => Err(PyValueError::new_err(format!(
            "threads must be at most {max} (4 x the {} cores available), not {n}",
            max / 4
        ))),
        Some(n) => Err(PyValueError::new_err(format!(
            "threads must be None (all cores) or a positive number, not {n}"
        ))),
    }
}

/// An AMS block file, memory-mapped and indexed (the native half of `ams02.File`).
#[pyclass(module = "ams02._native", name = "RawFile", frozen)]
pub struct RawFile {
    inner: AmsFile,
    name: String,
    strict: bool,
}

impl RawFile {
    /// Wraps bytes already in memory, e.g. a block stream reassembled from CCSDS packets.
    pub fn from_owned(
        data: Vec<u8>,
        order: ByteOrder,
        name: String,
        extra_problems: Vec<Problem>,
    ) -> PyResult<RawFile> {
        let inner = AmsFile::from_source(Source::from_vec(data), Some(order), extra_problems)
            .map_err(|e| to_pyerr(e, &name))?;
        Ok(RawFile {
            inner,
            name,
            strict: false,
        })
    }

    /// Wraps an opened core file named `name`; in strict mode the index's first problem
    /// raises FormatError (as `RawFile(path, strict=True)` does).
    pub(crate) fn from_parts(inner: AmsFile, name: String, strict: bool) -> PyResult<RawFile> {
        let file = RawFile {
            inner,
            name,
            strict,
        };
        if strict {
            if let Some(p) = file.inner.index().problems.first() {
                return Err(to_pyerr(file.inner.strict_error(p), &file.name));
            }
        }
        Ok(file)
    }

    /// The core file.
    pub fn core(&self) -> &AmsFile {
        &self.inner
    }

    /// The tables asked for by name (`"errors"`: every check).
    fn want_of(&self, tables: &[String]) -> PyResult<Want> {
        // Strict mode raises at the first problem: every check must run.
        let mut want = Want {
            checks: self.strict,
            ..Want::NONE
        };
        for t in tables {
            match t.as_str() {
                "events" => want.events = true,
                "fragments" => want.fragments = true,
                "trd_hits" => want.hits = true,
                "trd_raw" => want.raw = true,
                "errors" => want.checks = true,
                other => {
                    return Err(PyKeyError::new_err(format!(
                        "unknown table {other:?}; the tables are {}, errors",
                        TABLES.join(", ")
                    )))
                }
            }
        }
        Ok(want)
    }

    /// The decoded tables as a dict of dicts of arrays, after checking the file (and,
    /// in strict mode, raising the first problem).
    fn tables_dict<'py>(
        &self,
        py: Python<'py>,
        t: crate::decode::Tables,
        want: Want,
    ) -> PyResult<Bound<'py, PyDict>> {
        self.check()?;
        if self.strict {
            if let Some(p) = t.problems.first() {
                return Err(to_pyerr(self.inner.strict_error(p), &self.name));
            }
        }
        tables_to_dict(py, t, want)
    }

    /// Walks the data now if no call has (without the GIL), then checks the file: the
    /// calls that need the index call it first.
    fn walked(&self, py: Python<'_>) -> PyResult<()> {
        if !self.inner.is_indexed() {
            py.detach(|| {
                self.inner.index();
            });
        }
        self.check()
    }
}

#[pymethods]
impl RawFile {
    #[new]
    #[pyo3(signature = (path, byte_order = "auto", threads = None, mmap = true, trd_map = None, strict = false, dialect = "auto"))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        path: PathBuf,
        byte_order: &str,
        threads: Option<i64>,
        mmap: bool,
        trd_map: Option<PyRef<'_, TrdMap>>,
        strict: bool,
        dialect: &str,
    ) -> PyResult<RawFile> {
        let order = parse_order(byte_order)?;
        let dialect = parse_dialect(dialect)?;
        let threads = parse_threads(threads)?;
        let name = path.display().to_string();
        let map = trd_map.map(|m| m.inner.clone());
        let inner = py
            .detach(|| AmsFile::open(&path, order, mmap))
            .map_err(|e| to_pyerr(e, &name))?;
        let mut inner = inner.with_threads(threads).with_dialect(dialect);
        if let Some(map) = map {
            inner = inner.with_map(map);
        }
        RawFile::from_parts(inner, name, strict)
    }

    /// Whether the first problem met raises FormatError.
    #[getter]
    fn strict(&self) -> bool {
        self.strict
    }

    /// The file's name as given.
    #[getter]
    fn name(&self) -> &str {
        &self.name
    }

    /// "little" or "big".
    #[getter]
    fn byte_order(&self) -> &'static str {
        self.inner.byte_order().name()
    }

    /// Number of top-level blocks.
    #[getter]
    fn n_blocks(&self, py: Python<'_>) -> PyResult<usize> {
        self.walked(py)?;
        Ok(self.inner.n_blocks())
    }

    /// Number of science events.
    #[getter]
    fn n_events(&self, py: Python<'_>) -> PyResult<usize> {
        self.walked(py)?;
        Ok(self.inner.n_events())
    }

    /// Size of the data in bytes.
    #[getter]
    fn size(&self) -> usize {
        self.inner.bytes().len()
    }

    /// Thread count (0 = all cores).
    #[getter]
    fn threads(&self) -> usize {
        self.inner.threads()
    }

    /// Whether the file is memory-mapped (else read into memory).
    #[getter]
    fn mapped(&self) -> bool {
        self.inner.is_mapped()
    }

    /// Asks that the first `nbytes` bytes of the local file `path` (the next file of a
    /// multi-file read) be read into the page cache once this file's streaming walk has
    /// asked the disk for its own last byte, so that the disk reads the files one after
    /// the other. Returns False, asking nothing, when this file is walked already, not
    /// memory-mapped, or `path` cannot be opened. Only advice: the data are unchanged.
    fn read_ahead_after(&self, path: PathBuf, nbytes: u64) -> bool {
        self.inner.read_ahead_after(&path, nbytes)
    }

    /// Raises `FormatError` (kind `file_changed`) if the file shrank, was modified or
    /// could not be read since it was opened. Every call that reads the data calls it
    /// after reading, so that nothing decoded from a file that changed under it is
    /// returned.
    fn check(&self) -> PyResult<()> {
        self.inner.check().map_err(|e| to_pyerr(e, &self.name))
    }

    /// The TRD map in use.
    #[getter]
    fn trd_map(&self) -> TrdMap {
        TrdMap {
            inner: Arc::clone(self.inner.map()),
        }
    }

    /// The `blocks()` table.
    fn blocks<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let t = py.detach(|| self.inner.blocks());
        self.check()?;
        columns_to_dict(py, t.into_columns())
    }

    /// The dialect the events are read in: "seed" or "pc-2009".
    #[getter]
    fn dialect(&self, py: Python<'_>) -> PyResult<&'static str> {
        self.walked(py)?;
        Ok(self.inner.dialect().name())
    }

    /// The `blocks(nested=True)` table: every block with `depth`, `envelope`, `time_us`.
    fn blocks_nested<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let (blocks, nested) = py.detach(|| self.inner.blocks_nested());
        self.check()?;
        let mut columns = blocks.into_columns();
        columns.extend(nested.into_columns());
        columns_to_dict(py, columns)
    }

    /// The `lef_raw()` table: one row per LEF raw event, `adc` (n, 1024).
    fn lef_raw<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let t = py.detach(|| self.inner.lef_raw());
        self.check()?;
        super::l0::lef_raw_to_dict(py, t)
    }

    /// Byte offsets of the science events.
    fn event_offsets<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.walked(py)?;
        Ok(self
            .inner
            .index()
            .events
            .clone()
            .into_pyarray(py)
            .into_any())
    }

    /// Resolves `entry_start`/`entry_stop` (negative values count from the end).
    #[pyo3(signature = (entry_start = None, entry_stop = None))]
    fn event_range(
        &self,
        py: Python<'_>,
        entry_start: Option<i64>,
        entry_stop: Option<i64>,
    ) -> PyResult<(usize, usize)> {
        self.walked(py)?;
        self.inner
            .event_range(entry_start, entry_stop)
            .map_err(|e| to_pyerr(e, &self.name))
    }

    /// Decodes the events `entry_start..entry_stop` into the named tables: a dict of
    /// dicts of arrays. The name `"errors"` asks for no table but for every check, so that
    /// a whole-file decode also finds every problem and keeps them for `errors()` (one
    /// pass for both).
    #[pyo3(signature = (tables, entry_start = None, entry_stop = None))]
    fn decode<'py>(
        &self,
        py: Python<'py>,
        tables: Vec<String>,
        entry_start: Option<i64>,
        entry_stop: Option<i64>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let want = self.want_of(&tables)?;
        // The whole file of a file not walked yet: one streaming pass walks and decodes.
        let whole = matches!(entry_start, None | Some(0)) && entry_stop.is_none();
        let t = if whole && !self.inner.is_indexed() {
            py.detach(|| self.inner.decode_all(want))
        } else {
            let (start, stop) = self.event_range(py, entry_start, entry_stop)?;
            py.detach(|| self.inner.decode(start, stop, want))
        };
        self.tables_dict(py, t, want)
    }

    /// A streaming read of event ranges: walks the file on (if it has not been walked
    /// whole) until the events before byte `upto` are known, or with `events`, until
    /// that many are: (the number of events known, whether that is all of them).
    #[pyo3(signature = (upto, events = None))]
    fn walk_to(&self, py: Python<'_>, upto: u64, events: Option<u64>) -> PyResult<(usize, bool)> {
        let upto = usize::try_from(upto).unwrap_or(usize::MAX);
        let events = events.map(|n| usize::try_from(n).unwrap_or(usize::MAX));
        let r = py.detach(|| self.inner.walk_to(upto, events));
        self.check()?;
        Ok(r)
    }

    /// As `decode` for the known events `start..stop` of a streaming read (`walk_to`).
    fn decode_known<'py>(
        &self,
        py: Python<'py>,
        tables: Vec<String>,
        start: usize,
        stop: usize,
    ) -> PyResult<Bound<'py, PyDict>> {
        let want = self.want_of(&tables)?;
        let t = py.detach(|| self.inner.decode_known(start, stop, want));
        self.tables_dict(py, t, want)
    }

    /// Decodes every event into the tables of `acc`, appended to the rows of the files
    /// decoded into it before (`event_index` counted on over them): the rows each table
    /// gained, by name. Not in strict mode (whose first problem must raise).
    fn decode_into<'py>(
        &self,
        py: Python<'py>,
        mut acc: PyRefMut<'_, Accumulator>,
    ) -> PyResult<Bound<'py, PyDict>> {
        if self.strict {
            return Err(PyValueError::new_err(
                "decode_into: a file opened with strict=True decodes with decode()",
            ));
        }
        let want = acc.want;
        let base = acc.n_events;
        let into = std::mem::take(&mut acc.tables);
        let before = (into.events.len(), into.hits.len(), into.raw.len());
        let t = py.detach(|| self.inner.decode_all_into(want, into, base));
        let added = (
            t.events.len() - before.0,
            t.hits.len() - before.1,
            t.raw.len() - before.2,
        );
        acc.tables = t;
        acc.n_events = base + self.inner.n_events();
        self.check()?;
        let d = PyDict::new(py);
        if want.events {
            d.set_item("events", added.0)?;
        }
        if want.hits {
            d.set_item("trd_hits", added.1)?;
        }
        if want.raw {
            d.set_item("trd_raw", added.2)?;
        }
        Ok(d)
    }

    /// The byte offset of known event `k` of a streaming read, None beyond them.
    fn known_event(&self, k: usize) -> Option<u64> {
        self.inner.known_event(k)
    }

    /// How many known events of a streaming read start before byte `offset`.
    fn known_events_before(&self, offset: u64) -> usize {
        self.inner.known_events_before(offset)
    }

    /// Every problem in the file: offset, event_index (arrays), kind, detail (lists of str).
    fn errors<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let problems = py.detach(|| self.inner.problems().to_vec());
        self.check()?;
        let d = PyDict::new(py);
        let offset: Vec<u64> = problems.iter().map(|p| p.offset).collect();
        let event_index: Vec<i64> = problems.iter().map(|p| p.event_index).collect();
        let kind: Vec<&str> = problems.iter().map(|p| p.kind.name()).collect();
        let detail: Vec<&str> = problems.iter().map(|p| p.detail.as_str()).collect();
        d.set_item("offset", offset.into_pyarray(py))?;
        d.set_item("event_index", event_index.into_pyarray(py))?;
        d.set_item("kind", kind)?;
        d.set_item("detail", detail)?;
        Ok(d)
    }

    /// Byte ranges not covered by a block: (starts, ends).
    fn skipped<'py>(&self, py: Python<'py>) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
        self.walked(py)?;
        let (a, b): (Vec<u64>, Vec<u64>) = self.inner.index().skipped.iter().copied().unzip();
        Ok((a.into_pyarray(py).into_any(), b.into_pyarray(py).into_any()))
    }

    /// The byte ranges of the data, each a block or skipped: (starts, ends, is_block).
    fn coverage<'py>(
        &self,
        py: Python<'py>,
    ) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>, Bound<'py, PyAny>)> {
        let cov = py.detach(|| self.inner.coverage());
        self.check()?;
        let starts: Vec<u64> = cov.iter().map(|c| c.0).collect();
        let ends: Vec<u64> = cov.iter().map(|c| c.1).collect();
        let block: Vec<bool> = cov
            .iter()
            .map(|c| c.2 == crate::index::Coverage::Block)
            .collect();
        Ok((
            starts.into_pyarray(py).into_any(),
            ends.into_pyarray(py).into_any(),
            block.into_pyarray(py).into_any(),
        ))
    }

    /// `n` words at byte `offset`, in the file's byte order resolved.
    fn words<'py>(&self, py: Python<'py>, offset: u64, n: u64) -> PyResult<Bound<'py, PyAny>> {
        let w = self
            .inner
            .words(offset, n)
            .map_err(|e| to_pyerr(e, &self.name))?;
        self.check()?;
        Ok(w.into_pyarray(py).into_any())
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        self.walked(py)?;
        Ok(format!(
            "<RawFile {:?}: {} bytes, {}-endian, {} blocks, {} events>",
            self.name,
            self.inner.bytes().len(),
            self.inner.byte_order(),
            self.inner.n_blocks(),
            self.inner.n_events()
        ))
    }
}

fn fraction(name: &str, v: f64) -> PyResult<f64> {
    if (0.0..=1.0).contains(&v) {
        Ok(v)
    } else {
        Err(PyValueError::new_err(format!(
            "{name} must be between 0 and 1, not {v}"
        )))
    }
}

/// Writes a simulated run; returns what was written.
#[pyfunction]
#[pyo3(signature = (path, n_events, *, seed = 0, byte_order = "little", run = None,
    jmdc_node = 1, gps_fraction = 0.3, level3_fraction = 0.2, second_group_fraction = 0.1,
    raw_fraction = 0.01, mixed_fraction = 0.01, hits_per_udr = 3.0, other_block_every = 20,
    layout = "flight", compressed = 1.0, envelope_fraction = 0.05))]
#[allow(clippy::too_many_arguments)]
fn simulate<'py>(
    py: Python<'py>,
    path: PathBuf,
    n_events: u64,
    seed: u64,
    byte_order: &str,
    run: Option<u32>,
    jmdc_node: u16,
    gps_fraction: f64,
    level3_fraction: f64,
    second_group_fraction: f64,
    raw_fraction: f64,
    mixed_fraction: f64,
    hits_per_udr: f64,
    other_block_every: u64,
    layout: &str,
    compressed: f64,
    envelope_fraction: f64,
) -> PyResult<Bound<'py, PyDict>> {
    let layout = match layout {
        "flight" => crate::jmdc::Layout::Flight,
        "2007" => crate::jmdc::Layout::Seed2007,
        _ => {
            return Err(PyValueError::new_err(format!(
                "layout must be 'flight' or '2007', not {layout:?}"
            )))
        }
    };
    let order = ByteOrder::from_name(byte_order).ok_or_else(|| {
        PyValueError::new_err(format!(
            "byte_order must be 'little' or 'big', not {byte_order:?}"
        ))
    })?;
    if jmdc_node > 15 {
        return Err(PyValueError::new_err(format!(
            "jmdc_node must be 0..15, not {jmdc_node}"
        )));
    }
    if !(0.0..=100.0).contains(&hits_per_udr) {
        return Err(PyValueError::new_err(format!(
            "hits_per_udr must be between 0 and 100, not {hits_per_udr}"
        )));
    }
    let cfg = SimConfig {
        n_events,
        seed,
        byte_order: order,
        // Flight data: a run ID of 2014 (B606 table); 2007 layout: the seed's run number.
        run: run.unwrap_or(if layout == crate::jmdc::Layout::Flight {
            1_400_000_000
        } else {
            1_305_000_000
        }),
        jmdc_node,
        gps_fraction: fraction("gps_fraction", gps_fraction)?,
        level3_fraction: fraction("level3_fraction", level3_fraction)?,
        second_group_fraction: fraction("second_group_fraction", second_group_fraction)?,
        raw_fraction: fraction("raw_fraction", raw_fraction)?,
        mixed_fraction: fraction("mixed_fraction", mixed_fraction)?,
        hits_per_udr,
        other_block_every,
        layout,
        compressed: fraction("compressed", compressed)?,
        envelope_fraction: fraction("envelope_fraction", envelope_fraction)?,
    };
    if cfg.raw_fraction + cfg.mixed_fraction > 1.0 {
        return Err(PyValueError::new_err(
            "raw_fraction + mixed_fraction must not exceed 1",
        ));
    }
    let s = py.detach(|| simulate_to_path(&path, &cfg))?;
    let d = PyDict::new(py);
    d.set_item("path", path)?;
    d.set_item("n_events", s.n_events)?;
    d.set_item("n_blocks", s.n_blocks)?;
    d.set_item("bytes", s.bytes)?;
    d.set_item("n_trd_hits", s.n_trd_hits)?;
    d.set_item("n_trd_raw", s.n_trd_raw)?;
    // What was written between events (FORMAT.md 10), blocks at every depth by kind.
    for (key, n) in [
        ("n_nested_blocks", s.n_nested_blocks),
        ("n_events_in_envelopes", s.n_events_in_envelopes),
        ("n_envelopes", s.n_envelopes),
        ("n_fine_time_envelopes", s.n_fine_time_envelopes),
        ("n_calibration", s.n_calibration),
        ("n_configuration", s.n_configuration),
        ("n_housekeeping", s.n_housekeeping),
        ("n_not_event", s.n_not_event),
        ("n_calibration_replies", s.n_calibration_replies),
        ("n_cceb", s.n_cceb),
        ("n_tof_slow_control", s.n_tof_slow_control),
        ("n_other_blocks", s.n_other_blocks),
    ] {
        d.set_item(key, n)?;
    }
    Ok(d)
}

/// Adds the file class and the simulator.
/// The decoded tables in `want` as a dict of dicts of arrays (the columns moved).
fn tables_to_dict<'py>(
    py: Python<'py>,
    t: crate::decode::Tables,
    want: Want,
) -> PyResult<Bound<'py, PyDict>> {
    let out = PyDict::new(py);
    if want.events {
        out.set_item("events", columns_to_dict(py, t.events.into_columns())?)?;
    }
    if want.fragments {
        out.set_item(
            "fragments",
            columns_to_dict(py, t.fragments.into_columns())?,
        )?;
    }
    if want.hits {
        out.set_item("trd_hits", columns_to_dict(py, t.hits.into_columns())?)?;
    }
    if want.raw {
        out.set_item("trd_raw", columns_to_dict(py, t.raw.into_columns())?)?;
    }
    Ok(out)
}

/// Tables that files are decoded into one after the other (`RawFile.decode_into`): the
/// columns of many files built as one, without a join (`ams02.concatenate`).
#[pyclass(module = "ams02._native")]
pub struct Accumulator {
    tables: crate::decode::Tables,
    want: Want,
    /// Events of the files decoded so far.
    n_events: usize,
}

#[pymethods]
impl Accumulator {
    /// Tables among "events", "trd_hits" and "trd_raw".
    #[new]
    fn new(tables: Vec<String>) -> PyResult<Accumulator> {
        // The checks of `RawFile.decode` without strict mode (`want_of`): only those on
        // the paths the tables read (the accumulator returns no problems).
        let mut want = Want {
            checks: false,
            ..Want::NONE
        };
        for t in &tables {
            match t.as_str() {
                "events" => want.events = true,
                "trd_hits" => want.hits = true,
                "trd_raw" => want.raw = true,
                other => {
                    return Err(PyKeyError::new_err(format!(
                        "an Accumulator holds events, trd_hits or trd_raw, not {other:?}"
                    )))
                }
            }
        }
        Ok(Accumulator {
            tables: crate::decode::Tables::default(),
            want,
            n_events: 0,
        })
    }

    /// Events of the files decoded so far.
    #[getter]
    fn n_events(&self) -> usize {
        self.n_events
    }

    /// The tables as a dict of dicts of arrays (moved out: the accumulator is empty after).
    fn finish<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let t = std::mem::take(&mut self.tables);
        self.n_events = 0;
        tables_to_dict(py, t, self.want)
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<RawFile>()?;
    m.add_class::<Accumulator>()?;
    m.add_function(wrap_pyfunction!(simulate, m)?)?;
    Ok(())
}
