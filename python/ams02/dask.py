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

The files must be readable at the same paths on every worker. ``event_index`` in
``trd_hits`` refers to rows of the concatenated ``events`` (as in
:func:`ams02.concatenate`), and both carry ``file_index``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, List, Optional, Sequence, Union

import numpy as np

from ._convert import convert_table
from ._multi import Paths, parse_size, resolve_paths

__all__ = ["arrays", "events", "partitions", "trd_hits"]


def _require(module: str) -> Any:
    try:
        return __import__(module, fromlist=["_"])
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError(f"ams02.dask needs {module.split('.')[0]}: pip install 'ams02[dask]'") from e


@dataclass(frozen=True)
class Partition:
    """A range of events of one file: what one Dask partition decodes."""

    path: str
    file_index: int
    entry_start: int
    entry_stop: int
    #: Rows of the concatenated events table before this file's events.
    event_base: int


def partitions(
    paths: Paths, *, step_size: Union[int, str] = "100 MB", mmap: bool = True
) -> List[Partition]:
    """Cuts files into event ranges of about ``step_size`` bytes of event blocks (at least
    one event each; a file without events gives no partition). ``mmap``: as in
    :func:`ams02.open` (a file that changes while read raises FormatError, never crashes)."""
    import ams02

    step = parse_size(step_size)
    out: List[Partition] = []
    base = 0
    for i, path in enumerate(resolve_paths(paths)):
        with ams02.open(path, threads=1, mmap=mmap) as f:
            offsets = f.raw.event_offsets()
        n = len(offsets)
        start = 0
        while start < n:
            stop = int(np.searchsorted(offsets, offsets[start] + np.uint64(step), side="left"))
            stop = min(max(stop, start + 1), n)
            out.append(Partition(path, i, start, stop, base))
            start = stop
        base += n
    return out


def _decode(
    part: Partition, table: str, columns: Optional[Sequence[str]], threads: int, mmap: bool = True
) -> dict:
    import ams02
    from ._convert import select

    with ams02.open(part.path, threads=threads, mmap=mmap) as f:
        t = dict(f.raw.decode([table], part.entry_start, part.entry_stop)[table])
    if "event_index" in t:
        t["event_index"] = t["event_index"] + part.event_base
    t["file_index"] = np.full(len(next(iter(t.values()))), part.file_index, dtype=np.uint32)
    if columns is not None:
        t = select(table, t, list(columns) + ["file_index"])
    return t


def _frame(
    part: Partition, table: str, selected: Optional[Sequence[str]], threads: int, mmap: bool = True
) -> Any:
    # (Not named `columns`: dask.dataframe.from_map would pass its own projection there.)
    _require("pandas")
    # convert_table turns 2-D columns (events' gps_values, trd_raw's adc) into list columns
    return convert_table(_decode(part, table, selected, threads, mmap), "pd")


def _meta(parts: List[Partition], table: str, columns: Optional[Sequence[str]]) -> Any:
    empty = Partition(parts[0].path, 0, 0, 0, 0)
    return _frame(empty, table, columns, 1)


def _dataframe(
    table: str,
    paths: Paths,
    columns: Optional[Sequence[str]],
    step_size: Union[int, str],
    threads: int,
    mmap: bool = True,
) -> Any:
    dd = _require("dask.dataframe")
    parts = partitions(paths, step_size=step_size, mmap=mmap)
    if not parts:
        raise ValueError(f"no events in {paths!r}")
    meta = _meta(parts, table, columns)
    return dd.from_map(
        _frame,
        parts,
        args=(table, None if columns is None else list(columns), threads, mmap),
        meta=meta,
        label=f"ams02-{table}",
        enforce_metadata=False,
    )


def events(
    paths: Paths,
    *,
    columns: Optional[Sequence[str]] = None,
    step_size: Union[int, str] = "100 MB",
    threads: int = 1,
    mmap: bool = True,
) -> Any:
    """A dask DataFrame of ``events()`` rows of every file, plus ``file_index``; one
    partition per event range of about ``step_size`` bytes. ``threads`` is the Rust
    decoder's per partition (1: let Dask parallelise); ``mmap`` as in :func:`ams02.open`."""
    return _dataframe("events", paths, columns, step_size, threads, mmap)


def trd_hits(
    paths: Paths,
    *,
    columns: Optional[Sequence[str]] = None,
    step_size: Union[int, str] = "100 MB",
    threads: int = 1,
    mmap: bool = True,
) -> Any:
    """A dask DataFrame of ``trd_hits()`` rows of every file, plus ``file_index``;
    ``event_index`` refers to rows of :func:`events` over the same files."""
    return _dataframe("trd_hits", paths, columns, step_size, threads, mmap)


def _awkward(part: Partition, threads: int, mmap: bool = True) -> Any:
    import ams02
    from ._file import nest_hits

    ak = _require("awkward")
    with ams02.open(part.path, threads=threads, mmap=mmap) as f:
        t = f.raw.decode(["events", "trd_hits"], part.entry_start, part.entry_stop)
    ev = dict(t["events"])
    ev["file_index"] = np.full(len(ev["offset"]), part.file_index, dtype=np.uint32)
    return nest_hits(ak, ev, t["trd_hits"])


def arrays(
    paths: Paths, *, step_size: Union[int, str] = "100 MB", threads: int = 1, mmap: bool = True
) -> Any:
    """A dask-awkward array of events with every ``events()`` field, ``file_index`` and a
    nested ``trd_hits`` list of records, one partition per event range."""
    dak = _require("dask_awkward")
    parts = partitions(paths, step_size=step_size, mmap=mmap)
    if not parts:
        raise ValueError(f"no events in {paths!r}")
    meta = _awkward(Partition(parts[0].path, 0, 0, 0, 0), 1, mmap)
    return dak.from_map(
        _Awkward(threads, mmap),
        parts,
        label="ams02-arrays",
        meta=dak.core.typetracer_array(meta) if hasattr(dak.core, "typetracer_array") else None,
        divisions=tuple([0] + list(np.cumsum([p.entry_stop - p.entry_start for p in parts]))),
    )


class _Awkward:
    """The picklable partition function of :func:`arrays`."""

    def __init__(self, threads: int, mmap: bool = True) -> None:
        self.threads = threads
        self.mmap = mmap

    def __call__(self, part: Partition) -> Any:
        return _awkward(part, self.threads, self.mmap)
