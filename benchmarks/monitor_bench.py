#!/usr/bin/env python3
"""Speed and memory of ``ams02 monitor`` (issue 15) against its targets.

    python benchmarks/monitor_bench.py                  # >= 1 GB replayed, 3 repeats
    python benchmarks/monitor_bench.py --size 2e8 --repeats 1     # a quick look

The monitor runs as ``ams02 monitor listen://127.0.0.1:P`` in a subprocess pinned to one
core (``sched_setaffinity``, ``RAYON_NUM_THREADS=1``); this process, pinned to the other
core, plays the page: it reads the push channel (``/api/events``, every 0.5 s, as the
browser does, parsing each state) while ``ams02.monitor.replay`` sends a simulated
downlink (``ams02.simulate_ccsds``: science, H&S every 16 packets, 0.1 % of the science
packets lost) over loopback as fast as the monitor takes it. Rows:

- **ingest rate**: bytes sent / the time from the first byte to the push that shows the
  last packet (so decode, state and the page's updates are all in it), in Mb/s, against
  10 x AMS-02's 10 Mb/s average downlink;
- **arrival-to-page latency**: one H&S packet with fresh CHD words is sent to an idle
  monitor; the time until a push carries them (median and worst of 20), against 1 s;
- **memory**: the monitor's peak RSS (VmHWM) after the first pass over the dump and
  after a replay of >= ``--size`` bytes (the dump sent again and again), against
  bounded (the second no more than 50 MB above the first).

Nothing fails on speed: the script prints what it measures. ``run(workdir, size_bytes,
repeats)`` returns the rows for ``benchmarks/run.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

HERE = Path(__file__).resolve().parent
TARGET_MBIT_S = 100.0
DUMP_BYTES = 256 * 10**6
BYTES_PER_EVENT = 2330


def make_dump(workdir: Path, size: int, seed: int = 1) -> Tuple[Path, Dict[str, Any]]:
    """A simulated downlink of about ``size`` bytes, written once under workdir."""
    import ams02

    path = Path(workdir) / f"monitor-dump-{size}-seed{seed}.ccsds"
    meta = path.with_suffix(".json")
    if path.exists() and meta.exists():
        return path, json.loads(meta.read_text())
    Path(workdir).mkdir(parents=True, exist_ok=True)
    info = ams02.simulate_ccsds(path, max(100, size // BYTES_PER_EVENT), seed=seed, drop_fraction=0.001,
                                chd="nominal", chd_excursion_every=500, runs=2, duration_s=size / 1.25e6)
    with ams02.ccsds.open(path) as pf:
        info["packets"] = pf.n_packets
    meta.write_text(json.dumps(info))
    return path, info


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Page(threading.Thread):
    """Reads the push channel like the page: every state, parsed."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.latest: Optional[Dict[str, Any]] = None
        self.updates = 0
        self.cond = threading.Condition()
        self.stop = False

    def run(self) -> None:
        with urllib.request.urlopen(self.url, timeout=60) as r:
            data: List[bytes] = []
            for line in r:
                if self.stop:
                    return
                if line.startswith(b"data: "):
                    data.append(line[6:])
                elif line == b"\n" and data:
                    s = json.loads(b"".join(data))
                    data = []
                    with self.cond:
                        self.latest = s
                        self.updates += 1
                        self.cond.notify_all()

    def wait_for(self, pred: Any, timeout: float) -> Optional[Dict[str, Any]]:
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                if self.latest is not None and pred(self.latest):
                    return self.latest
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.cond.wait(left)


def vm_hwm(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def start_monitor() -> Tuple[subprocess.Popen, int, int]:
    src, web = free_port(), free_port()
    env = dict(os.environ, RAYON_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    code = ("import os, sys; os.sched_setaffinity(0, {0}); from ams02.cli import main; "
            f"sys.exit(main(['monitor', 'listen://127.0.0.1:{src}', '--port', '{web}', '--quiet', '--stall', '60']))")
    p = subprocess.Popen([sys.executable, "-c", code], env=env)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{web}/api/health", timeout=2).read()
            return p, src, web
        except OSError:
            time.sleep(0.1)
    p.kill()
    raise RuntimeError("the monitor did not start")


def hs_packet(seq: int, chd: List[int]) -> bytes:
    """An H&S packet (APID 977, subset 308) written by hand from FORMAT.md 7."""
    words = [308, 0, 0, 0, seq & 0xFFFF, 0, *chd] + [0] * 40
    user = b"".join(w.to_bytes(2, "big") for w in words)
    total = 16 + len(user)
    hdr = ((1 << 12) | (1 << 11) | 977).to_bytes(2, "big") + ((3 << 14) | (seq & 0x3FFF)).to_bytes(2, "big")
    hdr += (total - 7).to_bytes(2, "big") + int(time.time()).to_bytes(4, "big") + bytes(6)
    return hdr + user


def measure(dump: Path, info: Dict[str, Any], size: int, repeats: int) -> List[Dict[str, Any]]:
    from ams02.monitor import replay

    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {1})
    dump_bytes = dump.stat().st_size
    n = info["packets"]
    rates: List[float] = []
    lat: List[float] = []
    hwm_first = hwm_all = 0
    total_sent = 0
    loops = max(1, -(-size // dump_bytes))
    for rep in range(repeats):
        p, src, web = start_monitor()
        try:
            page = Page(f"http://127.0.0.1:{web}/api/events")
            page.start()
            page.wait_for(lambda s: True, 10)
            if rep == 0:
                # latency on the idle monitor
                sock = socket.create_connection(("127.0.0.1", src))
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                for k in range(5 if size < 10**8 else 20):
                    chd = [(k * 10 + j) % 65536 for j in range(10)]
                    t0 = time.perf_counter()
                    sock.sendall(hs_packet(k, chd))
                    got = page.wait_for(lambda s, c=chd: (s["health"]["latest"] or {}).get("chd") == c, 10)
                    if got is not None:
                        lat.append(time.perf_counter() - t0)
                    time.sleep(0.05)
                sock.close()
                time.sleep(0.3)
            base = page.latest["link"]["packets"] if page.latest else 0
            t0 = time.perf_counter()
            sent = replay([str(dump)], f"tcp://127.0.0.1:{src}")
            done = page.wait_for(lambda s, base=base: s["link"]["packets"] >= base + n, 600)
            t1 = time.perf_counter()
            if done is None:
                raise RuntimeError("the page never showed every packet")
            rates.append(sent * 8 / (t1 - t0) / 1e6)
            if rep == 0:
                hwm_first = vm_hwm(p.pid)
                total_sent = sent
                if loops > 1:
                    total_sent += replay([str(dump)], f"tcp://127.0.0.1:{src}", loops=loops - 1)
                    page.wait_for(lambda s, base=base: s["link"]["packets"] >= base + n * loops, 1800)
                hwm_all = vm_hwm(p.pid)
            page.stop = True
        finally:
            p.terminate()
            p.wait(10)
    rate = statistics.median(rates)
    rows = [
        {"name": "ingest rate, one core, page updating (Mb/s)", "result": round(rate, 1),
         "target": f">= {TARGET_MBIT_S:.0f}", "met": "yes" if rate >= TARGET_MBIT_S else "no",
         "note": f"{dump_bytes / 1e6:,.0f} MB dump, {n:,} packets; median of {len(rates)}; "
                 f"{rate / 8:,.0f} MB/s"},
    ]
    if lat:
        med, worst = statistics.median(lat), max(lat)
        rows.append({"name": "arrival-to-page latency (s)", "result": f"{med:.3f} (worst {worst:.3f})",
                     "target": "< 1", "met": "yes" if worst < 1 else "no",
                     "note": f"{len(lat)} H&S packets, push interval 0.5 s"})
    grow = hwm_all - hwm_first
    rows.append({"name": "peak RSS after one pass / after the whole replay (MB)",
                 "result": f"{hwm_first / 1e6:,.0f} / {hwm_all / 1e6:,.0f}",
                 "target": "bounded (+< 50 MB)", "met": "yes" if grow < 50e6 else "no",
                 "note": f"{total_sent / 1e9:,.2f} GB replayed as fast as it goes ({loops} passes)"})
    return rows


def run(workdir: Path, size_bytes: int, repeats: int) -> List[Dict[str, Any]]:
    """Rows for benchmarks/run.py."""
    dump, info = make_dump(Path(workdir), min(DUMP_BYTES, max(20 * 10**6, size_bytes)))
    return measure(dump, info, size_bytes, 1 if size_bytes < 10**8 else max(1, min(repeats, 3)))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=float, default=1e9, help="bytes replayed for the memory row (default 1e9)")
    ap.add_argument("--dump", type=float, default=DUMP_BYTES, help="bytes of the simulated dump (default 256e6)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--workdir", default=str(HERE / "data"))
    args = ap.parse_args()
    dump, info = make_dump(Path(args.workdir), int(args.dump))
    rows = measure(dump, info, int(args.size), args.repeats)
    keys = ["name", "result", "target", "met", "note"]
    print("| " + " | ".join(keys) + " |")
    print("|" + "|".join("---" for _ in keys) + "|")
    for r in rows:
        print("| " + " | ".join(str(r[k]) for k in keys) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
