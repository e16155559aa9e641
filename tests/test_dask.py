"""ams02.dask on a real dask.distributed LocalCluster: the same rows as concatenate."""

from __future__ import annotations

import numpy as np
import pytest

import ams02

dd = pytest.importorskip("dask.dataframe")
distributed = pytest.importorskip("distributed")
ak = pytest.importorskip("awkward")
pytest.importorskip("dask_awkward")

import ams02.dask as adask  # noqa: E402


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("dask")
    for i in range(3):
        ams02.simulate(d / f"run{i}.dat", 1500 + 300 * i, seed=10 + i)
    return d


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None, silence_logs=40) as cluster:
        with distributed.Client(cluster) as c:
            yield c


def frame_equal(df, table):
    df = df.reset_index(drop=True)
    assert list(df.columns) == list(table), (list(df.columns), list(table))
    for k, v in table.items():
        if v.ndim > 1:  # an Arrow fixed-size list column
            got = np.asarray(df[k].array._pa_array.combine_chunks().values).reshape(v.shape)
            assert np.array_equal(got, v), k
            continue
        got = df[k].to_numpy()
        assert got.dtype == v.dtype, k
        assert np.array_equal(got, v, equal_nan=v.dtype.kind == "f"), k


def test_partitions_cover_every_event_once(files):
    parts = adask.partitions(str(files), step_size="300 kB")
    assert len(parts) > 3
    per_file = {}
    for p in parts:
        per_file.setdefault(p.file_index, []).append((p.entry_start, p.entry_stop))
    for i, ranges in per_file.items():
        assert ranges[0][0] == 0
        assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))
        with ams02.open(sorted(files.iterdir())[i]) as f:
            assert ranges[-1][1] == f.n_events


def test_events_and_hits_equal_concatenate_on_a_local_cluster(files, client):
    ev = adask.events(str(files / "*.dat"), step_size="300 kB")
    assert ev.npartitions > 3
    frame_equal(ev.compute(), ams02.concatenate(str(files), "events"))
    hits = adask.trd_hits(files, step_size="300 kB")
    frame_equal(hits.compute(), ams02.concatenate(str(files), "trd_hits"))
    cols = adask.events(files, columns=["run", "event"], step_size="300 kB").compute()
    assert list(cols.columns) == ["run", "event", "file_index"]


def test_arrays_nest_hits_like_concatenate(files, client):
    arr = adask.arrays(files, step_size="300 kB").compute()
    ev = ams02.concatenate(str(files), "events")
    hits = ams02.concatenate(str(files), "trd_hits")
    assert len(arr) == len(ev["offset"])
    assert ak.to_numpy(arr.file_index).tolist() == ev["file_index"].tolist()
    assert ak.to_numpy(ak.num(arr.trd_hits)).tolist() == ev["n_trd_hits"].tolist()
    assert np.array_equal(ak.to_numpy(ak.flatten(arr.trd_hits.amplitude)), hits["amplitude"])
