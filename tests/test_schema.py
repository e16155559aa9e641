"""The described schema (ams02.schema, File.keys/show, docstrings, repr) against the tables
actually returned.

The tables are the registry's own (``_schema.tables()``), each named with the calls that
return it; the other direction is checked too: every public method of the file classes
and function of the detector modules that returns a table is one of those calls."""

from __future__ import annotations

import inspect
import io
from typing import Any, Dict, List, Tuple

import numpy as np
import pytest

import ams02
import lefenc as L
from ams02 import _multi, _schema

LIBRARIES = ("np", "pd", "pa")

#: Public callables that take required arguments, and so are not called here: none of
#: them returns a table (a new table method with arguments must be registered or listed).
NOT_TABLES = {
    ("File", "words"): "16-bit words at an offset: one array",
    ("CcsdsFile", "stream_to_file_offset"): "offsets mapped: one array or an int",
    ("PacketFile", "split"): "files written: {apid: path}",
    ("ams02.trd", "load_map"): "a TrdMap",
    ("ams02.trd", "module_counts"): "one value per module: one array",
    ("ams02.trd", "plot_occupancy"): "a matplotlib Axes",
    ("ams02.trd", "amplitude_spectrum"): "a hist.Hist",
    ("ams02.trd", "plot_spectrum"): "a matplotlib Axes",
    ("ams02.l0", "calibrate"): "a Calibration (per-channel arrays and common noise)",
    ("ams02.l0", "subtract"): "one (n, 1024) array",
}
#: Public callables not called here for what they do.
NOT_CALLED = {("NativeHandle", "close"): "closes the file"}


@pytest.fixture(scope="module")
def flight(tmp_path_factory):
    """A simulated flight-layout run (raw and mixed TRD read-outs) with one damaged byte,
    then LEF raw events in fine-time envelopes and an envelope (tests/lefenc.py), then a
    junk tail: every table of File has rows."""
    p = tmp_path_factory.mktemp("schema") / "run.dat"
    ams02.simulate(p, 300, seed=61, raw_fraction=0.1, mixed_fraction=0.05)
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 0x0F
    adc = np.random.default_rng(3).integers(1000, 3000, (3, 1024)).astype(np.uint16)
    t = 1_654_502_079
    words: List[int] = []
    for k, a in enumerate(adc):
        words += L.fine_time_envelope(L.lef_reply(a, counter=k, link=1, time=t), 1000 * k + 5, time=t)
    words += L.envelope([L.lef_poll(time=t), L.block(3, 8, [1, 2, 3], time=t)], time=t)
    p.write_bytes(bytes(data) + L.to_bytes(words) + b"\xff" * 10)
    return p


@pytest.fixture(scope="module")
def owners(flight, tmp_path_factory):
    """The owners named in the registry's calls: open files and the detector modules."""
    p = tmp_path_factory.mktemp("schema") / "run.ccsds"
    ams02.simulate_ccsds(p, 200, seed=3, commands_every=7, drop=[4])
    with ams02.open(flight) as f, ams02.ccsds.open(p) as pf, pf.science() as cf:
        yield {"File": f, "PacketFile": pf, "CcsdsFile": cf, "ams02.trd": ams02.trd, "ams02.l0": ams02.l0}


def _call(owners: Dict[str, Any], owner: str, method: str, kwargs: Dict[str, Any], library: str) -> Any:
    return getattr(owners[owner], method)(**kwargs, library=library)


def _names(table: Any) -> List[str]:
    if isinstance(table, dict):
        return list(table)
    if hasattr(table, "column_names"):  # pyarrow
        return list(table.column_names)
    return list(table.columns)  # pandas


def _check_np(table: str, got: Dict[str, np.ndarray], cols: List[_schema.Column]) -> None:
    assert [c.name for c in cols] == list(got), table
    n = {len(v) for v in got.values()}
    assert len(n) == 1 and n.pop() > 0, table  # every table of the fixtures has rows
    for c in cols:
        v = got[c.name]
        assert isinstance(v, np.ndarray) and v.shape[1:] == c.shape, (table, c.name)
        if c.dtype == "str":
            assert v.dtype.kind == "U", (table, c.name)
        else:
            assert v.dtype == np.dtype(c.dtype), (table, c.name)
        assert len(c.meaning) > 8, (table, c.name)


def _check_pd(table: str, df: Any, cols: List[_schema.Column]) -> None:
    import pandas as pd
    import pyarrow as pa

    extra = [c for c in _schema.columns(table, extras=True) if c.where == "pandas"]
    assert list(df.columns) == [c.name for c in cols + extra], table
    for c in cols:
        dt = df[c.name].dtype
        if c.shape:
            assert isinstance(dt, pd.ArrowDtype), (table, c.name)
            assert dt.pyarrow_dtype == pa.list_(pa.from_numpy_dtype(np.dtype(c.dtype)), c.shape[0]), (
                table,
                c.name,
            )
        elif c.dtype == "str":
            assert dt == np.dtype(object) or isinstance(dt, pd.StringDtype), (table, c.name)
        else:
            assert dt == np.dtype(c.dtype), (table, c.name)
    for c in extra:
        assert str(df[c.name].dtype) == c.dtype, (table, c.name)


def _check_pa(table: str, t: Any, cols: List[_schema.Column]) -> None:
    import pyarrow as pa

    assert t.column_names == [c.name for c in cols], table
    for c in cols:
        ty = t.schema.field(c.name).type
        if c.dtype == "str":
            want = pa.string()
        else:
            want = pa.from_numpy_dtype(np.dtype(c.dtype))
            if c.shape:
                want = pa.list_(want, c.shape[0])
        assert ty == want, (table, c.name, ty, want)


@pytest.mark.parametrize("library", LIBRARIES)
def test_every_registry_table_is_what_its_calls_return(owners, library):
    if library != "np":
        pytest.importorskip("pandas" if library == "pd" else "pyarrow")
        pytest.importorskip("pyarrow")
    tables = _schema.tables()
    assert len(tables) >= 19 and len(set(tables)) == len(tables)
    check = {"np": _check_np, "pd": _check_pd, "pa": _check_pa}[library]
    for table in tables:
        calls = _schema.calls(table)
        assert calls, f"{table}: its description names no call"
        cols = _schema.columns(table)
        for owner, method, kwargs in calls:
            got = _call(owners, owner, method, kwargs, library)
            check(table, got, cols)
    units = {(t, c.name): c.unit for t in tables for c in _schema.columns(t)}
    assert units[("events", "offset")] == "B" and units[("events", "unix_time")] == "s"
    assert units[("trd_hits", "amplitude")] == "ADC/8" and units[("events", "run")] == ""
    assert units[("blocks_nested", "time_us")] == "us" and units[("lef_raw", "adc")] == "ADC"
    assert units[("packets", "fine_time")] == "1/256 s" and units[("health_status", "time_s")] == "s"


def _is_table(v: Any) -> bool:
    if isinstance(v, dict) and v and all(isinstance(a, np.ndarray) for a in v.values()):
        return len({len(a) for a in v.values()}) == 1
    return False


def _public_callables(owner: str, obj: Any) -> List[Tuple[str, Any]]:
    """(name, bound callable) of every public method (of a file) or function defined in
    the module (of a detector module)."""
    out = []
    if inspect.ismodule(obj):
        for name, f in vars(obj).items():
            if not name.startswith("_") and inspect.isfunction(f) and f.__module__ == obj.__name__:
                out.append((name, f))
    else:
        for name, f in inspect.getmembers(type(obj), inspect.isfunction):
            if not name.startswith("_"):
                out.append((name, getattr(obj, name)))
    return out


def _owner_of(owner: str, obj: Any, name: str) -> str:
    """The registry's owner name of a method: the class that defines it."""
    if inspect.ismodule(obj):
        return owner
    return next(k.__name__ for k in type(obj).__mro__ if name in vars(k))


def test_every_table_method_is_in_the_registry(owners):
    """Each public callable is called with its defaults (and each keyword-only bool
    flipped); whatever returns a table must be a registered call of that table."""
    registered = {
        (o, m, tuple(sorted(kw.items()))): t for t in _schema.tables() for o, m, kw in _schema.calls(t)
    }
    seen = set()
    found = set()
    for owner, obj in owners.items():
        for name, f in _public_callables(owner, obj):
            key = (_owner_of(owner, obj, name), name)
            found.add(key)
            if key in NOT_CALLED:
                continue
            params = inspect.signature(f).parameters.values()
            if any(p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in params):
                assert key in NOT_TABLES, f"{key} takes arguments: register its table or list it"
                continue
            variants: List[Dict[str, Any]] = [{}]
            variants += [
                {p.name: not p.default}
                for p in params
                if p.kind == p.KEYWORD_ONLY and isinstance(p.default, bool)
            ]
            for kwargs in variants:
                try:
                    got = f(**kwargs)
                except ImportError:  # an optional library (awkward for arrays())
                    continue
                if isinstance(got, dict) and got and all(_is_table(v) for v in got.values()):
                    for table, v in got.items():  # File.tables(): registry names to tables
                        assert list(v) == _schema.keys(table), (key, table)
                    continue
                if not _is_table(got):
                    continue
                call = key + (tuple(sorted(kwargs.items())),)
                assert call in registered, f"{call} returns a table that is not in the registry"
                assert list(got) == _schema.keys(registered[call]), call
                seen.add(call)
    # and every registered call was found among the public callables, every listed one too
    assert seen == set(registered), set(registered) - seen
    assert set(NOT_TABLES) | set(NOT_CALLED) <= found, (set(NOT_TABLES) | set(NOT_CALLED)) - found


def test_extras_are_the_columns_other_results_add(flight):
    pytest.importorskip("pandas")
    with ams02.open(flight) as f:
        for table in ("events", "trd_hits"):
            df = f.tables([table], library="pd")[table]
            s = ams02.schema(table)
            assert set(df.columns) <= set(s["name"]), table
            extra = set(df.columns) - set(f.tables([table])[table])
            assert extra and all(s["where"][list(s["name"]).index(n)] == "pandas" for n in extra)
    for table in _multi.TABLES:
        got = ams02.concatenate([flight], table, progress=False)
        names = [c.name for c in _schema.columns(table)] + ["file_index"]
        assert list(got) == names
        pandas = [c.name for c in _schema.columns(table, extras=True) if c.where == "pandas"]
        assert list(ams02.schema(table)["name"]) == names[:-1] + pandas + ["file_index"]
        empty = ams02.concatenate([], table, progress=False)
        assert list(empty) == names
        for k in names:  # the empty table has the dtypes of a real one
            assert empty[k].dtype.kind == got[k].dtype.kind and empty[k].shape[1:] == got[k].shape[1:], (
                table,
                k,
            )
    # file_index only where the multi-file functions give it
    assert "file_index" not in list(ams02.schema("packets")["name"])


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
    assert list(every) == list(_schema.tables())
    assert every["trd_raw"]["shape"][list(every["trd_raw"]["name"]).index("adc")] == "(448,)"
    assert every["lef_raw"]["shape"][list(every["lef_raw"]["name"]).index("adc")] == "(1024,)"
    with pytest.raises(ValueError, match="unknown table 'hits'"):
        ams02.schema("hits")
    assert _schema.calls("blocks_nested") == [("File", "blocks", {"nested": True})]
    assert _schema.calls("errors") == [("File", "errors", {}), ("PacketFile", "errors", {})]


def test_keys_show_docstrings(owners):
    f, pf = owners["File"], owners["PacketFile"]
    assert f.keys("trd_hits") == list(f.trd_hits())
    assert f.keys("events", filter_name="gps*") == [k for k in f.events() if k.startswith("gps")]
    assert f.keys("lef_raw") == list(f.lef_raw())
    assert pf.keys() == list(pf.packets()) and pf.keys("apids") == list(pf.apids())
    for table in _schema.tables():
        out = io.StringIO()
        f.show(table, stream=out)
        lines = out.getvalue().splitlines()
        assert lines[0].startswith(f"{table}:") and len(lines) == 3 + len(_schema.columns(table)), table
        for c in _schema.columns(table):
            assert any(line.split()[:1] == [c.name] and c.meaning in line for line in lines[3:]), (
                table,
                c.name,
            )
    out = io.StringIO()
    pf.show("health_status", stream=out)
    assert "chd" in out.getvalue() and "uint16(10,)" in out.getvalue()
    # each table method's docstring lists its columns (from the registry)
    for table in _schema.tables():
        for owner, method, kwargs in _schema.calls(table):
            o = owners[owner]
            doc = getattr(o if inspect.ismodule(o) else type(o), method).__doc__
            for c in _schema.columns(table):
                assert f"``{c.name}``" in doc, (table, method, c.name)
            if kwargs:
                assert "With ``nested=True``, also:" in doc
    # listed at the docstring's own indentation (text, not a code block, once dedented)
    assert "\n    Columns:\n\n    - ``channel``" in ams02.l0.channel_map.__doc__


def test_repr_and_html(flight):
    with ams02.open(flight) as f:
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
            "flight",
        ):
            assert want in h, want
        # Every kind of problem of the damaged file, with its count.
        kinds, counts = np.unique(f.errors()["kind"], return_counts=True)
        assert len(kinds) > 0
        for kind, count in zip(kinds, counts):
            assert f"{kind}: {count}" in h, kind
        assert f.summary() == s  # computed once, the same
    assert "closed" in repr(f) and "closed" in f._repr_html_()
