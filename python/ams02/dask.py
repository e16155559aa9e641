"""Dask collections over many AMS block files (optional extra: ``pip install 'ams02[dask]'``).

Each partition is a range of consecutive events of one file, about ``step_size`` bytes of
event blocks, cut from the block index when the collection is built (the files are only
indexed, not decoded). Each partition is decoded by the Rust core on the worker that
computes it, so the same code runs on a laptop, a ``dask.distributed.LocalCluster`` or a
cluster::

    from dask.distributed import Client
    client = Client("tcp://scheduler:8786")           # or Client() for a local cluster
    ev = ams02.dask.events("/data/ams/2011/*.dat", columns=["run", "event", "unix_time"])
    rate = ev.groupby("run").size().compute()

The files must be readable at the same paths (or URLs) on every worker. ``event_index`` in
``trd_hits`` refers to rows of the concatenated ``events`` (as in
:func:`ams02.concatenate`), and both carry ``file_index``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from ._multi import (
    Paths,
    Selection,
    StepSize,
    _open,
    _window,
    cut_ranges,
    decode_range,
    parse_step,
    resolve_paths,
)
from ._selection import FilterName

__all__ = ["arrays", "events", "partitions", "trd_hits"]


def _require(module: str) -> Any:
    try:
        return __import__(module, fromlist=["_"])
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError(f"ams02.dask needs {module.split('.')[0]}: pip install 'ams02[dask]'") from e


@dataclass(frozen=True)
class Partition:
    """A range of events of one file: what one Dask partition decodes."""

    path: Any
    file_index: int
    entry_start: int
    entry_stop: int
    #: Rows of the concatenated events table before this partition's first event.
    event_base: int
    storage_options: Optional[Dict[str, Any]] = None
    #: Memory-map the file (else read it into memory): ``mmap=`` of the collection.
    mmap: bool = True
    #: The partition is its file's every event: the task decodes the whole file in one
    #: streaming pass (the file walked while it decodes) instead of walking it first.
    whole: bool = False


def partitions(
    paths: Paths,
    *,
    step_size: StepSize = "100 MB",
    entry_start: Optional[int] = None,
    entry_stop: Optional[int] = None,
    storage_options: Optional[Dict[str, Any]] = None,
    mmap: bool = True,
) -> List[Partition]:
    """Cuts files into event ranges of ``step_size`` events (an int) or about
    ``step_size`` bytes of event blocks (a string with a unit; at least one event each),
    within the events ``entry_start..entry_stop`` counted over all files (negative: from
    the end). A file without events gives no partition. The same cutting as
    :func:`ams02.iterate`."""
    step = parse_step(step_size)
    files = resolve_paths(paths, storage_options)
    counts, offsets = [], []
    for item in files:
        with _open(item, 1, False, storage_options, mmap) as f:
            offsets.append(f.raw.event_offsets())
            counts.append(f.n_events)
    g0, g1 = _window(entry_start, entry_stop, sum(counts))
    out: List[Partition] = []
    base = 0
    rows = 0
    for i, (item, n, off) in enumerate(zip(files, counts, offsets)):
        lo = min(max(g0 - base, 0), n)
        hi = n if g1 is None else min(max(g1 - base, 0), n)
        for a, b in cut_ranges(off, step, lo, hi):
            out.append(Partition(item, i, a, b, rows, storage_options, mmap, a == 0 and b == n))
            rows += b - a
        base += n
    return out


def _decode(part: Partition, table: str, sel: Optional[Selection], threads: int) -> Dict[str, np.ndarray]:
    """The engine's decoding of one partition, ``event_index`` re-based onto the
    concatenated events."""
    with _open(part.path, threads, False, part.storage_options, part.mmap) as f:
        stop = None if part.whole else part.entry_stop
        t = decode_range(f, part.file_index, part.entry_start, stop, [table])[table]
    if "event_index" in t:
        ei = t["event_index"]
        np.add(ei, part.event_base, out=ei, where=ei >= 0)
    if sel is not None:
        t = sel.apply(table, t)
    return t


def _frame(part: Partition, table: str, sel: Optional[Selection], threads: int) -> Any:
    # (Not named `columns`: dask.dataframe.from_map would pass its own projection there.)
    from ._convert import _pandas_nested

    pd = _require("pandas")
    t = _decode(part, table, sel, threads)
    # 2-D columns (gps_values, adc) as Arrow fixed-size lists, as in library="pd"
    data = {k: _pandas_nested(pd, v) if v.ndim > 1 else v for k, v in t.items()}
    return pd.DataFrame(data, copy=False)


def _meta(parts: List[Partition], table: str, sel: Optional[Selection]) -> Any:
    p = parts[0]
    empty = Partition(p.path, 0, 0, 0, 0, p.storage_options, p.mmap)
    return _frame(empty, table, sel, 1)


def _dataframe(
    table: str,
    paths: Paths,
    columns: Optional[Sequence[str]],
    step_size: StepSize,
    threads: int,
    filter_name: FilterName = None,
    cut: Optional[str] = None,
    entry_start: Optional[int] = None,
    entry_stop: Optional[int] = None,
    storage_options: Optional[Dict[str, Any]] = None,
    mmap: bool = True,
) -> Any:
    dd = _require("dask.dataframe")
    sel = Selection([table], None if columns is None else list(columns), filter_name, cut)
    sel.check(table)
    parts = partitions(
        paths, step_size=step_size, entry_start=entry_start, entry_stop=entry_stop,
        storage_options=storage_options, mmap=mmap,
    )
    if not parts:
        raise ValueError(f"no events in {paths!r}")
    meta = _meta(parts, table, sel)
    return dd.from_map(
        _frame,
        parts,
        args=(table, sel, threads),
        meta=meta,
        label=f"ams02-{table}",
        enforce_metadata=False,
    )


def events(
    paths: Paths,
    *,
    columns: Optional[Sequence[str]] = None,
    step_size: StepSize = "100 MB",
    threads: int = 1,
    filter_name: FilterName = None,
    cut: Optional[str] = None,
    entry_start: Optional[int] = None,
    entry_stop: Optional[int] = None,
    storage_options: Optional[Dict[str, Any]] = None,
    mmap: bool = True,
) -> Any:
    """A dask DataFrame of ``events()`` rows of every file, plus ``file_index``; one
    partition per event range of ``step_size`` events (an int) or about ``step_size``
    bytes (a string with a unit). ``columns``, ``filter_name``, ``cut``,
    ``entry_start``/``entry_stop`` and ``storage_options`` are as in
    :func:`ams02.concatenate`. ``threads`` is the Rust decoder's per partition (1: let
    Dask parallelise)."""
    return _dataframe(
        "events", paths, columns, step_size, threads, filter_name, cut, entry_start, entry_stop,
        storage_options, mmap,
    )


def trd_hits(
    paths: Paths,
    *,
    columns: Optional[Sequence[str]] = None,
    step_size: StepSize = "100 MB",
    threads: int = 1,
    filter_name: FilterName = None,
    cut: Optional[str] = None,
    entry_start: Optional[int] = None,
    entry_stop: Optional[int] = None,
    storage_options: Optional[Dict[str, Any]] = None,
    mmap: bool = True,
) -> Any:
    """A dask DataFrame of ``trd_hits()`` rows of every file, plus ``file_index``;
    ``event_index`` refers to rows of :func:`events` over the same files and entry range.
    Options as in :func:`events`."""
    return _dataframe(
        "trd_hits", paths, columns, step_size, threads, filter_name, cut, entry_start, entry_stop,
        storage_options, mmap,
    )


def _awkward(part: Partition, threads: int) -> Any:
    from ._file import nest_hits

    ak = _require("awkward")
    with _open(part.path, threads, False, part.storage_options, part.mmap) as f:
        t = f.raw.decode(["events", "trd_hits"], part.entry_start, part.entry_stop)
    ev = dict(t["events"])
    ev["file_index"] = np.full(len(ev["offset"]), part.file_index, dtype=np.uint32)
    return nest_hits(ak, ev, t["trd_hits"])


def arrays(
    paths: Paths,
    *,
    step_size: StepSize = "100 MB",
    threads: int = 1,
    entry_start: Optional[int] = None,
    entry_stop: Optional[int] = None,
    storage_options: Optional[Dict[str, Any]] = None,
    mmap: bool = True,
) -> Any:
    """A dask-awkward array of events with every ``events()`` field, ``file_index`` and a
    nested ``trd_hits`` list of records, one partition per event range."""
    dak = _require("dask_awkward")
    parts = partitions(
        paths, step_size=step_size, entry_start=entry_start, entry_stop=entry_stop,
        storage_options=storage_options, mmap=mmap,
    )
    if not parts:
        raise ValueError(f"no events in {paths!r}")
    p = parts[0]
    meta = _awkward(Partition(p.path, 0, 0, 0, 0, p.storage_options, p.mmap), 1)
    return dak.from_map(
        _Awkward(threads),
        parts,
        label="ams02-arrays",
        meta=dak.core.typetracer_array(meta) if hasattr(dak.core, "typetracer_array") else None,
        divisions=tuple([0] + list(np.cumsum([p.entry_stop - p.entry_start for p in parts]))),
    )


class _Awkward:
    """The picklable partition function of :func:`arrays`."""

    def __init__(self, threads: int) -> None:
        self.threads = threads

    def __call__(self, part: Partition) -> Any:
        return _awkward(part, self.threads)
