"""The described schema: every column of every table with its dtype, unit and meaning.

One registry: the Rust ``table!`` and ``schema!`` definitions (src/columns.rs and the
modules of each table), whose doc comments read ``[unit] meaning``, exported by
``_native.schema()``; each table's description starts with the calls that return it
(``File.blocks(nested=True)``, ``PacketFile.errors()``, ``ams02.trd.modules()``, ...).
A few columns are added outside the Rust tables (``file_index`` by the multi-file
functions, ``module_label`` and ``datetime`` in pandas output): they are described here,
in the same form.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from . import _native
from ._selection import FilterName, name_filter

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
    "str": "str",
}
#: Columns with more than one value per row: their inner shape.
_SHAPES = {
    ("trd_raw", "adc"): (448,),
    ("events", "gps_values"): (7,),
    ("lef_raw", "adc"): (1024,),
    ("health_status", "chd"): (10,),
}
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


_FILE_INDEX = Column(
    "file_index", "uint32", (), "", "position of the file in the list of inputs", "multi-file"
)
_MODULE_LABEL = Column(
    "module_label", "category", (), "", "label of the module, e.g. 5-7 (missing for -1)", "pandas"
)
_PANDAS = {
    "trd_hits": [_MODULE_LABEL],
    "trd_channel_map": [_MODULE_LABEL],
    "events": [Column("datetime", "datetime64[ns, UTC]", (), "", "unix_time as a UTC instant", "pandas")],
}
#: A call in a table's description: ``Owner.method(args)``.
_CALL = re.compile(r"\s*`([A-Za-z_][\w.]*)\.(\w+)\(([^)`]*)\)`,?")


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
    return out


def tables() -> Tuple[str, ...]:
    """The table names."""
    return tuple(registry())


def columns(table: str, *, extras: bool = False) -> List[Column]:
    """The columns of ``table`` (with ``extras``, also those added by the multi-file
    functions, for the tables they read, and in pandas output)."""
    reg = registry()
    if table not in reg:
        raise ValueError(f"unknown table {table!r}; the tables are {', '.join(reg)}")
    cols = list(reg[table][1])
    if extras:
        from ._multi import TABLES as MULTI_FILE

        cols += _PANDAS.get(table, []) + ([_FILE_INDEX] if table in MULTI_FILE else [])
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
    a dict from every table name to that. The tables (:func:`tables`) are those of
    :class:`ams02.File` (``blocks``, ``blocks_nested`` for ``blocks(nested=True)``,
    ``events``, ``fragments``, ``trd_hits``, ``trd_raw``, ``errors``, ``lef_raw``,
    ``skipped``, ``coverage``), of :class:`ams02.ccsds.PacketFile` (``packets``,
    ``apids``, ``health_status``, ``verify_commands``; ``errors``) and
    :class:`ams02.ccsds.CcsdsFile` (``stream_map``), and the detector maps
    (``trd_modules``, ``trd_channel_map``, ``trd_module_geometry`` of :mod:`ams02.trd`,
    ``lef_channel_map`` of :mod:`ams02.l0`); :func:`calls` names the calls that return
    each. ``extras`` adds the columns that only some
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


def calls(table: str) -> List[Tuple[str, str, Dict[str, Any]]]:
    """The calls that return ``table``, from the start of its description: ``(owner,
    method, keyword arguments)``, e.g. ``("File", "blocks", {"nested": True})``; the
    owner is a class (``File``, ``PacketFile``, ``CcsdsFile``) or a module
    (``ams02.trd``)."""
    import ast

    text = doc(table)
    out = []
    pos = 0
    while True:
        m = _CALL.match(text, pos)
        if m is None:
            break
        owner, method, args = m.groups()
        call = ast.parse(f"f({args})", mode="eval").body
        assert isinstance(call, ast.Call) and not call.args, text
        out.append((owner, method, {k.arg: ast.literal_eval(k.value) for k in call.keywords if k.arg}))
        pos = m.end()
    return out


def column_list(table: str, *, without: Sequence[str] = (), indent: int = 8) -> str:
    """The columns of ``table`` (but those in ``without``) as docstring lines indented by
    ``indent`` (for the table methods' docstrings)."""
    pad = " " * indent
    lines = []
    for c in columns(table):
        if c.name in without:
            continue
        unit = f" [{c.unit}]" if c.unit else ""
        shape = f" {c.shape}" if c.shape else ""
        lines.append(f"{pad}- ``{c.name}`` ({c.dtype}{shape}){unit}: {c.meaning}")
    return "\n".join(lines)


def document(owner: str, namespace: Any) -> None:
    """Appends to the docstring of each table method of ``namespace`` (a class or module
    named ``owner`` in the registry's calls) the columns it returns: ``Columns:`` for the
    call without arguments, ``With ``nested=True``, also:`` and the further columns for a
    call with keyword arguments. Only what ``namespace`` defines itself is touched (a
    subclass's inherited methods are documented on their class)."""
    own = vars(namespace)
    found: Dict[str, List[Tuple[str, Dict[str, Any]]]] = {}
    for table in tables():
        for o, method, kwargs in calls(table):
            if o == owner and method in own:
                found.setdefault(method, []).append((table, kwargs))
    for method, variants in found.items():
        func = own[method]
        text = (func.__doc__ or "").rstrip()
        # the docstring's own indentation (that of its lines after the first), so that
        # the listing is text, not a code block, once the docstring is dedented
        rest = [ln for ln in text.expandtabs().splitlines()[1:] if ln.strip()]
        n = min((len(ln) - len(ln.lstrip()) for ln in rest), default=8)
        pad = " " * n
        plain = [t for t, kw in variants if not kw]
        if plain:
            text += f"\n\n{pad}Columns:\n\n" + column_list(plain[0], indent=n) + "\n"
        for table, kwargs in variants:
            if kwargs:
                args = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
                base = [c.name for c in columns(plain[0])] if plain else []
                text += (
                    f"\n{pad}With ``{args}``, also:\n\n" + column_list(table, without=base, indent=n) + "\n"
                )
        func.__doc__ = text


def keys(table: str, filter_name: FilterName = None) -> List[str]:
    """The column names of ``table``, those ``filter_name`` keeps if given."""
    names = [c.name for c in columns(table)]
    keep = name_filter(filter_name)
    return names if keep is None else [n for n in names if keep(n)]


def show(table: str, stream: Any = None) -> None:
    """Prints the columns of ``table``: name, dtype, unit and meaning."""
    import sys

    out = sys.stdout if stream is None else stream
    cols = columns(table)
    w = max(len(c.name) for c in cols)
    dw = max(len(c.dtype + (str(c.shape) if c.shape else "")) for c in cols)
    print(f"{table}: {doc(table)}", file=out)
    print(f"{'name':<{w}}  {'dtype':<{dw}}  {'unit':<8}  meaning", file=out)
    print(f"{'-' * w}  {'-' * dw}  {'-' * 8}  {'-' * 7}", file=out)
    for c in cols:
        dt = c.dtype + (str(c.shape) if c.shape else "")
        print(f"{c.name:<{w}}  {dt:<{dw}}  {c.unit:<8}  {c.meaning}", file=out)
