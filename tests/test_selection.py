"""uproot-style selection (filter_name, cut, negative entries, library aliases, step_size
in events), the multi-file engine's entry ranges, File.summary(), and the fixes of issue 16
(dot-files, Arrow fixed-size lists in pandas, datetime64 column, --version, no fcntl at
start-up)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ams02
from ams02._multi import cut_ranges, parse_step
from ams02.transfer._copy import inspect_file


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("sel")
    ams02.simulate(d / "a.dat", 900, seed=31, run=1_300_000_001, layout="2007")
    ams02.simulate(d / "b.dat", 500, seed=32, run=1_300_000_002, raw_fraction=0.05, layout="flight")
    ams02.simulate(d / "c.dat", 700, seed=33, run=1_300_000_003, byte_order="big", layout="2007")
    (d / ".catalog.sqlite").write_bytes(b"SQLite format 3\x00" + b"\x00" * 100)
    (d / ".hidden.dat").write_bytes(b"junk")
    return d


@pytest.fixture(scope="module")
def paths(files):
    return [files / n for n in ("a.dat", "b.dat", "c.dat")]


# -- filter_name and columns ------------------------------------------------------------
def test_filter_name_wildcards_regex_lists_callables(paths):
    with ams02.open(paths[0]) as f:
        names = list(f.events())
        got = f.events(filter_name="gps_*")
        assert list(got) == [n for n in names if n.startswith("gps_")] and len(got) >= 3
        assert list(f.events(filter_name="/^n_/")) == [n for n in names if n.startswith("n_")]
        assert list(f.events(filter_name="/^RUN$/i")) == ["run"]
        assert list(f.events(filter_name=["run", "event", "t?me"])) == ["run", "event", "time"]
        assert list(f.events(filter_name=lambda c: c.endswith("_ok"))) == [
            n for n in names if n.endswith("_ok")
        ]
        # columns and filter_name together: a column must pass both, in columns' order
        assert list(f.events(["time", "run", "event"], filter_name="/^(run|time)$/")) == ["time", "run"]
        with pytest.raises(ValueError, match="matches no column"):
            f.events(filter_name="nothing*")
        with pytest.raises(ValueError, match="regular expression"):
            f.events(filter_name="/(/")
        with pytest.raises(TypeError, match="filter_name"):
            f.events(filter_name=3)  # type: ignore[arg-type]
        hits = f.trd_hits(filter_name="ams_*")
        np.testing.assert_array_equal(hits["ams_tube"], f.trd_hits()["ams_tube"])
        assert list(f.blocks(filter_name="type*")) == ["type", "type_ext"]


# -- cut --------------------------------------------------------------------------------
def test_cut_equals_a_numpy_mask(paths):
    pytest.importorskip("numexpr")
    with ams02.open(paths[1]) as f:
        ev = f.events()
        mask = (ev["n_trd_hits"] > 3) & ev["jmdc_ok"] & (ev["event"] % 2 == 0)
        got = f.events(["event", "n_trd_hits"], cut="(n_trd_hits > 3) & jmdc_ok & (event % 2 == 0)")
        assert list(got) == ["event", "n_trd_hits"] and 0 < mask.sum() < len(mask)
        np.testing.assert_array_equal(got["event"], ev["event"][mask])
        hits = f.trd_hits()
        sel = f.trd_hits(cut="(amplitude > 2000) & (layer >= 3)", filter_name="amp*")
        np.testing.assert_array_equal(
            sel["amplitude"], hits["amplitude"][(hits["amplitude"] > 2000) & (hits["layer"] >= 3)]
        )
        # uint64 columns (numexpr has no unsigned types)
        far = f.events(["offset"], cut="offset >= 100000")["offset"]
        np.testing.assert_array_equal(far, ev["offset"][ev["offset"] >= 100000])
        raw = f.trd_raw(cut="udr == 2")
        np.testing.assert_array_equal(raw["adc"], f.trd_raw()["adc"][f.trd_raw()["udr"] == 2])
        with pytest.raises(KeyError, match="nope"):
            f.events(cut="nope > 1")
        with pytest.raises(ValueError, match="True/False"):
            f.events(cut="run + 1")
        with pytest.raises(ValueError, match="cut"):
            f.events(cut="run >")
        with pytest.raises(TypeError, match="cut"):
            f.events(cut=lambda t: t)  # type: ignore[arg-type]
        pytest.importorskip("pandas")  # and a pandas result
        df = f.events(cut="offset >= 100000", library="pandas")
        assert len(df) == len(far) > 0 and "datetime" in df


# -- entries, libraries -----------------------------------------------------------------
@settings(max_examples=40)
@given(a=st.one_of(st.none(), st.integers(-1200, 1200)), b=st.one_of(st.none(), st.integers(-1200, 1200)))
def test_negative_entries_are_python_slices(paths, a, b):
    with ams02.open(paths[0]) as f:
        off = f.raw.event_offsets()
        got = f.events(["offset"], entry_start=a, entry_stop=b)["offset"]
        np.testing.assert_array_equal(got, off[a:b])
        hits = f.trd_hits(["event_index"], entry_start=a, entry_stop=b)["event_index"]
        idx = np.arange(len(off))[a:b]
        assert np.isin(hits, idx).all()


def test_library_aliases(paths):
    pytest.importorskip("pandas")
    pa = pytest.importorskip("pyarrow")
    with ams02.open(paths[0]) as f:
        assert f.events(library="pandas").equals(f.events(library="pd"))
        assert f.events(library="pyarrow").equals(f.events(library="pa"))
        assert isinstance(f.events(library="arrow"), pa.Table)
        n = f.events(library="numpy")
        for k, v in f.events(library="np").items():
            np.testing.assert_array_equal(n[k], v)
        with pytest.raises(ValueError, match="'numpy'"):
            f.events(library="polars")
    df = ams02.concatenate(paths, "events", library="pandas", progress=False)
    assert len(df) == 2100


def test_step_size_int_counts_events_and_strings_need_a_unit(paths):
    assert parse_step(1000) == ("events", 1000) and parse_step("1 MB") == ("bytes", 10**6)
    for bad in ("1000", "  12 "):
        with pytest.raises(ValueError, match="no unit"):
            parse_step(bad)
    with pytest.raises(ValueError, match="positive"):
        parse_step(0)
    with pytest.raises(TypeError):
        parse_step(2.5)  # type: ignore[arg-type]
    sizes = [
        len(b["events"]["offset"])
        for b in ams02.iterate(paths, step_size=400, tables="events", progress=False)
    ]
    assert sizes == [400, 400, 100, 400, 100, 400, 300]


@settings(max_examples=30)
@given(
    a=st.one_of(st.none(), st.integers(-2300, 2300)),
    b=st.one_of(st.none(), st.integers(-2300, 2300)),
    step=st.sampled_from([1, 97, 5000, "30 kB", "10 MB"]),
)
def test_entry_ranges_over_files_are_slices_of_the_concatenation(paths, a, b, step):
    whole = ams02.concatenate(paths, "events", progress=False)
    hits = ams02.concatenate(paths, "trd_hits", progress=False)
    want = slice(a, b)
    got = ams02.concatenate(paths, "events", entry_start=a, entry_stop=b, progress=False)
    for k in ("offset", "file_index", "event"):
        np.testing.assert_array_equal(got[k], whole[k][want])
    # hits of those events, event_index re-based onto the selected events
    rows = np.arange(len(whole["offset"]))[want]
    sel_hits = ams02.concatenate(paths, "trd_hits", entry_start=a, entry_stop=b, progress=False)
    keep = np.isin(hits["event_index"], rows)
    np.testing.assert_array_equal(sel_hits["amplitude"], hits["amplitude"][keep])
    if len(rows):
        np.testing.assert_array_equal(sel_hits["event_index"], hits["event_index"][keep] - rows[0])
    batches = list(
        ams02.iterate(paths, step_size=step, tables=("events",), entry_start=a, entry_stop=b, progress=False)
    )
    offs = [x["events"]["offset"] for x in batches]
    cat = np.concatenate(offs) if offs else np.empty(0, np.uint64)
    np.testing.assert_array_equal(cat, whole["offset"][want])
    if isinstance(step, int):
        assert all(len(o) <= step for o in offs)


def test_dask_partitions_follow_the_same_engine(paths):
    adask = pytest.importorskip("ams02.dask")
    parts = adask.partitions(paths, step_size=250, entry_start=-1500, entry_stop=-100)
    got = [(p.file_index, p.entry_start, p.entry_stop, p.event_base) for p in parts]
    assert got == [
        (0, 600, 850, 0),
        (0, 850, 900, 250),
        (1, 0, 250, 300),
        (1, 250, 500, 550),
        (2, 0, 250, 800),
        (2, 250, 500, 1050),
        (2, 500, 600, 1300),
    ]
    with ams02.open(paths[0]) as f:
        off = f.raw.event_offsets()
    assert cut_ranges(off, ("events", 300), 100, 900) == [(100, 400), (400, 700), (700, 900)]


def test_iterate_per_table_columns_and_cuts(paths):
    pytest.importorskip("numexpr")
    out = list(
        ams02.iterate(
            paths[:2],
            step_size=10_000,
            tables=("events", "trd_hits"),
            columns={"events": ["run", "n_trd_hits"]},
            filter_name={"trd_hits": "/^(amplitude|event_index)$/"},
            cut={"events": "n_trd_hits > 0"},
            progress=False,
        )
    )
    assert len(out) == 2
    for path, b in zip(paths[:2], out):
        assert list(b["events"]) == ["run", "n_trd_hits", "file_index"]
        assert list(b["trd_hits"]) == ["event_index", "amplitude", "file_index"]
        assert (b["events"]["n_trd_hits"] > 0).all()
        with ams02.open(path) as f:
            ev = f.events()
            np.testing.assert_array_equal(b["events"]["run"], ev["run"][ev["n_trd_hits"] > 0])
    with pytest.raises(ValueError, match="not asked for"):
        ams02.iterate(paths, tables=("events",), cut={"trd_raw": "udr > 1"})
    with pytest.raises(KeyError, match="nope"):
        ams02.iterate(paths, columns=["nope"])


# -- one summary ------------------------------------------------------------------------
def test_summary_is_computed_once_for_validate_and_info(paths, tmp_path):
    bad = tmp_path / "bad.dat"
    data = bytearray(paths[1].read_bytes())
    for i in range(5000, len(data), 50_000):
        data[i] ^= 0xFF
    bad.write_bytes(bytes(data))
    for p in (paths[0], paths[2], bad):
        with ams02.open(p) as f:
            s = f.summary()
            ev = f.events()
            good = ev["jmdc_ok"]
            t = ev["unix_time"][good]
            t = t[np.isfinite(t)]
            assert s["runs"] == sorted(set(ev["run"][good].tolist()))
            assert s["time_min"] == t.min() and s["time_max"] == t.max()
            assert s["events"] == len(ev["offset"]) and s["trd_hits"] == int(ev["n_trd_hits"].sum())
            assert s["errors"] == len(f.errors()["kind"]) and s["ok"] == (s["errors"] == 0)
            assert f.validate() == s
            kinds = f.errors()["kind"].tolist()
        r = subprocess.run(
            [sys.executable, "-m", "ams02", "info", "--json", str(p)], capture_output=True, text=True
        )
        info = json.loads(r.stdout)[0]
        assert (info["runs"], info["first_time_unix"], info["last_time_unix"]) == (
            s["runs"],
            s["time_min"],
            s["time_max"],
        )
        assert info["errors"] == s["errors"] and info["error_kinds"] == s["error_kinds"]
        # the transfer's inspection of each copy: the same summary
        meta, problems = inspect_file(str(p))
        assert (meta["run_min"], meta["run_max"]) == (
            (min(s["runs"]), max(s["runs"])) if s["runs"] else (None, None)
        )
        assert meta["runs"] == ",".join(map(str, s["runs"]))
        assert (meta["time_min"], meta["time_max"], meta["n_errors"]) == (
            s["time_min"],
            s["time_max"],
            s["errors"],
        )
        assert (meta["n_events"], meta["n_blocks"], meta["flagged"]) == (
            s["events"],
            s["blocks"],
            int(not s["ok"]),
        )
        assert [k for _, _, k, _ in problems] == kinds[: len(problems)]
    assert s["ok"] is False and s["runs"] == [1_300_000_002]


# -- fixes ------------------------------------------------------------------------------
def test_directories_skip_dot_files(files, paths):
    from ams02._multi import resolve_paths

    assert resolve_paths(files) == [str(p) for p in paths]
    assert resolve_paths(str(files / "*")) == [str(p) for p in paths]
    ev = ams02.concatenate(files, "events", progress=False)
    assert len(ev["offset"]) == 2100
    r = subprocess.run([sys.executable, "-m", "ams02", "info", str(files)], capture_output=True, text=True)
    assert r.returncode == 0 and ".catalog" not in r.stdout


def test_trd_raw_in_pandas_is_an_arrow_fixed_size_list(paths):
    pd = pytest.importorskip("pandas")
    pa = pytest.importorskip("pyarrow")
    with ams02.open(paths[1]) as f:
        raw = f.trd_raw()
        df = f.trd_raw(library="pd")
    assert isinstance(df["adc"].dtype, pd.ArrowDtype)
    assert df["adc"].dtype.pyarrow_dtype == pa.list_(pa.uint16(), 448)
    arr = df["adc"].array._pa_array.combine_chunks()
    np.testing.assert_array_equal(arr.values.to_numpy().reshape(-1, 448), raw["adc"])
    assert len(df) == len(raw["udr"]) > 10


def test_pandas_events_have_a_datetime64_column(paths):
    pd = pytest.importorskip("pandas")
    with ams02.open(paths[0]) as f:
        ev = f.events()
        df = f.events(library="pd")
    assert str(df["datetime"].dtype) == "datetime64[ns, UTC]"
    has = np.isfinite(ev["unix_time"])
    assert df["datetime"].isna().to_numpy().tolist() == (~has).tolist()
    i = int(np.flatnonzero(has)[0])
    want = pd.Timestamp(ev["unix_time"][i], unit="s", tz="UTC")
    assert abs((df["datetime"].iloc[i] - want).total_seconds()) < 1e-6


def test_cli_version_and_no_fcntl_at_start_up():
    r = subprocess.run([sys.executable, "-m", "ams02", "--version"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip() == f"ams02 {ams02.__version__}"
    code = "import sys; sys.modules['fcntl'] = None; import ams02.cli as c; c.build_parser(); print('ok')"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.stdout.strip() == "ok", r.stderr


def test_inputs_go_through_concatenate(paths):
    data = [p.read_bytes() for p in paths]
    a = ams02.concatenate(data, "trd_hits", progress=False)
    b = ams02.concatenate(paths, "trd_hits", progress=False)
    for k in b:
        np.testing.assert_array_equal(a[k], b[k])
    assert Path(paths[0]).exists()
