"""The alignment report (what SRC has that DST lacks) and catalog queries."""

from __future__ import annotations

import concurrent.futures as _cf
import os
import time
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from .._convert import check_library, convert_table
from ._catalog import DEFAULT_NAME, TABLES, Catalog, is_postgres, sqlite_path
from ._copy import _stat_equal, check_copy
from ._fs import TransferError
from ._sync import NOMINAL_MBIT_S, REQUIRED_MBIT_S, PathOrURL, default_catalog, default_workers, open_sites


def report(
    src: PathOrURL,
    dst: PathOrURL,
    *,
    catalog: Optional[str] = None,
    src_options: Optional[Mapping[str, Any]] = None,
    dst_options: Optional[Mapping[str, Any]] = None,
    check_destination: bool = False,
    follow_symlinks: bool = False,
    workers: Optional[int] = None,
) -> Dict[str, Any]:
    """Compares SRC with DST and the catalog, without copying or changing anything (the
    catalog is opened read-only: a read-only file or a SELECT-only role will do).

    Returns a dict: ``src``, ``dst``, ``catalog``, ``aligned`` (bool), ``src_files``,
    ``src_bytes``, ``done_files``, and lists of dicts ``missing`` (at SRC, not at DST),
    ``differing`` (at both, but not a verified copy of the current source: size differs,
    the source changed since it was copied, or no verified copy is recorded), ``failed``
    (the catalog's failed files with attempts and last error), ``extra`` (at DST only),
    ``flagged`` (copied, with error rows in their data); and the lag: ``lag_files``,
    ``lag_bytes``, ``lag_seconds`` (age of the oldest source file not yet aligned),
    ``lag_data_seconds`` (``lag_bytes`` at the nominal 12 Mb/s: how much data taking is
    behind) and ``catch_up_seconds`` (``lag_bytes`` at the required 36 Mb/s).

    Also ``unreadable`` (directories of the source that could not be listed, with the
    error), ``not_copied`` (source entries a sync does not copy: reserved names, symbolic
    links not followed unless ``follow_symlinks``, with the reason) and ``damaged``
    (with ``check_destination``: verified copies whose bytes at the destination no longer
    have the recorded size, adler32 and sha256, re-read on ``workers`` threads). Any of
    these makes the pair not aligned.
    """
    s, d = open_sites(src, dst, src_options, dst_options, create_dst=False)
    cat_url = catalog or default_catalog(d.url)
    rows: Dict[str, Dict[str, Any]] = {}
    if is_postgres(cat_url) or os.path.exists(sqlite_path(cat_url)):
        with Catalog.open(cat_url, readonly=True) as cat:
            rows = cat.files(s.url, d.url)
            cat_url = cat.url
    else:
        cat_url = sqlite_path(cat_url)
    src_list = s.listing(follow_symlinks)
    src_files = src_list.files
    dst_files = d.listing().files
    missing: List[Dict[str, Any]] = []
    differing: List[Dict[str, Any]] = []
    failed: List[Dict[str, Any]] = []
    flagged: List[Dict[str, Any]] = []
    aligned_rows: List[Tuple[Dict[str, Any], Dict[str, Any]]] = []
    done = 0
    lag_bytes = 0
    oldest: Optional[float] = None
    for rel in sorted(src_files):
        size, mtime = src_files[rel]
        row = rows.get(rel)
        state = row["state"] if row else "unknown"
        entry: Dict[str, Any] = {"relpath": rel, "size": size, "mtime": mtime, "state": state}
        at_dst = dst_files.get(rel)
        if row and row["state"] == "failed":
            entry.update(attempts=row["attempts"], error=row["last_error"])
            failed.append(entry)
        elif at_dst is None:
            entry["reason"] = "not at the destination"
            missing.append(entry)
        elif not row or row["state"] != "done":
            entry["reason"] = "no verified copy recorded" if not row else f"transfer {state}"
            differing.append(entry)
        elif not _stat_equal((size, mtime), (row["size"], row["src_mtime"])):
            entry["reason"] = "the source changed since it was copied"
            differing.append(entry)
        elif at_dst[0] != row["size"]:
            entry["reason"] = f"size at the destination {at_dst[0]} differs"
            differing.append(entry)
        else:
            done += 1
            aligned_rows.append((entry, row))
            continue
        lag_bytes += size
        oldest = mtime if oldest is None else min(oldest, mtime)
    damaged: List[Dict[str, Any]] = []
    if check_destination and aligned_rows:
        def check(item: Tuple[Dict[str, Any], Dict[str, Any]]) -> Optional[str]:
            row = item[1]
            return check_copy(d, row["relpath"], (int(row["size"]), str(row["adler32"]), str(row["sha256"])))

        with _cf.ThreadPoolExecutor(workers or default_workers(), thread_name_prefix="ams02-check") as ex:
            found = list(ex.map(check, aligned_rows))
        kept = []
        for (entry, row), why in zip(aligned_rows, found):
            if why is None:
                kept.append((entry, row))
                continue
            entry["reason"] = why
            damaged.append(entry)
            done -= 1
            lag_bytes += entry["size"]
            oldest = entry["mtime"] if oldest is None else min(oldest, entry["mtime"])
        aligned_rows = kept
    for entry, row in aligned_rows:
        if row.get("flagged"):
            flagged.append({"relpath": entry["relpath"], "n_errors": row["n_errors"], "validation": row["validation"]})
    hidden = tuple(src_list.unreadable)
    extra = [{"relpath": r, "size": st[0]} for r, st in sorted(dst_files.items())
             if r not in src_files and not r.startswith(hidden)]
    unreadable = [{"relpath": r, "error": e} for r, e in sorted(src_list.unreadable.items())]
    not_copied = [{"relpath": r, "reason": why} for r, why in sorted(src_list.not_copied.items())]
    lag_files = len(missing) + len(differing) + len(failed) + len(damaged)
    return {
        "src": s.url,
        "dst": d.url,
        "catalog": cat_url,
        "aligned": lag_files == 0 and not unreadable and not not_copied,
        "src_files": len(src_files),
        "src_bytes": int(sum(st[0] for st in src_files.values())),
        "done_files": done,
        "missing": missing,
        "differing": differing,
        "failed": failed,
        "extra": extra,
        "flagged": flagged,
        "damaged": damaged,
        "unreadable": unreadable,
        "not_copied": not_copied,
        "lag_files": lag_files,
        "lag_bytes": int(lag_bytes),
        "lag_seconds": max(0.0, time.time() - oldest) if oldest is not None else 0.0,
        "lag_data_seconds": lag_bytes * 8 / (NOMINAL_MBIT_S * 1e6),
        "catch_up_seconds": lag_bytes * 8 / (REQUIRED_MBIT_S * 1e6),
    }


def _column(values: Sequence[Any], kind: str) -> np.ndarray:
    if kind == "int":
        return np.array([-1 if v is None else int(v) for v in values], dtype=np.int64)
    if kind == "float":
        return np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)
    return np.array(["" if v is None else str(v) for v in values], dtype=str)


def _join(root: str, rel: str) -> str:
    return os.path.join(root, *rel.split("/")) if "://" not in root else root.rstrip("/") + "/" + rel


def catalog(
    url: Union[str, "os.PathLike[str]"],
    library: str = "np",
    *,
    table: str = "files",
    state: Optional[str] = None,
    run: Union[int, Tuple[int, int], None] = None,
    time_range: Optional[Tuple[float, float]] = None,
    dst: Optional[str] = None,
) -> Any:
    """The catalog as a table, to select files for an analysis.

    ``url`` is the catalog (a SQLite file, ``sqlite:///path``, a ``postgresql://`` URL) or
    a local destination directory (its ``.ams02-catalog.sqlite``). It is opened
    read-only: a file this process cannot write, or a SELECT-only role, will do. ``table`` is "files"
    (one row per file; with ``src_path`` and ``dst_path`` columns added), "problems" (the
    error rows found by validation), "attempts" (every attempt) or "syncs" (every pass).
    For files: ``state`` keeps one state (e.g. "done"); ``run`` keeps files holding that
    run (an int) or a run in ``(first, last)``; ``time_range=(t0, t1)`` (Unix seconds)
    keeps files whose events overlap it; ``dst`` keeps one destination root.

    Missing values are -1 (integers), NaN (floats) or "" (text). ``library`` is "np"
    (a dict of NumPy arrays), "pd", "pa" or "ak", as everywhere in ams02::

        files = ams02.transfer.catalog("/data/dst", state="done", run=(1300000000, 1300100000))
        for path in files["dst_path"]:
            with ams02.open(path) as f: ...
    """
    check_library(library)
    if table not in TABLES:
        raise ValueError(f"table must be one of {', '.join(TABLES)}, not {table!r}")
    u = os.fspath(url)
    if not is_postgres(u):
        path = sqlite_path(u)
        if os.path.isdir(path):
            path = os.path.join(path, DEFAULT_NAME)
        if not os.path.exists(path):
            raise TransferError(f"catalog {path}: no such file")
        u = path
    cols = TABLES[table]
    if table != "files" and any(x is not None for x in (state, run, time_range, dst)):
        raise ValueError("state, run, time_range and dst select rows of the files table only")
    span = None
    if run is not None:
        span = (run, run) if isinstance(run, (int, np.integer)) else run
    with Catalog.open(u, readonly=True) as cat:
        if cat.empty:
            raise TransferError(f"catalog {cat.url}: not an ams02 catalog (no tables)")
        rows = cat.select(table, state=state, dst=dst, run=span, time_range=time_range) if table == "files" \
            else cat.rows(table)
    if table == "files" and isinstance(run, (int, np.integer)):  # exact: the run is listed
        rows = [r for r in rows if str(int(run)) in (r["runs"] or "").split(",") or (r["runs"] or "").endswith("...")]
    out: Dict[str, np.ndarray] = {name: _column([r[name] for r in rows], kind) for name, kind in cols}
    if table == "files":
        out["src_path"] = _column([_join(r["src_root"], r["relpath"]) for r in rows], "text")
        out["dst_path"] = _column([_join(r["dst_root"], r["relpath"]) for r in rows], "text")
    return convert_table(out, library)
