"""A/B of the streaming pass against walking first, in fresh processes, cold and warm.

``python benchmarks/stream_ab.py PATH [REPEATS [READ_AHEAD]]`` (as root, for
``/proc/sys/vm/drop_caches``): for 1 and 2 threads, cold (page cache dropped) and warm,
alternately, ``open()`` + ``tables(["events", "trd_hits"])`` (the streaming pass) and the
same with ``n_events`` asked first (the file walked whole, then decoded). Prints the
median wall and CPU seconds of each and every wall time. ``READ_AHEAD`` sets
``AMS02_READ_AHEAD`` in the children.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Dict, List

CHILD = r"""
import json, resource, sys, time
import ams02
path, mode, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
r0 = resource.getrusage(resource.RUSAGE_SELF)
t0 = time.perf_counter()
f = ams02.open(path, threads=threads)
if mode == "walk-first":
    f.n_events
f.tables(["events", "trd_hits"])
f.close()
t1 = time.perf_counter()
r1 = resource.getrusage(resource.RUSAGE_SELF)
cpu = (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime)
print(json.dumps({"wall": t1 - t0, "cpu": cpu}))
"""


def drop_caches() -> None:
    """Writes dirty pages and drops the page cache (needs root)."""
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as fh:
        fh.write("3\n")


def main() -> None:
    path = sys.argv[1]
    repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    env = dict(os.environ)
    if len(sys.argv) > 3:
        env["AMS02_READ_AHEAD"] = sys.argv[3]
    size = os.path.getsize(path)
    for threads in (1, 2):
        for state in ("cold", "warm"):
            results: Dict[str, List[Dict[str, float]]] = {}
            for _ in range(repeats):
                for mode in ("walk-first", "stream"):
                    if state == "cold":
                        drop_caches()
                    else:
                        subprocess.run(["cat", path], stdout=subprocess.DEVNULL, check=True)
                    out = subprocess.run(
                        [sys.executable, "-c", CHILD, path, mode, str(threads)],
                        capture_output=True, text=True, env=env, check=True,
                    )
                    results.setdefault(mode, []).append(json.loads(out.stdout.strip().splitlines()[-1]))
            for mode, runs in results.items():
                walls = sorted(r["wall"] for r in runs)
                cpus = sorted(r["cpu"] for r in runs)
                wall, cpu = walls[len(walls) // 2], cpus[len(cpus) // 2]
                print(
                    f"threads={threads} {state:4} {mode:10} wall {wall:.2f} s ({size / 1e6 / wall:,.0f} MB/s)"
                    f" cpu {cpu:.2f} s  walls {['%.2f' % w for w in walls]}"
                )


if __name__ == "__main__":
    main()
