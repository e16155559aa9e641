"""Decoding throughput by layout (issue 13): the default simulated run (flight layout, every
group Huffman-coded), the same in the flight layout with plain groups, and a
``layout="2007"`` run, measured in one run of this script on files of about the same size.

Each row is ``File.tables(["events", "trd_hits"])`` (one pass) on a warm file: MB of file
per second of wall time, the median of ``repeats``, on one thread and on every core, plus
the event and hit counts (so that the rows are seen to decode the same kind of data).

    python benchmarks/layout_bench.py [--size 200e6] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List

MB = 1e6
#: (row name, simulate options)
LAYOUTS = [
    ("flight, Huffman-coded (default)", {}),
    ("flight, plain groups", {"compressed": 0.0}),
    ("2007 layout", {"layout": "2007"}),
]


def rows(workdir: Path, size: float, repeats: int) -> List[Dict[str, Any]]:
    """One row per layout and thread count."""
    import ams02

    out: List[Dict[str, Any]] = []
    n_events = max(1000, int(size / 2300))  # about 2.3 KB an event
    for name, opts in LAYOUTS:
        path = workdir / f"layout-{len(out)}.dat"
        ams02.simulate(path, n_events, seed=5, **opts)
        nbytes = path.stat().st_size
        for threads in (1, None):
            with ams02.open(path, threads=threads) as f:
                f.tables(["events", "trd_hits"])  # warm the page cache and the allocator
                times = []
                for _ in range(repeats):
                    t0 = time.perf_counter()
                    t = f.tables(["events", "trd_hits"])
                    times.append(time.perf_counter() - t0)
                n_hits = len(t["trd_hits"]["event_index"])
                n_ev = len(t["events"]["offset"])
            dt = statistics.median(times)
            out.append(
                {
                    "layout": name,
                    "threads": 1 if threads == 1 else os.cpu_count(),
                    "MB": round(nbytes / MB, 1),
                    "events": n_ev,
                    "trd_hits": n_hits,
                    "MB/s": round(nbytes / MB / dt, 1),
                }
            )
        path.unlink()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=float, default=200e6, help="bytes per simulated file")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="ams02-layout-") as d:
        table = rows(Path(d), args.size, args.repeats)
    print("| layout | threads | MB | events | TRD hits | MB/s |")
    print("|---|---|---|---|---|---|")
    for r in table:
        print(f"| {r['layout']} | {r['threads']} | {r['MB']} | {r['events']} | {r['trd_hits']} | {r['MB/s']} |")


if __name__ == "__main__":
    main()
