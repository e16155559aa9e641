"""to_parquet: one Parquet file per table, streamed, equal to concatenate."""

from __future__ import annotations

import json

import numpy as np
import pytest

import ams02

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("pq")
    for i in range(2):
        ams02.simulate(d / f"run{i}.dat", 800, seed=20 + i, raw_fraction=0.05)
    return sorted(str(p) for p in d.iterdir())


@pytest.mark.parametrize("step", ["200 kB", "100 MB"])
def test_parquet_equals_concatenate(files, tmp_path, step):
    tables = ("events", "trd_hits", "trd_raw", "fragments", "errors")
    out = ams02.to_parquet(files, tmp_path / "out", tables=tables, step_size=step, progress=False)
    for name in tables:
        t = pq.read_table(out[name])
        meta = t.schema.metadata
        assert json.loads(meta[b"ams02.sources"]) == files
        assert meta[b"ams02.table"].decode() == name
        ref = ams02.concatenate(files, name, progress=False)
        assert t.column_names == list(ref)
        for k, v in ref.items():
            col = t.column(k).combine_chunks()
            got = np.asarray(col.flatten()).reshape(len(col), -1) if v.ndim == 2 else col.to_numpy(zero_copy_only=False)
            if v.dtype.kind == "U":
                assert [str(x) for x in got] == [str(x) for x in v], (name, k)
            else:
                assert np.array_equal(got, v), (name, k)


def test_parquet_needs_no_events_table_to_rebase_hits(files, tmp_path):
    out = ams02.to_parquet(files, tmp_path / "hits", tables=("trd_hits",), step_size="200 kB", progress=False)
    assert list(out) == ["trd_hits"]
    got = pq.read_table(out["trd_hits"]).column("event_index").to_numpy()
    assert np.array_equal(got, ams02.concatenate(files, "trd_hits", progress=False)["event_index"])
