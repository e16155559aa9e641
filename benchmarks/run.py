#!/usr/bin/env python3
"""The ams02 benchmark: decode throughput against the memory-scan limit, open time, peak
memory of a whole-file decode and of ``ams02.iterate`` over many files.

    python benchmarks/run.py                 # the standard 1 GB run, 5 repeats
    python benchmarks/run.py --quick         # 20 MB, 3 repeats (a smoke test for CI)
    python benchmarks/run.py --size "4 GB" --repeats 3 --workdir /scratch/ams02

The simulated run is written once into ``--workdir`` (default ``benchmarks/data``, which
git ignores) and reused while its name (size and seed) matches. Every figure is measured
in the same invocation and is the median of ``--repeats`` timings; peak memory is read in
a fresh subprocess (VmHWM from /proc/self/status, i.e. the kernel's ``ru_maxrss`` of that
address space, see ``peak_rss_bytes``) minus the RSS the subprocess had before decoding. Nothing fails on speed: the script prints what it measures.

If ``benchmarks/ccsds_bench.py`` exists and defines ``run(workdir, size_bytes, repeats)``
returning a list of dicts, its rows are printed as a second table. So are the rows of
``benchmarks/huffman_bench.py`` (Huffman decoding of coded groups, decoded MB/s on one core).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import importlib.util
import json
import mmap
import os
import platform
import resource
import statistics
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

# The environment the user ran this script with: the timed children get it as it is (so
# numpy's OpenBLAS starts its threads there as it does for a user), except where a row
# says otherwise.
USER_ENV = dict(os.environ)
# NumPy's BLAS keeps worker threads that spin after use; this process's scan needs none,
# and spinning threads would take the cores the decoder's threads are measured on. The
# timed children (this script run with --child) leave them as the user has them.
if "--child" not in sys.argv:
    for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
MB = 1e6
N_COPIES = 8
ITERATE_STEP = "100 MB"
#: Timings per floor row (each a fresh process); None: --repeats (1 with --quick).
FLOOR_REPEATS: Optional[int] = None
#: Seconds of idle before each timed child of the floors (``--gap``; see ``default_gap``).
GAP = 0.0


def usable_cores() -> int:
    """The cores this process may run on (its affinity where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1  # pragma: no cover - not Linux


def free_page_reporting() -> bool:
    """Whether a virtio balloon of this (virtual) machine reports free pages to its host
    (feature bit 5, ``VIRTIO_BALLOON_F_REPORTING``): the host then takes back guest memory
    about 2 s after it is freed, and the next first touch of that memory waits for the
    host to back it again."""
    for dev in Path("/sys/bus/virtio/devices").glob("*"):
        try:
            kind = (dev / "device").read_text().strip()
            features = (dev / "features").read_text().strip()
        except OSError:
            continue
        if kind == "0x0005" and len(features) > 5 and features[5] == "1":
            return True
    return False


def default_gap() -> float:
    """3 s of idle before each timed child where free pages are reported to the host, so
    that every child, the floor's as the decoder's, meets the memory a user's process
    meets: taken back by the host. Back to back, a child instead gets the memory the one
    before it has just freed, still backed: 0.09-0.25 s against 0.46-0.87 s for the first
    touch of 400 MB on the development VM (``benchmarks/README.md``). 0 elsewhere."""
    return 3.0 if free_page_reporting() else 0.0


# -- helpers ----------------------------------------------------------------------------
def median_time(fn: Callable[[], Any], repeats: int, warmup: bool = True) -> float:
    """Median wall time of ``fn()`` over ``repeats`` calls (after one untimed call)."""
    if warmup:
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def interleaved(cases: Dict[str, Callable[[], Any]], repeats: int) -> Dict[str, float]:
    """Median wall time of each case, the cases timed in turn in every repeat (after one
    untimed round)."""
    for fn in cases.values():
        fn()
    times: Dict[str, List[float]] = {k: [] for k in cases}
    for _ in range(repeats):
        for k, fn in cases.items():
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def proc_status() -> Dict[str, int]:
    """VmRSS, VmHWM, RssAnon, RssFile of this process in bytes (Linux; empty elsewhere)."""
    out: Dict[str, int] = {}
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                key, _, rest = line.partition(":")
                if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
                    out[key] = int(rest.split()[0]) * 1024
    except OSError:
        pass
    return out


def peak_rss_bytes() -> int:
    """This process's peak RSS: VmHWM where /proc exists, else ``ru_maxrss``.

    On Linux ``getrusage(RUSAGE_SELF).ru_maxrss`` is not reset by exec: a subprocess
    started from a big parent (subprocess uses vfork + exec) reports at least the parent's
    peak. VmHWM belongs to the process's own address space, made fresh at exec.
    """
    hwm = proc_status().get("VmHWM")
    if hwm is not None:
        return hwm
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r if sys.platform == "darwin" else r * 1024


class AnonPeak:
    """Samples RssAnon every millisecond in a thread (the Rust decoder releases the GIL):
    the peak of anonymous memory, i.e. without the file pages the memory map brings in."""

    def __init__(self) -> None:
        self.peak = proc_status().get("RssAnon", 0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, proc_status().get("RssAnon", 0))
            time.sleep(0.001)

    def __enter__(self) -> "AnonPeak":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, proc_status().get("RssAnon", 0))


def machine() -> Dict[str, str]:
    import ams02

    cpu = platform.processor() or platform.machine()
    mhz = ""
    # The instruction sets the decoder's CRC and byte swaps can use (the same CPU model
    # name is given to hosts with and without AVX-512 here).
    features = ""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                elif line.startswith("cpu MHz") and not mhz:
                    mhz = f", {float(line.split(':', 1)[1]):,.0f} MHz"
                elif line.startswith("flags") and not features:
                    flags = set(line.split(":", 1)[1].split())
                    wanted = ("avx2", "avx512f", "pclmulqdq", "vpclmulqdq")
                    features = "; " + " ".join(f for f in wanted if f in flags)
    except OSError:
        pass
    cpu += mhz + features
    ram = "?"
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemTotal"):
                    ram = f"{int(line.split()[1]) / 2**20:.1f} GiB"
                    break
    except OSError:
        pass
    cores = usable_cores()
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    return {
        "date": _dt.datetime.now().strftime("%Y-%m-%d %H:%M"),
        "cpu": cpu,
        "cores": str(cores),
        "ram": ram,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "numpy": np.__version__,
        "ams02": ams02.__version__,
        "load average (1, 5, 15 min) at start": load,
    }


def size_label(n: int) -> str:
    for unit, f in (("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if n >= f and n % (f // 10) == 0:
            return f"{n / f:g}{unit}"
    return f"{n}B"


# -- the run ----------------------------------------------------------------------------
def standard_run(workdir: Path, size: int, seed: int, layout: str = "flight") -> Tuple[Path, Dict[str, Any]]:
    """The benchmark run of about ``size`` bytes (ams02.simulate defaults: the flight
    layout with Huffman-coded groups, compressed TRD, ~1 % raw and ~1 % mixed UDRs, other
    detectors; ``layout="2007"``: the seed's layout), written once and cached. A small
    probe run calibrates the size and fingerprints the simulator: a cached run written by
    another version of it is written again."""
    import hashlib

    import ams02

    workdir.mkdir(parents=True, exist_ok=True)
    tag = "" if layout == "flight" else f"-{layout}"
    path = workdir / f"run-{size_label(size)}-seed{seed}{tag}.dat"
    meta = path.with_suffix(".json")
    probe = workdir / f".probe-seed{seed}{tag}.dat"
    p = ams02.simulate(probe, 2000, seed=seed, layout=layout)
    fingerprint = hashlib.sha256(probe.read_bytes()).hexdigest()
    probe.unlink()
    if path.exists() and meta.exists():
        info = json.loads(meta.read_text())
        if info.get("bytes") == path.stat().st_size and info.get("simulator") == fingerprint:
            return path, info
    n_events = max(1, round(size / (p["bytes"] / p["n_events"])))
    print(f"writing {path} ({n_events} events, about {size / MB:.0f} MB) ...", file=sys.stderr)
    info = ams02.simulate(path, n_events, seed=seed, layout=layout)
    info = {k: (str(v) if k == "path" else v) for k, v in info.items()}
    info["simulator"] = fingerprint
    info["layout"] = layout
    meta.write_text(json.dumps(info, indent=1))
    return path, info


def copies(path: Path, n: int) -> Path:
    """A directory holding ``n`` hard links (or symlinks) to ``path``."""
    d = path.parent / f"{path.stem}-x{n}"
    d.mkdir(exist_ok=True)
    for i in range(n):
        q = d / f"{i:02d}.dat"
        if q.exists() or q.is_symlink():
            if q.stat().st_ino == path.stat().st_ino or q.resolve() == path.resolve():
                continue
            q.unlink()
        try:
            os.link(path, q)
        except OSError:
            q.symlink_to(path.resolve())
    return d


# -- children (fresh processes for peak RSS) --------------------------------------------
def child_decode(path: str, threads: Optional[int]) -> Dict[str, Any]:
    import ams02

    before = proc_status().get("VmRSS", peak_rss_bytes())
    anon_before = proc_status().get("RssAnon", 0)
    file_before = proc_status().get("RssFile", 0)
    with AnonPeak() as anon:
        with ams02.open(path, threads=threads) as f:
            ev = f.events()
            hits = f.trd_hits()
            mapped = proc_status().get("RssFile", 0) - file_before
    nbytes = sum(v.nbytes for t in (ev, hits) for v in t.values())
    return {
        "rss_before": before,
        "mapped": mapped,
        "peak_rss": peak_rss_bytes() - before,
        "peak_anon": anon.peak - anon_before,
        "arrays": nbytes,
    }


def child_iterate(directory: str, step: str, threads: Optional[int]) -> Dict[str, Any]:
    from ams02._multi import iterate

    before = proc_status().get("VmRSS", peak_rss_bytes())
    anon_before = proc_status().get("RssAnon", 0)
    n_batches = 0
    biggest = 0
    n_events = 0
    t0 = time.perf_counter()
    with AnonPeak() as anon:
        for batch in iterate(directory, step_size=step, progress=False, threads=threads):
            n_batches += 1
            n_events += len(batch["events"]["run"])
            biggest = max(biggest, sum(v.nbytes for t in batch.values() for v in t.values()))
    elapsed = time.perf_counter() - t0
    return {
        "rss_before": before,
        "peak_rss": peak_rss_bytes() - before,
        "peak_anon": anon.peak - anon_before,
        "batches": n_batches,
        "largest_batch": biggest,
        "events": n_events,
        "seconds": elapsed,
    }


def run_child(args: Sequence[str], env: Optional[Dict[str, str]] = None) -> Dict[str, Any]:
    """Runs this script with ``args`` in a fresh process, in the user's environment
    (``USER_ENV``) updated with ``env``, after ``GAP`` seconds of idle; returns the JSON of
    its last output line."""
    if GAP > 0:
        time.sleep(GAP)
    out = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), *args],
        check=True,
        capture_output=True,
        text=True,
        env={**USER_ENV, **(env or {})},
    )
    result: Dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


# -- honest floors (issue 17): cold and warm, in fresh processes -------------------------
def can_drop_caches() -> bool:
    """Whether this process may drop the page cache (root, /proc/sys/vm/drop_caches)."""
    return os.access("/proc/sys/vm/drop_caches", os.W_OK)


def evict(paths: Sequence[str]) -> bool:
    """Takes ``paths`` out of the page cache: ``fsync`` of each file (only clean pages can
    be dropped; a global ``sync`` would wait for every other process's writes), then
    ``/proc/sys/vm/drop_caches`` where allowed (root), and ``posix_fadvise(DONTNEED)`` of
    each file (which evicts its clean pages without root). Returns whether the whole cache
    was dropped."""
    for p in paths:
        fd = os.open(p, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    dropped = False
    if can_drop_caches():
        with open("/proc/sys/vm/drop_caches", "w") as fh:
            fh.write("1\n")
        dropped = True
    for p in paths:
        fd = os.open(p, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
    return dropped


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def floor_once(path: str, threads: Optional[int], nbytes: int) -> Dict[str, Any]:
    """The warm floor, timed in this process: the scan of every byte of the (warm) file
    (``np.memmap`` summed as uint64), then the first touch of ``nbytes`` of new memory
    (``np.ones``), each split over ``threads`` threads (None: all cores; NumPy leaves the
    GIL for both). ``seconds`` is their sum."""
    n = usable_cores() if threads is None else threads
    mm = np.memmap(path, dtype=np.uint8, mode="r")
    words = np.frombuffer(mm[: len(mm) // 8 * 8], dtype=np.uint64)
    kept: List[Any] = [None] * n

    def split(work: Callable[[int], Any]) -> float:
        t0 = time.perf_counter()
        pool = [threading.Thread(target=lambda i=i: kept.__setitem__(i, work(i))) for i in range(n)]
        for t in pool:
            t.start()
        for t in pool:
            t.join()
        return time.perf_counter() - t0

    c0 = _cpu()
    t_scan = split(lambda i: words[len(words) * i // n : len(words) * (i + 1) // n].sum())
    t_touch = split(lambda i: np.ones(nbytes * (i + 1) // n - nbytes * i // n, dtype=np.uint8))
    return {"seconds": t_scan + t_touch, "scan": t_scan, "touch": t_touch, "cpu": _cpu() - c0}


def child_floor(spec: str, path: str) -> Dict[str, Any]:
    """One timing in a fresh process. ``spec`` is ``what:temp:threads:mmap`` with what in
    read (``read()`` into a reused 16 MB buffer), one (``open`` + ``File.tables(["events",
    "trd_hits"])``: one streaming pass that walks and decodes), walkfirst (the same with
    ``n_events`` asked first: the whole file walked, then decoded), walk (``n_events``
    alone), events (``File.tables(["events"])``: the one pass's checks, every CRC and
    the TRD paths walked, without the hit columns), iterate
    (``ams02.iterate`` over ``path``, a file or directory, tables events and trd_hits,
    ``ITERATE_STEP``), concat (``ams02.concatenate(path, "trd_hits")``), floor (the warm
    floor in this fresh process, :func:`floor_once`; its last field is the arrays' size in
    bytes, not the map); temp cold (evicted first) or warm (read once first)."""
    import ams02
    from ams02._multi import resolve_paths

    what, temp, threads_s, mmap_s = spec.split(":")
    threads = None if threads_s == "all" else int(threads_s)
    mmap_on = mmap_s == "1"
    files = resolve_paths(path)
    buf = bytearray(16 << 20)

    def read_all() -> int:
        n = 0
        for p in files:
            with open(p, "rb", buffering=0) as fh:
                while True:
                    k = fh.readinto(buf)
                    if not k:
                        break
                    n += k
        return n

    if temp == "cold":
        evict(files)
    else:
        read_all()
    if what == "floor":
        return floor_once(files[0], threads, int(mmap_s))
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    c0 = _cpu()
    t0 = time.perf_counter()
    if what == "read":
        read_all()
    elif what in ("one", "walkfirst"):
        with ams02.open(path, threads=threads, mmap=mmap_on) as f:
            if what == "walkfirst":
                _ = f.n_events  # the walk alone, before the decode
            f.tables(["events", "trd_hits"])
    elif what == "walk":
        with ams02.open(path, threads=threads, mmap=mmap_on) as f:
            _ = f.n_events  # the block walk (the events' sub-blocks tiled), nothing decoded
    elif what == "events":
        with ams02.open(path, threads=threads, mmap=mmap_on) as f:
            f.tables(["events"])  # every CRC, the TRD paths walked, no hit column written
    elif what == "concat":
        ams02.concatenate(files, "trd_hits", progress=False, threads=threads, mmap=mmap_on)
    else:
        for _ in ams02.iterate(files, step_size=ITERATE_STEP, progress=False, threads=threads, mmap=mmap_on):
            pass
    t = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    return {"seconds": t, "cpu": _cpu() - c0, "majflt": r1.ru_majflt - r0.ru_majflt}


def pieces(path: Path, n: int) -> Path:
    """A directory of ``n`` distinct files (not links: each has its own page cache) that
    are the run cut at block boundaries, for the many-files rows."""
    import ams02

    d = path.parent / f"{path.stem}-pieces{n}"
    size = path.stat().st_size
    if d.is_dir() and sum(q.stat().st_size for q in d.iterdir()) == size and len(list(d.iterdir())) == n:
        return d
    d.mkdir(exist_ok=True)
    for q in d.iterdir():
        q.unlink()
    with ams02.open(path, threads=1) as f:
        blocks = f.blocks()["offset"]
    cuts = [0] + [int(blocks[len(blocks) * k // n]) for k in range(1, n)] + [size]
    with open(path, "rb") as src:
        for k in range(n):
            src.seek(cuts[k])
            (d / f"{k:02d}.dat").write_bytes(src.read(cuts[k + 1] - cuts[k]))
    return d


def floors(
    path: Path, info: Dict[str, Any], repeats: int, arrays: int, t_scan: float, t_touch: float
) -> List[Tuple[str, str, str, str]]:
    """The table of issue 17 item 3: cold read, warm floor (scan + first touch), one-pass
    decode cold and warm on 1 thread and all cores, the ratios, the read mechanisms
    compared, and many files against one long file (cold)."""
    size = path.stat().st_size
    cores = usable_cores()
    cold = "cold" if can_drop_caches() else "warm"  # without root the cache is only fadvised

    k = FLOOR_REPEATS or repeats

    def timed(spec: str, target: Path, env: Optional[Dict[str, str]] = None) -> Dict[str, float]:
        runs = [run_child(["--child", f"floor={spec}", str(target)], env) for _ in range(k)]
        return {k: statistics.median(r[k] for r in runs) for k in runs[0]}

    def mbs(t: float, n: int = size) -> str:
        return f"{n / t / MB:,.0f} MB/s"

    def interleaved(specs: Dict[Any, Tuple[Any, ...]]) -> Dict[Any, Dict[str, float]]:
        """Each spec ``(spec, env[, target])`` timed ``k`` times, one of each per round
        (the VM's slow and fast minutes then weigh on all of them alike): the medians."""
        runs: Dict[Any, List[Dict[str, Any]]] = {key: [] for key in specs}
        for _ in range(k):
            for key, (spec, env, *target) in specs.items():
                where = target[0] if target else path
                runs[key].append(run_child(["--child", f"floor={spec}", str(where)], env))
        return {key: {m: statistics.median(r[m] for r in rs) for m in rs[0]} for key, rs in runs.items()}

    # numpy's OpenBLAS starts a thread a core at import, which spins a while on those
    # cores: the "no BLAS threads" rows show what that costs the decode.
    no_blas = {"OPENBLAS_NUM_THREADS": "1"}
    specs: Dict[Any, Tuple[Any, ...]] = {
        (temp, thr): (f"one:{temp}:{thr}:1", None) for temp in ("cold", "warm") for thr in ("1", "all")
    }
    specs.update({("blas1", thr): (f"one:warm:{thr}:1", no_blas) for thr in ("1", "all")})
    # The least work of the one pass, warm: the walk alone, and the events table alone (the
    # same walk, every CRC, the TRD paths walked and the coded groups decoded, the hit
    # columns not written).
    specs.update(
        {(what, thr): (f"{what}:warm:{thr}:1", None) for what in ("walk", "events") for thr in ("1", "all")}
    )
    # The cold read in the same rounds: this VM's disk runs at 650-1,600 MB/s from one
    # minute to the next, so a cold read timed apart from the decodes skews their ratio.
    specs["read"] = ("read:cold:1:1", None)
    # The warm floor in fresh processes in the same rounds, on 1 thread and split over all
    # cores: after the gap its first touch meets the memory the decoder's children meet.
    specs.update({("floor", thr): (f"floor:warm:{thr}:{arrays}", None) for thr in ("1", "all")})
    one = interleaved(specs)
    read_c = one["read"]
    # The floor of sessions 6-8, measured in this process: its first touch gets the memory
    # that this process's own decode has just freed, which the host has not taken back.
    t_floor_here = t_scan + t_touch
    t_floor = {thr: one[("floor", thr)]["seconds"] for thr in ("1", "all")}
    rows: List[Tuple[str, str, str, str]] = []
    if cold == "warm":
        rows.append(
            (
                '(no root: the page cache could not be dropped, so every "cold" row below '
                "is warm or only fadvised)",
                "",
                "",
                "",
            )
        )
    rows += [
        (
            "(a) cold read: `read()` of the file into a reused 16 MB buffer, page cache dropped",
            f"{mbs(read_c['seconds'])} ({read_c['seconds']:.2f} s, {read_c['cpu']:.2f} CPU s)",
            "",
            "",
        ),
    ]
    gap = f"after {GAP:g} s of idle, " if GAP > 0 else ""
    for thr in ("1", "all"):
        label = "1 thread" if thr == "1" else f"split over all cores ({cores})"
        fl = one[("floor", thr)]
        rows.append(
            (
                f"(b) warm floor, {label}: scan of every byte (memmap sum) + first touch of "
                f"new memory as large as the arrays ({arrays / MB:,.0f} MB), in a fresh "
                f"process {gap}as every decode below",
                f"{mbs(fl['seconds'])} ({fl['scan'] * 1e3:,.0f} + {fl['touch'] * 1e3:,.0f} ms)",
                "",
                "",
            )
        )
    rows.append(
        (
            "(b) the same, 1 thread, in this script's process (the floor of sessions 6-8): its "
            "first touch gets the memory this process's decode has just freed, still backed",
            f"{mbs(t_floor_here)} ({t_scan * 1e3:,.0f} + {t_touch * 1e3:,.0f} ms)",
            "",
            "",
        )
    )
    for thr in ("1", "all"):
        label = "1 thread" if thr == "1" else f"all cores ({cores})"
        c, w = one[("cold", thr)], one[("warm", thr)]
        rows += [
            (
                f'(c) one pass `open()` + `tables(["events", "trd_hits"])`, {label}, cold',
                f"{mbs(c['seconds'])} ({c['seconds']:.2f} s, {c['cpu']:.2f} CPU s, "
                f"{c['majflt']:.0f} major faults)",
                "",
                "",
            ),
            (
                f"(c) the same, {label}, warm",
                f"{mbs(w['seconds'])} ({w['seconds']:.2f} s, {w['cpu']:.2f} CPU s)",
                "",
                "",
            ),
        ]
    for thr in ("1", "all"):
        label = "1 thread" if thr == "1" else f"all cores ({cores})"
        c, w = one[("cold", thr)]["seconds"], one[("warm", thr)]["seconds"]
        bound = max(read_c["seconds"], w)  # the slower of the two sets the rate
        r_cold = bound / c
        r_warm = t_floor[thr] / w
        rows += [
            (
                f"(d) cold one pass / min(cold read, warm one pass), {label}",
                f"{r_cold:.2f} x",
                ">= 0.9 x",
                "yes" if r_cold >= 0.9 else "**no**",
            ),
            (
                f"(d) warm one pass / warm floor of the same threads, {label}",
                f"{r_warm:.3f} x",
                ">= 0.25 x (aim 0.5 x)",
                "yes" if r_warm >= 0.25 else "**no**",
            ),
            (
                f"the same against the floor in this script's process (sessions 6-8), {label}",
                f"{t_floor_here / w:.3f} x",
                "",
                "",
            ),
        ]
    sp = one[("warm", "1")]["seconds"] / one[("warm", "all")]["seconds"]
    rows.append(
        (
            f"speed-up of the warm one pass, {cores} cores / 1 thread",
            f"{sp:.2f} x",
            ">= 1.8 x (2 cores)",
            "yes" if sp >= 1.8 else "**no**",
        )
    )
    b1, ball = one[("blas1", "1")]["seconds"], one[("blas1", "all")]["seconds"]
    rows.append(
        (
            f"the same without numpy's OpenBLAS threads (`OPENBLAS_NUM_THREADS=1`): warm "
            f"one pass 1 thread, {cores} cores, speed-up",
            f"{mbs(b1)}, {mbs(ball)}, {b1 / ball:.2f} x",
            "",
            "",
        )
    )
    for thr in ("1", "all"):
        label = "1 thread" if thr == "1" else f"all cores ({cores})"
        wk, ck = one[("walk", thr)], one[("events", thr)]
        rows += [
            (
                f"(e) least work, warm, {label}: the block walk alone (`n_events`); the events "
                'table alone (`tables(["events"])`: the same walk, every CRC, the TRD paths '
                "walked, no hit column written)",
                f"{mbs(wk['seconds'])} ({wk['cpu']:.2f} CPU s); {mbs(ck['seconds'])} ({ck['cpu']:.2f} CPU s)",
                "",
                "",
            ),
            (
                f"(e) the events table alone / warm floor, {label}: the most that warm one pass / "
                "warm floor can be with these checks, before a hit column is written",
                f"{t_floor[thr] / ck['seconds']:.3f} x",
                "",
                "",
            ),
        ]
    if FLOOR_REPEATS == 1 and size < 100 * MB:  # --quick: the floors and ratios only
        return rows
    # The read mechanisms, cold: the default (map, one streaming pass, MADV_WILLNEED 64 MB
    # ahead of its walk over the kernel's read-ahead), the kernel's read-ahead alone, the
    # file walked first and decoded after, and reading into memory.
    base = one[("cold", "1")]
    kernel = timed("one:cold:1:1", path, {"AMS02_READ_AHEAD": "0"})
    walk1 = timed("walkfirst:cold:1:1", path)
    walk_all = timed("walkfirst:cold:all:1", path)
    readin = timed("one:cold:1:0", path)
    rows += [
        (
            "mechanism, cold, 1 thread: map, one streaming pass, `MADV_WILLNEED` 64 MB ahead of "
            "its walk (the default)",
            f"{mbs(base['seconds'])}, {base['majflt']:.0f} major faults",
            "",
            "",
        ),
        (
            "mechanism, cold, 1 thread: the same with the kernel's read-ahead only "
            "(`MADV_SEQUENTIAL`, `AMS02_READ_AHEAD=0`)",
            f"{mbs(kernel['seconds'])}, {kernel['majflt']:.0f} major faults",
            "",
            "",
        ),
        (
            "mechanism, cold, 1 thread: walked first (`n_events`), decoded after (before the streaming pass)",
            f"{mbs(walk1['seconds'])} ({walk1['cpu']:.2f} CPU s)",
            "",
            "",
        ),
        (
            f"mechanism, cold, all cores ({cores}): walked first, decoded after",
            f"{mbs(walk_all['seconds'])} ({walk_all['cpu']:.2f} CPU s)",
            "",
            "",
        ),
        (
            "mechanism, cold, 1 thread: `mmap=False` (read into memory, then decoded)",
            f"{mbs(readin['seconds'])} ({readin['cpu']:.2f} CPU s)",
            "",
            "",
        ),
    ]
    # The SIGBUS guard's cost per call: one fstat of the open file (issue 14 item 10).
    import ams02

    with ams02.open(path) as f:
        n_checks = 20000
        t0 = time.perf_counter()
        for _ in range(n_checks):
            f.raw.check()
        t_check = (time.perf_counter() - t0) / n_checks
    rows.append(
        (
            "guard of the map: `File.raw.check()` (an `fstat`, after every call that "
            "reads the data; the SIGBUS handler costs nothing until a fault)",
            f"{t_check * 1e6:.2f} us per call",
            "",
            "",
        )
    )
    # Many files: the run cut into N distinct files, against the one long file, cold.
    n = N_COPIES
    d = pieces(path, n)
    for what, call in (
        ("concat", '`concatenate(..., "trd_hits")`'),
        ("iterate", f'`iterate(step_size="{ITERATE_STEP}")`'),
    ):
        got = interleaved(
            {
                "long": (f"{what}:cold:all:1", None, path),
                "many": (f"{what}:cold:all:1", None, d),
                "now": (f"{what}:cold:all:1", {"AMS02_PREFETCH": "now"}, d),
                "off": (f"{what}:cold:all:1", {"AMS02_PREFETCH": "0"}, d),
            }
        )
        long_it, many_it, many_now, many_off = got["long"], got["many"], got["now"], got["off"]
        r = long_it["seconds"] / many_it["seconds"]
        rows += [
            (f"{call} cold, all cores: the one long file", mbs(long_it["seconds"]), "", ""),
            (
                f"{call} cold, all cores: the same bytes as {n} files (next file read ahead once "
                "the current file's walk has asked for its end: the default)",
                f"{mbs(many_it['seconds'])} = {r:.2f} x the long file",
                ">= 0.9 x",
                "yes" if r >= 0.9 else "**no**",
            ),
            (
                f"{call} cold, all cores: {n} files, next file read ahead at once (when the current "
                "one is opened)",
                f"{mbs(many_now['seconds'])} = {long_it['seconds'] / many_now['seconds']:.2f} x the long file",
                "",
                "",
            ),
            (
                f"{call} cold, all cores: {n} files, no read-ahead of the next file",
                f"{mbs(many_off['seconds'])} = {long_it['seconds'] / many_off['seconds']:.2f} x the long file",
                "",
                "",
            ),
        ]
    return rows


# -- the measurements -------------------------------------------------------------------
def measure(path: Path, info: Dict[str, Any], repeats: int) -> List[Tuple[str, str, str, str]]:
    import ams02
    from ams02._multi import iterate, parse_size

    size = path.stat().st_size
    n_events = int(info["n_events"])
    cores = usable_cores()
    rows: List[Tuple[str, str, str, str]] = []

    def decode(f: "ams02.File") -> None:
        f.events()
        f.trd_hits()

    def one_pass(f: "ams02.File") -> None:
        f.tables(["events", "trd_hits"])

    mm = np.memmap(path, dtype=np.uint8, mode="r")
    n8 = len(mm) // 8 * 8

    def scan(mm: np.ndarray = mm) -> None:
        np.frombuffer(mm[:n8], dtype=np.uint64).sum()

    # The same scan over a map whose pages were just released, as the decoder releases
    # the pages it has read (so that its resident memory stays bounded): each decode call
    # maps the file's pages into the process again, and pays this.
    fh = open(path, "rb")
    remap = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)

    def scan_released() -> None:
        remap.madvise(mmap.MADV_DONTNEED)
        np.frombuffer(remap, dtype=np.uint64, count=n8 // 8).sum()

    # Interleaved: every repeat times each case once, so that load from other processes
    # on a shared machine weighs on all cases alike (and on their ratios less).
    f1 = ams02.open(path, threads=1)
    fall = ams02.open(path, threads=None)
    cases: Dict[str, Callable[[], None]] = {
        "dec1": lambda: decode(f1),
        "decall": lambda: decode(fall),
        "one1": lambda: one_pass(f1),
        "oneall": lambda: one_pass(fall),
        "scan": scan,
        "scan_released": scan_released,
        # No table asked: the event headers and the TRD paths walked, no CRC, nothing
        # written; trd_hits() does this and more.
        "walk": lambda: f1.raw.decode([]),
    }
    times = interleaved(cases, repeats)
    f1.close()
    fall.close()
    del mm, cases
    remap.close()
    fh.close()
    t_dec = {"1": times["dec1"], "all": times["decall"]}
    t_one = {"1": times["one1"], "all": times["oneall"]}
    t_scan = times["scan"]
    t_released = times["scan_released"]
    t_walk = times["walk"]

    def open_n() -> None:
        with ams02.open(path) as f:
            _ = f.n_events

    t_open = median_time(open_n, repeats)

    rss = run_child(["--child", "decode", str(path)])

    d = copies(path, N_COPIES)
    total = N_COPIES * size

    def it() -> None:
        for _ in iterate(d, step_size=ITERATE_STEP, progress=False):
            pass

    t_it = median_time(it, repeats, warmup=False)
    rss_it = run_child(["--child", "iterate", str(d)])

    def mbs(t: float, n: int = size) -> str:
        return f"{n / t / MB:,.0f} MB/s"

    speedup = t_dec["1"] / t_dec["all"]
    s1 = (size / t_dec["1"]) / (size / t_scan)
    sall = (size / t_dec["all"]) / (size / t_scan)

    def yes(ok: bool) -> str:
        return "yes" if ok else "**no**"

    rows += [
        (
            "decode `events()` + `trd_hits()`, 1 thread",
            f"{mbs(t_dec['1'])}, {n_events / t_dec['1']:,.0f} events/s",
            "",
            "",
        ),
        (
            f"decode `events()` + `trd_hits()`, all cores ({cores})",
            f"{mbs(t_dec['all'])}, {n_events / t_dec['all']:,.0f} events/s",
            "",
            "",
        ),
        (
            'one pass `File.tables(["events", "trd_hits"])`, 1 thread',
            f"{mbs(t_one['1'])}, {n_events / t_one['1']:,.0f} events/s",
            "",
            "",
        ),
        (
            f"one pass, all cores ({cores})",
            f"{mbs(t_one['all'])}, {n_events / t_one['all']:,.0f} events/s",
            "",
            "",
        ),
        (
            f"speed-up, {cores} threads / 1 thread",
            f"{speedup:.2f} x (one pass: {t_one['1'] / t_one['all']:.2f} x)",
            ">= 1.7 x (2 threads)",
            yes(speedup >= 1.7) if cores >= 2 else "n/a (1 core)",
        ),
        ("scan limit: `np.frombuffer(memmap, uint64).sum()`", mbs(t_scan), "", ""),
        (
            "scan of the map after `madvise(MADV_DONTNEED)` (its pages mapped again)",
            f"{mbs(t_released)}: {(t_released - t_scan) * 1e3:,.0f} ms more than the scan, "
            "paid by every decode call, which releases the pages it has read",
            "",
            "",
        ),
        (
            "walk alone: `File.raw.decode([])`, 1 thread (event headers and TRD paths, "
            "no CRC, nothing written; `trd_hits()` does this and more)",
            f"{mbs(t_walk)} = {t_scan / t_walk:.3f} x scan",
            "",
            "",
        ),
        ("decode / scan, 1 thread", f"{s1:.3f} x", ">= 0.5 x (aim 1.0 x)", yes(s1 >= 0.5)),
        (f"decode / scan, all cores ({cores})", f"{sall:.3f} x", "", ""),
        (
            "`ams02.open()` + `n_events` (warm cache)",
            f"{t_open * 1e3:,.1f} ms",
            "< 500 ms",
            yes(t_open < 0.5),
        ),
    ]
    arrays = rss["arrays"]
    target = 1.3 * arrays + 100 * MB

    # Writing the returned arrays means touching that much new memory, which the kernel
    # zeroes at its first touch (NumPy, like the decoder's allocator, asks for huge pages,
    # one fault per 2 MiB): a floor under any decoder that returns new arrays.
    def touch() -> None:
        np.ones(int(arrays), dtype=np.uint8)

    t_touch = median_time(touch, repeats)
    rows += [
        (
            "first touch of new memory as large as the arrays (`np.ones(arrays bytes)`)",
            f"{t_touch * 1e3:,.0f} ms for {arrays / MB:,.0f} MB = {arrays / t_touch / MB:,.0f} MB/s; "
            f"alone it bounds decode at {mbs(t_touch)} = {size / t_touch / (size / t_scan):.2f} x scan",
            "",
            "",
        ),
    ]
    rows += [
        (
            "whole-file decode: peak RSS (VmHWM) - RSS before",
            f"{rss['peak_rss'] / MB:,.0f} MB = {rss['peak_rss'] / arrays:.2f} x arrays "
            f"({arrays / MB:,.0f} MB); {rss['mapped'] / MB:,.0f} MB of it are mapped file pages",
            f"<= 1.3 x arrays + 100 MB = {target / MB:,.0f} MB",
            yes(rss["peak_rss"] <= target),
        ),
        (
            "whole-file decode: peak anonymous RSS (sampled, without mapped file pages)",
            f"{rss['peak_anon'] / MB:,.0f} MB = {rss['peak_anon'] / arrays:.2f} x arrays",
            f"<= {target / MB:,.0f} MB",
            yes(rss["peak_anon"] <= target),
        ),
    ]
    step = parse_size(ITERATE_STEP)
    it_target = 2 * step + 200 * MB
    rows += [
        (
            f'`iterate()` over {N_COPIES} links ({total / MB:,.0f} MB), step_size="{ITERATE_STEP}"',
            f"{mbs(t_it, total)}, {rss_it['batches']} batches",
            "",
            "",
        ),
        (
            "`iterate()`: peak RSS (VmHWM) - RSS before",
            f"{rss_it['peak_rss'] / MB:,.0f} MB (largest batch {rss_it['largest_batch'] / MB:,.0f} MB)",
            f"< 2 x step_size + 200 MB = {it_target / MB:,.0f} MB",
            yes(rss_it["peak_rss"] < it_target),
        ),
        (
            "`iterate()`: peak anonymous RSS (sampled)",
            f"{rss_it['peak_anon'] / MB:,.0f} MB",
            f"< {it_target / MB:,.0f} MB",
            yes(rss_it["peak_anon"] < it_target),
        ),
    ]
    if FLOOR_REPEATS != 1:  # --quick leaves them to `--quick --floors`
        rows.append(("**honest floors (issue 17), each timing a fresh process**", "", "", ""))
        rows += floors(path, info, repeats, arrays, t_scan, t_touch)
    return rows


def measure_floors(path: Path, info: Dict[str, Any], repeats: int) -> List[Tuple[str, str, str, str]]:
    """Only the floors table (``--floors``): the scan, the arrays' size and their first
    touch measured here first, as :func:`measure` does."""
    import ams02

    with ams02.open(path) as f:
        t = f.tables(["events", "trd_hits"])
        arrays = sum(v.nbytes for x in t.values() for v in x.values())
        del t
    mm = np.memmap(path, dtype=np.uint8, mode="r")
    n8 = len(mm) // 8 * 8
    t_scan = median_time(lambda mm=mm: np.frombuffer(mm[:n8], dtype=np.uint64).sum(), repeats)
    del mm
    t_touch = median_time(lambda: np.ones(int(arrays), dtype=np.uint8), repeats)
    return floors(path, info, repeats, arrays, t_scan, t_touch)


def _bench_module(name: str) -> Optional[Any]:
    """``benchmarks/<name>.py`` loaded as a module, or None if it is not there."""
    bench = HERE / f"{name}.py"
    if not bench.exists():
        return None
    spec = importlib.util.spec_from_file_location(name, bench)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def ccsds_rows(workdir: Path, size: int, repeats: int) -> Optional[List[Dict[str, Any]]]:
    """Rows of ``benchmarks/ccsds_bench.py``'s ``run()``, or None if it is not there."""
    module = _bench_module("ccsds_bench")
    run = getattr(module, "run", None)
    if not callable(run):
        return None
    return list(run(workdir, size, repeats))


def huffman_rows(workdir: Path, size: int, repeats: int) -> Optional[List[Dict[str, Any]]]:
    """Rows of ``benchmarks/huffman_bench.py``'s ``run()`` (decoded MB/s of coded groups on
    one core, FORMAT.md 9.3), or None if it is not there."""
    module = _bench_module("huffman_bench")
    if module is None:
        return None
    return list(module.run(workdir, size, repeats))


def transfer_rows(workdir: Path, size: int, repeats: int, sftp: bool) -> Optional[List[Dict[str, Any]]]:
    """Rows of ``benchmarks/transfer_bench.py``'s ``run()`` (``ams02 sync`` against ``cp``
    and the 36 Mb/s requirement, issue 8), or None if it is not there."""
    module = _bench_module("transfer_bench")
    if module is None:
        return None
    return list(module.run(workdir, size, repeats, sftp=sftp))


def monitor_rows(workdir: Path, size: int, repeats: int) -> Optional[List[Dict[str, Any]]]:
    """Rows of ``benchmarks/monitor_bench.py``'s ``run()`` (``ams02 monitor``: ingest rate,
    latency, memory; issue 15), or None if it is not there."""
    module = _bench_module("monitor_bench")
    if module is None:
        return None
    return list(module.run(workdir, size, repeats))


def markdown(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:,.3g}" if abs(v) < 10 else f"{v:,.0f}"
    return str(v)


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", default="1 GB", help='size of the simulated run (default "1 GB")')
    ap.add_argument("--repeats", type=int, default=5, help="timings per figure (median; default 5)")
    ap.add_argument("--workdir", default=str(HERE / "data"), help="where runs are cached")
    ap.add_argument("--seed", type=int, default=1, help="simulation seed (default 1)")
    ap.add_argument(
        "--layout",
        choices=("flight", "2007"),
        default="flight",
        help="layout of the simulated run (default flight, Huffman-coded groups)",
    )
    ap.add_argument("--quick", action="store_true", help="20 MB and 3 repeats (for CI)")
    ap.add_argument("--no-transfer", action="store_true", help="skip the ams02 sync rows (transfer_bench.py)")
    ap.add_argument(
        "--floors",
        action="store_true",
        help="only the honest floors of issue 17 (cold/warm, in fresh processes)",
    )
    ap.add_argument(
        "--no-monitor", action="store_true", help="skip the ams02 monitor rows (monitor_bench.py)"
    )
    ap.add_argument(
        "--gap",
        type=float,
        default=None,
        help="seconds of idle before each timed child (default: 3 where the VM's "
        "balloon reports free pages to the host, else 0; 0 with --quick)",
    )
    ap.add_argument("--child", nargs=2, metavar=("KIND", "PATH"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.child and args.child[0].startswith("floor="):
        prefetch = os.environ.get("AMS02_PREFETCH")
        if prefetch in ("0", "now"):
            import ams02._multi as multi

            if prefetch == "0":  # no read-ahead of the next file
                multi.READ_AHEAD_NEXT = 0
            else:  # the next file read ahead at once, not after the current file's end
                at_once = multi._read_ahead
                multi._read_ahead = lambda item, after=None: at_once(item)
        print(json.dumps(child_floor(args.child[0][len("floor=") :], args.child[1])))
        return 0
    if args.child:
        kind, path = args.child
        result = child_decode(path, None) if kind == "decode" else child_iterate(path, ITERATE_STEP, None)
        print(json.dumps(result))
        return 0

    from ams02._multi import parse_size

    global FLOOR_REPEATS, GAP
    # --quick (a smoke test) leaves the gap out unless asked.
    GAP = (0.0 if args.quick else default_gap()) if args.gap is None else max(0.0, args.gap)
    if args.quick:
        args.size, args.repeats = "20 MB", 3
        FLOOR_REPEATS = 1
    if args.repeats < 1:
        ap.error("--repeats must be at least 1")
    size = parse_size(args.size)
    workdir = Path(args.workdir)
    path, info = standard_run(workdir, size, args.seed, args.layout)

    m = machine()
    m["idle before each timed child"] = f"{GAP:g} s" + (
        " (free pages are reported to the host: see `default_gap`)" if free_page_reporting() else ""
    )
    t0 = time.perf_counter()
    rows = measure_floors(path, info, args.repeats) if args.floors else measure(path, info, args.repeats)
    status = 0
    try:
        extra = None if args.floors else ccsds_rows(workdir, size, args.repeats)
    except Exception:
        traceback.print_exc()
        print("benchmarks/ccsds_bench.py failed (above)", file=sys.stderr)
        extra, status = None, 2
    try:
        huffman = huffman_rows(workdir, size, args.repeats)
    except Exception:
        traceback.print_exc()
        print("benchmarks/huffman_bench.py failed (above)", file=sys.stderr)
        huffman, status = None, 2
    transfer = None
    if not args.no_transfer and not args.floors:
        try:
            transfer = transfer_rows(workdir, size, args.repeats, sftp=not args.quick)
        except Exception:
            traceback.print_exc()
            print("benchmarks/transfer_bench.py failed (above)", file=sys.stderr)
            status = 2
    monitor = None
    if not args.no_monitor:
        try:
            monitor = monitor_rows(workdir, size, args.repeats)
        except Exception:
            traceback.print_exc()
            print("benchmarks/monitor_bench.py failed (above)", file=sys.stderr)
            status = 2
    elapsed = time.perf_counter() - t0

    print(f"## ams02 benchmark, {m.pop('date')}\n")
    command = " ".join(["python benchmarks/run.py", *(argv if argv is not None else sys.argv[1:])])
    print(f"Command: `{command}`\n")
    for k, v in m.items():
        print(f"- {k}: {v}")
    print(
        f"- run: `{path.name}`, {path.stat().st_size / MB:,.1f} MB, {info['n_events']:,} events, "
        f"{info['n_blocks']:,} blocks, {info['n_trd_hits']:,} TRD hits, {info['n_trd_raw']:,} raw UDRs "
        f"({path.stat().st_size / info['n_events']:,.0f} B/event)"
    )
    end_load = ", ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    print(f"- load average at end: {end_load} (above 0 on an idle machine means other work shared the cores)")
    print(f"- median of {args.repeats} repeats; all figures from this invocation ({elapsed:,.0f} s)\n")
    print(markdown(("Measurement", "Result", "Target", "Met"), rows))
    if extra:
        keys: List[str] = []
        for r in extra:
            keys += [k for k in r if k not in keys]
        print("\n### CCSDS (benchmarks/ccsds_bench.py)\n")
        print(markdown(keys, [[fmt(r.get(k, "")) for k in keys] for r in extra]))
    if huffman:
        keys = list(huffman[0])
        print("\n### Huffman-coded groups (benchmarks/huffman_bench.py, one core)\n")
        print(markdown(keys, [[fmt(r.get(k, "")) for k in keys] for r in huffman]))
    if transfer:
        print(
            f"\n### ams02 sync (benchmarks/transfer_bench.py: {transfer[0]['files']} files, "
            f"{transfer[0]['bytes'] / MB:,.0f} MB)\n"
        )
        keys = ["name", "seconds", "MB/s", "Mb/s", "x 36 Mb/s", "x cp", "note"]
        print(
            markdown(
                keys,
                [
                    [
                        fmt(r[k]) if r["seconds"] == r["seconds"] or k in ("name", "note") else "-"
                        for k in keys
                    ]
                    for r in transfer
                ],
            )
        )
    if monitor:
        print("\n### ams02 monitor (benchmarks/monitor_bench.py)\n")
        keys = ["name", "result", "target", "met", "note"]
        print(markdown(keys, [[fmt(r[k]) for k in keys] for r in monitor]))
    return status


if __name__ == "__main__":
    sys.exit(main())
