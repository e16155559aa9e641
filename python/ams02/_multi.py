"""Many files at once: :func:`concatenate` into one table, or :func:`iterate` in batches.

Both take a list of paths, a glob pattern or a directory, open one file at a time, and add
a ``file_index`` column (the position of the file in the resolved list). Cross-references
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
import tempfile
import threading
import warnings
from functools import lru_cache
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from ._convert import Table, check_library, convert_table, select
from ._file import File
from ._native import Ams02Error, FormatError

PathLike = Union[str, "os.PathLike[str]"]
Paths = Union[PathLike, Sequence[PathLike]]

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


def resolve_paths(paths: Paths) -> List[str]:
    """The files to read: a list of paths as given, a directory's regular files (sorted by
    name, not recursive), a glob pattern's matches (sorted; directories left out), or one
    file. A pattern that matches nothing or an empty directory raises FileNotFoundError."""
    if isinstance(paths, (str, os.PathLike)):
        p = os.fspath(paths)
        if isinstance(p, bytes):
            p = os.fsdecode(p)
        if os.path.isdir(p):
            files = sorted(e.path for e in os.scandir(p) if e.is_file())
            if not files:
                raise FileNotFoundError(f"no files in directory {p!r}")
            return files
        if _glob.has_magic(p) and not os.path.exists(p):
            files = sorted(m for m in _glob.glob(p, recursive=True) if not os.path.isdir(m))
            if not files:
                raise FileNotFoundError(f"no files match {p!r}")
            return files
        return [p]
    try:
        items = list(paths)
    except TypeError:
        raise TypeError(
            f"paths must be a path, a glob pattern, a directory or a list of paths, not {paths!r}"
        ) from None
    out = []
    for item in items:
        if not isinstance(item, (str, os.PathLike)):
            raise TypeError(f"paths must hold str or os.PathLike items, not {item!r}")
        out.append(os.fsdecode(os.fspath(item)))
    return out


def _check_table(table: str) -> str:
    if table not in TABLES:
        raise ValueError(f"table must be one of {', '.join(map(repr, TABLES))}, not {table!r}")
    return table


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


def _file_size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


# -- opening, errors --------------------------------------------------------------------
_SKIPPABLE = (OSError, Ams02Error)
_ERRNO = (
    (FileNotFoundError, errno.ENOENT),
    (PermissionError, errno.EACCES),
    (IsADirectoryError, errno.EISDIR),
)


def _named(e: BaseException, path: str) -> BaseException:
    """``e`` with ``path`` in its message (a new exception of the same kind if needed)."""
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
        named = type(e)(f"{path}: {e}")
        if hasattr(e, "kind"):
            named.kind = e.kind  # type: ignore[attr-defined]
        return named
    return e  # pragma: no cover


def _open(path: str, threads: Optional[int], strict: bool = False, mmap: bool = True) -> File:
    if os.path.isdir(path):
        raise IsADirectoryError(errno.EISDIR, "Is a directory, not an AMS block file", path)
    try:
        return File(path, threads=threads, strict=strict, mmap=mmap)
    except _SKIPPABLE as e:
        named = _named(e, path)
        if named is e:
            raise
        raise named from e


#: Bytes of the next file asked for ahead (page cache, not this process's memory; 0: off).
PREFETCH_BYTES = 1 << 30


def _prefetch(path: str) -> None:
    """Asks the kernel to start reading ``path`` into the page cache (at most
    :data:`PREFETCH_BYTES`) in a background thread (``posix_fadvise(WILLNEED)`` can wait
    for the disk queue), so that the next file is read while the current one decodes.
    Only advice: any error is ignored, the open that follows reports it."""
    fadvise = getattr(os, "posix_fadvise", None)
    if fadvise is None or PREFETCH_BYTES <= 0:  # pragma: no cover - not Linux, or off
        return

    def run() -> None:
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            return
        try:
            size = min(os.fstat(fd).st_size, PREFETCH_BYTES)
            fadvise(fd, 0, size, os.POSIX_FADV_WILLNEED)
        except OSError:
            pass
        finally:
            os.close(fd)

    threading.Thread(target=run, name="ams02-prefetch", daemon=True).start()


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


@lru_cache(maxsize=1)
def _schemas() -> Dict[str, Dict[str, Tuple[np.dtype, Tuple[int, ...]]]]:
    """Column names, dtypes and inner shapes of every table (from a one-event run)."""
    with tempfile.TemporaryDirectory(prefix="ams02-") as d:
        from . import simulate

        path = os.path.join(d, "schema.dat")
        simulate(path, 1)
        f = File(path, mmap=False)
        tables: Dict[str, Table] = dict(f.raw.decode(list(_DECODED), 0, 0))
        tables["blocks"] = f.blocks()
        tables["errors"] = _errors_table(f)
        f.close()
    return {
        name: {c: (v.dtype, v.shape[1:]) for c, v in t.items()} for name, t in tables.items()
    }


def _empty(table: str) -> Table:
    """A table of no rows with ``table``'s columns and dtypes, and ``file_index``."""
    out = {c: np.empty((0,) + shape, dtype=dt) for c, (dt, shape) in _schemas()[table].items()}
    out["file_index"] = np.empty(0, dtype=np.uint32)
    return out


def _with_file_index(t: Table, file_index: int) -> Table:
    n = len(next(iter(t.values()))) if t else 0
    t["file_index"] = np.full(n, file_index, dtype=np.uint32)
    return t


def _select(table: str, t: Table, columns: Optional[Sequence[str]]) -> Table:
    """Keeps ``columns`` (all when None) and always ``file_index``, last unless listed."""
    if columns is None:
        return t
    if isinstance(columns, str):
        columns = [columns]
    out = select(table, t, list(columns))
    if "file_index" not in out:
        out["file_index"] = t["file_index"]
    return out


def _concat(parts: List[Table], table: str) -> Table:
    """Concatenates tables column by column, releasing each part's column once copied
    (peak memory: the result plus one column of the parts)."""
    if not parts:
        return _empty(table)
    if len(parts) == 1:
        return parts[0]
    out: Table = {}
    for c in list(parts[0]):
        out[c] = np.concatenate([p[c] for p in parts])
        for p in parts:
            del p[c]
    return out


def _decode_file(f: File, table: str) -> Table:
    if table == "blocks":
        t: Table = f.blocks()
        return t
    if table == "errors":
        return _errors_table(f)
    return dict(f.raw.decode([table])[table])


def _shift(a: np.ndarray, delta: int) -> None:
    """Adds ``delta`` in place to the non-negative entries of ``a`` (-1 means none)."""
    if delta:
        np.add(a, delta, out=a, where=a >= 0)


# -- concatenate ------------------------------------------------------------------------
def concatenate(
    paths: Paths,
    table: str = "events",
    *,
    columns: Optional[Sequence[str]] = None,
    library: str = "np",
    progress: Optional[bool] = None,
    on_error: str = "raise",
    threads: Optional[int] = None,
    strict: bool = False,
    mmap: bool = True,
) -> Any:
    """Reads one table from many files into one table with a ``file_index`` column.

    Parameters
    ----------
    paths:
        A list of paths, a glob pattern (``"runs/*.dat"``) or a directory (its regular
        files, sorted by name). ``file_index`` is the position in that list.
    table:
        ``"events"``, ``"trd_hits"``, ``"trd_raw"``, ``"fragments"``, ``"blocks"`` or
        ``"errors"``. In the result, ``event_index`` refers to rows of the concatenated
        ``events`` table of the same files (each file's events come after the previous
        files' events) and ``fragments.parent`` to rows of the concatenated fragments.
        ``errors`` is every file's :meth:`File.errors` (with ``event_index`` re-based the
        same way) plus a ``file_error`` row per file skipped with ``on_error="skip"``.
    columns:
        The columns to keep (default all); ``file_index`` is always there.
    library:
        ``"np"`` (dict of arrays), ``"pd"``, ``"pa"`` or ``"ak"``.
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
        Decoding threads per file (None: all cores; 1: serial; at most 4 x the cores
        available, else ValueError). Results are the same.
    mmap:
        Memory-map each file (default) or read it into memory (``mmap=False``: as fast
        on a cold file, but the file's bytes count in this process's memory while it is
        decoded). Either way a file that shrinks or changes while it is read raises
        :class:`ams02.FormatError` (or, with ``on_error="skip"``, is reported as an
        ``errors`` row of kind ``"file_changed"``); nothing crashes. While a file
        decodes, the next one is read ahead into the page cache.
    """
    _check_table(table)
    check_library(library)
    _check_on_error(on_error)
    files = resolve_paths(paths)
    if columns is not None:  # unknown names fail before any decoding
        _select(table, _empty(table), columns)
    bar = _progress_bar(progress, sum(_file_size(p) for p in files), f"ams02 {table}")
    parts: List[Table] = []
    event_base = 0
    fragment_base = 0
    try:
        for i, path in enumerate(files):
            try:
                with _open(path, threads, strict, mmap) as f:
                    if i + 1 < len(files):
                        _prefetch(files[i + 1])
                    t = _decode_file(f, table)
                    n_events = f.n_events
            except _SKIPPABLE as e:
                named = _named(e, path)
                if on_error == "raise":
                    if named is e:
                        raise
                    raise named from e
                if table == "errors":
                    parts.append(_select(table, _file_error_rows(i, named), columns))
                else:
                    warnings.warn(f"ams02.concatenate skipped a file: {named}", stacklevel=2)
                continue
            finally:
                bar.update(_file_size(path))
            if table in _EVENT_LINKED:
                _shift(t["event_index"], event_base)
            if table == "fragments":
                _shift(t["parent"], fragment_base)
                fragment_base += len(t["parent"])
            event_base += n_events
            parts.append(_select(table, _with_file_index(t, i), columns))
    finally:
        bar.close()
    result = _concat(parts, table)
    if not parts:
        result = _select(table, result, columns)
    return convert_table(result, library)


# -- iterate ----------------------------------------------------------------------------
def iterate(
    paths: Paths,
    *,
    step_size: Union[int, str] = "100 MB",
    tables: Sequence[str] = ("events", "trd_hits"),
    library: str = "np",
    progress: Optional[bool] = None,
    on_error: str = "raise",
    threads: Optional[int] = None,
    strict: bool = False,
    mmap: bool = True,
) -> Iterator[Dict[str, Any]]:
    """Reads many files in batches of about ``step_size`` bytes of event data.

    Yields one dict ``{table_name: table}`` per batch, each table with a ``file_index``
    column. A batch is a range of consecutive events of one file (batches never span
    files) whose event blocks add up to about ``step_size`` (at least one event per
    batch; a file with no events gives one batch of empty event tables). Batches are
    self-contained: ``event_index`` refers to rows of the batch's ``events`` table and
    ``fragments.parent`` to rows of the batch's ``fragments``. ``blocks`` and ``errors``
    rows go to the batch whose byte range holds their offset (the first batch of a file
    starts at byte 0, its last ends at the end of the file). Only one file is open and one
    batch built at a time, so memory stays bounded whatever the total size.

    Parameters
    ----------
    paths:
        A list of paths, a glob pattern or a directory (as in :func:`concatenate`).
    step_size:
        Bytes of event data per batch: an int or a string like ``"100 MB"``, ``"1.5 GB"``,
        ``"512 kB"``, ``"64 MiB"``.
    tables:
        Among ``"events"``, ``"trd_hits"``, ``"trd_raw"``, ``"fragments"``, ``"blocks"``,
        ``"errors"`` (asking for ``errors`` decodes each file once more, whole).
    library, progress, threads, mmap:
        As in :func:`concatenate` (the bar counts bytes of files done). The next file is
        read ahead into the page cache while the current one decodes.
    on_error:
        ``"raise"`` (default) or ``"skip"``. A skipped file's ``file_error`` row goes into
        the next batch's ``errors`` table if ``"errors"`` is in ``tables`` (a last batch
        of empty tables carries it if no batch follows), else a warning is issued.
    """
    step = parse_size(step_size)
    if isinstance(tables, str):
        tables = (tables,)
    wanted: List[str] = []
    for t in tables:
        _check_table(t)
        if t not in wanted:
            wanted.append(t)
    if not wanted:
        raise ValueError("tables must name at least one table")
    check_library(library)
    _check_on_error(on_error)
    files = resolve_paths(paths)
    if progress is not None and not isinstance(progress, bool):
        raise TypeError(f"progress must be None, True or False, not {progress!r}")
    if progress:  # fail now, not at the first next()
        _progress_bar(True, 0, "").close()
    if not isinstance(mmap, bool):
        raise TypeError(f"mmap must be True or False, not {mmap!r}")
    return _iterate(files, step, wanted, library, progress, on_error, threads, strict, mmap)


def _iterate(
    files: List[str],
    step: int,
    tables: List[str],
    library: str,
    progress: Optional[bool],
    on_error: str,
    threads: Optional[int],
    strict: bool = False,
    mmap: bool = True,
) -> Iterator[Dict[str, Any]]:
    decoded = [t for t in tables if t in _DECODED]
    pending: List[Table] = []  # file_error rows waiting for the next batch
    bar = _progress_bar(progress, sum(_file_size(p) for p in files), "ams02")
    try:
        for i, path in enumerate(files):
            def skip(e: BaseException) -> None:
                named = _named(e, path)
                if on_error == "raise":
                    if named is e:
                        raise e
                    raise named from e
                if "errors" in tables:
                    pending.append(_file_error_rows(i, named))
                else:
                    warnings.warn(f"ams02.iterate skipped a file: {named}", stacklevel=4)

            try:
                f = _open(path, threads, strict, mmap)
            except _SKIPPABLE as e:
                skip(e)
                bar.update(_file_size(path))
                continue
            if i + 1 < len(files):
                _prefetch(files[i + 1])
            with f:
                batches = _file_batches(f, i, step, tables, decoded)
                while True:
                    try:  # a file that changes under us mid-way: reported like a bad open
                        batch, nbytes = next(batches)
                    except StopIteration:
                        break
                    except _SKIPPABLE as e:
                        skip(e)
                        break
                    if pending:
                        pending.append(batch["errors"])
                        batch["errors"] = _concat(pending, "errors")
                        pending = []
                    out = {name: convert_table(batch[name], library) for name in tables}
                    del batch
                    bar.update(nbytes)
                    yield out
                    del out
        if pending:  # skipped files after the last batch
            batch = {name: _empty(name) for name in tables}
            pending.append(batch["errors"])
            batch["errors"] = _concat(pending, "errors")
            yield {name: convert_table(batch[name], library) for name in tables}
    finally:
        bar.close()


def _file_batches(
    f: File, file_index: int, step: int, tables: List[str], decoded: List[str]
) -> Iterator[Tuple[Dict[str, Table], int]]:
    """The batches of one open file and the bytes each covers."""
    offsets = f.raw.event_offsets()
    n = len(offsets)
    size = f.size
    blocks = f.blocks() if "blocks" in tables else None
    errors = _errors_table(f) if "errors" in tables else None
    start = 0
    while True:
        if n == 0:
            stop = 0
        else:
            stop = int(np.searchsorted(offsets, offsets[start] + np.uint64(step), side="left"))
            stop = min(max(stop, start + 1), n)
        lo = 0 if start == 0 else int(offsets[start])
        hi = size if stop >= n else int(offsets[stop])
        d = f.raw.decode(decoded, start, stop) if decoded else {}
        batch: Dict[str, Table] = {}
        for name in tables:
            if name in _DECODED:
                t = dict(d[name])
                if name != "events":
                    t["event_index"] -= start  # file rows -> batch rows
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
            batch[name] = _with_file_index(t, file_index)
        del d
        yield batch, hi - lo
        del batch
        start = stop
        if start >= n:
            return
