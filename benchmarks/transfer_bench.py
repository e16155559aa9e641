#!/usr/bin/env python3
"""Throughput of ``ams02 sync`` (issue 8) against the 36 Mb/s requirement and a plain ``cp``.

    python benchmarks/transfer_bench.py                    # ~1 GB in 8 files, 3 repeats
    python benchmarks/transfer_bench.py --size 2e8 --repeats 1 --no-sftp    # a quick look

A simulated run of about ``--size`` bytes, split into ``--files`` files
(``ams02.simulate``, one run number each), is written once into ``--workdir`` (default
``benchmarks/data``, which git ignores) and read once before timing, so every method
reads a source in the page cache. Each method copies the whole tree into a fresh
directory on the same disk; between timings the destination is deleted and the disk
flushed (untimed). Methods are timed in turn in every repeat, after one untimed round, and
each figure is the median.

Rows: ``cp -r`` (plain: returns with the data still in the page cache), ``cp -r`` + ``sync``
of the files (as durable as ``ams02 sync``, which fsyncs every file), ``ams02 sync`` with
its defaults (workers = cores), with twice the workers, with ``--verify sha256``, without
decoding (``--no-validate``), and to an sftp
server on 127.0.0.1 (an ``sshd`` started for the benchmark with a throwaway key; the row
says why it is skipped when sshd, paramiko or fsspec is missing). ``x 36 Mb/s`` is the
throughput over the requirement; ``x cp`` the throughput over plain ``cp``'s. Nothing fails
on speed: the script prints what it measures.

``--components`` adds a table of what each part of a sync costs alone (kernel copy,
fsync, sha256 + adler32, read-back, decode, catalog), with wall and CPU seconds, and the
phases of one sync as its catalog records them.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

HERE = Path(__file__).resolve().parent
REQUIRED_MBIT_S = 36.0
BYTES_PER_EVENT = 2310  # the simulator's default mix, about


def make_source(workdir: Path, size_bytes: int, n_files: int = 8, seed: int = 1) -> Path:
    """The simulated run split into ``n_files`` files under workdir (written once)."""
    import ams02

    src = Path(workdir) / f"transfer-src-{size_bytes}-{n_files}f-seed{seed}"
    done = src.with_name(src.name + ".json")  # beside it, so that it is not copied
    if done.exists():
        return src
    shutil.rmtree(src, ignore_errors=True)
    src.mkdir(parents=True)
    per_file = max(1, size_bytes // n_files // BYTES_PER_EVENT)
    info = [
        ams02.simulate(src / f"run-{i:03d}.dat", per_file, seed=seed + i, run=1300000000 + i)
        for i in range(n_files)
    ]
    done.write_text(json.dumps({"files": n_files, "bytes": sum(i["bytes"] for i in info)}))
    return src


def _files(src: Path) -> List[Path]:
    return sorted(p for p in src.iterdir() if p.is_file() and not p.name.startswith("."))


def _warm(src: Path) -> None:
    for p in _files(src):
        with open(p, "rb") as f:
            while f.read(1 << 24):
                pass


def _fresh(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
    os.sync()


# -- a loopback sftp server ------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def sftp_server() -> Iterator[Tuple[Optional[str], Dict[str, Any], str]]:
    """Starts sshd on 127.0.0.1 with throwaway keys; yields (url prefix or None, fsspec
    options, reason when None)."""
    try:
        import fsspec  # noqa: F401
        import paramiko  # noqa: F401
    except ImportError as e:
        yield None, {}, f"needs paramiko and fsspec ({e.name} is not installed)"
        return
    sshd = shutil.which("sshd") or ("/usr/sbin/sshd" if os.path.exists("/usr/sbin/sshd") else None)
    keygen = shutil.which("ssh-keygen")
    if not sshd or not keygen:
        yield None, {}, "no sshd (apt-get install openssh-server)"
        return
    with tempfile.TemporaryDirectory(prefix="ams02-sshd-") as d:
        for name in ("host", "client"):
            subprocess.run([keygen, "-q", "-t", "ed25519", "-N", "", "-f", f"{d}/{name}"], check=True)
        shutil.copy(f"{d}/client.pub", f"{d}/authorized_keys")
        port = _free_port()
        Path(f"{d}/sshd_config").write_text(
            f"Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host\nPidFile {d}/sshd.pid\n"
            f"AuthorizedKeysFile {d}/authorized_keys\nStrictModes no\nUsePAM no\n"
            "PasswordAuthentication no\nKbdInteractiveAuthentication no\n"
            "PermitRootLogin prohibit-password\nSubsystem sftp internal-sftp\nLogLevel ERROR\n"
        )
        if os.geteuid() == 0:
            os.makedirs("/run/sshd", exist_ok=True)
        proc = subprocess.Popen([sshd, "-D", "-e", "-f", f"{d}/sshd_config"], stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
        try:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                if proc.poll() is not None:
                    err = proc.stderr.read().decode(errors="replace").strip() if proc.stderr else ""
                    yield None, {}, f"sshd did not start: {err[:200]}"
                    return
                with socket.socket() as s:
                    if s.connect_ex(("127.0.0.1", port)) == 0:
                        break
                time.sleep(0.05)
            user = os.environ.get("USER") or __import__("getpass").getuser()
            opts = {"key_filename": f"{d}/client", "look_for_keys": False, "allow_agent": False}
            yield f"sftp://{user}@127.0.0.1:{port}", opts, ""
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:  # pragma: no cover
                proc.kill()


# -- the benchmark ---------------------------------------------------------------------------
def _warm_source(workdir: Path, size_bytes: int, n_files: int) -> Tuple[Path, List[Path], int]:
    """The cached source directory, its files and their total size, read once into the
    page cache."""
    src = make_source(workdir, size_bytes, n_files)
    files = _files(src)
    _warm(src)
    return src, files, sum(p.stat().st_size for p in files)


def run(workdir: Path, size_bytes: int = 10**9, repeats: int = 3, *, n_files: int = 8,
        workers: Optional[int] = None, sftp: bool = True, sftp_repeats: int = 1) -> List[Dict[str, Any]]:
    """Times ``ams02 sync`` and ``cp`` on a ~``size_bytes`` simulated run in ``n_files``
    files; returns rows: name, seconds, MB/s, Mb/s, ``x 36 Mb/s``, ``x cp``, note.
    ``workers`` defaults to ams02's own default (the cores); one more row runs twice as
    many."""
    import ams02.transfer as tr

    workers = workers or tr.default_workers()

    workdir = Path(workdir)
    src, files, total = _warm_source(workdir, size_bytes, n_files)
    out = workdir / "transfer-dst"
    out.mkdir(parents=True, exist_ok=True)

    def cp(durable: bool) -> Callable[[], None]:
        def go() -> None:
            d = out / "cp"
            subprocess.run(["cp", "-r", str(src), str(d)], check=True)
            if durable:
                subprocess.run(["sync", *[str(d / p.name) for p in files]], check=True)
        return go

    def ams(**kw: Any) -> Callable[[], None]:
        def go() -> None:
            r = tr.sync(src, out / "ams02", **{"workers": workers, **kw})
            assert r.ok and r.files_copied == len(files), r
        return go

    cases: Dict[str, Tuple[Callable[[], None], Path, str]] = {
        "cp -r (plain; data left in the page cache)": (cp(False), out / "cp", ""),
        "cp -r, then sync of the files (as durable as ams02 sync)": (cp(True), out / "cp", ""),
        f"ams02 sync, local disk -> local disk ({workers} workers; defaults)": (
            ams(), out / "ams02", "fsync, adler32 both sides, sha256, decoded, catalog"),
        f"ams02 sync --workers {2 * workers}": (
            ams(workers=2 * workers), out / "ams02", "as above, more workers than cores"),
        f"ams02 sync --verify sha256 ({workers} workers)": (
            ams(verify="sha256"), out / "ams02", "sha256 recomputed at the destination too"),
        f"ams02 sync --no-validate ({workers} workers)": (
            ams(validate=False), out / "ams02", "no decoding"),
    }
    times: Dict[str, List[float]] = {k: [] for k in cases}
    for round_ in range(repeats + 1):  # round 0 is untimed (warm-up)
        for name, (fn, dst, _) in cases.items():
            _fresh(dst)
            t0 = time.perf_counter()
            fn()
            dt = time.perf_counter() - t0
            if round_:
                times[name].append(dt)
            _fresh(dst)

    rows: List[Dict[str, Any]] = []
    cp_rate = total / statistics.median(times[next(iter(cases))])

    def row(name: str, seconds: Optional[float], note: str) -> Dict[str, Any]:
        mbs = total / seconds / 1e6 if seconds else float("nan")
        return {"name": name, "seconds": seconds if seconds else float("nan"), "MB/s": mbs,
                "Mb/s": mbs * 8, "x 36 Mb/s": mbs * 8 / REQUIRED_MBIT_S,
                "x cp": mbs * 1e6 / cp_rate, "note": note}

    for name, (_, _, note) in cases.items():
        rows.append(row(name, statistics.median(times[name]), note))

    # A rerun with nothing to copy: the fast path (sizes and mtimes only) against
    # --check-destination (every copy re-read: size, adler32 and sha256), page cache warm.
    done = out / "ams02-done"
    _fresh(done)
    assert tr.sync(src, done, workers=workers).ok
    reruns: Dict[str, Tuple[bool, str]] = {
        f"ams02 sync rerun, nothing to copy ({workers} workers)": (
            False, "fast path: the copies are not read"),
        f"ams02 sync --check-destination, nothing to copy ({workers} workers)": (
            True, "every copy re-read (adler32 + sha256), page cache warm"),
    }
    for name, (check, note) in reruns.items():
        ts = []
        for round_ in range(repeats + 1):
            t0 = time.perf_counter()
            r = tr.sync(src, done, workers=workers, check_destination=check)
            dt = time.perf_counter() - t0
            assert r.ok and r.files_skipped == len(files) and r.files_damaged == 0, r
            if round_:
                ts.append(dt)
        rows.append(row(name, statistics.median(ts), note))
    _fresh(done)

    name = f"ams02 sync, local disk -> sftp://127.0.0.1 (loopback sshd, paramiko, {workers} workers)"
    if not sftp:
        rows.append(row(name, None, "skipped: --no-sftp"))
    else:
        with sftp_server() as (prefix, opts, reason):
            if prefix is None:
                rows.append(row(name, None, f"skipped: {reason}"))
            else:
                remote = out / "sftp"
                cat = out / "sftp-catalog.sqlite"
                ts = []
                for _ in range(max(1, sftp_repeats)):
                    _fresh(remote)
                    with contextlib.suppress(FileNotFoundError):
                        cat.unlink()
                    t0 = time.perf_counter()
                    r = tr.sync(src, f"{prefix}{remote}", catalog=str(cat), workers=workers,
                                dst_options=opts)
                    ts.append(time.perf_counter() - t0)
                    assert r.ok and r.files_copied == len(files), r
                _fresh(remote)
                rows.append(row(name, statistics.median(ts),
                                "read back over sftp to verify; no fsync over sftp v3"))
    shutil.rmtree(out, ignore_errors=True)
    for each in rows:
        each["bytes"] = total
        each["files"] = len(files)
    return rows


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def components(workdir: Path, size_bytes: int = 10**9, repeats: int = 3, *, n_files: int = 8,
               workers: Optional[int] = None) -> Tuple[List[Dict[str, Any]], List[Dict[str, Any]]]:
    """What each part of ``ams02 sync`` costs on the same files.

    Returns two tables. The first times each component alone, one file after the other
    on one thread (median of ``repeats``; wall and CPU seconds of this process, all
    threads): the kernel copy, the fsync that makes it durable, sha256 + adler32 of the
    source, the read-back adler32 of the destination, the lenient decode, and the catalog
    transactions of a sync. The second sums, over the files of one ``ams02 sync`` with
    ``workers`` workers, the phases each file went through (wall seconds per file, so
    overlapped across workers) as recorded in the catalog."""
    import ams02.transfer as tr
    from ams02.transfer._catalog import Catalog

    workers = workers or tr.default_workers()
    from ams02.transfer._fs import copy_range, start_writeback
    from ams02.transfer._copy import checksum_file, inspect_file

    workdir = Path(workdir)
    src, files, total = _warm_source(workdir, size_bytes, n_files)
    out = workdir / "transfer-components"
    _fresh(out)
    out.mkdir(parents=True)

    def kernel_copy() -> None:
        for p in files:
            with open(p, "rb", buffering=0) as fi, open(out / p.name, "wb", buffering=0) as fo:
                done = flushed = 0
                while True:
                    n = copy_range(fi.fileno(), fo.fileno(), 1 << 20)
                    if not n:
                        break
                    done += n
                    if done - flushed >= 8 << 20:
                        start_writeback(fo, flushed, done - flushed)
                        flushed = done

    def fsync_all() -> None:
        for p in files:
            fd = os.open(out / p.name, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    # The catalog: time spent in its calls (outermost only) during a sync without
    # decoding, through a wrapper on the Catalog methods.
    spent = [0.0]
    depth = threading.local()

    def timed(fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*a: Any, **k: Any) -> Any:
            d = getattr(depth, "n", 0)
            depth.n = d + 1
            t0 = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                depth.n = d
                if d == 0:
                    spent[0] += time.perf_counter() - t0
        return wrapper

    def timed_cm(fn: Callable[..., Any]) -> Callable[..., Any]:
        @contextlib.contextmanager
        def wrapper(*a: Any, **k: Any) -> Iterator[Any]:
            d = getattr(depth, "n", 0)
            depth.n = d + 1
            t0 = time.perf_counter()
            try:
                with fn(*a, **k) as v:
                    yield v
            finally:
                depth.n = d
                if d == 0:
                    spent[0] += time.perf_counter() - t0
        return wrapper

    def catalog_calls() -> float:
        names = ("execute", "query", "insert", "update", "discover", "files", "rows")
        saved = {n: getattr(Catalog, n) for n in names + ("transaction",)}
        try:
            for n in names:
                setattr(Catalog, n, timed(saved[n]))
            Catalog.transaction = timed_cm(saved["transaction"])  # type: ignore[method-assign]
            spent[0] = 0.0
            d = out / "catalog-run"
            r = tr.sync(src, d, workers=1, validate=False)
            assert r.ok, r
            shutil.rmtree(d)
            return spent[0]
        finally:
            for n, f in saved.items():
                setattr(Catalog, n, f)

    steps: List[Tuple[str, Callable[[], Any], str]] = [
        ("kernel copy (copy_file_range), to the page cache", kernel_copy, "what plain cp does"),
        ("fsync of those copies (durability)", fsync_all, "waits for the disk; cp + sync pays it too"),
        ("sha256 + adler32 of the source (one read)", lambda: [checksum_file(str(p)) for p in files],
         "a helper thread, while the kernel copies"),
        ("read-back adler32 of the destination", lambda: [checksum_file(str(out / p.name), sha256=False)
                                                           for p in files], "from the page cache"),
        ("sha256 of the destination too (--verify sha256)", lambda: [checksum_file(str(out / p.name))
                                                                       for p in files], "instead of the above"),
        ("lenient decode (validation)", lambda: [inspect_file(str(out / p.name)) for p in files],
         "ams02.open + events + errors, every core"),
    ]
    wall: Dict[str, List[float]] = {name: [] for name, _, _ in steps}
    cpu: Dict[str, List[float]] = {name: [] for name, _, _ in steps}
    cat_s: List[float] = []
    for _ in range(repeats):
        for p in out.iterdir():
            if p.is_file():
                p.unlink()
        os.sync()
        for name, fn, _ in steps:
            c0, t0 = _cpu(), time.perf_counter()
            fn()
            wall[name].append(time.perf_counter() - t0)
            cpu[name].append(_cpu() - c0)
        cat_s.append(catalog_calls())

    def mbs(sec: float) -> float:
        return total / sec / 1e6 if sec > 0 else float("nan")

    parts = [{"component": name, "seconds": statistics.median(wall[name]),
              "cpu": statistics.median(cpu[name]), "MB/s": mbs(statistics.median(wall[name])), "note": note}
             for name, _, note in steps]
    cs = statistics.median(cat_s)
    parts.append({"component": "catalog calls of a whole sync (SQLite)", "seconds": cs, "cpu": float("nan"),
                  "MB/s": float("nan"), "note": f"{len(files)} files; time inside the Catalog methods"})

    # The phases of one real sync, from the catalog.
    d = out / "phases"
    r = tr.sync(src, d, workers=workers)
    assert r.ok, r
    rows = tr.catalog(d)
    phases = []
    for col, what in (("copy_seconds", "copy + source checksums + fsync"),
                      ("verify_seconds", "read-back and compare"),
                      ("validate_seconds", "decode (validation)"),
                      ("total_seconds", "whole file, with rename and catalog")):
        phases.append({"phase": what, "seconds": float(sum(rows[col])), "column": col})
    phases.append({"phase": f"wall time of the sync ({workers} workers)", "seconds": r.seconds, "column": ""})
    _fresh(out)
    return parts, phases


def markdown_components(parts: List[Dict[str, Any]], phases: List[Dict[str, Any]]) -> str:
    """The two tables of :func:`components` as markdown."""
    lines = ["| component (1 GB, one thread, alone) | wall s | CPU s | MB/s | note |", "|---|---:|---:|---:|---|"]
    for p in parts:
        cpu = "-" if p["cpu"] != p["cpu"] else f"{p['cpu']:.2f}"
        rate = "-" if p["MB/s"] != p["MB/s"] else f"{p['MB/s']:,.0f}"
        lines.append(f"| {p['component']} | {p['seconds']:.2f} | {cpu} | {rate} | {p['note']} |")
    lines += ["", "| phase, summed over the files of one sync | s |", "|---|---:|"]
    for p in phases:
        lines.append(f"| {p['phase']} | {p['seconds']:.2f} |")
    return "\n".join(lines)


def markdown(rows: List[Dict[str, Any]]) -> str:
    """The rows as a markdown table."""
    lines = ["| method | s | MB/s | Mb/s | x 36 Mb/s | x cp | note |", "|---|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        if r["seconds"] != r["seconds"]:  # NaN: skipped
            lines.append(f"| {r['name']} | - | - | - | - | - | {r['note']} |")
            continue
        lines.append(
            f"| {r['name']} | {r['seconds']:.2f} | {r['MB/s']:,.0f} | {r['Mb/s']:,.0f} | "
            f"{r['x 36 Mb/s']:,.1f} | {r['x cp']:.2f} | {r['note']} |"
        )
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=float, default=1e9, help="bytes of simulated data (default 1e9)")
    ap.add_argument("--files", type=int, default=8, help="files the data is split into (default 8)")
    ap.add_argument("--repeats", type=int, default=3, help="timed rounds (default 3; the median is shown)")
    ap.add_argument("--workers", type=int, default=None,
                    help="ams02 sync workers (default: ams02's default, the number of cores)")
    ap.add_argument("--workdir", type=Path, default=HERE / "data")
    ap.add_argument("--no-sftp", action="store_true", help="skip the loopback sftp row")
    ap.add_argument("--sftp-repeats", type=int, default=1, help="timings of the sftp row (default 1)")
    ap.add_argument("--json", action="store_true", help="print the rows as JSON")
    ap.add_argument("--components", action="store_true",
                    help="also time each component of ams02 sync alone (copy, fsync, checksums, decode, catalog)")
    args = ap.parse_args(argv)
    rows = run(args.workdir, int(args.size), args.repeats, n_files=args.files, workers=args.workers,
               sftp=not args.no_sftp, sftp_repeats=args.sftp_repeats)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    total = rows[0]["bytes"]
    print(f"### ams02 sync: {total / 1e9:.2f} GB in {rows[0]['files']} files, {os.cpu_count()} cores, "
          f"median of {args.repeats}, {time.strftime('%Y-%m-%d %H:%M')}, load {os.getloadavg()[0]:.1f}\n")
    print(markdown(rows))
    local = rows[2]
    print(
        f"\nTargets (issue 8): >= 10 x 36 Mb/s on local disk: {local['x 36 Mb/s']:.1f} x "
        f"({'met' if local['x 36 Mb/s'] >= 10 else 'NOT met'}); >= 80 % of plain cp: "
        f"{local['x cp'] * 100:.0f} % ({'met' if local['x cp'] >= 0.8 else 'NOT met'}); "
        f"of cp + sync: {local['MB/s'] / rows[1]['MB/s'] * 100:.0f} %."
    )
    if args.components:
        parts, phases = components(args.workdir, int(args.size), args.repeats, n_files=args.files,
                                   workers=args.workers)
        print(f"\n### What each part costs ({total / 1e9:.2f} GB, median of {args.repeats})\n")
        print(markdown_components(parts, phases))
    return 0


if __name__ == "__main__":
    sys.exit(main())
