"""Many files at once: :func:`concatenate` into one table, or :func:`iterate` in batches.

Both take a list of inputs (paths, fsspec URLs, bytes-like objects, binary file objects),
a glob pattern (local or a URL) or a directory (dot-files left out), open one file at a
time, and add a ``file_index`` column (the position of the file in the resolved list).
One engine (:func:`batches`, cutting each file into event ranges with :func:`cut_ranges`)
runs under :func:`concatenate`, :func:`iterate`, :func:`ams02.to_parquet` and
:mod:`ams02.dask`. Cross-references
are kept valid: ``event_index`` refers to rows of the ``events`` table of the same result
(the concatenation, or the batch), and ``fragments.parent`` to rows of the same
``fragments`` table.
"""

from __future__ import annotations

import errno
import glob as _glob
import importlib
import os
import re
import sys
import threading
import warnings
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import _selection
from ._convert import Table, check_library, convert_table
from ._file import File
from ._native import Ams02Error
from ._selection import FilterName
from ._source import describe, expand_url, is_url

PathLike = Union[str, "os.PathLike[str]"]
Paths = Union[PathLike, Sequence[Any], Any]
#: ``step_size``: an int counts events, a string with a unit counts bytes.
StepSize = Union[int, str]
#: Per-table options: one value for every table, or a dict from table name to value.
PerTable = Union[None, Any, Dict[str, Any]]

#: The tables :func:`concatenate` and :func:`iterate` can return.
TABLES: Tuple[str, ...] = ("events", "trd_hits", "trd_raw", "fragments", "blocks", "errors")

# Tables decoded per event range by the Rust core.
_DECODED = ("events", "fragments", "trd_hits", "trd_raw")
# Tables whose ``event_index`` column refers to events rows.
_EVENT_LINKED = ("trd_hits", "trd_raw", "fragments", "errors")

_ON_ERROR = ("raise", "skip")

_UNITS = {
    "": 1,
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}
_SIZE_RE = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([A-Za-z]*)\s*$")


# -- arguments --------------------------------------------------------------------------
def parse_size(size: Union[int, str]) -> int:
    """Parses a byte count: an int, or a string such as ``"100 MB"``, ``"1.5 GB"``,
    ``"512 kB"``, ``"64 MiB"`` (kB/MB/GB/TB are powers of 1000, KiB/MiB/GiB/TiB powers of
    1024; units are case-insensitive and always mean bytes). The result is positive.

    >>> parse_size("1.5 GB"), parse_size("64 MiB"), parse_size(4096)
    (1500000000, 67108864, 4096)
    """
    if isinstance(size, bool) or not isinstance(size, (int, np.integer, str)):
        raise TypeError(f"step_size must be an int (bytes) or a str like '100 MB', not {size!r}")
    if isinstance(size, str):
        m = _SIZE_RE.match(size)
        unit = m.group(2).lower() if m else None
        if m is None or unit not in _UNITS:
            raise ValueError(
                f"cannot read {size!r} as a size: write a number and a unit among "
                "B, kB, MB, GB, TB, KiB, MiB, GiB, TiB (e.g. '100 MB')"
            )
        value = int(float(m.group(1)) * _UNITS[unit])
    else:
        value = int(size)
    if value <= 0:
        raise ValueError(f"step_size must be positive, not {size!r}")
    return value


def parse_step(step_size: StepSize) -> Tuple[str, int]:
    """``("events", n)`` for an int (as in uproot), ``("bytes", n)`` for a string with a
    unit (``"100 MB"``, see :func:`parse_size`). A string without a unit is an error: it
    could mean either."""
    if isinstance(step_size, bool) or not isinstance(step_size, (int, np.integer, str)):
        raise TypeError(
            f"step_size must be an int (events) or a str with a unit like '100 MB' (bytes), not {step_size!r}"
        )
    if isinstance(step_size, str):
        m = _SIZE_RE.match(step_size)
        if m is not None and not m.group(2):
            raise ValueError(
                f"step_size {step_size!r} has no unit: give an int to count events or a "
                "string with a unit ('100 MB', '64 MiB', '4096 B') to count bytes"
            )
        return "bytes", parse_size(step_size)
    if step_size <= 0:
        raise ValueError(f"step_size must be positive, not {step_size!r}")
    return "events", int(step_size)


def _visible(name: str) -> bool:
    return not os.path.basename(name.rstrip("/\\")).startswith(".")


def resolve_paths(paths: Paths, storage_options: Optional[Dict[str, Any]] = None) -> List[Any]:
    """The files to read: a list of inputs as given (paths, URLs, bytes-like objects,
    binary file objects), a directory's regular files (sorted by name, not recursive,
    dot-files such as the catalog ``ams02 sync`` leaves left out), a glob pattern's
    matches (sorted; directories and dot-files left out), an fsspec URL (a file, a
    directory or a glob pattern, expanded the same way), or one file. A pattern that
    matches nothing or an empty directory raises FileNotFoundError."""
    if isinstance(paths, str) and is_url(paths):
        return list(expand_url(paths, storage_options))
    if isinstance(paths, (str, os.PathLike)):
        p = os.fspath(paths)
        if isinstance(p, bytes):
            p = os.fsdecode(p)
        if os.path.isdir(p):
            files = sorted(e.path for e in os.scandir(p) if e.is_file() and _visible(e.name))
            if not files:
                raise FileNotFoundError(f"no files in directory {p!r}")
            return files
        if _glob.has_magic(p) and not os.path.exists(p):
            files = sorted(
                m for m in _glob.glob(p, recursive=True) if not os.path.isdir(m) and _visible(m)
            )
            if not files:
                raise FileNotFoundError(f"no files match {p!r}")
            return files
        return [p]
    if isinstance(paths, (bytes, bytearray, memoryview)) or hasattr(paths, "read"):
        return [paths]
    try:
        items = list(paths)
    except TypeError:
        raise TypeError(
            "paths must be a path, a URL, a glob pattern, a directory, a bytes-like or file "
            f"object, or a list of those, not {paths!r}"
        ) from None
    out: List[Any] = []
    for item in items:
        if isinstance(item, str):
            out.append(item)
        elif isinstance(item, os.PathLike):
            out.append(os.fsdecode(os.fspath(item)))
        elif isinstance(item, (bytes, bytearray, memoryview)) or hasattr(item, "read"):
            out.append(item)
        else:
            raise TypeError(
                f"paths must hold paths, URLs, bytes-like or binary file objects, not {item!r}"
            )
    return out


def _check_table(table: str) -> str:
    if table not in TABLES:
        raise ValueError(f"table must be one of {', '.join(map(repr, TABLES))}, not {table!r}")
    return table


def check_mmap(mmap: Any) -> bool:
    """``mmap`` if it is a bool (``mmap=`` of every multi-file API)."""
    if not isinstance(mmap, bool):
        raise TypeError(f"mmap must be True or False, not {mmap!r}")
    return mmap


def _check_on_error(on_error: str) -> str:
    if on_error not in _ON_ERROR:
        raise ValueError(f"on_error must be 'raise' or 'skip', not {on_error!r}")
    return on_error


# -- progress ---------------------------------------------------------------------------
def _interactive() -> bool:
    """Whether stderr is a terminal or we run inside a Jupyter kernel."""
    try:
        if sys.stderr is not None and sys.stderr.isatty():
            return True
    except (AttributeError, ValueError):
        pass
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    try:
        shell = ipython.get_ipython()
    except Exception:  # pragma: no cover - odd IPython states
        return False
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress_bar(progress: Optional[bool], total: int, desc: str) -> Any:
    """A tqdm bar counting bytes, or a stand-in that does nothing."""
    if progress is not None and not isinstance(progress, bool):
        raise TypeError(f"progress must be None, True or False, not {progress!r}")
    if progress is False or (progress is None and not _interactive()):
        return _NoBar()
    try:
        tqdm = importlib.import_module("tqdm.auto").tqdm
    except ImportError as e:
        if progress:
            raise ImportError(
                "progress=True needs tqdm: pip install 'ams02[progress]'"
            ) from e
        return _NoBar()
    return tqdm(total=total, desc=desc, unit="B", unit_scale=True, unit_divisor=1000)


def _file_size(item: Any) -> int:
    if isinstance(item, (bytes, bytearray, memoryview)):
        return memoryview(item).nbytes
    if not isinstance(item, str) or is_url(item):
        return 0
    try:
        return os.stat(item).st_size
    except OSError:
        return 0


# -- opening, errors --------------------------------------------------------------------
_SKIPPABLE = (OSError, Ams02Error)
_ERRNO = (
    (FileNotFoundError, errno.ENOENT),
    (PermissionError, errno.EACCES),
    (IsADirectoryError, errno.EISDIR),
)


def _named(e: BaseException, item: Any) -> BaseException:
    """``e`` with the input's name in its message (a new exception of the same kind if needed)."""
    path = describe(item)
    if path in str(e):
        return e
    if isinstance(e, OSError):
        code = e.errno
        if code is None:
            code = next((c for t, c in _ERRNO if isinstance(e, t)), None)
        if code is not None:  # OSError(errno, ...) picks the subclass and sets filename
            return OSError(code, e.strerror or os.strerror(code), path)
        return type(e)(f"{path}: {e}")
    if isinstance(e, Ams02Error):
        return type(e)(f"{path}: {e}")
    return e  # pragma: no cover


def _open(
    item: Any,
    threads: Optional[int],
    strict: bool = False,
    storage_options: Optional[Dict[str, Any]] = None,
    mmap: bool = True,
) -> File:
    if isinstance(item, str) and not is_url(item) and os.path.isdir(item):
        raise IsADirectoryError(errno.EISDIR, "Is a directory, not an AMS block file", item)
    try:
        return File(item, threads=threads, strict=strict, storage_options=storage_options, mmap=mmap)
    except _SKIPPABLE as e:
        named = _named(e, item)
        if named is e:
            raise
        raise named from e


def _error_kind(error: BaseException) -> str:
    """``"file_changed"`` for a file that shrank or changed while read, else ``"file_error"``."""
    kind = getattr(error, "kind", None)
    if kind is None and isinstance(error.__cause__, Ams02Error):
        kind = getattr(error.__cause__, "kind", None)
    return "file_changed" if kind == "file_changed" else "file_error"


def _file_error_rows(file_index: int, error: BaseException) -> Table:
    return {
        "offset": np.zeros(1, dtype=np.uint64),
        "event_index": np.full(1, -1, dtype=np.int64),
        "kind": np.asarray([_error_kind(error)], dtype=str),
        "detail": np.asarray([str(error)], dtype=str),
        "file_index": np.full(1, file_index, dtype=np.uint32),
    }


def _errors_table(f: File) -> Table:
    t: Table = f.errors(library="np")
    return t


def _empty(table: str) -> Table:
    """A table of no rows with ``table``'s columns and dtypes (from the schema registry,
    :func:`ams02.schema`), and ``file_index``."""
    from ._schema import empty

    out = empty(table)
    out["file_index"] = np.empty(0, dtype=np.uint32)
    return out


def _with_file_index(t: Table, file_index: int) -> Table:
    n = len(next(iter(t.values()))) if t else 0
    t["file_index"] = np.full(n, file_index, dtype=np.uint32)
    return t


#: Columns of at least this many bytes are joined by the native parallel copy.
_PARALLEL_JOIN_BYTES = 8 << 20


def _join(arrays: List[np.ndarray], threads: Optional[int] = None) -> np.ndarray:
    """``np.concatenate(arrays)`` (along the rows), copied on every core for large numeric
    columns: the copy and the first touch of the new array's pages then run in parallel
    (``_native.join_bytes``). Same result, dtype and shape as ``np.concatenate``."""
    first = arrays[0]
    total = sum(a.nbytes for a in arrays)
    same = all(a.dtype == first.dtype and a.shape[1:] == first.shape[1:] for a in arrays)
    if total < _PARALLEL_JOIN_BYTES or not same or first.dtype.hasobject or first.ndim == 0:
        return np.concatenate(arrays)
    from . import _native

    out = np.empty((sum(len(a) for a in arrays),) + first.shape[1:], dtype=first.dtype)
    flat = [np.ascontiguousarray(a).reshape(-1).view(np.uint8) for a in arrays]
    _native.join_bytes(out.reshape(-1).view(np.uint8), flat, threads=threads)
    return out


def _concat(parts: List[Table], table: str, threads: Optional[int] = None) -> Table:
    """Concatenates tables column by column, releasing each part's column once copied
    (peak memory: the result plus one column of the parts); large columns are copied on
    ``threads`` threads (None: every core)."""
    if not parts:
        return _empty(table)
    if len(parts) == 1:
        return parts[0]
    out: Table = {}
    for c in list(parts[0]):
        out[c] = _join([p[c] for p in parts], threads)
        for p in parts:
            del p[c]
    return out


#: The tables that ``concatenate`` decodes file after file into one set of columns.
_ACCUMULATED = ("events", "trd_hits", "trd_raw")


def _accumulated(files: List[Any], table: str, threads: Optional[int],
                 storage_options: Optional[Dict[str, Any]], mmap: bool, bar: Any) -> Table:
    """``table`` of every file (all events, ``on_error="raise"``, not strict) decoded file
    after file into the same columns (``_native.Accumulator``), so that nothing is joined
    afterwards: the same rows as the per-file tables concatenated, ``event_index``
    counted on over the files, with ``file_index``."""
    from . import _native

    acc = _native.Accumulator([table])
    rows: List[int] = []
    for i, item in enumerate(files):
        f = _open(item, threads, False, storage_options, mmap)  # raises naming the file
        if i + 1 < len(files):
            _read_ahead(files[i + 1], after=f)
        with f:
            rows.append(int(f.raw.decode_into(acc)[table]))
            if bar is not None:
                bar.update(f.size)
    out: Table = dict(acc.finish()[table])
    out["file_index"] = np.repeat(np.arange(len(files), dtype=np.uint32), rows)
    return out


def _shift(a: np.ndarray, delta: int) -> None:
    """Adds ``delta`` in place to the non-negative entries of ``a`` (-1 means none)."""
    if delta:
        np.add(a, delta, out=a, where=a >= 0)


# -- the engine -----------------------------------------------------------------------------
def cut_ranges(offsets: np.ndarray, step: Tuple[str, int], start: int, stop: int) -> List[Tuple[int, int]]:
    """Event ranges ``[a, b)`` covering ``start..stop`` in order: ``step[1]`` events each
    (``step[0] == "events"``), or as many events as fit in ``step[1]`` bytes counted from
    each range's first event (``"bytes"``; at least one event per range)."""
    kind, n = step
    if stop <= start:
        return []
    if kind == "events":
        return [(a, min(a + n, stop)) for a in range(start, stop, n)]
    out = []
    a = start
    while a < stop:
        b = int(np.searchsorted(offsets, offsets[a] + np.uint64(n), side="left"))
        b = min(max(b, a + 1), stop)
        out.append((a, b))
        a = b
    return out


def _per_table(value: PerTable, table: str) -> Any:
    return value.get(table) if isinstance(value, dict) else value


def _check_per_table(name: str, value: PerTable, tables: Sequence[str]) -> None:
    if isinstance(value, dict):
        unknown = [t for t in value if t not in tables]
        if unknown:
            raise ValueError(f"{name} names tables not asked for: {', '.join(map(repr, unknown))}")


class Selection:
    """What to keep of each table: ``columns``, ``filter_name``, ``cut`` (each one value
    for every table or a dict per table); ``file_index`` is always kept."""

    def __init__(self, tables: Sequence[str], columns: PerTable, filter_name: PerTable, cut: PerTable) -> None:
        for name, value in (("columns", columns), ("filter_name", filter_name), ("cut", cut)):
            _check_per_table(name, value, tables)
        for t in tables:
            _selection.check_cut(_per_table(cut, t))
        self.columns, self.filter_name, self.cut = columns, filter_name, cut

    def apply(self, table: str, t: Table) -> Table:
        return _selection.apply(
            table,
            t,
            _per_table(self.columns, table),
            _per_table(self.filter_name, table),
            _per_table(self.cut, table),
            keep=("file_index",),
        )

    def check(self, table: str) -> None:
        """Fails now (before any decoding) on unknown columns or a filter matching nothing."""
        t = _empty(table)
        _selection.selected_columns(table, list(t), _per_table(self.columns, table), _per_table(self.filter_name, table))


def _window(entry_start: Optional[int], entry_stop: Optional[int], total: Optional[int]) -> Tuple[int, Optional[int]]:
    """The global event window ``[a, b)`` (``b`` None: to the end); negative values count
    from the end of all files (``total`` is then known)."""
    for v, name in ((entry_start, "entry_start"), (entry_stop, "entry_stop")):
        if v is not None and (not isinstance(v, (int, np.integer)) or isinstance(v, bool)):
            raise TypeError(f"{name} must be None or an int, not {v!r}")

    def fix(v: int) -> int:
        if v >= 0:
            return int(v) if total is None else min(int(v), total)
        assert total is not None
        return max(total + int(v), 0)

    a = 0 if entry_start is None else fix(entry_start)
    b = None if entry_stop is None else fix(entry_stop)
    if b is not None:
        b = max(a, b)
    return a, b


def _count_events(
    files: List[Any], threads: Optional[int], strict: bool, so: Optional[Dict[str, Any]], mmap: bool = True
) -> int:
    total = 0
    for item in files:
        try:
            with _open(item, threads, strict, so, mmap) as f:
                total += f.n_events
        except _SKIPPABLE:
            pass  # reported when the file is read
    return total


#: The most bytes of the next file read ahead while a file decodes: its start, as much as
#: the streaming pass reads ahead of its walk (64 MiB). More competed with the current
#: file's own read-ahead for the disk (measured with the whole next file, up to 1 GiB:
#: `concatenate` over 8 pieces of a 1 GB run at 0.74-0.86 x the long file, against
#: 0.81-0.96 x with no read-ahead of the next file). It is asked for once the current
#: file's walk has asked for its own end, so that the disk reads one file after the other
#: (session 8: 0.91-0.98 x, no way of the three measurably better, benchmarks/README.md).
READ_AHEAD_NEXT = 64 << 20


def _read_ahead(item: Any, after: Any = None) -> None:
    """Asks the kernel to start reading a local file (up to :data:`READ_AHEAD_NEXT` bytes)
    into the page cache, so that the next file of a multi-file read comes from memory
    while the current one decodes. With ``after``, the open file being read: once its
    streaming walk has asked the disk for its own last byte (``RawFile.read_ahead_after``,
    so that the disk reads one file after the other); without, or when ``after`` cannot
    take the request (walked already, not mapped), at once from a background thread.
    Only advice: anything that is not a local file, or any failure, is ignored."""
    limit = READ_AHEAD_NEXT
    if limit <= 0 or not hasattr(os, "posix_fadvise") or not isinstance(item, (str, os.PathLike)):
        return
    path = os.fspath(item)
    if not isinstance(path, str) or is_url(path):
        return
    ask = getattr(getattr(after, "raw", None), "read_ahead_after", None)
    if ask is not None and ask(path, limit):
        return

    def advise() -> None:
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            return
        try:
            size = os.fstat(fd).st_size
            os.posix_fadvise(fd, 0, min(size, limit), os.POSIX_FADV_WILLNEED)
        except OSError:
            pass
        finally:
            os.close(fd)

    threading.Thread(target=advise, name="ams02-read-ahead", daemon=True).start()


def decode_range(
    f: File,
    file_index: int,
    start: int,
    stop: Optional[int],
    tables: Sequence[str],
    offsets: Optional[np.ndarray] = None,
    blocks: Optional[Table] = None,
    errors: Optional[Table] = None,
) -> Dict[str, Table]:
    """The tables of events ``start..stop`` of an open file, with ``file_index``,
    ``event_index`` counting from ``start`` and ``fragments.parent`` from the range's
    first fragment. ``blocks``/``errors`` hold the rows in the range's byte span (from 0
    for the first event, to the end of the file for the last). ``offsets``, ``blocks``
    and ``errors`` may be given when decoding many ranges of one file. ``stop=None`` is
    the whole file: decoded before anything needs the index, so that a file not walked
    yet is walked and decoded in one streaming pass."""
    decoded = [t for t in tables if t in _DECODED]
    d = None
    if start == 0 and stop is None and (decoded or "errors" in tables):
        # With "errors", the same pass runs every check and keeps the problems.
        extra = ["errors"] if errors is None and "errors" in tables else []
        d = f.raw.decode(decoded + extra)
    n = f.n_events
    if stop is None:
        stop = n
    if offsets is None:
        offsets = f.raw.event_offsets()
    if blocks is None and "blocks" in tables:
        blocks = f.blocks()
    if errors is None and "errors" in tables:
        errors = _errors_table(f)
    lo = 0 if start == 0 else int(offsets[start])
    hi = f.size if stop >= n else int(offsets[stop])
    if d is None:
        d = f.raw.decode(decoded, start, stop) if decoded else {}
    out: Dict[str, Table] = {}
    for name in tables:
        if name in _DECODED:
            t = dict(d[name])
            if name != "events":
                t["event_index"] -= start  # file rows -> range rows
        elif name == "blocks":
            assert blocks is not None
            a, b = np.searchsorted(blocks["offset"], [lo, hi], side="left")
            t = {c: v[a:b].copy() for c, v in blocks.items()}
        else:
            assert errors is not None
            ei, off = errors["event_index"], errors["offset"]
            keep = np.where(ei >= 0, (ei >= start) & (ei < stop), (off >= lo) & (off < hi))
            t = {c: v[keep] for c, v in errors.items()}
            _shift(t["event_index"], -start)
        out[name] = _with_file_index(t, file_index)
    return out


def stream_ranges(f: File, step: Tuple[str, int]) -> Iterator[Tuple[int, int]]:
    """The event ranges of :func:`cut_ranges` over a whole file, cut while the file is
    walked (``File.raw.walk_to``): each range is given as soon as the walk has passed its
    end, before the rest of the file is read."""
    kind, n = step
    raw = f.raw
    a = 0
    known, done = raw.walk_to(0, 0)
    while True:
        if kind == "events":
            known, done = raw.walk_to(0, a + n)
            b = min(a + n, known)
        else:
            if known <= a and not done:
                known, done = raw.walk_to(0, a + 1)
            if a >= known:
                return
            first = raw.known_event(a)
            assert first is not None  # a < known
            target = first + n
            known, done = raw.walk_to(target)
            b = min(max(raw.known_events_before(target), a + 1), known)
        if b <= a:
            return
        yield a, b
        a = b


def _streamed_batches(
    f: File, i: int, item: Any, step: Tuple[str, int], tables: List[str], on_error: str, bar: Any
) -> Iterator[Tuple[str, int, Any, int, int]]:
    """The batches of one file of :func:`batches` (no window, no blocks or errors table),
    cut and decoded while the file is walked."""
    decoded = [t for t in tables if t in _DECODED]
    any_batch = False
    ranges = stream_ranges(f, step)
    while True:
        try:
            r = next(ranges, None)
            if r is None and any_batch:
                return
            start, stop = r if r is not None else (0, 0)  # no events: one empty batch
            d = f.raw.decode_known(decoded, start, stop)
        except Ams02Error as e:
            if on_error == "raise" or _error_kind(e) != "file_changed":
                raise
            yield "skipped", i, _named(e, item), 0, 0
            return
        any_batch = True
        out: Dict[str, Table] = {}
        for name in tables:
            t = dict(d[name])
            if name != "events":
                t["event_index"] -= start  # file rows -> range rows
            out[name] = _with_file_index(t, i)
        n_frag = len(out["fragments"]["parent"]) if "fragments" in out else 0
        if bar is not None:
            lo = (f.raw.known_event(start) or 0) if start else 0
            nxt = f.raw.known_event(stop)
            bar.update((f.size if nxt is None else int(nxt)) - lo)
        yield "batch", i, out, stop - start, n_frag
        del out
        if r is None:
            return


def batches(
    files: List[Any],
    step: Optional[Tuple[str, int]],
    tables: List[str],
    *,
    entry_start: Optional[int] = None,
    entry_stop: Optional[int] = None,
    on_error: str = "raise",
    threads: Optional[int] = None,
    strict: bool = False,
    storage_options: Optional[Dict[str, Any]] = None,
    mmap: bool = True,
    bar: Any = None,
) -> Iterator[Tuple[str, int, Any, int, int]]:
    """The multi-file engine: opens one file at a time and yields, in order,
    ``("batch", file_index, tables, n_events, n_fragments)`` for each event range of
    ``step`` (None: the whole file) inside the global window ``entry_start..entry_stop``,
    or ``("skipped", file_index, error, 0, 0)`` for a file skipped with
    ``on_error="skip"``. Each batch's tables carry ``file_index`` and are self-contained
    (``event_index`` counts from the batch's first event, ``fragments.parent`` from its
    first fragment); ``n_events``/``n_fragments`` are its rows before any selection.
    Without a window a file without events gives one batch of empty event tables; with
    one, files outside the window give none."""
    windowed = entry_start is not None or entry_stop is not None
    negative = any(v is not None and v < 0 for v in (entry_start, entry_stop))
    total = _count_events(files, threads, strict, storage_options, mmap) if negative else None
    g0, g1 = _window(entry_start, entry_stop, total)
    base = 0  # events of the files before this one
    for i, item in enumerate(files):
        if g1 is not None and base >= g1:
            return
        try:
            f = _open(item, threads, strict, storage_options, mmap)
        except _SKIPPABLE as e:
            named = _named(e, item)
            if on_error == "raise":
                if named is e:
                    raise
                raise named from e
            if bar is not None:
                bar.update(_file_size(item))
            yield "skipped", i, named, 0, 0
            continue
        if i + 1 < len(files):
            _read_ahead(files[i + 1], after=f)
        with f:
            if step is None and not windowed:
                # The whole file in one batch: one streaming pass, which walks the file
                # while it decodes, before the index is asked for.
                try:
                    out = decode_range(f, i, 0, None, tables)
                except Ams02Error as e:
                    if on_error == "raise" or _error_kind(e) != "file_changed":
                        raise
                    yield "skipped", i, _named(e, item), 0, 0
                    continue
                n = f.n_events
                base += n
                if bar is not None:
                    bar.update(f.size)
                n_frag = len(out["fragments"]["parent"]) if "fragments" in out else 0
                yield "batch", i, out, n, n_frag
                del out
                continue
            if step is not None and not windowed and not {"blocks", "errors"} & set(tables):
                # Batches cut while the file is walked: each is decoded as soon as the walk
                # has passed its end, so that a cold file is read once, behind the decode.
                yield from _streamed_batches(f, i, item, step, tables, on_error, bar)
                continue
            n = f.n_events
            lo_ev = min(max(g0 - base, 0), n)
            hi_ev = n if g1 is None else min(max(g1 - base, 0), n)
            base += n
            if windowed and hi_ev <= lo_ev:
                if bar is not None:
                    bar.update(f.size)
                continue
            offsets = f.raw.event_offsets()
            ranges = [(lo_ev, hi_ev)] if step is None else cut_ranges(offsets, step, lo_ev, hi_ev)
            if not ranges:
                ranges = [(0, 0)]  # a file without events: one batch of empty tables
            blocks = f.blocks() if "blocks" in tables else None
            errors = _errors_table(f) if "errors" in tables else None
            size = f.size
            for start, stop in ranges:
                try:
                    out = decode_range(f, i, start, stop, tables, offsets, blocks, errors)
                except Ams02Error as e:
                    # A file that shrinks or changes between two batches: skipped from
                    # there on (its file_changed row), like a file that cannot be opened.
                    if on_error == "raise" or _error_kind(e) != "file_changed":
                        raise
                    yield "skipped", i, _named(e, item), 0, 0
                    break
                n_frag = len(out["fragments"]["parent"]) if "fragments" in out else 0
                if bar is not None:
                    lo = 0 if start == 0 else int(offsets[start])
                    bar.update((size if stop >= n else int(offsets[stop])) - lo)
                yield "batch", i, out, stop - start, n_frag
                del out


def _check_tables(tables: Union[str, Sequence[str]]) -> List[str]:
    if isinstance(tables, str):
        tables = (tables,)
    wanted: List[str] = []
    for t in tables:
        _check_table(t)
        if t not in wanted:
            wanted.append(t)
    if not wanted:
        raise ValueError("tables must name at least one table")
    return wanted


# -- concatenate ------------------------------------------------------------------------
def concatenate(
    paths: Paths,
    table: str = "events",
    *,
    columns: Optional[Sequence[str]] = None,
    library: str = "np",
    filter_name: FilterName = None,
    cut: Optional[str] = None,
    entry_start: Optional[int] = None,
    entry_stop: Optional[int] = None,
    progress: Optional[bool] = None,
    on_error: str = "raise",
    threads: Optional[int] = None,
    strict: bool = False,
    storage_options: Optional[Dict[str, Any]] = None,
    mmap: bool = True,
) -> Any:
    """Reads one table from many files into one table with a ``file_index`` column.

    Parameters
    ----------
    paths:
        A list of inputs (paths, fsspec URLs, bytes-like or binary file objects), a glob
        pattern (``"runs/*.dat"``, ``"s3://bucket/runs/*.dat"``) or a directory (its
        regular files, sorted by name, dot-files left out). ``file_index`` is the position
        in that list.
    table:
        ``"events"``, ``"trd_hits"``, ``"trd_raw"``, ``"fragments"``, ``"blocks"`` or
        ``"errors"``. In the result, ``event_index`` refers to rows of the concatenated
        ``events`` table of the same files and entry range (each file's events come after
        the previous files' events) and ``fragments.parent`` to rows of the concatenated
        fragments. ``errors`` is every file's :meth:`File.errors` (with ``event_index``
        re-based the same way) plus a ``file_error`` row per file skipped with
        ``on_error="skip"``.
    columns, filter_name, cut:
        The columns to keep (exact names; wildcards or ``/regex/`` in ``filter_name``) and
        a numexpr expression choosing rows (see :meth:`File.events`); ``file_index`` is
        always there. ``cut`` keeps cross-references as they are: ``event_index`` still
        counts rows of the uncut ``events``.
    entry_start, entry_stop:
        The events to read, counted over all files in order (negative values count from
        the end of the last file). ``blocks`` and ``errors`` then hold the rows within
        the byte span of those events.
    library:
        ``"np"`` (dict of arrays), ``"pd"``, ``"pa"`` or ``"ak"`` (or ``"numpy"``,
        ``"pandas"``, ``"pyarrow"``, ``"awkward"``).
    progress:
        Show a tqdm bar: None (default) when stderr is a terminal or inside Jupyter and
        tqdm is installed, True to force (ImportError without tqdm), False never.
    on_error:
        ``"raise"`` (default): a missing, unreadable or non-AMS file raises
        FileNotFoundError/OSError/FormatError naming it. ``"skip"``: leave it out, warn
        (unless ``table="errors"``) and report it as an ``errors`` row: its file_index,
        offset 0, event_index -1, kind ``"file_error"``, the exception as detail.
    strict:
        Open every file with ``strict=True``: the first problem in a file raises
        :class:`ams02.FormatError` (with ``on_error="skip"``, a file whose index has a
        problem is skipped and reported instead).
    threads:
        Decoding threads per file (None: all cores; 1: serial). Results are the same.
    storage_options:
        Options of the fsspec filesystem of URLs (e.g. credentials).
    """
    _check_table(table)
    library = check_library(library)
    _check_on_error(on_error)
    check_mmap(mmap)
    sel = Selection([table], columns, filter_name, cut)
    files = resolve_paths(paths, storage_options)
    sel.check(table)  # unknown names fail before any decoding
    bar = _progress_bar(progress, sum(_file_size(p) for p in files), f"ams02 {table}")
    if files and table in _ACCUMULATED and entry_start is None and entry_stop is None \
            and on_error == "raise" and not strict:
        try:
            whole = _accumulated(files, table, threads, storage_options, mmap, bar)
        finally:
            bar.close()
        return convert_table(sel.apply(table, whole), library)
    parts: List[Table] = []
    event_base = 0
    fragment_base = 0
    try:
        for kind, i, t, n_events, n_frag in batches(
            files, None, [table], entry_start=entry_start, entry_stop=entry_stop,
            on_error=on_error, threads=threads, strict=strict, storage_options=storage_options, mmap=mmap, bar=bar,
        ):
            if kind == "skipped":
                if table == "errors":
                    parts.append(sel.apply(table, _file_error_rows(i, t)))
                else:
                    warnings.warn(f"ams02.concatenate skipped a file: {t}", stacklevel=2)
                continue
            t = t[table]
            if table in _EVENT_LINKED:
                _shift(t["event_index"], event_base)
            if table == "fragments":
                _shift(t["parent"], fragment_base)
                fragment_base += n_frag
            event_base += n_events
            parts.append(sel.apply(table, t))
    finally:
        bar.close()
    result = _concat(parts, table, threads) if parts else sel.apply(table, _empty(table))
    return convert_table(result, library)


# -- iterate ----------------------------------------------------------------------------
def iterate(
    paths: Paths,
    *,
    step_size: StepSize = "100 MB",
    tables: Union[str, Sequence[str]] = ("events", "trd_hits"),
    columns: PerTable = None,
    library: str = "np",
    filter_name: PerTable = None,
    cut: PerTable = None,
    entry_start: Optional[int] = None,
    entry_stop: Optional[int] = None,
    progress: Optional[bool] = None,
    on_error: str = "raise",
    threads: Optional[int] = None,
    strict: bool = False,
    storage_options: Optional[Dict[str, Any]] = None,
    mmap: bool = True,
) -> Iterator[Dict[str, Any]]:
    """Reads many files in batches of ``step_size`` events (an int, as in uproot) or of
    about ``step_size`` bytes of event data (a string with a unit: ``"100 MB"``).

    Yields one dict ``{table_name: table}`` per batch, each table with a ``file_index``
    column. A batch is a range of consecutive events of one file (batches never span
    files): ``step_size`` events (the last of a file may have fewer), or events whose
    blocks add up to about ``step_size`` bytes (at least one event per batch). A file with
    no events gives one batch of empty event tables (unless an entry range is given).
    Batches are self-contained: ``event_index`` refers to rows of the batch's ``events``
    table and ``fragments.parent`` to rows of the batch's ``fragments``. ``blocks`` and
    ``errors`` rows go to the batch whose byte range holds their offset (the first batch
    of a file starts at byte 0, its last ends at the end of the file). Only one file is
    open and one batch built at a time, so memory stays bounded whatever the total size.

    Parameters
    ----------
    paths:
        As in :func:`concatenate`.
    step_size:
        An int: events per batch. A string with a unit: bytes of event data per batch
        (``"100 MB"``, ``"1.5 GB"``, ``"512 kB"``, ``"64 MiB"``). (Before 0.2 an int
        counted bytes: see the CHANGELOG.)
    tables:
        Among ``"events"``, ``"trd_hits"``, ``"trd_raw"``, ``"fragments"``, ``"blocks"``,
        ``"errors"`` (asking for ``errors`` decodes each file once more, whole).
    columns, filter_name, cut:
        As in :func:`concatenate`, for every table, or a dict from table name to the
        value for that table (``cut={"events": "n_trd_hits > 3"}``).
    entry_start, entry_stop:
        The events to read, counted over all files (negative: from the end).
    library, progress, threads, strict, storage_options:
        As in :func:`concatenate` (the bar counts bytes of files done).
    on_error:
        ``"raise"`` (default) or ``"skip"``. A skipped file's ``file_error`` row goes into
        the next batch's ``errors`` table if ``"errors"`` is in ``tables`` (a last batch
        of empty tables carries it if no batch follows), else a warning is issued.
    """
    step = parse_step(step_size)
    wanted = _check_tables(tables)
    library = check_library(library)
    _check_on_error(on_error)
    check_mmap(mmap)
    sel = Selection(wanted, columns, filter_name, cut)
    _window(entry_start, entry_stop, 0)  # types
    files = resolve_paths(paths, storage_options)
    for t in wanted:
        sel.check(t)
    if progress is not None and not isinstance(progress, bool):
        raise TypeError(f"progress must be None, True or False, not {progress!r}")
    if progress:  # fail now, not at the first next()
        _progress_bar(True, 0, "").close()
    return _iterate(
        files, step, wanted, library, progress, on_error, threads, strict, sel,
        entry_start, entry_stop, storage_options, mmap,
    )


def _iterate(
    files: List[Any],
    step: Tuple[str, int],
    tables: List[str],
    library: str,
    progress: Optional[bool],
    on_error: str,
    threads: Optional[int],
    strict: bool,
    sel: Selection,
    entry_start: Optional[int],
    entry_stop: Optional[int],
    storage_options: Optional[Dict[str, Any]],
    mmap: bool = True,
) -> Iterator[Dict[str, Any]]:
    pending: List[Table] = []  # file_error rows waiting for the next batch
    bar = _progress_bar(progress, sum(_file_size(p) for p in files), "ams02")
    try:
        for kind, i, batch, _n, _f in batches(
            files, step, tables, entry_start=entry_start, entry_stop=entry_stop,
            on_error=on_error, threads=threads, strict=strict, storage_options=storage_options, mmap=mmap, bar=bar,
        ):
            if kind == "skipped":
                if "errors" in tables:
                    pending.append(_file_error_rows(i, batch))
                else:
                    warnings.warn(f"ams02.iterate skipped a file: {batch}", stacklevel=2)
                continue
            if pending:
                pending.append(batch["errors"])
                batch["errors"] = _concat(pending, "errors")
                pending = []
            out = {name: convert_table(sel.apply(name, batch[name]), library) for name in tables}
            del batch
            yield out
            del out
        if pending:  # skipped files after the last batch
            last = {name: _empty(name) for name in tables}
            pending.append(last["errors"])
            last["errors"] = _concat(pending, "errors")
            yield {name: convert_table(sel.apply(name, last[name]), library) for name in tables}
    finally:
        bar.close()
