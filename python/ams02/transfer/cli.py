"""``ams02 sync``: the command line of the data transfer system.

Registered in the main parser by ``add_sync_parser(sub)`` (python/ams02/cli.py), and
runnable on its own as ``python -m ams02.transfer sync SRC DST ...``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any, Dict, Optional, Sequence

from ._fs import display
from ._sync import NOMINAL_MBIT_S, REQUIRED_MBIT_S


def _size(n: float) -> str:
    for unit in ("bytes", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:,.0f} {unit}" if unit == "bytes" else f"{n:,.1f} {unit}"
        n /= 1000
    return f"{n}"  # pragma: no cover


def _duration(s: float) -> str:
    if s < 120:
        return f"{s:.1f} s"
    if s < 7200:
        return f"{s / 60:.1f} min"
    if s < 172800:
        return f"{s / 3600:.1f} h"
    return f"{s / 86400:.1f} days"


def print_report(r: Dict[str, Any], out: Any = None, max_list: int = 20) -> None:
    """Prints an alignment report (from :func:`ams02.transfer.report`) for people (on
    ``out``, default stdout)."""
    out = sys.stdout if out is None else out
    print(f"{r['src']} -> {r['dst']}", file=out)
    print(f"  catalog     {r['catalog']}", file=out)
    print(f"  source      {r['src_files']:,} files, {_size(r['src_bytes'])}", file=out)
    print(f"  aligned     {r['done_files']:,} files (verified copies of the current source)", file=out)
    sections = [("missing", "missing"), ("differing", "differing"), ("failed", "failed"), ("extra", "extra")]
    sections += [(k, k.replace("_", " ")) for k in ("damaged", "unreadable", "not_copied") if r.get(k)]
    for key, label in sections:
        items = r[key]
        print(f"  {label:<11} {len(items):,}" + (" (at the destination only)" if key == "extra" and items else ""), file=out)
        for e in items[:max_list]:
            why = display(str(e.get("error") or e.get("reason") or ""))
            att = f", {e['attempts']} attempts" if "attempts" in e else ""
            size = f"  ({_size(e['size'])}{att})" if "size" in e else ""
            print(f"    {display(e['relpath'])}{size}{': ' + why if why else ''}", file=out)
        if len(items) > max_list:
            print(f"    ... {len(items) - max_list} more", file=out)
    if r["flagged"]:
        print(f"  flagged     {len(r['flagged']):,} copied files have errors in their data", file=out)
    print(
        f"  lag         {r['lag_files']:,} files, {_size(r['lag_bytes'])}"
        + (
            f"; oldest pending file {_duration(r['lag_seconds'])} old; "
            f"{_duration(r['lag_data_seconds'])} of data at the nominal {NOMINAL_MBIT_S:g} Mb/s, "
            f"{_duration(r['catch_up_seconds'])} to catch up at {REQUIRED_MBIT_S:g} Mb/s"
            if r["lag_files"]
            else ""
        ),
        file=out,
    )
    print("  status      " + ("ALIGNED" if r["aligned"] else "NOT ALIGNED"), file=out)


def cmd_sync(args: argparse.Namespace) -> int:
    """Runs ``ams02 sync`` (or ``--report``); returns the exit status: 0 done (aligned),
    1 files failed (not aligned), 2 the transfer could not run (one message on stderr)."""
    from . import TransferError, report, sync

    try:
        if args.report:
            r = report(args.src, args.dst, catalog=args.catalog, check_destination=args.check_destination,
                       follow_symlinks=args.follow_symlinks)
            if args.json:
                print(json.dumps(r, indent=2))
            else:
                print_report(r)
            return 0 if r["aligned"] else 1

        def progress(outcome: str, info: Dict[str, Any]) -> None:
            rel = display(info["relpath"])
            if outcome == "failed":
                print(f"FAILED  {rel}: {display(info['error'])}", file=sys.stderr, flush=True)
            elif outcome == "damaged":
                print(f"DAMAGED {rel}: {display(info['error'])}; copying it again", file=sys.stderr, flush=True)
            elif outcome == "not_copied":
                print(f"NOT COPIED  {rel}: {display(info['reason'])}", file=sys.stderr, flush=True)
            elif args.verbose:
                flag = "  (flagged: errors in the data)" if info.get("flagged") else ""
                print(f"{outcome:<9} {rel}{flag}", flush=True)

        t0 = time.perf_counter()
        res = sync(
            args.src, args.dst, catalog=args.catalog, workers=args.workers, max_rate=args.max_rate,
            watch=args.watch, cycles=args.cycles, retries=args.retries, validate=not args.no_validate,
            verify=args.verify, check_destination=args.check_destination, follow_symlinks=args.follow_symlinks,
            progress=progress,
        )
        if args.json:
            print(json.dumps(res.as_dict(), indent=2))
        elif not args.quiet:
            wall = time.perf_counter() - t0
            moved = res.files_copied + res.files_recovered
            passes = f"; {res.passes} passes" if res.passes > 1 else ""
            if args.check_destination:
                passes += f"; destination checked: {res.files_damaged:,} damaged, copied again"
            if res.not_copied:
                passes += f"; {len(res.not_copied):,} not copied (listed above)"
            if not moved and not res.files_failed:
                print(f"nothing to copy: {res.files_skipped:,} files already copied and unchanged "
                      f"({wall:.1f} s){passes}")
            else:
                print(
                    f"synced {moved:,} files ({_size(res.bytes_copied)}) in {wall:.1f} s: "
                    f"{res.mbyte_s:,.1f} MB/s = {res.mbit_s:,.0f} Mb/s "
                    f"({res.mbit_s / REQUIRED_MBIT_S:,.1f} x the {REQUIRED_MBIT_S:g} Mb/s requirement); "
                    f"{res.files_skipped:,} already there; {res.files_recovered:,} recovered from an "
                    f"interrupted run; {res.files_flagged:,} flagged; {res.files_failed:,} failed{passes}"
                )
            print(f"catalog: {display(res.catalog)}")
        return 0 if res.ok else 1
    except (TransferError, OSError, ValueError) as e:
        print("ams02 sync: error: " + display(" ".join(str(e).split())), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ams02 sync: interrupted; a rerun picks up where this one stopped", file=sys.stderr)
        return 130


def add_sync_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Registers the ``sync`` subcommand (and its handler, as ``func``) on the
    ``add_subparsers()`` object of the ``ams02`` parser; returns its parser."""
    s: argparse.ArgumentParser = subparsers.add_parser(
        "sync",
        help="copy raw data files from SRC to DST, verified, with a catalog of what moved",
        description=(
            "Copy every file of SRC that DST lacks (or whose source changed): to a temporary "
            "name, fsynced, checksummed on both sides (adler32 and sha256 of the bytes read "
            "at the source; adler32, or with --verify sha256 both, read back at the "
            "destination), decoded "
            "(files with errors are moved and flagged), then renamed into place; failures "
            "are retried with backoff. The catalog records every file's state; a rerun "
            "after any interruption picks up where it stopped. Exit status: 0 done, 1 "
            "files failed (or, with --report, not aligned), 2 the transfer could not run "
            "(a site or the catalog unreachable or failing, another sync writing into DST)."
        ),
    )
    s.add_argument("src", metavar="SRC", help="source directory or URL (sftp://, s3://, root://: needs fsspec)")
    s.add_argument("dst", metavar="DST", help="destination directory or URL (created if missing)")
    s.add_argument("--catalog", metavar="URL", default=None,
                   help="SQLite file or postgresql:// URL (default: DST/.ams02-catalog.sqlite; "
                        "for a remote DST, ~/.local/state/ams02/catalog-*.sqlite)")
    s.add_argument("--workers", type=int, default=None, metavar="N",
                   help="files copied in parallel (default: the number of cores)")
    s.add_argument("--max-rate", default=None, metavar="R",
                   help="cap on the total bandwidth read from SRC: 36Mb/s, 100MB/s, or bytes/s")
    s.add_argument("--watch", type=float, default=None, metavar="SECONDS",
                   help="keep syncing, a pass every SECONDS, until interrupted")
    s.add_argument("--cycles", type=int, default=None, metavar="N", help="with --watch, stop after N passes")
    s.add_argument("--retries", type=int, default=3, metavar="N", help="attempts per file per pass (default 3)")
    s.add_argument("--verify", choices=("adler32", "sha256"), default="adler32",
                   help="compared after reading the copy back: size and adler32 (default), or "
                        "sha256 too, recomputed at the destination")
    s.add_argument("--no-validate", action="store_true", help="do not decode the copies")
    s.add_argument("--check-destination", action="store_true",
                   help="re-read every copy at DST and compare size, adler32 and sha256 with the "
                        "catalog; recopy (or, with --report, list) the damaged ones")
    s.add_argument("--follow-symlinks", action="store_true",
                   help="follow symbolic links of SRC that lead out of it or to directories "
                        "(default: not copied, listed)")
    s.add_argument("--report", action="store_true",
                   help="copy nothing: list files missing, differing or failed, and the lag")
    s.add_argument("--json", action="store_true", help="print JSON")
    s.add_argument("--verbose", "-v", action="store_true", help="print one line per file")
    s.add_argument("--quiet", "-q", action="store_true", help="print only failures")
    s.set_defaults(func=cmd_sync)
    return s


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m ams02.transfer sync SRC DST ...``: the sync command on its own."""
    p = argparse.ArgumentParser(prog="ams02")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    add_sync_parser(sub)
    args = p.parse_args(argv)
    if not getattr(args, "func", None):
        p.print_help()
        return 2
    return int(args.func(args))
