"""ams02.concatenate / ams02.iterate over many files, and the benchmark script's smoke run."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Dict, List

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ams02
import ams02._multi as multi
from ams02._multi import TABLES, concatenate, iterate, parse_size, resolve_paths
from _checks import skip_without_benchmark_modules

REPO = Path(__file__).resolve().parent.parent
LINKED = ("trd_hits", "trd_raw", "fragments", "errors")


# -- files --------------------------------------------------------------------------------
def _damage(src: Path, dst: Path, seed: int) -> None:
    """Flips bytes inside event blocks and inserts junk between two blocks, so that the
    file has event problems (event_index >= 0) and a problem outside events (-1)."""
    data = bytearray(src.read_bytes())
    with ams02.open(src) as f:
        offsets = f.raw.event_offsets()
    rng = np.random.default_rng(seed)
    for i in rng.integers(0, len(data), 60):
        data[int(i)] ^= 0x5A
    cut = int(offsets[len(offsets) // 2])
    dst.write_bytes(bytes(data[:cut]) + b"\xde\xad" * 37 + bytes(data[cut:]))


def _no_events(src: Path, dst: Path) -> None:
    """Only the top-level blocks of ``src`` that neither are nor hold science events (an
    envelope may hold events, FORMAT.md 10)."""
    data = src.read_bytes()
    with ams02.open(src) as f:
        off = f.blocks()["offset"].astype(np.int64)
        events = f.raw.event_offsets().astype(np.int64)
    ends = np.append(off[1:], len(data))
    holders = set(off[np.searchsorted(off, events, side="right") - 1].tolist())
    dst.write_bytes(b"".join(data[a:b] for a, b in zip(off, ends) if a not in holders))


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> List[Path]:
    """Five files in one directory: three clean runs (one big-endian), one damaged, one
    without events; plus a subdirectory that must be ignored."""
    d = tmp_path_factory.mktemp("multi")
    ams02.simulate(d / "a.dat", 3000, seed=11)
    ams02.simulate(d / "b.dat", 1800, seed=12, byte_order="big")
    ams02.simulate(d / "tmp.dat", 2500, seed=13)
    _damage(d / "tmp.dat", d / "c.dat", seed=3)
    (d / "tmp.dat").unlink()
    ams02.simulate(d / "d.dat", 2200, seed=14, raw_fraction=0.05, mixed_fraction=0.05)
    _no_events(d / "a.dat", d / "e.dat")
    (d / "sub").mkdir()
    ams02.simulate(d / "sub" / "x.dat", 10, seed=15)
    return [d / n for n in ("a.dat", "b.dat", "c.dat", "d.dat", "e.dat")]


def _per_file(path: Path, table: str) -> Dict[str, np.ndarray]:
    with ams02.open(path) as f:
        if table == "blocks":
            return f.blocks()
        if table == "errors":
            return f.errors()
        return getattr(f, table)()


def _equal(a: Dict[str, np.ndarray], b: Dict[str, np.ndarray]) -> None:
    assert list(a) == list(b)
    for k in a:
        assert a[k].dtype == b[k].dtype, k
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def _rebase(batches: List[Dict[str, Dict[str, np.ndarray]]], table: str) -> Dict[str, np.ndarray]:
    """Concatenates one table of self-contained batches, re-basing event_index onto the
    concatenated events and fragments.parent onto the concatenated fragments."""
    parts = []
    n_events = n_frags = 0
    for b in batches:
        t = {k: v.copy() for k, v in b[table].items()}
        if table in LINKED:
            t["event_index"][t["event_index"] >= 0] += n_events
        if table == "fragments":
            t["parent"][t["parent"] >= 0] += n_frags
            n_frags += len(t["parent"])
        n_events += len(b["events"]["offset"])
        parts.append(t)
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


# -- concatenate ---------------------------------------------------------------------------
def test_fixture_has_problems_and_empty_file(runs):
    with ams02.open(runs[2]) as f:
        ei = f.errors()["event_index"]
    assert (ei >= 0).sum() > 5 and (ei == -1).sum() >= 1
    with ams02.open(runs[4]) as f:
        assert f.n_events == 0 and f.n_blocks > 50


@pytest.mark.parametrize("table", TABLES)
def test_concatenate_is_files_end_to_end(runs, table):
    got = concatenate(runs, table, progress=False)
    per = [_per_file(p, table) for p in runs]
    n_ev = [len(_per_file(p, "events")["offset"]) for p in runs]
    n_rows = [len(next(iter(t.values()))) for t in per]
    assert list(got) == list(per[0]) + ["file_index"]
    assert got["file_index"].dtype == np.uint32
    np.testing.assert_array_equal(got["file_index"], np.repeat(np.arange(len(runs)), n_rows))
    ev_base = np.repeat(np.cumsum([0] + n_ev[:-1]), n_rows)
    for k in per[0]:
        want = np.concatenate([t[k] for t in per])
        if k == "event_index":
            want = np.where(want >= 0, want + ev_base, want)
        if k == "parent":
            fr_base = np.repeat(np.cumsum([0] + n_rows[:-1]), n_rows)
            want = np.where(want >= 0, want + fr_base, want)
        assert got[k].dtype == per[0][k].dtype or got[k].dtype.kind == "U"
        np.testing.assert_array_equal(got[k], want, err_msg=k)
    assert sum(n_rows) > 0


def test_concatenated_cross_references(runs):
    ev = concatenate(runs, "events", progress=False)
    hits = concatenate(runs, "trd_hits", progress=False)
    raw = concatenate(runs, "trd_raw", progress=False)
    fr = concatenate(runs, "fragments", progress=False)
    n = len(ev["offset"])
    assert n == sum(len(_per_file(p, "events")["offset"]) for p in runs) > 9000
    # every event's hit count is the number of hit rows pointing at it
    np.testing.assert_array_equal(np.bincount(hits["event_index"], minlength=n), ev["n_trd_hits"])
    for t in (hits, raw, fr):
        assert np.all(np.diff(t["event_index"]) >= 0)
        np.testing.assert_array_equal(ev["file_index"][t["event_index"]], t["file_index"])
    assert raw["adc"].shape == (len(raw["event_index"]), 448) and len(raw["event_index"]) > 100
    # a fragment's parent is an earlier fragment of the same event, one level up
    child = np.flatnonzero(fr["parent"] >= 0)
    parent = fr["parent"][child]
    assert np.all(parent < child)
    np.testing.assert_array_equal(fr["event_index"][parent], fr["event_index"][child])
    np.testing.assert_array_equal(fr["depth"][parent] + 1, fr["depth"][child])
    errs = concatenate(runs, "errors", progress=False)
    assert set(errs["file_index"].tolist()) == {2}
    inside = errs["event_index"] >= 0
    assert inside.sum() > 5
    ei = errs["event_index"][inside]
    assert np.all(ev["file_index"][ei] == 2)
    # an event problem's offset lies within its event block
    assert np.all(errs["offset"][inside] >= ev["offset"][ei])


def test_concatenate_columns_and_libraries(runs):
    got = concatenate(runs[:2], "trd_hits", columns=["amplitude", "event_index"], progress=False)
    assert list(got) == ["amplitude", "event_index", "file_index"]
    got = concatenate(runs[:2], "events", columns=["file_index", "run"], progress=False)
    assert list(got) == ["file_index", "run"]
    with pytest.raises(KeyError, match="nope"):
        concatenate(runs[:2], "events", columns=["nope"], progress=False)
    with pytest.raises(ValueError, match="table must be one of"):
        concatenate(runs[:2], "hits")
    empty = concatenate([], "trd_raw", progress=False)
    assert empty["adc"].shape == (0, 448) and empty["file_index"].dtype == np.uint32
    pytest.importorskip("pandas")
    df = concatenate(runs[:2], "events", columns=["event"], library="pd", progress=False)
    assert list(df.columns) == ["event", "file_index"] and len(df) == 4800
    assert df["file_index"].dtype == np.uint32 and df["file_index"].iloc[-1] == 1
    pytest.importorskip("pyarrow")
    pa_t = concatenate(runs[:2], "trd_raw", library="pa", progress=False)
    assert pa_t.num_rows == len(concatenate(runs[:2], "trd_raw", progress=False)["udr"])


@pytest.mark.parametrize("table", TABLES)
def test_threads_give_identical_results(runs, table):
    one = concatenate(runs, table, threads=1, progress=False)
    _equal(one, concatenate(runs, table, threads=2, progress=False))
    _equal(one, concatenate(runs, table, threads=None, progress=False))


def test_iterate_threads_identical(runs):
    kw = dict(step_size="300 kB", tables=TABLES, progress=False)
    a = list(iterate(runs, threads=1, **kw))
    b = list(iterate(runs, threads=2, **kw))
    assert len(a) == len(b) > 10
    for x, y in zip(a, b):
        for t in TABLES:
            _equal(x[t], y[t])


def test_tables_one_pass_equals_each_method(runs):
    """File.tables reads the file once and gives what each table method gives, on clean,
    big-endian, damaged and raw-heavy files, for any subset and order of names."""
    names = ("events", "fragments", "trd_hits", "trd_raw")
    for path in runs[:4]:
        with ams02.open(path) as f:
            every = {n: getattr(f, n)() for n in names}
            got = f.tables(names)
            assert list(got) == list(names)
            for n in names:
                _equal(got[n], every[n])
            two = f.tables(["trd_hits", "events", "trd_hits"])
            assert list(two) == ["trd_hits", "events"]
            _equal(two["events"], every["events"])
            _equal(f.tables("trd_raw")["trd_raw"], every["trd_raw"])
            part = f.tables(entry_start=100, entry_stop=400)
            assert list(part) == ["events", "trd_hits"]
            _equal(part["events"], f.events(entry_start=100, entry_stop=400))
            _equal(part["trd_hits"], f.trd_hits(entry_start=100, entry_stop=400))
            assert part["trd_hits"]["event_index"].min() >= 100
        # errors: the same rows whether found by the tables' pass or on their own.
        with ams02.open(path) as f:
            t = f.tables(["events", "errors"])
            assert list(t) == ["events", "errors"]
            _equal(t["events"], every["events"])
        with ams02.open(path) as f:
            _equal(t["errors"], f.errors())
            if path == runs[2]:
                assert len(t["errors"]["kind"]) > 0


def test_tables_pandas_equals_the_method(runs):
    """File.tables(..., library="pd") gives the DataFrame of the table's own method."""
    pytest.importorskip("pandas")
    for path in runs[:4]:
        with ams02.open(path) as f:
            df = f.tables(["trd_hits"], library="pd")["trd_hits"]
            assert len(df) > 0 and df.equals(f.trd_hits(library="pd"))


def test_tables_bad_names(runs):
    with ams02.open(runs[0]) as f:
        with pytest.raises(KeyError, match='unknown table "hits"; the tables are events, fragments, trd_hits, trd_raw, errors'):
            f.tables(["events", "hits"])
        with pytest.raises(TypeError, match="names must be"):
            f.tables([1, 2])  # type: ignore[list-item]
        with pytest.raises(ValueError, match="library"):
            f.tables(library="polars")
        with pytest.raises(TypeError, match="entry_start"):
            f.tables(entry_start=1.5)  # type: ignore[arg-type]
        # negative entries count from the end, as in uproot
        last = f.tables(["events"], entry_start=-1)["events"]
        np.testing.assert_array_equal(last["offset"], f.raw.event_offsets()[-1:])


# -- iterate ---------------------------------------------------------------------------------
@pytest.mark.parametrize("step", [1, 3000, "20 kB", "1 MiB", "1 GB"])
def test_iterate_rebased_equals_concatenate(runs, step):
    batches = list(iterate(runs, step_size=step, tables=TABLES, progress=False))
    for b in batches:
        assert set(b) == set(TABLES)
        n = len(b["events"]["offset"])
        for t in ("trd_hits", "trd_raw", "fragments"):  # self-contained batches
            ei = b[t]["event_index"]
            assert np.all((ei >= 0) & (ei < n))
        p = b["fragments"]["parent"]
        assert np.all(p < len(p))
        assert np.all((b["errors"]["event_index"] >= -1) & (b["errors"]["event_index"] < n))
        for t in TABLES:  # batches never span files
            assert len(set(b[t]["file_index"].tolist()) | set(b["events"]["file_index"].tolist())) <= 1
    for table in TABLES:
        _equal(_rebase(batches, table), concatenate(runs, table, progress=False))
    n_events = len(concatenate(runs, "events", progress=False)["offset"])
    if step == 1:  # one event per batch, plus one batch for the file without events
        assert len(batches) == n_events + 1
    if step == "1 GB":  # one batch per file
        assert len(batches) == len(runs)
        assert [b["blocks"]["file_index"][0] for b in batches] == list(range(5))


def test_iterate_default_tables_and_pandas(runs):
    pytest.importorskip("pandas")
    batches = list(iterate(runs[:2], step_size="2 MB", library="pd", progress=False))
    assert all(set(b) == {"events", "trd_hits"} for b in batches)
    ev = concatenate(runs[:2], "events", progress=False)
    assert sum(len(b["events"]) for b in batches) == len(ev["offset"])
    first = batches[0]
    assert first["trd_hits"]["event_index"].max() < len(first["events"])
    assert first["events"]["file_index"].dtype == np.uint32


def test_batches_follow_step_size(runs):
    """Bounded memory, checked without timing: each batch's events span less than
    step_size bytes, and is as long as it can be (the next event would exceed it)."""
    step = parse_size("400 kB")
    total = 0
    for path in runs[:4]:
        with ams02.open(path) as f:
            offsets = f.raw.event_offsets().astype(np.int64)
        start = 0
        rows = []
        for b in iterate([path], step_size="400 kB", tables=("events",), progress=False):
            o = b["events"]["offset"].astype(np.int64)
            np.testing.assert_array_equal(o, offsets[start : start + len(o)])
            assert o[-1] - o[0] < step
            stop = start + len(o)
            if stop < len(offsets):
                assert offsets[stop] - o[0] >= step
            rows.append(len(o))
            start = stop
        assert start == len(offsets)
        # all batches but the last hold about step_size / (mean bytes per event) events
        mean = (offsets[-1] - offsets[0]) / (len(offsets) - 1)
        assert max(rows) <= step / mean * 1.15 + 1
        assert min(rows[:-1]) >= step / mean * 0.85 - 1
        total += len(rows)
    assert total >= 30


@pytest.mark.skipif(not os.path.exists("/proc/self/maps"), reason="needs /proc/self/maps")
def test_iterate_holds_one_file_open(runs):
    names = {str(p.resolve()) for p in runs}

    def mapped() -> set:
        with open("/proc/self/maps") as fh:
            return {line.split(None, 5)[-1].strip() for line in fh} & names

    seen = []
    it = iterate(runs, step_size="2 MB", tables=("events",), progress=False)
    for b in it:
        m = mapped()
        assert len(m) <= 1
        seen.append(m)
        if len(seen) == 8:
            break
    it.close()
    assert mapped() == set()
    assert len({frozenset(s) for s in seen}) >= 2  # several files were visited


# -- paths ------------------------------------------------------------------------------------
def test_paths_glob_directory_and_list(runs):
    d = runs[0].parent
    assert resolve_paths(d) == [str(p) for p in runs]  # sub/ left out
    assert resolve_paths(str(d / "*.dat")) == [str(p) for p in runs]
    assert resolve_paths(str(d / "[ab].dat")) == [str(runs[0]), str(runs[1])]
    assert resolve_paths(str(d / "**" / "*.dat")) == [str(p) for p in runs] + [str(d / "sub" / "x.dat")]
    assert resolve_paths(runs[1]) == [str(runs[1])]
    assert resolve_paths((runs[1], str(runs[0]))) == [str(runs[1]), str(runs[0])]
    by_dir = concatenate(d, "events", progress=False)
    by_glob = concatenate(str(d / "*.dat"), "events", progress=False)
    by_list = concatenate(runs, "events", progress=False)
    _equal(by_dir, by_list)
    _equal(by_glob, by_list)
    b = list(iterate(str(d / "b.dat"), step_size="1 GB", progress=False))
    assert len(b) == 1 and len(b[0]["events"]["run"]) == 1800
    with pytest.raises(FileNotFoundError, match="no files match"):
        concatenate(str(d / "*.nothing"))
    (d / "empty_dir").mkdir(exist_ok=True)
    with pytest.raises(FileNotFoundError, match="no files in directory"):
        concatenate(d / "empty_dir")
    with pytest.raises(TypeError):
        concatenate(42)


# -- bad input --------------------------------------------------------------------------------
@pytest.fixture
def bad_mix(runs, tmp_path):
    junk = tmp_path / "junk.dat"
    junk.write_bytes(b"this is not AMS data at all" * 10)
    return [runs[0], tmp_path / "missing.dat", runs[1], junk, tmp_path]


def test_on_error_raise_names_the_file(bad_mix):
    with pytest.raises(FileNotFoundError, match="missing.dat"):
        concatenate(bad_mix, progress=False)
    with pytest.raises(ams02.FormatError, match="junk.dat"):
        concatenate([bad_mix[0], bad_mix[3]], progress=False)
    with pytest.raises(OSError, match=re.escape(str(bad_mix[4]))):
        concatenate([bad_mix[4]], progress=False)
    it = iterate(bad_mix, progress=False)
    assert len(next(it)["events"]["run"]) == 3000  # the first file's batch comes first
    with pytest.raises(FileNotFoundError, match="missing.dat"):
        next(it)


def test_on_error_skip_concatenate(bad_mix):
    with pytest.warns(UserWarning) as w:
        ev = concatenate(bad_mix, "events", on_error="skip", progress=False)
    assert len(w) == 3 and "missing.dat" in str(w[0].message) and "junk.dat" in str(w[1].message)
    np.testing.assert_array_equal(np.bincount(ev["file_index"]), [3000, 0, 1800])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        errs = concatenate(bad_mix, "errors", on_error="skip", progress=False)
    np.testing.assert_array_equal(errs["file_index"], [1, 3, 4])
    np.testing.assert_array_equal(errs["offset"], [0, 0, 0])
    np.testing.assert_array_equal(errs["event_index"], [-1, -1, -1])
    assert errs["kind"].tolist() == ["file_error"] * 3
    assert "missing.dat" in errs["detail"][0] and "No such file" in errs["detail"][0]
    assert "junk.dat" in errs["detail"][1] and "not AMS block data" in errs["detail"][1]
    assert str(bad_mix[4]) in errs["detail"][2]


def test_on_error_skip_iterate(bad_mix, runs):
    batches = list(
        iterate(bad_mix, step_size="1 GB", tables=("events", "errors"), on_error="skip", progress=False)
    )
    # a, b, and a last batch of empty tables carrying the errors of junk.dat and the directory
    assert len(batches) == 3
    assert batches[0]["errors"]["file_index"].tolist() == []
    e1 = batches[1]["errors"]
    assert e1["file_index"].tolist() == [1] and e1["kind"].tolist() == ["file_error"]
    assert "missing.dat" in e1["detail"][0]
    assert batches[1]["events"]["file_index"][0] == 2
    last = batches[2]
    assert len(last["events"]["run"]) == 0 and last["events"]["run"].dtype == np.uint32
    assert last["errors"]["file_index"].tolist() == [3, 4]
    assert last["errors"]["event_index"].tolist() == [-1, -1]
    with pytest.warns(UserWarning) as w:
        n = sum(len(b["events"]["run"]) for b in iterate(bad_mix, on_error="skip", progress=False))
    assert n == 4800
    assert len(w) == 3 and "missing.dat" in str(w[0].message) and "junk.dat" in str(w[1].message)
    with pytest.raises(ValueError, match="on_error"):
        iterate(runs, on_error="ignore")


# -- arguments ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text, value",
    [
        (1, 1),
        (4096, 4096),
        ("100 MB", 100_000_000),
        ("1.5 GB", 1_500_000_000),
        ("512 kB", 512_000),
        ("512 KB", 512_000),
        ("64 MiB", 64 * 2**20),
        ("2GiB", 2 * 2**30),
        ("1 TB", 10**12),
        ("10 b", 10),
        ("777", 777),
        (" 0.5 kib ", 512),
    ],
)
def test_parse_size(text, value):
    assert parse_size(text) == value


@pytest.mark.parametrize("bad", ["", "MB", "1 XB", "1 Mbit", "-5 MB", "0", 0, -1, "1..5 MB"])
def test_parse_size_rejects(bad):
    with pytest.raises(ValueError):
        parse_size(bad)


@pytest.mark.parametrize("bad", [True, 1.5, None, [1]])
def test_parse_size_types(bad):
    with pytest.raises(TypeError):
        parse_size(bad)


def test_iterate_validates_eagerly(runs):
    with pytest.raises(ValueError, match="table must be one of"):
        iterate(runs, tables=("events", "hits"))
    with pytest.raises(ValueError):
        iterate(runs, step_size="lots")
    with pytest.raises(ValueError, match="library"):
        iterate(runs, library="polars")


def test_progress(runs, capsys, monkeypatch):
    pytest.importorskip("tqdm")
    concatenate(runs[:2], progress=True)
    assert "ams02" in capsys.readouterr().err
    list(iterate(runs[:2], progress=True))
    err = capsys.readouterr().err
    assert "ams02" in err and "100%" in err
    concatenate(runs[:2])  # stderr is not a terminal under pytest: no bar
    list(iterate(runs[:2], progress=False))
    assert capsys.readouterr().err == ""
    monkeypatch.setitem(sys.modules, "tqdm", None)
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    with pytest.raises(ImportError, match=r"pip install 'ams02\[progress\]'"):
        concatenate(runs[:2], progress=True)
    with pytest.raises(ImportError, match="ams02.progress"):
        iterate(runs[:2], progress=True)
    assert len(concatenate(runs[:2])["run"]) == 4800  # no bar, no error


# -- the benchmark script --------------------------------------------------------------------
def test_benchmark_quick_runs(tmp_path):
    skip_without_benchmark_modules()
    out = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "run.py"), "--quick", "--workdir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert "| Measurement | Result | Target | Met |" in lines
    rows = [line for line in lines if line.startswith("| decode") or line.startswith("| `iterate")]
    assert len(rows) >= 6
    assert any("MB/s" in r and "events/s" in r for r in rows)
    assert "cores:" in out.stdout and "run-20MB-seed1.dat" in out.stdout
    assert list(tmp_path.glob("run-20MB-seed1.*"))


# -- batches cut while the file is walked (issue 17) ---------------------------------------
_STREAM_RUN: Dict[str, Path] = {}


def _stream_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if "run" not in _STREAM_RUN:
        p = tmp_path_factory.mktemp("stream") / "run.dat"
        ams02.simulate(p, 1500, seed=21)
        _STREAM_RUN["run"] = p
    return _STREAM_RUN["run"]


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("step", [("events", 1), ("events", 97), ("bytes", 1), ("bytes", 150_000), ("bytes", 10**9)])
def test_streamed_ranges_are_the_ranges_of_the_walked_file(tmp_path_factory, tmp_path, seed, step):
    """The ranges that iterate() cuts while it walks a file are those cut_ranges() cuts
    from the whole index, on damaged files too; the batches hold the same rows."""
    from ams02._multi import cut_ranges, stream_ranges

    path = tmp_path / "damaged.dat"
    _damage(_stream_run(tmp_path_factory), path, seed)
    with ams02.open(path) as f:
        offsets = f.raw.event_offsets()
        want = f.tables(["events", "trd_hits", "fragments"])
    with ams02.open(path) as f:
        got = list(stream_ranges(f, step))
        assert f.raw.walk_to(0) == (len(offsets), True)
    assert got == cut_ranges(offsets, step, 0, len(offsets))
    size = f"{step[1]} B" if step[0] == "bytes" else step[1]
    out = list(iterate([path], tables=["events", "trd_hits", "fragments"], step_size=size, progress=False))
    assert len(out) == max(len(got), 1)
    for name, col in (("events", "event"), ("events", "offset"), ("trd_hits", "amplitude"), ("fragments", "data_offset")):
        np.testing.assert_array_equal(np.concatenate([b[name][col] for b in out]), want[name][col])


# -- the parallel column join of concatenate (_multi._join, _native.join_bytes) ----------
_JOIN_DTYPES = [np.bool_, np.uint8, np.int16, np.uint32, np.int64, np.float64, np.dtype("<U3")]


@settings(max_examples=60, deadline=None)
@given(
    dtype=st.sampled_from(_JOIN_DTYPES),
    lengths=st.lists(st.integers(0, 40), min_size=2, max_size=6),
    width=st.sampled_from([None, 7]),
    threads=st.sampled_from([None, 1, 2, 3]),
    seed=st.integers(0, 2**32 - 1),
)
def test_join_equals_numpy_concatenate(dtype, lengths, width, threads, seed):
    """Every column the native join copies equals np.concatenate's: values, dtype, shape,
    for any part lengths (empty parts too), 1-D and (n, 7) columns, any thread count."""
    rng = np.random.default_rng(seed)
    parts = []
    for n in lengths:
        shape = (n,) if width is None else (n, width)
        raw = rng.integers(0, 2**16, size=shape)
        parts.append(raw.astype(str).astype(dtype) if np.dtype(dtype).kind == "U" else raw.astype(dtype))
    saved = multi._PARALLEL_JOIN_BYTES
    multi._PARALLEL_JOIN_BYTES = 0  # every column through the native copy
    try:
        got = multi._join(parts, threads)
    finally:
        multi._PARALLEL_JOIN_BYTES = saved
    want = np.concatenate(parts)
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(got, want)


def test_join_large_column_and_views():
    """A column of several copy pieces (4 MiB each), parts that are strided views."""
    rng = np.random.default_rng(5)
    big = rng.integers(0, 2**63, size=3_000_000, dtype=np.int64)  # 24 MB
    strided = rng.integers(0, 255, size=(2_000_000, 2), dtype=np.uint8)[:, 1]
    for parts in ([big, big[::-1], big[:17]], [strided, strided[::3]]):
        got = multi._join(list(parts))
        np.testing.assert_array_equal(got, np.concatenate(parts))


def test_join_bytes_refuses_bad_lengths():
    from ams02 import _native

    out = np.zeros(5, dtype=np.uint8)
    with pytest.raises(ValueError, match="out has 5 bytes, the parts 4"):
        _native.join_bytes(out, [np.ones(4, dtype=np.uint8)])
    with pytest.raises(ValueError, match="threads"):
        _native.join_bytes(out, [np.ones(5, dtype=np.uint8)], threads=-1)
    assert not out.any()


# -- concatenate decodes file after file into one set of columns (_native.Accumulator) -----
@pytest.mark.parametrize("table", ["events", "trd_hits", "trd_raw"])
@pytest.mark.parametrize("threads", [1, 2])
def test_accumulated_concatenate_equals_joined_parts(runs, table, threads):
    """The one-set-of-columns path (every file whole) gives the same table as the per-file
    path (taken with ``entry_start=0``, which joins per-file parts): every column, dtype
    and value, ``event_index`` counted on over the files, ``file_index``."""
    got = concatenate(runs, table, threads=threads, progress=False)
    want = concatenate(runs, table, threads=threads, progress=False, entry_start=0)
    assert list(got) == list(want)
    for c in want:
        assert got[c].dtype == want[c].dtype, c
        np.testing.assert_array_equal(got[c], want[c], err_msg=c)
    n_files = len(runs)
    assert set(np.unique(got["file_index"])) <= set(range(n_files))
    if table != "events":
        # event_index refers to rows of the concatenated events table.
        n_events = len(concatenate(runs, "events", progress=False)["run"])
        assert got["event_index"].max(initial=-1) < n_events


def test_accumulator_refuses_other_tables_and_strict(runs):
    from ams02 import _native

    with pytest.raises(KeyError, match="fragments"):
        _native.Accumulator(["fragments"])
    acc = _native.Accumulator(["trd_hits"])
    with ams02.open(runs[0], strict=False) as f:
        added = f.raw.decode_into(acc)
        assert added == {"trd_hits": len(f.trd_hits()["channel"])}
        assert acc.n_events == f.n_events
    out = acc.finish()
    assert len(out["trd_hits"]["channel"]) == added["trd_hits"]
    assert acc.n_events == 0 and len(acc.finish()["trd_hits"]["channel"]) == 0
