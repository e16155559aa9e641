"""The described schema (ams02.schema, File.keys/show, docstrings, repr) against the tables
actually returned."""

from __future__ import annotations

import io

import numpy as np
import pytest

import ams02
from ams02 import _schema

TABLES = ("blocks", "events", "fragments", "trd_hits", "trd_raw", "errors")


@pytest.fixture(scope="module")
def damaged(tmp_path_factory):
    p = tmp_path_factory.mktemp("schema") / "run.dat"
    ams02.simulate(p, 400, seed=61, raw_fraction=0.1, mixed_fraction=0.05)
    data = bytearray(p.read_bytes())
    for i in range(3000, len(data), 60_000):
        data[i] ^= 0x0F
    p.write_bytes(bytes(data))
    return p


def _returned(f: ams02.File, table: str):
    return f.blocks() if table == "blocks" else f.errors() if table == "errors" else f.tables([table])[table]


def test_schema_covers_every_column_of_every_table(damaged):
    assert _schema.tables() == TABLES
    with ams02.open(damaged) as f:
        for table in TABLES:
            got = _returned(f, table)
            cols = _schema.columns(table)
            assert [c.name for c in cols] == list(got), table
            for c in cols:
                v = got[c.name]
                assert v.shape[1:] == c.shape, (table, c.name)
                if c.dtype == "str":
                    assert v.dtype.kind == "U", (table, c.name)
                else:
                    assert v.dtype == np.dtype(c.dtype), (table, c.name)
                assert len(c.meaning) > 8, (table, c.name)
            assert len(next(iter(got.values()))) > 0, table
    units = {(t, c.name): c.unit for t in TABLES for c in _schema.columns(t)}
    assert units[("events", "offset")] == "B" and units[("events", "unix_time")] == "s"
    assert units[("trd_hits", "amplitude")] == "ADC/8" and units[("events", "run")] == ""


def test_extras_are_the_columns_other_results_add(damaged):
    pytest.importorskip("pandas")
    with ams02.open(damaged) as f:
        for table in ("events", "trd_hits"):
            df = f.tables([table], library="pd")[table]
            s = ams02.schema(table)
            assert set(df.columns) <= set(s["name"]), table
            extra = set(df.columns) - set(_returned(f, table))
            assert extra and all(s["where"][list(s["name"]).index(n)] == "pandas" for n in extra)
    for table in TABLES:
        got = ams02.concatenate([damaged], table, progress=False)
        names = [c.name for c in _schema.columns(table)] + ["file_index"]
        assert list(got) == names
        empty = ams02.concatenate([], table, progress=False)
        assert list(empty) == names
        for k in names:  # the empty table has the dtypes of a real one
            assert empty[k].dtype.kind == got[k].dtype.kind and empty[k].shape[1:] == got[k].shape[1:], (
                table,
                k,
            )


def test_schema_libraries_and_errors():
    pd = pytest.importorskip("pandas")
    s = ams02.schema("trd_hits", library="pd")
    assert isinstance(s, pd.DataFrame) and list(s.columns) == [
        "name",
        "dtype",
        "shape",
        "unit",
        "meaning",
        "where",
    ]
    assert s.set_index("name").loc["amplitude", "unit"] == "ADC/8"
    every = ams02.schema()
    assert list(every) == list(TABLES)
    assert every["trd_raw"]["shape"][list(every["trd_raw"]["name"]).index("adc")] == "(448,)"
    with pytest.raises(ValueError, match="unknown table 'hits'"):
        ams02.schema("hits")


def test_keys_show_docstrings(damaged):
    with ams02.open(damaged) as f:
        assert f.keys("trd_hits") == list(f.trd_hits())
        assert f.keys("events", filter_name="gps*") == [k for k in f.events() if k.startswith("gps")]
        out = io.StringIO()
        f.show("trd_hits", stream=out)
        text = out.getvalue()
    lines = text.splitlines()
    assert lines[0].startswith("trd_hits:") and "amplitude" in text and "ADC/8" in text
    assert len(lines) == 3 + len(_schema.columns("trd_hits"))
    for method, table in (
        (ams02.File.events, "events"),
        (ams02.File.trd_raw, "trd_raw"),
        (ams02.File.errors, "errors"),
    ):
        for c in _schema.columns(table):
            assert f"``{c.name}``" in method.__doc__, (table, c.name)


def test_repr_and_html(damaged):
    with ams02.open(damaged) as f:
        s = f.summary()
        r = repr(f)
        assert str(f.size) in r and f.byte_order in r and f"{f.n_events} events" in r
        h = f._repr_html_()
        for want in (
            f"{s['bytes']:,} bytes",
            "little-endian",
            f"{s['blocks']:,}",
            f"{s['events']:,}",
            str(s["runs"][0]),
            "UTC",
            f"{s['errors']:,} (",
            "crc_mismatch",
        ):
            assert want in h, want
        assert f.summary() == s  # computed once, the same
    assert "closed" in repr(f) and "closed" in f._repr_html_()
