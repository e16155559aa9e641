//! Opening block data that is not a local file: bytes handed over by Python in chunks
//! (a `bytes` object, slices of a buffer, reads of a binary file object or of a remote
//! file opened with fsspec). The chunks are copied once, in order, into memory the core
//! owns (peak memory: the data plus one chunk); the Python side (`ams02._source`) decides
//! how to cut the input. Kept apart from the file-reading code (`crate::source`).

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use super::file::{parse_order, parse_threads, RawFile};
use super::to_pyerr;
use super::trd::TrdMap;
use crate::file::AmsFile;
use crate::source::Source;

/// Opens the bytes that `chunks` (an iterable of `bytes`) yields, in order, as one block
/// file named `name` (the name error messages give). `size_hint` reserves the memory at
/// once when the total size is known.
#[pyfunction]
#[pyo3(signature = (chunks, name, *, size_hint = None, byte_order = "auto", threads = None, trd_map = None, strict = false, dialect = "auto"))]
#[allow(clippy::too_many_arguments)]
fn open_chunks(
    py: Python<'_>,
    chunks: &Bound<'_, PyAny>,
    name: String,
    size_hint: Option<usize>,
    byte_order: &str,
    threads: Option<i64>,
    trd_map: Option<PyRef<'_, TrdMap>>,
    strict: bool,
    dialect: &str,
) -> PyResult<RawFile> {
    let order = parse_order(byte_order)?;
    let dialect = super::file::parse_dialect(dialect)?;
    let threads = parse_threads(threads)?;
    let mut data: Vec<u8> = Vec::with_capacity(size_hint.unwrap_or(0));
    for chunk in chunks.try_iter()? {
        let chunk = chunk?;
        let bytes = chunk.cast::<PyBytes>().map_err(|_| {
            PyTypeError::new_err(format!(
                "{name}: a chunk of data must be bytes, not {}",
                chunk
                    .get_type()
                    .name()
                    .map(|n| n.to_string())
                    .unwrap_or_else(|_| "?".to_string())
            ))
        })?;
        data.extend_from_slice(bytes.as_bytes());
    }
    data.shrink_to_fit();
    let map = trd_map.map(|m| m.inner.clone());
    let inner = py
        .detach(|| {
            // As AmsFile::open: data that are not AMS block data are refused (FORMAT.md 1).
            let order = match order {
                Some(o) => o,
                None => crate::index::detect_byte_order(&data)?,
            };
            crate::index::check_block_data(&data, order)?;
            AmsFile::from_source_lazy(Source::from_vec(data), order, Vec::new())
        })
        .map_err(|e| to_pyerr(e, &name))?;
    let mut inner = inner.with_threads(threads).with_dialect(dialect);
    if let Some(map) = map {
        inner = inner.with_map(map);
    }
    RawFile::from_parts(inner, name, strict)
}

/// Adds `open_chunks`.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(open_chunks, m)?)?;
    Ok(())
}
