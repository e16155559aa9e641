"""ams02.transfer under SIGKILL: a sync process killed at any step (through the fault
hook $AMS02_TRANSFER_FAULT, or from outside while it copies) leaves no partial file under
a final name and a consistent catalog, and a rerun completes without copying any file
twice. Runs with SQLite, and with PostgreSQL when $AMS02_TEST_PG_URL is set.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

import pytest

import ams02.transfer as tr
from test_transfer import (  # noqa: F401
    assert_no_secret, attempts_of, backend, by_rel, data_files, make_runs, no_secret_in_output, parts,
)

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")

DRIVER = """
import sys, ams02.transfer as t
src, dst, cat = sys.argv[1:4]
r = t.sync(src, dst, catalog=cat or None, workers=2, chunk_size=65536, backoff=0.01)
sys.exit(0 if r.ok else 1)
"""


def start(src: Path, dst: Path, backend: Optional[str], fault: Optional[str]) -> subprocess.Popen:
    env = dict(os.environ)
    env.pop("AMS02_TRANSFER_FAULT", None)
    if fault:
        env["AMS02_TRANSFER_FAULT"] = fault
    return subprocess.Popen([sys.executable, "-c", DRIVER, str(src), str(dst), backend or ""], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def run(src, dst, backend, fault=None, timeout=60) -> subprocess.CompletedProcess:
    p = start(src, dst, backend, fault)
    out, err = p.communicate(timeout=timeout)
    assert_no_secret(out, err)
    return subprocess.CompletedProcess(p.args, p.returncode, out, err)


def check_after_kill(src: Path, dst: Path, backend) -> dict:
    """No partial file under a final name; every catalog row is in a legal state, and a
    done row's file is complete."""
    for rel, data in data_files(dst).items():
        assert data == (src / rel).read_bytes(), f"{rel}: a partial or wrong file under its final name"
    files = by_rel(backend, dst)
    for rel, r in files.items():
        assert r["state"] in tr.STATES
        if r["state"] == "done":
            assert (dst / rel).read_bytes() == (src / rel).read_bytes()
    return files


def check_rerun_completes(src: Path, dst: Path, backend, done_before: set) -> dict:
    r = run(src, dst, backend)
    assert r.returncode == 0, r.stderr
    assert data_files(dst) == data_files(src)
    assert not parts(dst)
    files = by_rel(backend, dst)
    for rel, row in files.items():
        assert row["state"] == "done"
        assert row["copies"] == 1, f"{rel} was copied {row['copies']} times"
        if rel in done_before:  # not touched again
            assert [a[0] for a in attempts_of(backend, dst, rel)] == ["copy"]
    assert tr.report(src, dst, catalog=backend)["aligned"]
    return files


@pytest.mark.parametrize("step", ["copy", "copied", "verify", "rename", "renamed", "commit"])
def test_killed_at_each_step_then_rerun(tmp_path, backend, step):
    src, dst = tmp_path / "src", tmp_path / "dst"
    make_runs(src, n=4)
    r = run(src, dst, backend, fault=f"{step}:kill@run-002.dat")
    assert r.returncode == -signal.SIGKILL, r.stderr
    files = check_after_kill(src, dst, backend)
    row = files["run-002.dat"]
    expect_state = "copying" if step in ("copy", "copied") else "verifying"
    assert row["state"] == expect_state
    assert (dst / "run-002.dat").exists() == (step in ("renamed", "commit"))
    left = parts(dst)
    if step in ("copy", "copied", "verify", "rename"):
        assert any(p.name.startswith(".run-002.dat") for p in left)
    done_before = {rel for rel, r in files.items() if r["state"] == "done"}
    assert "run-002.dat" not in done_before
    after = check_rerun_completes(src, dst, backend, done_before)
    actions = attempts_of(backend, dst, "run-002.dat")
    assert actions[0][:2] == ("copy", "interrupted")
    resumed = {"copy": "copy", "copied": "copy", "verify": "resume", "rename": "resume",
               "renamed": "adopt", "commit": "adopt"}[step]
    assert actions[-1][:2] == (resumed, "done")
    assert after["run-002.dat"]["attempts"] == len(actions)


def test_kill_inside_the_done_transaction_commits_nothing(tmp_path, backend):
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    (src / "notes.txt").write_bytes(b"not AMS data\n" * 100)
    r = run(src, dst, backend, fault="commit:kill")
    assert r.returncode == -signal.SIGKILL
    row = by_rel(backend, dst)["notes.txt"]
    assert row["state"] == "verifying" and row["flagged"] == -1 and row["n_errors"] == -1
    assert len(tr.catalog(backend or str(dst / tr.DEFAULT_NAME), table="problems")["id"]) == 0
    assert [a[1] for a in attempts_of(backend, dst, "notes.txt")] == ["running"]
    check_rerun_completes(src, dst, backend, set())
    row = by_rel(backend, dst)["notes.txt"]
    assert row["flagged"] == 1 and row["n_errors"] == 1


def test_killed_from_outside_while_copying(tmp_path, backend):
    src, dst = tmp_path / "src", tmp_path / "dst"
    make_runs(src, n=3, events=200)
    p = start(src, dst, backend, fault="copy:sleep=30@run-001.dat")
    try:
        deadline = time.monotonic() + 30
        partial = []
        while time.monotonic() < deadline and not partial:
            partial = [q for q in parts(dst) if q.name.startswith(".run-001.dat")] if dst.exists() else []
            time.sleep(0.02)
        assert partial, "the copy of run-001.dat never started"
        assert partial[0].stat().st_size < (src / "run-001.dat").stat().st_size  # mid-copy
    finally:
        p.send_signal(signal.SIGKILL)
        p.communicate(timeout=30)
    assert p.returncode == -signal.SIGKILL
    files = check_after_kill(src, dst, backend)
    assert files["run-001.dat"]["state"] == "copying" and not (dst / "run-001.dat").exists()
    done_before = {rel for rel, r in files.items() if r["state"] == "done"}
    check_rerun_completes(src, dst, backend, done_before)


def test_cli_killed_then_rerun(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    make_runs(src, n=3, events=60)
    env = dict(os.environ, AMS02_TRANSFER_FAULT="renamed:kill@run-001.dat")
    cmd = [sys.executable, "-m", "ams02.transfer", "sync", str(src), str(dst), "--workers", "1"]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == -signal.SIGKILL
    env.pop("AMS02_TRANSFER_FAULT")
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "1 recovered from an interrupted run" in r.stdout
    assert data_files(dst) == data_files(src)
    assert all(c == 1 for c in tr.catalog(dst)["copies"])
