//! Bindings of the Layer-0 front-end (LEF) calibration (FORMAT.md 11.1).

use numpy::{IntoPyArray, PyArrayMethods, PyReadonlyArray1, PyReadonlyArray2};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::column_to_py;
use crate::columns::ColumnData;
use crate::detectors::lef::{self, LefRawColumns};

/// Moves the `lef_raw()` columns into a dict of arrays; `adc` becomes (n, 1024).
pub fn lef_raw_to_dict<'py>(py: Python<'py>, t: LefRawColumns) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    for (name, data) in t.into_columns() {
        match data {
            ColumnData::U16(v) if name == "adc" => {
                let rows = v.len() / lef::CHANNELS;
                d.set_item(name, v.into_pyarray(py).reshape([rows, lef::CHANNELS])?)?;
            }
            other => d.set_item(name, column_to_py(py, other))?,
        }
    }
    Ok(d)
}

fn check_adc(adc: &PyReadonlyArray2<'_, u16>) -> PyResult<Vec<u16>> {
    let shape = adc.as_array().shape().to_vec();
    if shape[1] != lef::CHANNELS {
        return Err(PyValueError::new_err(format!(
            "adc must have shape (n, {}), not {shape:?}",
            lef::CHANNELS
        )));
    }
    Ok(adc.as_array().iter().copied().collect())
}

/// Calibrates LEF raw events `adc` (n, 1024) uint16: a dict of float32 arrays `pedestal`,
/// `raw_sigma`, `sigma` (1024 each), `common_noise` (n, 16), and `valid` (bool).
#[pyfunction]
fn lef_calibrate<'py>(
    py: Python<'py>,
    adc: PyReadonlyArray2<'py, u16>,
) -> PyResult<Bound<'py, PyDict>> {
    let samples = check_adc(&adc)?;
    let n = samples.len() / lef::CHANNELS;
    let cal = py.detach(|| lef::calibrate(&samples, n));
    let d = PyDict::new(py);
    d.set_item("pedestal", cal.pedestal.into_pyarray(py))?;
    d.set_item("raw_sigma", cal.raw_sigma.into_pyarray(py))?;
    d.set_item("sigma", cal.sigma.into_pyarray(py))?;
    let rows = if cal.valid { n } else { 0 };
    d.set_item(
        "common_noise",
        cal.common_noise
            .into_pyarray(py)
            .reshape([rows, lef::N_VA])?,
    )?;
    d.set_item("valid", cal.valid)?;
    Ok(d)
}

/// `(adc - pedestal) - common_noise` in float32, (n, 1024); `common_noise` (n, 16) or
/// (0, 16) for none.
#[pyfunction]
fn lef_subtract<'py>(
    py: Python<'py>,
    adc: PyReadonlyArray2<'py, u16>,
    pedestal: PyReadonlyArray1<'py, f32>,
    common_noise: PyReadonlyArray2<'py, f32>,
) -> PyResult<Bound<'py, PyAny>> {
    let samples = check_adc(&adc)?;
    let n = samples.len() / lef::CHANNELS;
    let ped: Vec<f32> = pedestal.as_array().iter().copied().collect();
    if ped.len() != lef::CHANNELS {
        return Err(PyValueError::new_err(format!(
            "pedestal must have {} values, not {}",
            lef::CHANNELS,
            ped.len()
        )));
    }
    let cn_shape = common_noise.as_array().shape().to_vec();
    if cn_shape[1] != lef::N_VA || (cn_shape[0] != n && cn_shape[0] != 0) {
        return Err(PyValueError::new_err(format!(
            "common_noise must have shape ({n}, {}) or (0, {}), not {cn_shape:?}",
            lef::N_VA,
            lef::N_VA
        )));
    }
    let cn: Vec<f32> = common_noise.as_array().iter().copied().collect();
    let out = py.detach(|| lef::subtract(&samples, n, &ped, &cn));
    Ok(out.into_pyarray(py).reshape([n, lef::CHANNELS])?.into_any())
}

/// The LEF channel map (`lef::channel_table`): `channel`, its `va` and `va_channel`, and
/// the raw channel (`128 adc + group`) and `adc` that read it.
#[pyfunction]
fn lef_channel_map<'py>(py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    for (name, data) in lef::channel_table().into_columns() {
        d.set_item(name, column_to_py(py, data))?;
    }
    Ok(d)
}

/// Adds the LEF functions.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(lef_calibrate, m)?)?;
    m.add_function(wrap_pyfunction!(lef_subtract, m)?)?;
    m.add_function(wrap_pyfunction!(lef_channel_map, m)?)?;
    Ok(())
}
