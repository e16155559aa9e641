//! The Python bindings (`ams02._native`): argument checks, `py.detach(..)` around every
//! decode, and columns moved into NumPy without a copy. No decoding logic lives here.

use numpy::{IntoPyArray, PyArrayMethods, PyReadonlyArray1, PyReadwriteArray1};
use pyo3::exceptions::{PyException, PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::columns::ColumnData;
use crate::problems::Error;

pub mod buffer;
pub mod ccsds;
pub mod file;
pub mod huffman;
pub mod l0;
pub mod schema;
pub mod trd;

/// Large allocations (the output columns above all) on transparent huge pages, as NumPy's
/// own arrays are: first touches of new memory are most of the cost of writing columns
/// (see [`crate::alloc`]).
#[global_allocator]
static ALLOCATOR: crate::alloc::HugePages = crate::alloc::HugePages;

pyo3::create_exception!(
    ams02,
    Ams02Error,
    PyException,
    "Base class of every ams02 error."
);
pyo3::create_exception!(
    ams02,
    FormatError,
    Ams02Error,
    "The data are not in the expected format (the message names the byte offset)."
);

/// Converts a core error into a Python exception, naming `what` (usually the file). An
/// operating-system error becomes the `OSError` subclass of its errno
/// (`FileNotFoundError`, `PermissionError`, `IsADirectoryError`, ...) with `errno`,
/// `strerror` and `filename` set; a file that changed while it was read is a
/// `FormatError` whose `kind` attribute is `"file_changed"`.
pub fn to_pyerr(err: Error, what: &str) -> PyErr {
    match err {
        Error::Io(e) => match e.raw_os_error() {
            Some(code) => {
                let text = std::io::Error::from_raw_os_error(code).to_string();
                // "No such file or directory (os error 2)" -> "No such file or directory"
                let strerror = match text.rfind(" (os error") {
                    Some(i) => text[..i].to_string(),
                    None => text,
                };
                PyOSError::new_err((code, strerror, what.to_string()))
            }
            None => PyOSError::new_err(format!("{what}: {e}")),
        },
        Error::FileChanged(msg) => Python::attach(|py| {
            let err = FormatError::new_err(format!("{what}: file_changed: {msg}"));
            let _ = err.value(py).setattr("kind", "file_changed");
            err
        }),
        Error::Value(msg) => PyValueError::new_err(msg),
        Error::Format { offset, what: msg } => {
            FormatError::new_err(format!("{what}: {msg} (at byte {offset})"))
        }
    }
}

/// Moves one column into a NumPy array.
pub fn column_to_py<'py>(py: Python<'py>, data: ColumnData) -> Bound<'py, PyAny> {
    match data {
        ColumnData::Bool(v) => v.into_pyarray(py).into_any(),
        ColumnData::U8(v) => v.into_pyarray(py).into_any(),
        ColumnData::U16(v) => v.into_pyarray(py).into_any(),
        ColumnData::U32(v) => v.into_pyarray(py).into_any(),
        ColumnData::U64(v) => v.into_pyarray(py).into_any(),
        ColumnData::I8(v) => v.into_pyarray(py).into_any(),
        ColumnData::I16(v) => v.into_pyarray(py).into_any(),
        ColumnData::I64(v) => v.into_pyarray(py).into_any(),
        ColumnData::F64(v) => v.into_pyarray(py).into_any(),
    }
}

/// Moves a table's columns into a dict of NumPy arrays. A column `adc` becomes (n, 448),
/// `gps_values` (n, 7).
pub fn columns_to_dict<'py>(
    py: Python<'py>,
    columns: Vec<(&'static str, ColumnData)>,
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    for (name, data) in columns {
        if let ColumnData::U16(v) = data {
            if name == "adc" {
                let rows = v.len() / crate::trd::UDR_CHANNELS;
                let arr = v
                    .into_pyarray(py)
                    .reshape([rows, crate::trd::UDR_CHANNELS])?;
                d.set_item(name, arr)?;
                continue;
            }
            d.set_item(name, column_to_py(py, ColumnData::U16(v)))?;
            continue;
        }
        if let ColumnData::U32(v) = data {
            if name == "gps_values" {
                let width = crate::jmdc::MAX_GPS_VALUES;
                let rows = v.len() / width;
                d.set_item(name, v.into_pyarray(py).reshape([rows, width])?)?;
                continue;
            }
            d.set_item(name, column_to_py(py, ColumnData::U32(v)))?;
            continue;
        }
        d.set_item(name, column_to_py(py, data))?;
    }
    Ok(d)
}

/// Copies the byte arrays `parts` one after the other into `out` (contiguous, writable,
/// as long as the parts together), on `threads` threads (None: every core) without the
/// GIL: the parallel column join of `ams02.concatenate` (NumPy's `concatenate` copies on
/// one thread, and the first touch of the new array's pages is most of its cost).
#[pyfunction]
#[pyo3(signature = (out, parts, *, threads = None))]
fn join_bytes(
    py: Python<'_>,
    mut out: PyReadwriteArray1<'_, u8>,
    parts: Vec<PyReadonlyArray1<'_, u8>>,
    threads: Option<i64>,
) -> PyResult<()> {
    let threads = file::parse_threads(threads)?;
    let srcs = parts
        .iter()
        .map(|p| p.as_slice())
        .collect::<Result<Vec<&[u8]>, _>>()
        .map_err(|_| PyValueError::new_err("join_bytes: every part must be contiguous"))?;
    let dst = out
        .as_slice_mut()
        .map_err(|_| PyValueError::new_err("join_bytes: out must be contiguous"))?;
    let total: usize = srcs.iter().map(|s| s.len()).sum();
    if total != dst.len() {
        return Err(PyValueError::new_err(format!(
            "join_bytes: out has {} bytes, the parts {total}",
            dst.len()
        )));
    }
    py.detach(|| match crate::decode::pool(threads) {
        Some(pool) => pool.install(|| crate::columns::copy_parts(dst, &srcs)),
        None => crate::columns::copy_parts(dst, &srcs),
    });
    Ok(())
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("Ams02Error", py.get_type::<Ams02Error>())?;
    m.add("FormatError", py.get_type::<FormatError>())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    let roles: Vec<&str> = crate::group::Role::ALL.iter().map(|r| r.name()).collect();
    m.add("ROLES", roles)?;
    let layouts: Vec<&str> = [
        crate::jmdc::Layout::Unknown,
        crate::jmdc::Layout::Seed2007,
        crate::jmdc::Layout::Flight,
    ]
    .iter()
    .map(|l| l.name())
    .collect();
    m.add("LAYOUTS", layouts)?;
    m.add_function(wrap_pyfunction!(join_bytes, m)?)?;
    file::register(m)?;
    trd::register(m)?;
    ccsds::register(m)?;
    l0::register(m)?;
    huffman::register(m)?;
    buffer::register(m)?;
    schema::register(m)?;
    Ok(())
}
