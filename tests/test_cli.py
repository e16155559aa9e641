"""The ams02 command line: help, exit statuses, one-line errors."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import pytest

import ams02


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ams02", *args], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    p = tmp_path_factory.mktemp("cli") / "run.dat"
    ams02.simulate(p, 300, seed=4)
    return p


@pytest.fixture(scope="module")
def damaged(good, tmp_path_factory):
    data = bytearray(good.read_bytes())
    with ams02.open(good) as f:
        at = int(f.blocks()["offset"][5])
    data[at:at] = b"\x55" * 12
    p = tmp_path_factory.mktemp("cli") / "damaged.dat"
    p.write_bytes(bytes(data))
    return p


def test_help_lists_every_subcommand():
    r = run("--help")
    assert r.returncode == 0
    for cmd in ("demo", "info", "validate", "convert", "simulate"):
        assert cmd in r.stdout


@pytest.mark.parametrize("cmd", ["demo", "info", "validate", "convert", "simulate"])
def test_every_subcommand_has_help(cmd):
    r = run(cmd, "--help")
    assert r.returncode == 0 and "usage: ams02 " + cmd in r.stdout


def test_demo_runs_and_summarises():
    r = run("demo", "--events", "500")
    assert r.returncode == 0, r.stderr
    assert "events      500" in r.stdout and "errors      0" in r.stdout


def test_info_json(good):
    r = run("info", "--json", str(good))
    assert r.returncode == 0, r.stderr
    (s,) = json.loads(r.stdout)
    assert s["events"] == 300 and s["byte_order"] == "little" and s["errors"] == 0


def test_validate_exit_status(good, damaged):
    assert run("validate", str(good)).returncode == 0
    r = run("validate", "--json", str(damaged))
    assert r.returncode == 1
    (rep,) = json.loads(r.stdout)
    with ams02.open(damaged) as f:
        start = int(f.coverage(library="np")["start"][f.coverage()["kind"] == "skipped"][0])
    assert [e["offset"] for e in rep["errors"]] == [start]


def test_malformed_input_is_one_line_and_non_zero(tmp_path):
    bad = tmp_path / "notes.txt"
    bad.write_text("these are notes, not AMS data\n" * 40)
    cmds = [["info"]]
    # convert writes Parquet: without the arrow extra it stops earlier, at the missing
    # pyarrow (one line too, but not naming the file).
    if importlib.util.find_spec("pyarrow") is not None:
        cmds.append(["convert", "-o", str(tmp_path / "o")])
    for cmd in cmds:
        r = run(*cmd, str(bad))
        assert r.returncode == 2, (cmd, r)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and str(bad) in lines[0] and "Traceback" not in r.stderr
    # validate reports a file it cannot read as invalid (exit 1), in its report (issue 14).
    r = run("validate", str(bad))
    assert r.returncode == 1 and r.stderr == "" and "Traceback" not in r.stdout
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{bad}: cannot be read")
    r = run("info", str(tmp_path / "missing.dat"))
    assert r.returncode == 2 and "No such file" in r.stderr


def test_convert_and_simulate(tmp_path, good):
    r = run("simulate", str(tmp_path / "s.dat"), "--events", "50", "--byte-order", "big")
    assert r.returncode == 0
    with ams02.open(tmp_path / "s.dat") as f:
        assert f.byte_order == "big" and f.n_events == 50
    pytest.importorskip("pyarrow")
    out = tmp_path / "pq"
    r = run("convert", str(good), "-o", str(out), "--tables", "events,trd_hits", "-q")
    assert r.returncode == 0 and r.stdout == ""
    assert (out / "events.parquet").exists() and (out / "trd_hits.parquet").exists()


def test_ccsds_info(tmp_path):
    p = tmp_path / "dump.ccsds"
    ams02.simulate_ccsds(p, 100, seed=2)
    r = run("ccsds", "info", "--json", str(p))
    assert r.returncode == 0, r.stderr
    (rep,) = json.loads(r.stdout)
    apids = {a["apid"]: a for a in rep["apids"]}
    assert 976 in apids and apids[976]["missing"] == 0 and rep["errors"] == 0
    assert run("ccsds", "info", "--help").returncode == 0
