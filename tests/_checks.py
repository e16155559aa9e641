"""Comparison helpers and hypothesis strategies shared by the decoder tests.

Nothing here imports ams02: the tests pass decoder output in."""

from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import strategies as st

import amsenc as E


def first_mismatch(a: np.ndarray, b: np.ndarray):
    bad = np.nonzero(a != b)[0] if a.ndim == 1 else np.nonzero((a != b).any(axis=tuple(range(1, a.ndim))))[0]
    return int(bad[0]) if bad.size else None


def assert_table(got, truth: dict, columns: dict, *, name: str = "table") -> None:
    """``got`` has exactly ``columns`` (names and dtypes) and equals ``truth``."""
    assert isinstance(got, dict), f"{name}: expected a dict, got {type(got)}"
    assert list(got) == list(columns) or set(got) == set(columns), f"{name}: columns {sorted(got)} != {sorted(columns)}"
    for col, dt in columns.items():
        a = got[col]
        b = truth[col]
        assert isinstance(a, np.ndarray), f"{name}.{col}: {type(a)} is not a numpy array"
        assert a.dtype == np.dtype(dt), f"{name}.{col}: dtype {a.dtype}, expected {np.dtype(dt)}"
        assert a.shape == b.shape, f"{name}.{col}: shape {a.shape}, expected {b.shape}"
        if a.dtype.kind == "f":
            np.testing.assert_allclose(a, b, rtol=0, atol=2e-6, err_msg=f"{name}.{col}")
        else:
            i = first_mismatch(a, b)
            assert i is None, f"{name}.{col}: first mismatch at row {i}: got {a[i]!r}, expected {b[i]!r}"


def assert_equal_length(got: dict, name: str = "table") -> int:
    lens = {k: len(v) for k, v in got.items()}
    assert len(set(lens.values())) <= 1, f"{name}: columns of unequal length {lens}"
    return next(iter(lens.values())) if lens else 0


def assert_hits(got: dict, truth_rows: list, module_labels, *, name: str = "trd_hits") -> None:
    """Compare ``trd_hits()`` with the encoder's rows. ``module`` is compared by
    label through ``module_labels`` (= ams02.trd.modules()['label']); for hits
    on a not-connected link, module must be -1 and layer 0 (other AMS
    coordinates are not defined by FORMAT.md and are not checked)."""
    cols = E.TRD_HIT_COLUMNS
    assert set(got) == set(cols), f"{name}: columns {sorted(got)}"
    for col, dt in cols.items():
        assert got[col].dtype == np.dtype(dt), f"{name}.{col}: dtype {got[col].dtype}, expected {np.dtype(dt)}"
    n = len(truth_rows)
    assert len(got["event_index"]) == n, f"{name}: {len(got['event_index'])} rows, expected {n}"
    for col in ("event_index", "crate", "slot", "udr", "ufe", "channel", "amplitude", "layer"):
        exp = np.array([r[col] for r in truth_rows], dtype=cols[col])
        i = first_mismatch(got[col], exp)
        assert i is None, f"{name}.{col}: first mismatch at row {i}: got {got[col][i]}, expected {exp[i]} ({truth_rows[i]})"
    labels = np.asarray(module_labels)
    for i, r in enumerate(truth_rows):
        m = int(got["module"][i])
        if r["module"] is None:
            assert m == -1, f"{name}: row {i} on a not-connected link has module {m}"
        else:
            assert 0 <= m < len(labels), f"{name}: row {i} module {m} out of range"
            assert str(labels[m]) == r["module"], f"{name}: row {i} module {labels[m]!r}, expected {r['module']!r}"
            for col in ("ams_layer", "ams_ladder", "ams_tube"):
                assert int(got[col][i]) == r[col], f"{name}.{col}: row {i} got {got[col][i]}, expected {r[col]} ({r})"


def assert_raw(got: dict, truth: dict, *, name: str = "trd_raw") -> None:
    assert set(got) == set(E.TRD_RAW_COLUMNS), f"{name}: columns {sorted(got)}"
    for col, dt in E.TRD_RAW_COLUMNS.items():
        assert got[col].dtype == np.dtype(dt), f"{name}.{col}: dtype {got[col].dtype}"
    assert got["adc"].shape == truth["adc"].shape, f"{name}.adc shape {got['adc'].shape} != {truth['adc'].shape}"
    for col in E.TRD_RAW_COLUMNS:
        i = first_mismatch(got[col], truth[col])
        assert i is None, f"{name}.{col}: first mismatch at row {i}"


def n_rows(table: dict) -> int:
    return len(next(iter(table.values()))) if table else 0


def error_rows(errors: dict) -> list:
    """errors() as a list of (offset, event_index, kind, detail)."""
    return [
        (int(o), int(e), str(k), str(d))
        for o, e, k, d in zip(errors["offset"], errors["event_index"], errors["kind"], errors["detail"])
    ]


def kinds(errors: dict) -> list:
    return [str(k) for k in errors["kind"]]


# ----------------------------------------------------------------- strategies


@st.composite
def runs(draw, orders=E.ORDERS, max_blocks: int = 12, **opts):
    """A random run (amsenc.Run). The structure comes from a seeded
    random.Random; the seed, order, length and switches come from hypothesis."""
    order = draw(st.sampled_from(orders))
    n = draw(st.integers(1, max_blocks))
    seed = draw(st.integers(0, 2**64 - 1))
    o = dict(
        big_block=draw(st.integers(0, 9)) == 0,
        p_long=draw(st.sampled_from([0.0, 0.1, 0.5])),
        p_odd=draw(st.sampled_from([0.0, 0.3])),
        p_gps=draw(st.sampled_from([0.0, 0.5, 1.0])),
        p_level3=draw(st.sampled_from([0.0, 0.3, 1.0])),
    )
    o.update(opts)
    return E.random_run(random.Random(seed), order, n, E.RunOptions(**o))


# The modules benchmarks/run.py compares with or drives (its peers and the monitor's server):
# the tests that run the script skip, naming the first one missing, where the test extra
# is not installed.
BENCHMARK_MODULES = ("ccsdspy", "pyarrow", "starlette", "uvicorn")


def skip_without_benchmark_modules() -> None:
    """Skips the calling test unless every module of ``BENCHMARK_MODULES`` imports."""
    for name in BENCHMARK_MODULES:
        pytest.importorskip(name, reason=f"benchmarks/run.py needs {name} (pip install 'ams02[test]')")
