//! Python bindings of the CCSDS decoder (`crate::ccsds`): argument checks, `py.detach`
//! around the work, columns moved into NumPy without a copy.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;

use numpy::{IntoPyArray, PyArrayMethods};
use pyo3::exceptions::{PyKeyError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::file::RawFile;
use super::{column_to_py, to_pyerr};
use crate::ccsds::health::CHD_WORDS;
use crate::ccsds::packetize::{simulate_ccsds_to_writer, CcsdsSimConfig, ChdProfile};
use crate::ccsds::stream::{Batch, BlockStream, StreamDecoder};
use crate::ccsds::{OpenOptions, PacketColumn, PacketFile, ScanOptions};
use crate::columns::ColumnData;
use crate::problems::{Error, Problem};
use crate::words::ByteOrder;

/// Problems as the `errors()` dict: offset, event_index (arrays), kind, detail (lists).
fn problems_to_dict<'py>(py: Python<'py>, problems: &[Problem]) -> PyResult<Bound<'py, PyDict>> {
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

/// A table's columns (`table!`'s `into_columns`) as a dict of NumPy arrays; the column
/// `chd` (10 words a row) becomes (n, 10).
fn table_to_dict<'py>(
    py: Python<'py>,
    columns: Vec<(&'static str, ColumnData)>,
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    for (name, data) in columns {
        match data {
            ColumnData::U16(v) if name == "chd" => {
                let rows = v.len() / CHD_WORDS;
                d.set_item(name, v.into_pyarray(py).reshape([rows, CHD_WORDS])?)?;
            }
            other => d.set_item(name, column_to_py(py, other))?,
        }
    }
    Ok(d)
}

fn check_apid(apid: u32, what: &str) -> PyResult<u16> {
    if apid > 2047 {
        return Err(PyValueError::new_err(format!(
            "{what} must be an APID, 0..2047, not {apid}"
        )));
    }
    Ok(apid as u16)
}

/// A CCSDS packet file, memory-mapped and indexed (the native half of
/// `ams02.ccsds.PacketFile`).
#[pyclass(module = "ams02._native", name = "PacketFile", frozen)]
pub struct PyPacketFile {
    inner: PacketFile,
    name: String,
}

impl PyPacketFile {
    /// `FormatError` (kind `file_changed`) if the file shrank or changed since it was
    /// opened: called after every read of the data.
    fn check(&self) -> PyResult<()> {
        self.inner.check().map_err(|e| to_pyerr(e, &self.name))
    }
}

#[pymethods]
impl PyPacketFile {
    #[new]
    #[pyo3(
        signature = (path, *, strict = false, apids = None, health_apid = Some(977), mmap = true),
        text_signature = "(path, *, strict=False, apids=None, health_apid=977, mmap=True)"
    )]
    fn new(
        py: Python<'_>,
        path: PathBuf,
        strict: bool,
        apids: Option<Vec<u32>>,
        health_apid: Option<u32>,
        mmap: bool,
    ) -> PyResult<Self> {
        let extra_apids = apids
            .unwrap_or_default()
            .into_iter()
            .map(|a| check_apid(a, "apids"))
            .collect::<PyResult<Vec<u16>>>()?;
        let health_apid = health_apid
            .map(|a| check_apid(a, "health_apid"))
            .transpose()?;
        let opts = OpenOptions {
            scan: ScanOptions { extra_apids },
            strict,
            mmap,
            health_apid,
        };
        let name = path.display().to_string();
        let inner = py
            .detach(|| PacketFile::open(&path, &opts))
            .map_err(|e| to_pyerr(e, &name))?;
        Ok(PyPacketFile { inner, name })
    }

    /// The file's name as given.
    #[getter]
    fn name(&self) -> &str {
        &self.name
    }

    /// Bytes in the file.
    #[getter]
    fn size(&self) -> usize {
        self.inner.data().len()
    }

    /// Number of packets.
    #[getter]
    fn n_packets(&self) -> usize {
        self.inner.index().len()
    }

    /// The column names of `packets()`, in order.
    #[staticmethod]
    fn packet_columns() -> Vec<&'static str> {
        PacketColumn::ALL.iter().map(|c| c.name()).collect()
    }

    /// One row per packet: the columns asked for (all when None), for one APID or all.
    #[pyo3(signature = (columns = None, apid = None))]
    fn packets<'py>(
        &self,
        py: Python<'py>,
        columns: Option<Vec<String>>,
        apid: Option<u32>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let cols: Vec<PacketColumn> = match columns {
            None => PacketColumn::ALL.to_vec(),
            Some(names) => names
                .iter()
                .map(|n| {
                    PacketColumn::from_name(n).ok_or_else(|| {
                        PyKeyError::new_err(format!(
                            "unknown column {n:?} for packets; the columns are: {}",
                            Self::packet_columns().join(", ")
                        ))
                    })
                })
                .collect::<PyResult<_>>()?,
        };
        let apid = apid.map(|a| check_apid(a, "apid")).transpose()?;
        let data = py.detach(|| self.inner.columns(&cols, apid));
        self.check()?;
        let d = PyDict::new(py);
        for (c, v) in cols.iter().zip(data) {
            d.set_item(c.name(), column_to_py(py, v))?;
        }
        Ok(d)
    }

    /// Per-APID summary: apid, count, first_seq, last_seq, missing, bytes.
    fn apids<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let s = py.detach(|| self.inner.apid_summary());
        self.check()?;
        table_to_dict(py, s.into_columns())
    }

    /// Writes one file per APID into `out_dir`; returns {apid: path}.
    fn split<'py>(&self, py: Python<'py>, out_dir: PathBuf) -> PyResult<Bound<'py, PyDict>> {
        let files = py
            .detach(|| self.inner.split(&out_dir))
            .map_err(|e| to_pyerr(e, &out_dir.display().to_string()))?;
        self.check()?;
        let d = PyDict::new(py);
        for (apid, path) in files {
            d.set_item(apid, path.display().to_string())?;
        }
        Ok(d)
    }

    /// Health-and-status packets of `apid`: (table, problems of packets not decoded).
    #[pyo3(signature = (apid = 977))]
    fn health_status<'py>(
        &self,
        py: Python<'py>,
        apid: u32,
    ) -> PyResult<(Bound<'py, PyDict>, Bound<'py, PyDict>)> {
        let apid = check_apid(apid, "apid")?;
        let (t, problems) = py.detach(|| self.inner.health_status(apid));
        self.check()?;
        Ok((
            table_to_dict(py, t.into_columns())?,
            problems_to_dict(py, &problems)?,
        ))
    }

    /// Command packets: offset, apid, seq_count, checksum, computed, ok.
    fn verify_commands<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let (t, _) = py.detach(|| self.inner.verify_commands());
        self.check()?;
        table_to_dict(py, t.into_columns())
    }

    /// Every problem, sorted by offset: offset, event_index, kind, detail.
    fn errors<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let problems = py.detach(|| self.inner.problems());
        self.check()?;
        problems_to_dict(py, &problems)
    }

    /// Reassembles the AMS block stream of `apid` into a `RawFile` (big-endian), plus the
    /// map from stream offsets to file offsets: (raw, {stream_start, file_start, len}).
    #[pyo3(signature = (apid = 976))]
    fn reassemble<'py>(
        &self,
        py: Python<'py>,
        apid: u32,
    ) -> PyResult<(RawFile, Bound<'py, PyDict>)> {
        let apid = check_apid(apid, "apid")?;
        let r = py.detach(|| {
            let r = self.inner.reassemble(apid);
            // The packet file's own problems (bad bytes) come along: they may have
            // eaten science packets. Sequence gaps of the science APID are the
            // stream_gap rows; those of other APIDs do not concern the stream.
            let mut extra: Vec<Problem> = self
                .inner
                .index()
                .problems
                .iter()
                .filter(|p| p.kind != crate::problems::ProblemKind::SequenceGap)
                .cloned()
                .collect();
            extra.extend(r.problems.iter().cloned());
            extra.sort_by_key(|p| p.offset);
            (r, extra)
        });
        let (r, extra) = r;
        self.check()?;
        if r.stream.is_empty() {
            return Err(to_pyerr(
                Error::Format {
                    offset: 0,
                    what: format!("no science data: no packet of APID {apid} in the file"),
                },
                &self.name,
            ));
        }
        let raw =
            py.detach(|| RawFile::from_owned(r.stream, ByteOrder::Big, self.name.clone(), extra))?;
        let m = table_to_dict(py, r.map.into_columns())?;
        m.set_item("packets", r.packets)?;
        m.set_item("gaps", r.gaps)?;
        m.set_item("dropped_bytes", r.dropped_bytes)?;
        Ok((raw, m))
    }

    fn __repr__(&self) -> String {
        format!(
            "<ams02._native.PacketFile {:?}: {} bytes, {} packets>",
            self.name,
            self.inner.data().len(),
            self.inner.index().len()
        )
    }
}

/// Simulates a run and writes it as CCSDS packets (see `ams02.simulate_ccsds`).
#[pyfunction]
#[pyo3(signature = (
    path, n_events, *, seed = 0, min_packet = 100, max_packet = 4096,
    housekeeping_every = 16, commands_every = 0, drop = None, drop_fraction = 0.0,
    first_seq = 0, start_time = 1_300_000_000, block_path = None,
    duration_s = 0.0, runs = 1, run = 1_305_000_000, chd = "counter",
    chd_excursion_every = 0, chd_excursion_length = 3, housekeeping_drop = None
))]
#[allow(clippy::too_many_arguments)]
fn simulate_ccsds<'py>(
    py: Python<'py>,
    path: PathBuf,
    n_events: u64,
    seed: u64,
    min_packet: usize,
    max_packet: usize,
    housekeeping_every: u64,
    commands_every: u64,
    drop: Option<Vec<u64>>,
    drop_fraction: f64,
    first_seq: u16,
    start_time: u32,
    block_path: Option<PathBuf>,
    duration_s: f64,
    runs: u32,
    run: u32,
    chd: &str,
    chd_excursion_every: u64,
    chd_excursion_length: u64,
    housekeeping_drop: Option<Vec<u64>>,
) -> PyResult<Bound<'py, PyDict>> {
    let chd = match chd {
        "counter" => ChdProfile::Counter,
        "nominal" => ChdProfile::Nominal {
            every: chd_excursion_every,
            length: chd_excursion_length,
        },
        other => {
            return Err(PyValueError::new_err(format!(
                "chd must be 'counter' or 'nominal', not {other:?}"
            )))
        }
    };
    if !(duration_s.is_finite() && duration_s >= 0.0) {
        return Err(PyValueError::new_err(format!(
            "duration_s must be a non-negative number of seconds, not {duration_s}"
        )));
    }
    if runs == 0 {
        return Err(PyValueError::new_err("runs must be at least 1"));
    }
    if !(0.0..=1.0).contains(&drop_fraction) {
        return Err(PyValueError::new_err(format!(
            "drop_fraction must be within [0, 1], not {drop_fraction}"
        )));
    }
    if min_packet < 100 || max_packet > 4096 || min_packet > max_packet {
        return Err(PyValueError::new_err(format!(
            "HRDL packets are 100..4096 bytes: min_packet={min_packet}, max_packet={max_packet} is outside"
        )));
    }
    if first_seq >= 16384 {
        return Err(PyValueError::new_err(format!(
            "first_seq is a 14-bit sequence count (0..16383), not {first_seq}"
        )));
    }
    let cfg = CcsdsSimConfig {
        n_events,
        seed,
        min_packet,
        max_packet,
        housekeeping_every,
        commands_every,
        drop: drop.unwrap_or_default(),
        drop_fraction,
        first_seq,
        start_time,
        duration_s,
        runs,
        run,
        chd,
        housekeeping_drop: housekeeping_drop.unwrap_or_default(),
        ..Default::default()
    };
    let name = path.display().to_string();
    let sum = py
        .detach(|| -> std::io::Result<_> {
            let mut w = BufWriter::with_capacity(1 << 20, File::create(&path)?);
            let sum = match &block_path {
                Some(bp) => {
                    let mut bw = BufWriter::with_capacity(1 << 20, File::create(bp)?);
                    let s = simulate_ccsds_to_writer(&mut w, &cfg, Some(&mut bw))?;
                    bw.flush()?;
                    s
                }
                None => simulate_ccsds_to_writer(&mut w, &cfg, None)?,
            };
            w.flush()?;
            Ok(sum)
        })
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::InvalidInput => PyValueError::new_err(e.to_string()),
            _ => to_pyerr(Error::Io(e), &name),
        })?;
    let d = PyDict::new(py);
    d.set_item("path", name)?;
    d.set_item("n_events", sum.n_events)?;
    d.set_item("stream_bytes", sum.stream_bytes)?;
    d.set_item("science_packets", sum.science_packets)?;
    d.set_item("dropped", sum.dropped)?;
    d.set_item("dropped_ranges", sum.dropped_ranges)?;
    d.set_item("housekeeping_packets", sum.housekeeping_packets)?;
    d.set_item("command_packets", sum.command_packets)?;
    d.set_item("file_bytes", sum.file_bytes)?;
    d.set_item("housekeeping_dropped", sum.housekeeping_dropped)?;
    d.set_item("runs", sum.runs)?;
    d.set_item("time_span", sum.time_span)?;
    Ok(d)
}

/// Adds the CCSDS classes and functions to the native module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyPacketFile>()?;
    m.add_class::<PyStreamDecoder>()?;
    m.add_class::<PyBlockStream>()?;
    m.add_function(wrap_pyfunction!(simulate_ccsds, m)?)?;
    Ok(())
}

/// Decodes a live CCSDS packet stream piece by piece (the native half of the
/// `ams02.monitor` ingest; `crate::ccsds::stream`).
#[pyclass(module = "ams02._native", name = "StreamDecoder")]
pub struct PyStreamDecoder {
    inner: StreamDecoder,
    name: String,
}

/// A `Batch` as a dict of NumPy arrays; the science blocks as a `RawFile` (or None).
fn batch_to_dict<'py>(py: Python<'py>, b: Batch, name: &str) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    let h = table_to_dict(py, b.health.into_columns())?;
    d.set_item("offset", b.offset.into_pyarray(py))?;
    d.set_item("apid", b.apid.into_pyarray(py))?;
    d.set_item("seq_count", b.seq_count.into_pyarray(py))?;
    d.set_item("seq_gap", b.seq_gap.into_pyarray(py))?;
    d.set_item("length", b.length.into_pyarray(py))?;
    d.set_item("coarse_time", b.coarse_time.into_pyarray(py))?;
    d.set_item("fine_time", b.fine_time.into_pyarray(py))?;
    d.set_item("health", h)?;
    d.set_item("problems", problems_to_dict(py, &b.problems)?)?;
    d.set_item("skipped_bytes", b.skipped_bytes)?;
    d.set_item("science_dropped", b.science_dropped)?;
    d.set_item("science_gaps", b.science_gaps)?;
    d.set_item("block_bytes", b.blocks.len())?;
    if b.blocks.is_empty() {
        d.set_item("blocks", py.None())?;
    } else {
        let raw = py.detach(|| {
            RawFile::from_owned(b.blocks, ByteOrder::Big, name.to_string(), Vec::new())
        })?;
        d.set_item("blocks", Py::new(py, raw)?)?;
    }
    Ok(d)
}

#[pymethods]
impl PyStreamDecoder {
    #[new]
    #[pyo3(
        signature = (*, name = "stream".to_string(), apids = None, health_apid = Some(977), science_apid = Some(976)),
        text_signature = "(*, name='stream', apids=None, health_apid=977, science_apid=976)"
    )]
    fn new(
        name: String,
        apids: Option<Vec<u32>>,
        health_apid: Option<u32>,
        science_apid: Option<u32>,
    ) -> PyResult<Self> {
        let extra_apids = apids
            .unwrap_or_default()
            .into_iter()
            .map(|a| check_apid(a, "apids"))
            .collect::<PyResult<Vec<u16>>>()?;
        let health_apid = health_apid
            .map(|a| check_apid(a, "health_apid"))
            .transpose()?;
        let science_apid = science_apid
            .map(|a| check_apid(a, "science_apid"))
            .transpose()?;
        Ok(PyStreamDecoder {
            inner: StreamDecoder::new(ScanOptions { extra_apids }, health_apid, science_apid),
            name,
        })
    }

    /// Takes the next piece of the stream (any bytes-like object); returns the batch of
    /// what it completed.
    fn feed<'py>(&mut self, py: Python<'py>, data: &[u8]) -> PyResult<Bound<'py, PyDict>> {
        let inner = &mut self.inner;
        let b = py.detach(|| inner.feed(data));
        batch_to_dict(py, b, &self.name)
    }

    /// Ends the stream: what is held is walked as its end.
    fn finish<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let inner = &mut self.inner;
        let b = py.detach(|| inner.finish());
        batch_to_dict(py, b, &self.name)
    }

    /// Breaks the stream (a new connection, a rewritten file): the partial packet and
    /// block held are dropped; with `keep_sequence` the sequence counts carry on (the
    /// packets lost meanwhile show as gaps). Returns the bytes dropped.
    #[pyo3(signature = (keep_sequence = true))]
    fn reset(&mut self, keep_sequence: bool) -> u64 {
        self.inner.reset(keep_sequence)
    }

    /// Bytes held for the next piece.
    #[getter]
    fn pending(&self) -> usize {
        self.inner.pending()
    }

    /// Stream offset of the next byte fed.
    #[getter]
    fn position(&self) -> u64 {
        self.inner.position()
    }

    /// Bytes fed since the start.
    #[getter]
    fn bytes_in(&self) -> u64 {
        self.inner.bytes_in
    }

    /// Packets completed since the start.
    #[getter]
    fn packets(&self) -> u64 {
        self.inner.packets
    }
}

/// The complete blocks of a growing AMS block file, piece by piece.
#[pyclass(module = "ams02._native", name = "BlockStream")]
pub struct PyBlockStream {
    inner: BlockStream,
    name: String,
}

#[pymethods]
impl PyBlockStream {
    #[new]
    #[pyo3(
        signature = (byte_order = "little", *, name = "blocks".to_string()),
        text_signature = "(byte_order='little', *, name='blocks')"
    )]
    fn new(byte_order: &str, name: String) -> PyResult<Self> {
        let order = ByteOrder::from_name(byte_order).ok_or_else(|| {
            PyValueError::new_err(format!(
                "byte_order must be 'little' or 'big', not {byte_order:?}"
            ))
        })?;
        Ok(PyBlockStream {
            inner: BlockStream::new(order),
            name,
        })
    }

    /// Takes the next piece (`end`: the stream ends here); returns (RawFile of the
    /// complete blocks or None, bytes dropped).
    #[pyo3(signature = (data, end = false))]
    fn feed(&mut self, py: Python<'_>, data: &[u8], end: bool) -> PyResult<(Py<PyAny>, u64)> {
        let inner = &mut self.inner;
        let (blocks, dropped) = py.detach(|| inner.feed(data, end));
        if blocks.is_empty() {
            return Ok((py.None(), dropped));
        }
        let order = inner_order(&self.inner);
        let raw =
            py.detach(|| RawFile::from_owned(blocks, order, self.name.clone(), Vec::new()))?;
        Ok((Py::new(py, raw)?.into_any(), dropped))
    }

    /// Bytes held for the next piece.
    #[getter]
    fn pending(&self) -> usize {
        self.inner.pending()
    }

    /// Bytes dropped since the start.
    #[getter]
    fn dropped(&self) -> u64 {
        self.inner.dropped
    }
}

fn inner_order(b: &BlockStream) -> ByteOrder {
    b.order()
}
