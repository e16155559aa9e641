"""The ``ams02`` command line: demo, info, validate, convert, ccsds info/simulate, simulate, sync,
monitor, replay."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from typing import Any, Dict, List, Optional, Sequence

import numpy as np


def _expand(args: Sequence[str]) -> List[str]:
    """Each argument is a file, a directory (its files) or a glob pattern."""
    from ._multi import resolve_paths

    out: List[str] = []
    for a in args:
        out.extend(resolve_paths(a))
    return out


def _expand_each(args: Sequence[str]) -> List[Any]:
    """Like :func:`_expand`, but a pattern or directory that gives nothing is an
    ``OSError`` in the list (reported where the file would be) instead of stopping."""
    from ._multi import resolve_paths

    out: List[Any] = []
    for a in args:
        try:
            out.extend(resolve_paths(a))
        except OSError as e:
            out.append(e)
    return out


def _problem(path: Any, e: BaseException) -> str:
    """One line for a file that could not be read: its name, then why."""
    text = str(e)
    if isinstance(path, str) and path not in text:
        text = f"{path}: {text}"
    return text


def _summary(path: str, mmap: bool = True) -> Dict[str, Any]:
    """:meth:`ams02.File.summary` of a file, under the keys ``ams02 info --json`` prints."""
    import ams02

    with ams02.open(path, mmap=mmap) as f:
        s = f.summary()
    return {
        "file": path,
        "bytes": s["bytes"],
        "byte_order": s["byte_order"],
        "blocks": s["blocks"],
        "events": s["events"],
        "runs": s["runs"],
        "first_time_unix": s["time_min"],
        "last_time_unix": s["time_max"],
        "trd_hits": s["trd_hits"],
        "bad_crc_events": s["bad_crc_events"],
        "errors": s["errors"],
        "error_kinds": s["error_kinds"],
    }


def _print_summary(s: Dict[str, Any], out: Any = sys.stdout) -> None:
    def when(t: Optional[float]) -> str:
        return "-" if t is None else time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(t))

    print(f"{s['file']}", file=out)
    print(f"  size        {s['bytes']:,} bytes, {s['byte_order']}-endian words", file=out)
    print(f"  blocks      {s['blocks']:,}", file=out)
    print(f"  events      {s['events']:,}  (runs {', '.join(map(str, s['runs'])) or '-'})", file=out)
    print(f"  time        {when(s['first_time_unix'])} .. {when(s['last_time_unix'])}", file=out)
    print(f"  TRD hits    {s['trd_hits']:,}", file=out)
    print(f"  bad CRC     {s['bad_crc_events']:,} events", file=out)
    kinds = ", ".join(f"{k}: {n}" for k, n in sorted(s["error_kinds"].items()))
    print(f"  errors      {s['errors']:,}" + (f"  ({kinds})" if kinds else ""), file=out)


def cmd_demo(args: argparse.Namespace) -> int:
    import ams02

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "demo-run.dat")
        t0 = time.perf_counter()
        info = ams02.simulate(path, args.events, seed=args.seed)
        t1 = time.perf_counter()
        with ams02.open(path) as f:
            ev = f.events()
            hits = f.trd_hits()
            t2 = time.perf_counter()
            mods = ams02.trd.modules()
            nested = f.blocks(nested=True, columns=["data_type", "depth"])
            top_offsets = f.blocks(columns=["offset"])["offset"]
        print(f"Simulated {info['n_events']:,} events ({info['bytes'] / 1e6:.1f} MB) in {t1 - t0:.2f} s; "
              f"decoded events and TRD hits in {t2 - t1:.3f} s.")
        _print_summary(_summary(path))
        if len(hits["amplitude"]):
            per_layer = np.bincount(hits["layer"], minlength=6)[1:]
            print("  TRD hits per module layer 1..5: " + ", ".join(f"{n:,}" for n in per_layer))
            top = np.bincount(hits["module"][hits["module"] >= 0], minlength=len(mods["label"]))
            k = int(np.argmax(top))
            print(f"  busiest module: {mods['label'][k]} ({top[k]:,} hits); "
                  f"mean amplitude {hits['amplitude'].mean() / 8:.1f} ADC counts")
        print(f"  GPS in {ev['gps'].mean() * 100:.0f} % of events; Level-3 in {ev['level3'].mean() * 100:.0f} %")
        # Blocks between events and envelopes (FORMAT.md 10), as the decoder lists them.
        dt, depth = nested["data_type"], nested["depth"]
        n_env, n_fine = int(np.sum(dt == 0x1F0380)), int(np.sum(dt == 0x1F0383))
        inside = int(np.sum(~np.isin(ev["offset"], top_offsets)))
        print(f"  envelopes   {n_env + n_fine:,} ({n_fine:,} fine-time) holding {int(np.sum(depth > 0)):,} blocks, "
              f"{inside:,} of them events")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    """Summarises each file; one that cannot be read (missing, a directory, not AMS data,
    changed while read) is reported on stderr and the others go on; exit status 2 if any
    could not be read."""
    import ams02

    summaries: List[Dict[str, Any]] = []
    failed = 0
    for p in _expand_each(args.files):
        try:
            if isinstance(p, BaseException):
                raise p
            s = _summary(p, mmap=not args.no_mmap)
        except (ams02.Ams02Error, OSError) as e:
            failed += 1
            print(f"ams02 info: error: {_problem(p, e)}", file=sys.stderr)
            if args.json:
                summaries.append({"file": getattr(e, "filename", None) or str(p), "error": str(e)})
            continue
        summaries.append(s)
        if not args.json:
            _print_summary(s)
    if args.json:
        print(json.dumps(summaries, indent=2))
    return 2 if failed else 0


def cmd_validate(args: argparse.Namespace) -> int:
    import ams02

    bad = 0
    report: List[Dict[str, Any]] = []
    for p in _expand_each(args.files):
        try:
            if isinstance(p, BaseException):
                raise p
            with ams02.open(p, mmap=not args.no_mmap) as f:
                e = f.errors()
                rows = [
                    {"offset": int(o), "event_index": int(i), "kind": str(k), "detail": str(d)}
                    for o, i, k, d in zip(e["offset"], e["event_index"], e["kind"], e["detail"])
                ]
        except (ams02.Ams02Error, OSError) as exc:
            # A file that cannot be read is invalid: reported, and the others go on.
            bad += 1
            name = getattr(exc, "filename", None) or str(p)
            kind = "file_changed" if getattr(exc, "kind", None) == "file_changed" else "file_error"
            report.append({"file": name, "error": str(exc),
                           "errors": [{"offset": 0, "event_index": -1, "kind": kind, "detail": str(exc)}]})
            if not args.json and not args.quiet:
                print(f"{name}: cannot be read: {_problem(p, exc)}")
            continue
        bad += bool(rows)
        report.append({"file": p, "errors": rows})
        if not args.json and not args.quiet:
            print(f"{p}: {'OK' if not rows else f'{len(rows)} problem(s)'}")
            for r in rows[: args.max]:
                print(f"  byte {r['offset']}: {r['kind']}: {r['detail']}")
            if len(rows) > args.max:
                print(f"  ... {len(rows) - args.max} more")
    if args.json:
        print(json.dumps(report, indent=2))
    return 1 if bad else 0


def cmd_convert(args: argparse.Namespace) -> int:
    import ams02

    tables = [t.strip() for t in args.tables.split(",") if t.strip()]
    out = ams02.to_parquet(
        _expand(args.files),
        args.output,
        tables=tables,
        step_size=int(args.step_size) if args.step_size.strip().isdigit() else args.step_size,
        progress=False if args.quiet else None,
        on_error="skip" if args.skip_bad else "raise",
        mmap=not args.no_mmap,
    )
    if not args.quiet:
        for name, path in out.items():
            print(f"{name}: {path}")
    return 0


def cmd_ccsds_info(args: argparse.Namespace) -> int:
    import ams02

    report: List[Dict[str, Any]] = []
    for path in _expand(args.files):
        with ams02.ccsds.open(path) as pf:
            a = pf.apids()
            e = pf.errors()
            kinds: Dict[str, int] = {}
            for k in e["kind"]:
                kinds[str(k)] = kinds.get(str(k), 0) + 1
            report.append({
                "file": path,
                "bytes": pf.size,
                "packets": pf.n_packets,
                "apids": [
                    {"apid": int(a["apid"][i]), "count": int(a["count"][i]),
                     "first_seq": int(a["first_seq"][i]), "last_seq": int(a["last_seq"][i]),
                     "missing": int(a["missing"][i]), "bytes": int(a["bytes"][i])}
                    for i in range(len(a["apid"]))
                ],
                "errors": int(len(e["kind"])),
                "error_kinds": kinds,
            })
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    for r in report:
        print(r["file"])
        print(f"  size        {r['bytes']:,} bytes, {r['packets']:,} packets")
        for x in r["apids"]:
            print(f"  APID {x['apid']:4d}   {x['count']:,} packets, seq {x['first_seq']}..{x['last_seq']}, "
                  f"{x['missing']:,} missing, {x['bytes']:,} bytes")
        listed = ", ".join(f"{k}: {n}" for k, n in sorted(r["error_kinds"].items()))
        print(f"  errors      {r['errors']:,}" + (f"  ({listed})" if listed else ""))
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    import ams02

    info = ams02.simulate(args.out, args.events, seed=args.seed, byte_order=args.byte_order)
    if not args.quiet:
        print(f"wrote {info['path']}: {info['n_events']:,} events, {info['bytes']:,} bytes")
    return 0


_NO_MMAP = ("read each file into memory instead of memory-mapping it (either way a file "
            "that shrinks or changes while read is reported as file_changed)")

#: The extra that brings each optional module (pip install 'ams02[<extra>]').
_EXTRA_OF = {
    "pyarrow": "arrow", "pandas": "pandas", "awkward": "awkward", "tqdm": "progress",
    "dask": "dask", "distributed": "dask", "dask_awkward": "dask", "fsspec": "transfer",
    "psycopg": "transfer", "paramiko": "transfer", "zlib_ng": "transfer",
}


def _missing_dependency(e: ImportError) -> str:
    """One line naming the module missing and the extra that installs it."""
    text = str(e)
    if "pip install" in text:
        return text
    name = (e.name or "").split(".")[0]
    extra = _EXTRA_OF.get(name)
    if extra is None:
        return text
    return f"{text}: pip install 'ams02[{extra}]'"


def _version() -> str:
    from . import _native

    return str(_native.__version__)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ams02",
        description="Decode AMS-02 raw data: blocks, events, TRD hits, CCSDS packets.",
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    d = sub.add_parser("demo", help="simulate a small run, decode it and print a summary")
    d.add_argument("--events", type=int, default=20000, help="events to simulate (default 20000)")
    d.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    d.set_defaults(func=cmd_demo)

    i = sub.add_parser("info", help="summarise block files: byte order, blocks, events, runs, time, TRD hits, errors")
    i.add_argument("files", nargs="+", metavar="FILE")
    i.add_argument("--json", action="store_true", help="print JSON")
    i.add_argument("--no-mmap", action="store_true", help=_NO_MMAP)
    i.set_defaults(func=cmd_info)

    v = sub.add_parser("validate", help="list every problem in block files; exit status 1 if any")
    v.add_argument("files", nargs="+", metavar="FILE")
    v.add_argument("--json", action="store_true", help="print JSON")
    v.add_argument("--max", type=int, default=20, help="problems to print per file (default 20)")
    v.add_argument("--quiet", "-q", action="store_true", help="print nothing; only the exit status")
    v.add_argument("--no-mmap", action="store_true", help=_NO_MMAP)
    v.set_defaults(func=cmd_validate)

    c = sub.add_parser("convert", help="decode block files into Parquet (one file per table)")
    c.add_argument("files", nargs="+", metavar="FILE", help="files, directories or glob patterns")
    c.add_argument("-o", "--output", required=True, metavar="DIR", help="output directory")
    c.add_argument("--tables", default="events,trd_hits",
                   help="comma-separated tables among events, trd_hits, trd_raw, fragments, blocks, errors "
                        "(default events,trd_hits)")
    c.add_argument("--step-size", default="100 MB", help="events decoded at a time: a number of events, or bytes with a unit (default '100 MB')")
    c.add_argument("--skip-bad", action="store_true", help="skip unreadable files (listed in errors) instead of stopping")
    c.add_argument("--quiet", "-q", action="store_true", help="no progress bar, no output")
    c.add_argument("--no-mmap", action="store_true", help=_NO_MMAP)
    c.set_defaults(func=cmd_convert)

    cc = sub.add_parser("ccsds", help="CCSDS packet files from the ISS interface")
    ccsub = cc.add_subparsers(dest="ccsds_command", metavar="COMMAND")
    ci = ccsub.add_parser("info", help="packets per APID, sequence gaps and errors of packet files")
    ci.add_argument("files", nargs="+", metavar="FILE")
    ci.add_argument("--json", action="store_true", help="print JSON")
    ci.set_defaults(func=cmd_ccsds_info)
    from .monitor.cli import add_ccsds_simulate_parser

    add_ccsds_simulate_parser(ccsub)
    def ccsds_help(_args: argparse.Namespace) -> int:
        cc.print_help()
        return 2

    cc.set_defaults(func=ccsds_help)

    s = sub.add_parser("simulate", help="write a synthetic run")
    s.add_argument("out", metavar="OUT")
    s.add_argument("--events", type=int, required=True, help="number of events")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--byte-order", choices=("little", "big"), default="little")
    s.add_argument("--quiet", "-q", action="store_true")
    s.set_defaults(func=cmd_simulate)

    from .transfer.cli import add_sync_parser

    add_sync_parser(sub)
    from .monitor.cli import add_parsers as add_monitor_parsers

    add_monitor_parsers(sub)
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Runs the command line; returns the exit status."""
    import ams02

    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args))
    except ImportError as e:  # a missing optional dependency: one line, never a traceback
        print(f"ams02 {args.command}: error: {_missing_dependency(e)}", file=sys.stderr)
        return 2
    except (ams02.Ams02Error, OSError, ValueError, KeyError) as e:
        print(f"ams02 {args.command}: error: {e}", file=sys.stderr)
        return 2
