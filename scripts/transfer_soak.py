#!/usr/bin/env python3
"""A bounded fault soak of ``ams02 sync`` (issue 14), run by scripts/test.sh.

For each catalog backend (SQLite, and PostgreSQL when $AMS02_TEST_PG_URL names a server,
e.g. from scripts/pg_test_server.sh) and each trial: a fresh destination, then ``--kills``
runs of ``ams02 sync SRC DST`` (random workers, rate cap and verify mode) SIGKILLed after a
random delay (shorter than the last run that ended first, retried up to 3 x ``--kills``
runs until ``--kills`` were killed mid-run), new files arriving at the source after each kill (as during data
taking, so that every run has work to be killed in), then a final run. Checked after every kill: every file under a
final name at DST is byte-identical to its source (never a partial or temporary copy),
every catalog row is in a legal state, every ``done`` row's file is complete. Checked
after the final run: exit status 0, every file byte-identical, no temporary file left,
``--report`` ALIGNED, the catalog consistent (every row done with the size, adler32 and
sha256 of the file, computed here independently; no attempt or pass left ``running``),
``--check-destination`` clean. Then one byte of a copy is flipped and another copy is
truncated: ``--report --check-destination`` must find both, ``--check-destination``
must repair both. Any output holding the catalog password fails the trial.

    python scripts/transfer_soak.py                       # 3 trials x 4 kills per backend
    python scripts/transfer_soak.py --trials 10 --kills 8 --seed 7

Prints one line per backend with the figures (trials, kills, files, failures) and exits
1 if any check failed. The figures of a run are recorded in docs/transfer.md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
import zlib
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import ams02
import ams02.transfer as tr

PART_MARK = ".ams02-part-"


def data_files(root: Path) -> Dict[str, bytes]:
    """relative path -> bytes of every data file under root (not ams02's own, not parts)."""
    out = {}
    for p in root.rglob("*"):
        if p.is_file() and not p.name.startswith(".ams02") and PART_MARK not in p.name:
            out[p.relative_to(root).as_posix()] = p.read_bytes()
    return out


def parts(root: Path) -> List[Path]:
    return [p for p in root.rglob("*") if PART_MARK in p.name] if root.exists() else []


def make_source(src: Path, n: int, rng: random.Random) -> None:
    """n simulated runs of random sizes (about 20 kB to 1 MB), a third in subdirectories."""
    for i in range(n):
        sub = src / f"day-{i % 3}" if i % 3 else src
        sub.mkdir(parents=True, exist_ok=True)
        ams02.simulate(sub / f"run-{i:03d}.dat", rng.randint(10, 400), seed=i + 1, run=1300000000 + i)


class Soak:
    def __init__(self, src: Path, rng: random.Random, secret: Optional[str]) -> None:
        self.src, self.rng, self.secret = src, rng, secret
        self.want = data_files(src)
        self.arrived = 0
        self.failures: List[str] = []
        self.kills = 0  # processes killed while running
        self.finished_early = 0  # runs that ended before their kill was due
        self.runs = 0

    def fail(self, trial: str, msg: str) -> None:
        self.failures.append(f"{trial}: {msg}")
        print(f"transfer soak: FAILED {trial}: {msg}", file=sys.stderr, flush=True)

    def cli(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        env = dict(os.environ)
        env.pop("AMS02_TRANSFER_FAULT", None)
        r = subprocess.run([sys.executable, "-m", "ams02.transfer", "sync", *args], capture_output=True,
                           text=True, env=env, timeout=timeout)
        self.runs += 1
        self.no_secret("output", r.stdout + r.stderr)
        return r

    def no_secret(self, what: str, text: str) -> None:
        if self.secret and self.secret in text:
            self.fail("password", f"the catalog password is shown in the {what}")

    def check_after_kill(self, trial: str, dst: Path, cat: str) -> None:
        for rel, data in data_files(dst).items() if dst.exists() else ():
            if self.want.get(rel) != data:
                self.fail(trial, f"{rel}: a partial or wrong file under its final name")
        if not (dst / tr.DEFAULT_NAME).exists() and not cat.startswith("postgresql"):
            return
        try:
            c = tr.catalog(cat)
        except tr.TransferError as e:  # a kill before the schema was written
            if "no such file" in str(e) or "no tables" in str(e) or "too old" in str(e):
                return
            raise
        for rel, state in zip(c["relpath"], c["state"]):
            if state not in tr.STATES:
                self.fail(trial, f"{rel}: illegal state {state!r}")
            if state == "done" and (dst / str(rel)).read_bytes() != self.want[str(rel)]:
                self.fail(trial, f"{rel}: done, but its copy differs")

    def check_final(self, trial: str, dst: Path, cat: str) -> None:
        got = data_files(dst)
        if got != self.want:
            bad = sorted(set(got) ^ set(self.want)) or [r for r in got if got[r] != self.want[r]]
            self.fail(trial, f"destination differs from the source: {bad[:5]}")
        if parts(dst):
            self.fail(trial, f"temporary copies left: {[p.name for p in parts(dst)][:5]}")
        c = tr.catalog(cat)
        for i, rel in enumerate(c["relpath"]):
            data = self.want.get(str(rel))
            row = (str(c["state"][i]), int(c["size"][i]), str(c["adler32"][i]), str(c["sha256"][i]), str(c["tmp_name"][i]))
            if data is None or row != ("done", len(data), f"{zlib.adler32(data):08x}", hashlib.sha256(data).hexdigest(), ""):
                self.fail(trial, f"{rel}: catalog row {row[:3]} is not that of the file")
        if sorted(str(r) for r in c["relpath"]) != sorted(self.want):
            self.fail(trial, "the catalog does not list every file once")
        att = tr.catalog(cat, table="attempts")
        syncs = tr.catalog(cat, table="syncs")
        if "running" in set(str(x) for x in att["outcome"]) or "running" in set(str(x) for x in syncs["status"]):
            self.fail(trial, "an attempt or a pass is left 'running'")
        self.no_secret("catalog", json.dumps({k: [str(x) for x in v] for k, v in syncs.items()}))

    def trial(self, name: str, dst: Path, cat: str, kills: int) -> None:
        catarg = ["--catalog", cat]
        est = 2.0  # seconds a run takes, from the last one that ended before its kill
        killed = k = 0
        while killed < kills and k < 3 * kills:  # until `kills` runs were killed mid-run
            args = [str(self.src), str(dst), *catarg, "--workers", str(self.rng.randint(1, 3))]
            if self.rng.random() < 0.5:
                args += ["--max-rate", self.rng.choice(["2MB/s", "5MB/s", "10MB/s", "20MB/s"])]
            if self.rng.random() < 0.3:
                args += ["--verify", "sha256"]
            env = dict(os.environ)
            env.pop("AMS02_TRANSFER_FAULT", None)
            t0 = time.monotonic()
            p = subprocess.Popen([sys.executable, "-m", "ams02.transfer", "sync", *args], env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            self.runs += 1
            deadline = t0 + self.rng.uniform(0.2, max(0.4, 0.95 * est))
            while p.poll() is None and time.monotonic() < deadline:
                time.sleep(0.01)
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
                self.kills += 1
                killed += 1
            else:
                self.finished_early += 1
                est = time.monotonic() - t0
            out, err = p.communicate(timeout=120)
            self.no_secret("output", out + err)
            if p.returncode not in (0, -signal.SIGKILL):
                self.fail(name, f"run {k} ended with status {p.returncode}: {err.strip()[-300:]}")
            self.check_after_kill(f"{name} kill {k}", dst, cat)
            for _ in range(self.rng.randint(2, 5)):  # new files arrive at the source
                rel = f"new/run-{k:02d}-{self.arrived:03d}.dat"
                (self.src / "new").mkdir(exist_ok=True)
                tmp = self.src / "new" / ".incoming"
                ams02.simulate(tmp, self.rng.randint(10, 400), seed=1000 + self.arrived, run=1400000000 + self.arrived)
                os.replace(tmp, self.src / rel)
                self.want[rel] = (self.src / rel).read_bytes()
                self.arrived += 1
            k += 1
        r = self.cli(str(self.src), str(dst), *catarg, "--json")
        if r.returncode != 0:
            self.fail(name, f"the final run ended with status {r.returncode}: {r.stderr.strip()[-300:]}")
        self.check_final(name, dst, cat)
        r = self.cli(str(self.src), str(dst), *catarg, "--report")
        if r.returncode != 0 or "ALIGNED" not in r.stdout or "NOT ALIGNED" in r.stdout:
            self.fail(name, f"--report is not ALIGNED: {r.stdout.strip()[-300:]}")
        r = self.cli(str(self.src), str(dst), *catarg, "--check-destination", "--json")
        if r.returncode != 0 or json.loads(r.stdout or "{}").get("files_damaged") != 0:
            self.fail(name, f"--check-destination is not clean: {r.stdout.strip()[-300:]} {r.stderr.strip()[-300:]}")
        # damage two copies: one byte flipped (same size, same mtime), one truncated
        rels = sorted(self.want)
        flipped, cut = self.rng.sample(rels, 2)
        fp = dst / flipped
        st = fp.stat()
        with open(fp, "r+b") as fh:
            pos = self.rng.randrange(st.st_size)
            fh.seek(pos)
            b = fh.read(1)
            fh.seek(pos)
            fh.write(bytes([b[0] ^ 0xFF]))
        os.utime(fp, ns=(st.st_atime_ns, st.st_mtime_ns))
        with open(dst / cut, "r+b") as fh:
            fh.truncate(self.rng.randrange(len(self.want[cut])))
        r = self.cli(str(self.src), str(dst), *catarg, "--report", "--check-destination", "--json")
        rep = json.loads(r.stdout or "{}")
        found = {e["relpath"] for e in rep.get("damaged", []) + rep.get("differing", [])}
        if r.returncode != 1 or found != {flipped, cut}:
            self.fail(name, f"--report --check-destination found {sorted(found)}, not {sorted({flipped, cut})}")
        r = self.cli(str(self.src), str(dst), *catarg, "--check-destination", "--json")
        res = json.loads(r.stdout or "{}")
        if r.returncode != 0 or res.get("files_copied") != 2 or flipped not in res.get("damaged", {}):
            self.fail(name, f"--check-destination did not repair both: {r.stdout.strip()[-400:]}")
        self.check_final(name + " repaired", dst, cat)
        r = self.cli(str(self.src), str(dst), *catarg, "--report", "--check-destination")
        if r.returncode != 0 or "NOT ALIGNED" in r.stdout:
            self.fail(name, "not ALIGNED after the repair")


def pg_database(base: str) -> Tuple[str, str, str]:
    """A fresh database on the test server: (URL with a password, its name, the password).
    The test server trusts 127.0.0.1, so any password is accepted."""
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    name = f"ams02_soak_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(base, autocommit=True) as c:
        c.execute(f"CREATE DATABASE {name}")
    p = conninfo_to_dict(base)
    secret = str(p.get("password") or f"soak-{uuid.uuid4().hex}")
    from urllib.parse import quote

    url = "postgresql://{u}:{pw}@{h}:{port}/{db}".format(
        u=p.get("user", "postgres"), pw=quote(secret, safe=""), h=p.get("host", "127.0.0.1"),
        port=p.get("port", 5432), db=name)
    return url, name, secret


def drop_database(base: str, name: str) -> None:
    import psycopg

    with psycopg.connect(base, autocommit=True) as c:
        c.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials", type=int, default=3, help="trials per backend (default 3)")
    ap.add_argument("--kills", type=int, default=4, help="killed runs per trial (default 4)")
    ap.add_argument("--files", type=int, default=36, help="source files (default 36)")
    ap.add_argument("--seed", type=int, default=None, help="random seed (default: from the clock, printed)")
    ap.add_argument("--backends", default="sqlite,postgresql", help="comma-separated (default both)")
    a = ap.parse_args(argv)
    seed = a.seed if a.seed is not None else int(time.time()) % 100000
    rng = random.Random(seed)
    top = Path(tempfile.mkdtemp(prefix="ams02-soak-"))
    total_failures = 0
    try:
        src = top / "src"
        make_source(src, a.files, rng)
        size = sum(p.stat().st_size for p in src.rglob("*") if p.is_file())
        for backend in a.backends.split(","):
            base = os.environ.get("AMS02_TEST_PG_URL")
            if backend == "postgresql" and not base:
                print("transfer soak: postgresql skipped: AMS02_TEST_PG_URL is not set", flush=True)
                continue
            t0 = time.perf_counter()
            files = 0
            soak = Soak(src, rng, None)
            for i in range(a.trials):
                dst = top / f"dst-{backend}-{i}"
                trial_src = top / f"src-{backend}-{i}"
                shutil.copytree(src, trial_src)
                soak.src, soak.want = trial_src, data_files(trial_src)
                if backend == "sqlite":
                    cat, name = str(dst / tr.DEFAULT_NAME), None
                else:
                    cat, name, soak.secret = pg_database(base or "")
                try:
                    soak.trial(f"{backend} trial {i}", dst, cat, a.kills)
                except Exception as e:  # noqa: BLE001 - a crash of the soak is a failure too
                    soak.fail(f"{backend} trial {i}", f"{type(e).__name__}: {e}")
                finally:
                    files += len(soak.want)
                    if name:
                        drop_database(base or "", name)
                    shutil.rmtree(dst, ignore_errors=True)
                    shutil.rmtree(trial_src, ignore_errors=True)
            total_failures += len(soak.failures)
            print(
                f"transfer soak ({backend} catalog, seed {seed}): {a.trials} trials, "
                f"{soak.kills} SIGKILLs mid-run ({soak.finished_early} runs ended before their kill), "
                f"{files} files copied ({a.files} at the start of each trial, {size / 1e6:.1f} MB, "
                f"{soak.arrived} arriving between kills), {soak.runs} ams02 sync runs, "
                f"2 damaged copies repaired per trial, failures: {len(soak.failures)} "
                f"({time.perf_counter() - t0:.0f} s)",
                flush=True,
            )
    finally:
        shutil.rmtree(top, ignore_errors=True)
    return 1 if total_failures else 0


if __name__ == "__main__":
    sys.exit(main())
