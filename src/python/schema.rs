//! The schema registry (`crate::columns::registry`, from the `table!` definitions) for
//! `ams02.schema`.

use pyo3::prelude::*;

/// One schema row per table: ``(table, description, [(column, rust_type, doc), ...])``.
#[pyfunction]
fn schema() -> Vec<crate::columns::TableSchema> {
    crate::columns::registry()
}

/// Adds `schema`.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(schema, m)?)?;
    Ok(())
}
