"""Conversion of column dicts to the libraries physicists use (``library=``)."""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Sequence

import numpy as np

Table = Dict[str, np.ndarray]

LIBRARIES = ("np", "pd", "pa", "ak")

_EXTRAS = {"pd": ("pandas", "pandas"), "pa": ("pyarrow", "arrow"), "ak": ("awkward", "awkward")}


def check_library(library: str) -> str:
    """Returns ``library`` if it is one of ``"np"``, ``"pd"``, ``"pa"``, ``"ak"``."""
    if library not in LIBRARIES:
        raise ValueError(f"library must be one of {', '.join(map(repr, LIBRARIES))}, not {library!r}")
    return library


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
    fixed-size list column. Buffers are shared with NumPy where the library allows. With
    ``module_labels`` and a ``module`` column, pandas output gains ``module_label``, a
    categorical of the module labels (missing where ``module`` is -1).
    """
    check_library(library)
    if library == "np":
        return dict(table)
    if library == "pd":
        pd = require("pd")
        data = {}
        for k, v in table.items():
            data[k] = list(v) if v.ndim > 1 else v
        df = pd.DataFrame(data, copy=False)
        if module_labels is not None and "module" in table:
            df["module_label"] = pd.Categorical.from_codes(
                table["module"].astype(np.int64), categories=list(module_labels)
            )
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
