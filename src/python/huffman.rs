//! Bindings of the Huffman decoder of coded groups (`crate::huffman`, FORMAT.md 9.3).

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use super::to_pyerr;
use crate::huffman::{self as core, Table};
use crate::problems::Error;
use crate::words::{Be, ByteOrder, Le};

fn table(name: &str) -> PyResult<&'static Table> {
    Table::by_name(name).ok_or_else(|| {
        PyValueError::new_err(format!("unknown Huffman table {name:?} (B50A or B606)"))
    })
}

fn order(name: &str) -> PyResult<ByteOrder> {
    ByteOrder::from_name(name).ok_or_else(|| {
        PyValueError::new_err(format!(
            "byte_order must be \"little\" or \"big\", not {name:?}"
        ))
    })
}

/// Decodes a Huffman-coded stream (the data of a TYPE 4 group after its ID word) into
/// the plain group's bytes (each word high byte first). Raises FormatError on an invalid
/// code, too many bits left after END, an odd output or more than `max_out` bytes.
#[pyfunction]
#[pyo3(signature = (data, table, byte_order, max_out=None))]
fn huffman_decode<'py>(
    py: Python<'py>,
    data: &[u8],
    table: &str,
    byte_order: &str,
    max_out: Option<usize>,
) -> PyResult<Bound<'py, PyBytes>> {
    let t = self::table(table)?;
    let order = order(byte_order)?;
    let max_out = max_out.unwrap_or(usize::MAX);
    let r = py.detach(|| {
        let mut out = Vec::new();
        core::decode_dyn(data, order, t, max_out, &mut out).map(|_| out)
    });
    match r {
        Ok(out) => Ok(PyBytes::new(py, &out)),
        Err(e) => Err(to_pyerr(Error::format(e.offset(), e.describe()), t.name())),
    }
}

/// Huffman-codes plain bytes (an even number: words high byte first) as on board and
/// returns the coded stream's words stored in `byte_order`.
#[pyfunction]
fn huffman_encode<'py>(
    py: Python<'py>,
    data: &[u8],
    table: &str,
    byte_order: &str,
) -> PyResult<Bound<'py, PyBytes>> {
    let t = self::table(table)?;
    let order = order(byte_order)?;
    if data.len() % 2 != 0 {
        return Err(PyValueError::new_err(format!(
            "huffman_encode takes whole words: {} bytes is odd",
            data.len()
        )));
    }
    let out = py.detach(|| {
        let words: Vec<u16> = data
            .chunks_exact(2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
            .collect();
        let coded = core::encode(&words, t);
        match order {
            ByteOrder::Little => core::stream_bytes::<Le>(&coded),
            ByteOrder::Big => core::stream_bytes::<Be>(&coded),
        }
    });
    Ok(PyBytes::new(py, &out))
}

/// The code table `name` ("B50A" or "B606"): `(code, length)` of each byte value 0..255.
#[pyfunction]
fn huffman_table(name: &str) -> PyResult<Vec<(u16, u8)>> {
    Ok(table(name)?.codes().to_vec())
}

/// The name of the code table of an event's run ID ("B606" above 0x4DE80000, else "B50A").
#[pyfunction]
fn huffman_table_for_run(run_id: u32) -> &'static str {
    core::table_for_run(run_id).name()
}

/// Adds the Huffman functions.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(huffman_decode, m)?)?;
    m.add_function(wrap_pyfunction!(huffman_encode, m)?)?;
    m.add_function(wrap_pyfunction!(huffman_table, m)?)?;
    m.add_function(wrap_pyfunction!(huffman_table_for_run, m)?)?;
    Ok(())
}
