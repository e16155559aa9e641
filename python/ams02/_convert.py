"""Conversion of column dicts to the libraries physicists use (``library=``)."""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Sequence

import numpy as np

Table = Dict[str, np.ndarray]

LIBRARIES = ("np", "pd", "pa", "ak")

#: Other names of the libraries (uproot's spellings), each to its short name.
ALIASES = {
    "numpy": "np",
    "pandas": "pd",
    "pyarrow": "pa",
    "arrow": "pa",
    "awkward": "ak",
}

_EXTRAS = {"pd": ("pandas", "pandas"), "pa": ("pyarrow", "arrow"), "ak": ("awkward", "awkward")}


def check_library(library: str) -> str:
    """The short name of ``library``: one of ``"np"``, ``"pd"``, ``"pa"``, ``"ak"``, or an
    alias ``"numpy"``, ``"pandas"``, ``"pyarrow"`` (or ``"arrow"``), ``"awkward"``."""
    if isinstance(library, str):
        short = ALIASES.get(library.lower(), library.lower())
        if short in LIBRARIES:
            return short
    raise ValueError(
        f"library must be one of {', '.join(map(repr, LIBRARIES))} "
        f"(or {', '.join(map(repr, ALIASES))}), not {library!r}"
    )


def require(library: str) -> Any:
    """Imports the module behind ``library`` or raises an ImportError naming the extra."""
    module, extra = _EXTRAS[library]
    try:
        return __import__(module)
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError(
            f"library={library!r} needs {module}: pip install 'ams02[{extra}]'"
        ) from e


def select(table_name: str, table: Table, columns: Optional[Sequence[str]]) -> Table:
    """Keeps ``columns`` of ``table`` (all when None), raising KeyError for unknown names."""
    if columns is None:
        return table
    if isinstance(columns, str):
        columns = [columns]
    unknown = [c for c in columns if c not in table]
    if unknown:
        raise KeyError(
            f"unknown column(s) {', '.join(map(repr, unknown))} for {table_name}; "
            f"the columns are: {', '.join(table)}"
        )
    return {c: table[c] for c in columns}


def convert_table(
    table: Mapping[str, np.ndarray], library: str, module_labels: Optional[Sequence[str]] = None
) -> Any:
    """Converts a dict of equal-length arrays into ``library``'s table type.

    ``"np"`` returns the dict itself; ``"pd"`` a DataFrame; ``"pa"`` a pyarrow Table;
    ``"ak"`` an awkward array of records. A 2-D column (``trd_raw``'s ``adc``) becomes a
    fixed-size list column (in pandas, an Arrow ``fixed_size_list`` column: one buffer,
    not a Python list of arrays). Buffers are shared with NumPy where the library allows.
    With ``module_labels`` and a ``module`` column, pandas output gains ``module_label``, a
    categorical of the module labels (missing where ``module`` is -1). Pandas output of a
    table with ``unix_time`` gains ``datetime``, the same instant as ``datetime64[ns, UTC]``
    (NaT where ``unix_time`` is NaN).
    """
    library = check_library(library)
    if library == "np":
        return dict(table)
    if library == "pd":
        pd = require("pd")
        data: Dict[str, Any] = {}
        for k, v in table.items():
            data[k] = _pandas_nested(pd, v) if v.ndim > 1 else v
        df = pd.DataFrame(data, copy=False)
        if module_labels is not None and "module" in table:
            df["module_label"] = pd.Categorical.from_codes(
                table["module"].astype(np.int64), categories=list(module_labels)
            )
        if "unix_time" in table and table["unix_time"].ndim == 1:
            df["datetime"] = unix_to_datetime(pd, table["unix_time"])
        return df
    if library == "pa":
        pa = require("pa")
        arrays = []
        for v in table.values():
            if v.ndim > 1:
                arrays.append(pa.FixedSizeListArray.from_arrays(pa.array(v.reshape(-1)), v.shape[1]))
            elif v.dtype.kind == "U":
                arrays.append(pa.array(v.tolist(), type=pa.string()))
            else:
                arrays.append(pa.array(v))
        return pa.Table.from_arrays(arrays, names=list(table))
    ak = require("ak")
    return ak.zip({k: v for k, v in table.items()}, depth_limit=1)


def unix_to_datetime(pd: Any, unix_time: np.ndarray) -> Any:
    """Unix seconds (float, NaN for none) as ``datetime64[ns, UTC]`` values (NaT for NaN)."""
    return pd.to_datetime(np.asarray(unix_time, dtype=np.float64), unit="s", utc=True).array


def _pandas_nested(pd: Any, v: np.ndarray) -> Any:
    """A 2-D column as a pandas column: an Arrow fixed-size list (``pd.ArrowDtype``),
    which keeps one flat buffer; a list of row arrays where pyarrow is missing."""
    try:
        pa = __import__("pyarrow")
    except ImportError:  # pragma: no cover - depends on the environment
        return list(v)
    flat = pa.array(np.ascontiguousarray(v).reshape(-1))
    arr = pa.FixedSizeListArray.from_arrays(flat, v.shape[1])
    return pd.arrays.ArrowExtensionArray(arr)
