"""A/B of two builds of the compiled extension on the CCSDS packet walk, in alternating
fresh processes (as ``benchmarks/extension_ab.py``, for ``ams02.ccsds``).

The two clean packet files of ``benchmarks/ccsds_bench.py`` (*variable*: 100..4096-byte
HRDL packets, APIDs 976 and 977; *fixed*: 1024-byte packets) are written once. Each round
swaps one build in for ``ams02/_native.abi3.so`` of the installed (editable) package and
starts a fresh Python that reads the file once (warm), then times, best of 5 (CPU
seconds of the process, one thread: ``RAYON_NUM_THREADS=1``),
``ams02.ccsds.open(path, health_apid=None).n_packets`` (the walk alone) and ``.packets()``
(the walk and all columns). The order of the builds alternates from round to round; the
build that was in place is put back at the end.

    cp python/ams02/_native.abi3.so /tmp/new.so      # then build the other one
    python benchmarks/ccsds_scan_ab.py /tmp/old.so /tmp/new.so --size 4e8 --rounds 6
"""

from __future__ import annotations

import argparse
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
from typing import Dict, List

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from ccsds_bench import write_fixed, write_variable  # noqa: E402
from extension_ab import alternate  # noqa: E402

CHILD = r"""
import resource, sys, time
import ams02.ccsds
path = sys.argv[1]
with open(path, "rb", buffering=0) as fh:
    buf = bytearray(16 << 20)
    while fh.readinto(buf):
        pass
time.sleep(0.3)
def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime
out = []
for what in ("n_packets", "packets"):
    best = float("inf")
    for _ in range(5):
        c0 = cpu()
        with ams02.ccsds.open(path, health_apid=None) as pf:
            pf.n_packets if what == "n_packets" else pf.packets()
        best = min(best, cpu() - c0)
    out.append(best)
print(*out)
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("a", help="build A (a copy of _native.abi3.so)")
    ap.add_argument("b", help="build B")
    ap.add_argument("--size", type=float, default=4e8, help="bytes per file")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--workdir", default=None)
    args = ap.parse_args()
    work = pathlib.Path(args.workdir or tempfile.mkdtemp())
    files = {"variable": work / "variable.ccsds", "fixed": work / "fixed.ccsds"}
    if not files["variable"].exists():
        write_variable(files["variable"], int(args.size))
    if not files["fixed"].exists():
        write_fixed(files["fixed"], int(args.size))
    builds = {"A": args.a, "B": args.b}
    env = dict(os.environ, RAYON_NUM_THREADS="1")

    def run(_: str) -> Dict[str, List[float]]:
        """Both timings of both files with the build in place."""
        out = {}
        for f, path in files.items():
            got = subprocess.run(
                [sys.executable, "-c", CHILD, str(path)],
                capture_output=True,
                text=True,
                check=True,
                env=env,
            ).stdout.split()
            out[f] = [float(x) for x in got]
        return out

    rounds = alternate(args.a, args.b, args.rounds, run)
    res = {k: {f: [r[f] for r in rounds[k]] for f in files} for k in builds}
    for f, path in files.items():
        mb = path.stat().st_size / 1e6
        for j, what in enumerate(("walk (n_packets)", "walk + columns (packets())")):
            med = {k: statistics.median(r[j] for r in res[k][f]) for k in builds}
            print(
                f"{f}, {what}: A {mb / med['A']:,.0f} MB/s, B {mb / med['B']:,.0f} MB/s, "
                f"B/A time {med['B'] / med['A']:.3f} (medians of {args.rounds} rounds, best of 5 each)"
            )


if __name__ == "__main__":
    main()
