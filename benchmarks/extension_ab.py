"""A/B of two builds of the compiled extension, in alternating fresh processes.

Each round swaps one build in for ``ams02/_native.abi3.so`` of the installed (editable)
package, starts a fresh Python that reads the file once (warm), then times
``ams02.open(path, threads=...)`` + ``File.tables(["events", "trd_hits"])``; the order of
the two builds alternates from round to round, so that the VM's slow and fast minutes
weigh on both alike. The build that was in place is put back at the end.

    cp python/ams02/_native.abi3.so /tmp/a.so      # build A, then rebuild for B
    python benchmarks/extension_ab.py RUN.dat /tmp/a.so /tmp/b.so --rounds 5 --threads all
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Callable, Dict, List, Tuple, TypeVar

T = TypeVar("T")

CHILD = r"""
import resource, sys, time
import ams02
path, threads = sys.argv[1], (None if sys.argv[2] == "all" else int(sys.argv[2]))
buf = bytearray(16 << 20)
with open(path, "rb", buffering=0) as fh:
    while fh.readinto(buf):
        pass
time.sleep(0.3)  # numpy's OpenBLAS threads spin a while after import
r0 = resource.getrusage(resource.RUSAGE_SELF)
t0 = time.perf_counter()
with ams02.open(path, threads=threads) as f:
    f.tables(["events", "trd_hits"])
t = time.perf_counter() - t0
r1 = resource.getrusage(resource.RUSAGE_SELF)
print(t, r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime)
"""


def alternate(a: str, b: str, rounds: int, run: Callable[[str], T]) -> Dict[str, List[T]]:
    """Swaps build ``a`` and build ``b`` in turn for the installed ``ams02._native`` and
    calls ``run("A")`` or ``run("B")`` with each in place, ``rounds`` times, in the order
    A B, B A, A B, ...; puts the build that was in place back at the end. Returns the
    results of each build's calls in order."""
    # Located without importing it (a process that maps the library must not see it
    # rewritten), and replaced by rename, never written in place.
    spec = importlib.util.find_spec("ams02")
    if spec is None or spec.origin is None:
        sys.exit("ams02 is not installed")
    found = sorted(Path(spec.origin).parent.glob("_native*.so"))
    if not found:
        sys.exit("no compiled ams02._native next to the package (build it first)")
    target = found[0]
    keep = Path(tempfile.mkdtemp()) / target.name
    shutil.copy2(target, keep)

    def put(src: str) -> None:
        tmp = target.with_suffix(".ab-tmp")
        shutil.copy2(src, tmp)
        os.replace(tmp, target)

    builds = {"A": a, "B": b}
    res: Dict[str, List[T]] = {"A": [], "B": []}
    try:
        for i in range(rounds):
            for k in ("A", "B") if i % 2 == 0 else ("B", "A"):
                put(builds[k])
                res[k].append(run(k))
    finally:
        put(str(keep))
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("path", help="the run to decode")
    ap.add_argument("a", help="build A (a copy of _native.abi3.so)")
    ap.add_argument("b", help="build B")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", default="all", help='"all" or a number')
    args = ap.parse_args()
    builds = {"A": args.a, "B": args.b}

    def run(_: str) -> Tuple[float, float]:
        out = subprocess.run([sys.executable, "-c", CHILD, args.path, args.threads],
                             capture_output=True, text=True, check=True).stdout.split()
        return float(out[0]), float(out[1])

    res = alternate(args.a, args.b, args.rounds, run)
    for k, v in res.items():
        wall = [w for w, _ in v]
        cpu = [c for _, c in v]
        print(f"{k} ({builds[k]}): median {statistics.median(wall):.3f} s, min {min(wall):.3f} s, "
              f"{statistics.median(cpu):.2f} CPU s; all: {' '.join(f'{w:.2f}' for w in wall)}")


if __name__ == "__main__":
    main()
