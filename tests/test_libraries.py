"""library= on every table: pandas, pyarrow and awkward give the same values as NumPy."""

from __future__ import annotations

import numpy as np
import pytest

import ams02

pd = pytest.importorskip("pandas")
pa = pytest.importorskip("pyarrow")
ak = pytest.importorskip("awkward")

TABLES = ["blocks", "events", "fragments", "trd_hits", "trd_raw", "errors", "coverage"]


@pytest.fixture(scope="module")
def f(tmp_path_factory):
    path = tmp_path_factory.mktemp("lib") / "run.dat"
    ams02.simulate(path, 400, seed=5, raw_fraction=0.05, mixed_fraction=0.05)
    data = bytearray(path.read_bytes())
    data[5000:5000] = b"\x01\x02" * 7  # junk, so that errors() and coverage() have rows
    path.write_bytes(bytes(data))
    return ams02.open(path)


def as_numpy(obj, library, column):
    if library == "pd":
        return obj[column].to_numpy()
    if library == "pa":
        col = obj.column(column)
        if pa.types.is_fixed_size_list(col.type):
            return np.asarray(col.combine_chunks().flatten()).reshape(len(col), -1)
        return col.to_numpy(zero_copy_only=False)
    return ak.to_numpy(obj[column])


@pytest.mark.parametrize("library", ["pd", "pa", "ak"])
@pytest.mark.parametrize("table", TABLES)
def test_every_library_gives_the_numpy_values(f, table, library):
    ref = getattr(f, table)()
    other = getattr(f, table)(library=library)
    assert len(next(iter(ref.values()))) > 0, table
    for column, values in ref.items():
        got = as_numpy(other, library, column)
        if values.dtype.kind == "U":
            assert [str(x) for x in got] == [str(x) for x in values], column
            continue
        if values.ndim == 2 and library == "pd":
            got = np.stack(got)
        assert got.shape == values.shape, column
        assert np.array_equal(got, values, equal_nan=values.dtype.kind == "f"), column
        if library in ("pa", "ak") and values.ndim == 1:
            assert got.dtype == values.dtype, column


def test_pandas_module_label_is_a_categorical_of_module_labels(f):
    df = f.trd_hits(library="pd")
    labels = ams02.trd.modules()["label"]
    assert isinstance(df["module_label"].dtype, pd.CategoricalDtype)
    assert list(df["module_label"].cat.categories) == list(labels)
    assert (df["module_label"].astype(str).to_numpy() == labels[df["module"].to_numpy()]).all()


def test_unknown_library_is_a_value_error(f):
    with pytest.raises(ValueError, match="'np', 'pd', 'pa', 'ak'"):
        f.blocks(library="polars")


def test_arrays_nest_hits_per_event(f):
    a = f.arrays()
    ev = f.events()
    hits = f.trd_hits()
    assert len(a) == len(ev["offset"])
    assert ak.to_numpy(ak.num(a.trd_hits)).tolist() == ev["n_trd_hits"].tolist()
    flat = ak.to_numpy(ak.flatten(a.trd_hits.channel))
    assert np.array_equal(flat, hits["channel"])
    with pytest.raises(ValueError, match="'ak'"):
        f.arrays(library="np")
