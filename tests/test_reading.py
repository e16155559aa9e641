"""How files are read (issues 14 and 17): a file that shrinks or changes while open is
reported, never a crash (SIGBUS); errors name the file; ``threads`` is bounded; results
are the same whatever the read mechanism (map or read, read-ahead on or off), thread
count and file count."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import ams02
from _checks import skip_without_benchmark_modules

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def run_path(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("reading") / "run.dat"
    ams02.simulate(p, 3000, seed=5)
    return p


def _same(a: dict, b: dict) -> None:
    assert list(a) == list(b)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


# -- a file that shrinks or changes while open ---------------------------------------------
CHILD = textwrap.dedent(
    """
    import json, os, subprocess, sys, time
    import ams02
    path, mode, mmap = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
    size = os.path.getsize(path)
    f = ams02.open(path, mmap=mmap)
    # Another process cuts the file to a third while it is open.
    cut = [sys.executable, "-c", f"import os, time; time.sleep({0.05 if mode == 'during' else 0}); "
           f"os.truncate({path!r}, {size // 3})"]
    p = subprocess.Popen(cut)
    if mode == "before":
        p.wait()
    out = {"kind": None, "message": None, "decodes": 0}
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            f.tables(["events", "trd_hits", "errors"])
            out["decodes"] += 1
        except ams02.FormatError as e:
            out["kind"] = getattr(e, "kind", None)
            out["message"] = str(e)
            break
        if p.poll() is not None and mode == "during" and out["decodes"] > 0 and not mmap:
            break
    p.wait()
    print(json.dumps(out))
    """
)


@pytest.mark.parametrize("mode", ["before", "during"])
def test_a_file_truncated_by_another_process_while_open_is_reported_not_a_crash(tmp_path, run_path, mode):
    """The file is cut by another process after it was opened (``before`` the decode, or
    while decodes run in a loop): the process survives (no SIGBUS) and the next decode
    raises FormatError with kind file_changed, naming the file."""
    path = tmp_path / "cut.dat"
    path.write_bytes(run_path.read_bytes())
    r = subprocess.run(
        [sys.executable, "-c", CHILD, str(path), mode, "1"], capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0, (r.returncode, -signal.SIGBUS, r.stderr)
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["kind"] == "file_changed", out
    assert str(path) in out["message"] and "file_changed" in out["message"]
    assert os.path.getsize(path) == run_path.stat().st_size // 3


def test_a_file_read_into_memory_is_a_snapshot(tmp_path, run_path):
    """With ``mmap=False`` the bytes were read at open: a later truncation changes
    nothing that is decoded, and nothing is reported."""
    path = tmp_path / "cut.dat"
    path.write_bytes(run_path.read_bytes())
    with ams02.open(run_path) as ref:
        want = ref.events()
    f = ams02.open(path, mmap=False)
    assert not f.raw.mapped
    os.truncate(path, 100)
    _same(f.events(), want)
    f.raw.check()


def test_a_mapped_file_modified_in_place_is_reported(tmp_path, run_path):
    path = tmp_path / "mod.dat"
    path.write_bytes(run_path.read_bytes())
    f = ams02.open(path)
    assert f.raw.mapped
    f.events()
    with open(path, "r+b") as fh:
        fh.seek(1000)
        fh.write(b"\xff" * 8)
    os.utime(path, ns=(0, 0))  # a modification time that certainly differs
    with pytest.raises(ams02.FormatError, match="file_changed.*modified") as e:
        f.trd_hits()
    assert e.value.kind == "file_changed"
    with pytest.raises(ams02.FormatError, match="file_changed"):
        f.errors()


def test_iterate_reports_a_file_that_shrinks_mid_way_as_an_error_row(tmp_path, run_path):
    a, b = tmp_path / "a.dat", tmp_path / "b.dat"
    a.write_bytes(run_path.read_bytes())
    b.write_bytes(run_path.read_bytes())
    with ams02.open(run_path) as f:
        n = f.n_events
    it = ams02.iterate([a, b], step_size="1 MB", tables=("events", "errors"), on_error="skip", progress=False)
    first = next(it)
    assert set(first["events"]["file_index"]) == {0}
    os.truncate(a, 10_000)  # while file 0 is open, between two batches
    rest = list(it)
    ev_b = np.concatenate([x["events"]["offset"][x["events"]["file_index"] == 1] for x in rest])
    assert len(ev_b) == n  # file 1 complete
    errs = [x["errors"] for x in rest]
    kinds = np.concatenate([e["kind"] for e in errs])
    fidx = np.concatenate([e["file_index"] for e in errs])
    assert list(kinds) == ["file_changed"] and list(fidx) == [0]
    with pytest.raises(ams02.FormatError, match="file_changed"):
        a.write_bytes(run_path.read_bytes())
        it = ams02.iterate([a], step_size="1 MB", progress=False)
        next(it)
        os.truncate(a, 10_000)
        list(it)


def test_every_multi_file_api_takes_mmap(tmp_path, run_path):
    with ams02.open(run_path) as f:
        want = f.tables(["events", "trd_hits"])
    for mmap in (True, False):
        ev = ams02.concatenate([run_path, run_path], "events", mmap=mmap, progress=False)
        assert len(ev["offset"]) == 2 * len(want["events"]["offset"])
        np.testing.assert_array_equal(ev["run"][: len(want["events"]["run"])], want["events"]["run"])
        batches = list(ams02.iterate([run_path], step_size="2 MB", mmap=mmap, progress=False))
        _same({k: np.concatenate([b["events"][k] for b in batches]) for k in want["events"]}, want["events"])
    with pytest.raises(TypeError, match="mmap"):
        ams02.iterate([run_path], mmap="no")
    pytest.importorskip("pyarrow")
    out = ams02.to_parquet([run_path], tmp_path / "pq", mmap=False, progress=False)
    assert Path(out["events"]).exists()


def test_dask_takes_mmap(run_path):
    pytest.importorskip("dask.dataframe")
    import ams02.dask

    with ams02.open(run_path) as f:
        want = f.events(["run", "event"])
    for mmap in (True, False):
        df = ams02.dask.events([run_path], columns=["run", "event"], step_size="2 MB", mmap=mmap).compute(
            scheduler="sync"
        )
        np.testing.assert_array_equal(df["event"].to_numpy(), want["event"])


# -- results whatever the mechanism, threads and file count --------------------------------
SAME_CHILD = textwrap.dedent(
    """
    import hashlib, json, sys
    import numpy as np
    import ams02
    out = {}
    for mmap in (True, False):
        for threads in (1, 2, None):
            # The first call a whole-file decode (one streaming pass walks and decodes), or
            # the index walked first (n_events) and the events decoded after.
            for walk_first in (False, True):
                with ams02.open(sys.argv[1], mmap=mmap, threads=threads) as f:
                    if walk_first:
                        f.n_events
                    t = f.tables(["events", "trd_hits", "trd_raw", "fragments", "errors"])
                h = hashlib.sha256()
                for name in sorted(t):
                    for c in sorted(t[name]):
                        h.update(name.encode() + c.encode() + np.ascontiguousarray(t[name][c]).tobytes())
                out[f"{mmap}-{threads}-{walk_first}"] = h.hexdigest()
    print(json.dumps(out))
    """
)


def test_results_are_identical_whatever_the_read_mechanism_and_threads(tmp_path):
    """Mapped or read, read-ahead off (AMS02_READ_AHEAD=0), small or the default, 1, 2 or
    all threads, streaming or walked first: the same bytes in every column of every
    table."""
    path = tmp_path / "damaged.dat"
    ams02.simulate(path, 4000, seed=9)
    data = bytearray(path.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 40] = b"\x5a" * 40  # damage in the middle
    path.write_bytes(bytes(data))
    digests = set()
    for ahead in ("0", "4096", "67108864"):
        env = dict(os.environ, AMS02_READ_AHEAD=ahead)
        r = subprocess.run(
            [sys.executable, "-c", SAME_CHILD, str(path)],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert r.returncode == 0, r.stderr
        digests |= set(json.loads(r.stdout.strip().splitlines()[-1]).values())
    assert len(digests) == 1


def test_results_are_identical_whatever_the_file_count(tmp_path, monkeypatch):
    """One run split into several files: concatenate over the pieces gives the run's
    rows (event_index re-based), iterate over them too; and so with the next file read
    ahead once the current one's walk has asked for its end (the default), at once, or
    not at all."""
    import ams02._multi as multi

    whole = tmp_path / "whole.dat"
    ams02.simulate(whole, 2500, seed=3)
    with ams02.open(whole) as f:
        blocks = f.blocks()["offset"]
        want = f.tables(["events", "trd_hits"])
    data = whole.read_bytes()
    cuts = [0] + [int(blocks[len(blocks) * k // 4]) for k in (1, 2, 3)] + [len(data)]
    parts = []
    for k in range(4):
        p = tmp_path / f"part{k}.dat"
        p.write_bytes(data[cuts[k] : cuts[k + 1]])
        parts.append(p)
    at_once = multi._read_ahead
    modes = [
        (True, 1, "after"),
        (True, None, "after"),
        (False, 1, "after"),
        (False, None, "after"),
        (True, None, "at once"),
        (True, None, "off"),
    ]
    for mmap, threads, mode in modes:
        monkeypatch.setattr(multi, "READ_AHEAD_NEXT", 0 if mode == "off" else 64 << 20)
        monkeypatch.setattr(
            multi, "_read_ahead", (lambda item, after=None: at_once(item)) if mode == "at once" else at_once
        )
        ev = ams02.concatenate(parts, "events", mmap=mmap, threads=threads, progress=False)
        hits = ams02.concatenate(parts, "trd_hits", mmap=mmap, threads=threads, progress=False)
        for k in want["events"]:
            if "offset" not in k:
                np.testing.assert_array_equal(ev[k], want["events"][k], err_msg=k)
        for k in want["trd_hits"]:
            np.testing.assert_array_equal(hits[k], want["trd_hits"][k], err_msg=k)
        batches = list(ams02.iterate(parts, step_size="300 kB", mmap=mmap, threads=threads, progress=False))
        assert len(batches) > len(parts)
        n = np.concatenate([b["trd_hits"]["amplitude"] for b in batches])
        np.testing.assert_array_equal(n, want["trd_hits"]["amplitude"])


def test_the_next_file_read_ahead_request(run_path, tmp_path):
    """``RawFile.read_ahead_after`` takes the next file's request from a mapped file not
    walked yet, and refuses it (so that the caller advises at once) otherwise."""
    other = tmp_path / "next.dat"
    other.write_bytes(run_path.read_bytes()[:4096])
    with ams02.open(run_path) as f:
        assert f.raw.read_ahead_after(str(other), 1 << 20) is True
        assert f.raw.read_ahead_after(str(tmp_path / "missing.dat"), 1 << 20) is False
        n = f.n_events  # walked: its next decode streams nothing
        assert f.raw.read_ahead_after(str(other), 1 << 20) is False
        assert f.n_events == n
    with ams02.open(run_path, mmap=False) as f:
        assert f.raw.read_ahead_after(str(other), 1 << 20) is False


# -- threads -------------------------------------------------------------------------------
def test_threads_is_bounded_by_four_times_the_cores(run_path):
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    with ams02.open(run_path, threads=4 * cores) as f:
        assert f.threads == 4 * cores
        ev = f.events()
    with ams02.open(run_path, threads=1) as f:
        _same(ev, f.events())
    for n in (4 * cores + 1, 10**6):
        with pytest.raises(ValueError, match=rf"at most {4 * cores} .*not {n}"):
            ams02.open(run_path, threads=n)
        with pytest.raises(ValueError, match="at most"):
            ams02.concatenate([run_path], threads=n, progress=False)


# -- errors name the file ------------------------------------------------------------------
def test_os_errors_carry_filename_and_errno(tmp_path):
    missing = tmp_path / "missing.dat"
    with pytest.raises(FileNotFoundError) as e:
        ams02.open(missing)
    assert e.value.filename == str(missing) and e.value.errno == 2
    assert str(missing) in str(e.value)
    with pytest.raises(IsADirectoryError) as e:
        ams02.open(tmp_path)
    assert e.value.filename == str(tmp_path) and e.value.errno == 21
    for mmap in (True, False):
        with pytest.raises(FileNotFoundError) as e:
            ams02.concatenate([missing], mmap=mmap, progress=False)
        assert e.value.filename == str(missing)


@pytest.mark.skipif(
    hasattr(os, "geteuid") and os.geteuid() == 0,
    reason="root reads files whatever their mode: no EACCES to provoke",
)
def test_permission_error_carries_filename_and_errno(tmp_path, run_path):
    p = tmp_path / "locked.dat"
    p.write_bytes(run_path.read_bytes())
    p.chmod(0)
    with pytest.raises(PermissionError) as e:
        ams02.open(p)
    assert e.value.filename == str(p) and e.value.errno == 13


def cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ams02", *args], capture_output=True, text=True, timeout=120, env=env
    )


def test_info_and_validate_go_on_past_bad_files(tmp_path, run_path):
    missing = tmp_path / "missing.dat"
    notes = tmp_path / "notes.txt"
    notes.write_text("not AMS data\n" * 50)
    files = [str(missing), str(run_path), str(notes), str(tmp_path / "none-*.dat")]
    r = cli("info", *files)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert str(run_path) in r.stdout and "events      3,000" in r.stdout
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 3
    assert str(missing) in lines[0] and "No such file" in lines[0]
    assert str(notes) in lines[1] and "none-*.dat" in lines[2]
    r = cli("info", "--json", "--no-mmap", *files[:3])
    assert r.returncode == 2
    rows = json.loads(r.stdout)
    assert [x["file"] for x in rows] == files[:3]
    assert "error" in rows[0] and rows[1]["events"] == 3000 and "error" in rows[2]

    r = cli("validate", *files[:3])
    assert r.returncode == 1 and "Traceback" not in r.stderr
    out = r.stdout.splitlines()
    assert out[0].startswith(f"{missing}: cannot be read") and "No such file" in out[0]
    assert out[1] == f"{run_path}: OK"
    assert out[2].startswith(f"{notes}: cannot be read")
    r = cli("validate", "--json", *files[:3])
    assert r.returncode == 1
    rep = json.loads(r.stdout)
    assert [x["file"] for x in rep] == files[:3]
    assert rep[1]["errors"] == [] and rep[0]["errors"][0]["kind"] == "file_error"
    assert cli("validate", "-q", str(run_path)).returncode == 0


def test_a_missing_optional_dependency_is_one_line_naming_the_extra(tmp_path, run_path):
    code = (
        "import sys; sys.modules['pyarrow'] = None; from ams02.cli import main; "
        f"sys.exit(main(['convert', {str(run_path)!r}, '-o', {str(tmp_path / 'o')!r}, '-q']))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert "pyarrow" in lines[0] and "pip install 'ams02[arrow]'" in lines[0]


def test_benchmark_floors_quick_runs(tmp_path):
    """`benchmarks/run.py --quick --floors` prints the floors of issue 17 (cold read, warm
    floor, one pass cold and warm, the ratios); not a timing test."""
    skip_without_benchmark_modules()
    out = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "run.py"),
            "--quick",
            "--floors",
            "--workdir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr
    rows = [r for r in out.stdout.splitlines() if r.startswith("| (")]
    assert [r.split("`")[0][:6] for r in rows].count("| (c) ") == 4
    assert sum("MB/s" in r for r in rows) >= 6
    assert sum(r.startswith("| (d)") and " x |" in r for r in rows) == 4
    # the warm floor in fresh processes (1 thread, split over the cores) and in the script's
    floor = [r for r in rows if r.startswith("| (b)")]
    assert len(floor) == 3 and all("MB/s" in r and " ms)" in r for r in floor)
    # the least work of the format: walk and checks, 1 thread and all cores, and the bound
    least = [r for r in rows if r.startswith("| (e)")]
    assert len(least) == 4
    assert all("MB/s" in r for r in least[0::2]) and all(" x |" in r for r in least[1::2])
