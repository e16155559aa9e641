"""The described schema: every column of every table with its dtype, unit and meaning.

One registry: the Rust ``table!`` definitions (src/columns.rs), whose field doc comments
read ``[unit] meaning``, exported by ``_native.schema()``. The ``errors`` table is built
here from the problem list, and a few columns are added outside the Rust tables
(``file_index`` by the multi-file functions, ``module_label`` and ``datetime`` in pandas
output): they are described here, in the same form.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any, Dict, List, NamedTuple, Optional, Tuple

import numpy as np

from . import _native

#: NumPy dtypes of the Rust column types.
_DTYPES = {
    "bool": "bool",
    "u8": "uint8",
    "u16": "uint16",
    "u32": "uint32",
    "u64": "uint64",
    "i8": "int8",
    "i16": "int16",
    "i32": "int32",
    "i64": "int64",
    "f32": "float32",
    "f64": "float64",
}
#: Columns with more than one value per row: their inner shape.
_SHAPES = {("trd_raw", "adc"): (448,), ("events", "gps_values"): (7,)}
_UNIT = re.compile(r"^\s*\[([^\]]*)\]\s*")


class Column(NamedTuple):
    """One column: ``name``, NumPy ``dtype`` (a string), inner ``shape`` (``()`` for one
    value per row), ``unit`` (``""`` for none) and ``meaning``; ``where`` says where it
    appears when not in every result (``"pandas"``, ``"multi-file"``)."""

    name: str
    dtype: str
    shape: Tuple[int, ...]
    unit: str
    meaning: str
    where: str = ""


def _parse(doc: str) -> Tuple[str, str]:
    doc = " ".join(doc.split())
    m = _UNIT.match(doc)
    if m:
        return m.group(1).strip(), doc[m.end() :].strip()
    return "", doc


_ERRORS = [
    Column("offset", "uint64", (), "B", "byte offset of the problem in the file"),
    Column("event_index", "int64", (), "", "row in events() of the event it is in (-1 outside events)"),
    Column("kind", "str", (), "", "the kind of problem, an API name (e.g. crc_mismatch)"),
    Column("detail", "str", (), "", "what was found and what was expected"),
]
_FILE_INDEX = Column(
    "file_index", "uint32", (), "", "position of the file in the list of inputs", "multi-file"
)
_PANDAS = {
    "trd_hits": [Column("module_label", "category", (), "", "label of the module, e.g. 5-7", "pandas")],
    "events": [Column("datetime", "datetime64[ns, UTC]", (), "", "unix_time as a UTC instant", "pandas")],
}


@lru_cache(maxsize=1)
def registry() -> Dict[str, Tuple[str, List[Column]]]:
    """``{table: (description, columns)}`` for every table, in the File's order."""
    out: Dict[str, Tuple[str, List[Column]]] = {}
    for table, doc, columns in _native.schema():
        cols = []
        for name, rust_type, cdoc in columns:
            unit, meaning = _parse(cdoc)
            cols.append(Column(name, _DTYPES[rust_type], _SHAPES.get((table, name), ()), unit, meaning))
        out[table] = (" ".join(doc.split()), cols)
    out["errors"] = ("One row per problem found in the file, sorted by byte offset.", list(_ERRORS))
    return out


def tables() -> Tuple[str, ...]:
    """The table names."""
    return tuple(registry())


def columns(table: str, *, extras: bool = False) -> List[Column]:
    """The columns of ``table`` (with ``extras``, also those added by the multi-file
    functions and in pandas output)."""
    reg = registry()
    if table not in reg:
        raise ValueError(f"unknown table {table!r}; the tables are {', '.join(reg)}")
    cols = list(reg[table][1])
    if extras:
        cols += _PANDAS.get(table, []) + [_FILE_INDEX]
    return cols


def empty(table: str) -> Dict[str, np.ndarray]:
    """A table of no rows with ``table``'s columns and dtypes."""
    return {
        c.name: np.empty((0,) + c.shape, dtype=np.dtype("U1") if c.dtype == "str" else np.dtype(c.dtype))
        for c in columns(table)
    }


def schema(table: Optional[str] = None, *, library: str = "np", extras: bool = True) -> Any:
    """The columns of ``table`` as a table (one row per column: ``name``, ``dtype``,
    ``shape``, ``unit``, ``meaning``, ``where``), in ``library``'s type; without a table,
    a dict from every table name to that. ``extras`` adds the columns that only some
    results have (``file_index`` from :func:`ams02.concatenate`/:func:`ams02.iterate`,
    pandas' ``module_label`` and ``datetime``; ``where`` says which).

    >>> ams02.schema("trd_hits", library="pd").set_index("name").loc["amplitude", "unit"]  # doctest: +SKIP
    'ADC/8'
    """
    from ._convert import convert_table

    if table is None:
        return {t: schema(t, library=library, extras=extras) for t in tables()}
    cols = columns(table, extras=extras)
    t = {
        "name": np.asarray([c.name for c in cols], dtype=str),
        "dtype": np.asarray([c.dtype for c in cols], dtype=str),
        "shape": np.asarray([str(c.shape) if c.shape else "" for c in cols], dtype=str),
        "unit": np.asarray([c.unit for c in cols], dtype=str),
        "meaning": np.asarray([c.meaning for c in cols], dtype=str),
        "where": np.asarray([c.where for c in cols], dtype=str),
    }
    return convert_table(t, library)


def doc(table: str) -> str:
    """The description of ``table``."""
    return registry()[table][0] if table in registry() else ""


def column_list(table: str) -> str:
    """The columns of ``table`` as docstring lines (for the table methods' docstrings)."""
    lines = []
    for c in columns(table):
        unit = f" [{c.unit}]" if c.unit else ""
        shape = f" {c.shape}" if c.shape else ""
        lines.append(f"        ``{c.name}`` ({c.dtype}{shape}){unit}: {c.meaning}")
    return "\n".join(lines)
