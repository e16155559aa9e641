"""uproot-style selection of columns and rows: ``filter_name`` and ``cut=``.

* ``filter_name``: a name, a wildcard pattern (``"trd_*"``, ``"n_?"``, fnmatch rules), a
  regular expression between slashes (``"/^(run|event)$/"``, flags after the last slash:
  ``"/RUN/i"``), a list of those (a column is kept if any matches) or a callable taking a
  column name. Combined with ``columns`` (exact names), a column must pass both.
* ``cut``: a boolean expression on the table's columns, evaluated by numexpr (a
  maintained expression library: arithmetic, comparisons, ``&``, ``|``, ``~``, functions
  such as ``abs``, ``sqrt``, ``where``), e.g. ``"(run == 1305000000) & (n_trd_hits > 3)"``.
  It may use columns that ``columns``/``filter_name`` leave out of the result.
"""

from __future__ import annotations

import fnmatch
import re
from typing import Any, Callable, List, Optional, Sequence, Union

import numpy as np

from ._convert import Table

FilterName = Union[None, str, Sequence[str], Callable[[str], bool]]

_REGEX = re.compile(r"^/(.*)/([imsx]*)$", re.S)
_FLAGS = {"i": re.I, "m": re.M, "s": re.S, "x": re.X}
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _matcher(pattern: str) -> Callable[[str], bool]:
    m = _REGEX.match(pattern)
    if m:
        flags = 0
        for c in m.group(2):
            flags |= _FLAGS[c]
        try:
            rx = re.compile(m.group(1), flags)
        except re.error as e:
            raise ValueError(f"filter_name {pattern!r} is not a valid regular expression: {e}") from None
        return lambda name: rx.search(name) is not None
    if any(c in pattern for c in "*?["):
        return lambda name: fnmatch.fnmatchcase(name, pattern)
    return lambda name: name == pattern


def name_filter(filter_name: FilterName) -> Optional[Callable[[str], bool]]:
    """A predicate on column names for ``filter_name`` (None: every column)."""
    if filter_name is None:
        return None
    if callable(filter_name):
        return filter_name
    if isinstance(filter_name, str):
        return _matcher(filter_name)
    try:
        patterns = list(filter_name)
    except TypeError:
        raise TypeError(
            f"filter_name must be a str, a list of str or a callable, not {filter_name!r}"
        ) from None
    if not all(isinstance(p, str) for p in patterns):
        raise TypeError(f"filter_name must be a str, a list of str or a callable, not {filter_name!r}")
    matchers = [_matcher(p) for p in patterns]
    return lambda name: any(m(name) for m in matchers)


def selected_columns(
    table_name: str,
    available: Sequence[str],
    columns: Optional[Sequence[str]],
    filter_name: FilterName,
) -> Optional[List[str]]:
    """The columns to keep, in order (None: all). Unknown names in ``columns`` raise
    KeyError; a ``filter_name`` that keeps nothing raises ValueError."""
    if isinstance(columns, str):
        columns = [columns]
    if columns is not None:
        unknown = [c for c in columns if c not in available]
        if unknown:
            raise KeyError(
                f"unknown column(s) {', '.join(map(repr, unknown))} for {table_name}; "
                f"the columns are: {', '.join(available)}"
            )
    keep = name_filter(filter_name)
    if keep is None:
        return None if columns is None else list(columns)
    base = list(available) if columns is None else list(columns)
    out = [c for c in base if keep(c)]
    if not out:
        raise ValueError(
            f"filter_name {filter_name!r} matches no column of {table_name}; "
            f"the columns are: {', '.join(available)}"
        )
    return out


def _numexpr() -> Any:
    try:
        import numexpr
    except ImportError:
        raise ImportError("cut= needs numexpr: pip install numexpr") from None
    return numexpr


def check_cut(cut: Optional[str]) -> Optional[str]:
    if cut is not None and not isinstance(cut, str):
        raise TypeError(f"cut must be None or an expression string, not {cut!r}")
    return cut


def cut_mask(table_name: str, table: Table, cut: str) -> np.ndarray:
    """The rows of ``table`` where ``cut`` holds (a boolean array)."""
    ne = _numexpr()
    names = set(_NAME.findall(cut))
    n = len(next(iter(table.values()))) if table else 0
    local = {}
    for name in names:
        if name not in table:
            continue
        v = table[name]
        if v.ndim != 1:
            raise ValueError(f"cut: column {name!r} of {table_name} is not one value per row")
        if v.dtype.kind == "u":  # numexpr has no unsigned types
            v = v.astype(np.int64)
        elif v.dtype.kind == "i" and v.dtype.itemsize < 4:
            v = v.astype(np.int32)
        elif v.dtype.kind == "U":
            v = np.char.encode(v, "utf-8")
        local[name] = v
    try:
        mask = ne.evaluate(cut, local_dict=local, global_dict={})
    except KeyError as e:
        raise KeyError(
            f"cut {cut!r}: unknown name {e.args[0]!r} for {table_name}; the columns are: {', '.join(table)}"
        ) from None
    except (SyntaxError, TypeError, ValueError, NotImplementedError) as e:
        raise ValueError(f"cut {cut!r} on {table_name}: {e}") from None
    mask = np.asarray(mask)
    if mask.dtype != np.bool_:
        raise ValueError(f"cut {cut!r} on {table_name} must give True/False per row, not {mask.dtype}")
    if mask.ndim == 0:
        mask = np.full(n, bool(mask))
    return mask


def apply(
    table_name: str,
    table: Table,
    columns: Optional[Sequence[str]] = None,
    filter_name: FilterName = None,
    cut: Optional[str] = None,
    keep: Sequence[str] = (),
) -> Table:
    """``table`` with the rows where ``cut`` holds and the columns selected; the columns
    in ``keep`` are always there (at the end unless selected)."""
    names = selected_columns(table_name, list(table), columns, filter_name)
    if names is not None:
        names = names + [k for k in keep if k in table and k not in names]
    if cut is None:
        return table if names is None else {c: table[c] for c in names}
    mask = cut_mask(table_name, table, cut)
    return {c: table[c][mask] for c in (list(table) if names is None else names)}
