//! Bindings of the TRD map.

use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::{columns_to_dict, to_pyerr};
use crate::trd::{self as core, TrdMap as CoreMap};

/// A map from UDR2 links to TRD straw modules.
#[pyclass(module = "ams02._native", name = "TrdMap", frozen)]
pub struct TrdMap {
    pub(crate) inner: Arc<CoreMap>,
}

#[pymethods]
impl TrdMap {
    /// Reads a map from text (the format of the shipped flight map).
    #[new]
    fn new(text: &str) -> PyResult<TrdMap> {
        let inner = CoreMap::parse(text).map_err(|e| to_pyerr(e, "TRD map"))?;
        Ok(TrdMap {
            inner: Arc::new(inner),
        })
    }

    /// The flight map shipped with the package.
    #[staticmethod]
    fn flight() -> TrdMap {
        TrdMap {
            inner: Arc::new(CoreMap::flight()),
        }
    }

    /// The text of the map.
    #[getter]
    fn text(&self) -> String {
        self.inner.text.clone()
    }

    /// The modules: a dict of arrays plus `label` (a list of str).
    fn modules<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let (cols, labels) = self.inner.module_columns();
        let d = columns_to_dict(py, cols.into_columns())?;
        d.set_item("label", labels)?;
        Ok(d)
    }

    /// Every connected channel.
    fn channel_map<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        columns_to_dict(py, self.inner.channel_columns().into_columns())
    }

    fn __len__(&self) -> usize {
        self.inner.modules.len()
    }

    fn __repr__(&self) -> String {
        format!("<TrdMap: {} modules>", self.inner.modules.len())
    }
}

/// The shipped flight map's text.
#[pyfunction]
fn flight_map_text() -> &'static str {
    core::FLIGHT_MAP
}

/// Adds the TRD classes and functions.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<TrdMap>()?;
    m.add_function(wrap_pyfunction!(flight_map_text, m)?)?;
    Ok(())
}
