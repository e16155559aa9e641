"""``ams02.File``: an AMS block file, memory-mapped and indexed, with columnar tables."""

from __future__ import annotations

import os
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np

from . import _native
from . import _selection
from ._convert import Table, check_library, convert_table, require
from ._handle import NativeHandle
from ._selection import FilterName
from ._source import Input, open_native

PathLike = Union[str, "os.PathLike[str]"]

#: The AMS time epoch (1980-01-06 00:00:00 UTC) in Unix seconds.
AMS_EPOCH_UNIX = 315964800


class File(NativeHandle["_native.RawFile"]):
    """An AMS block file (FORMAT.md sections 1-6), memory-mapped and indexed.

    Open it with :func:`ams02.open`. Every table method returns one row per item in file
    order, as a dict of NumPy arrays (``library="np"``), a pandas DataFrame (``"pd"``), a
    pyarrow Table (``"pa"``) or an awkward array (``"ak"``). Nothing is decoded per row
    in Python: the Rust core decodes in parallel and hands the arrays over without a copy.

    With ``strict=True`` the first problem met (when opening, or in a table method's
    decoding) raises :class:`ams02.FormatError` naming the file, byte offset, block or
    event, and what was expected; by default (lenient) everything recoverable is decoded
    and every problem is a row of :meth:`errors`.

    Use it as a context manager to release the memory map promptly::

        with ams02.open("run.dat") as f:
            ev = f.events(["run", "event", "unix_time"])
    """

    def __init__(
        self,
        path: Input,
        *,
        byte_order: str = "auto",
        threads: Optional[int] = None,
        mmap: bool = True,
        trd_map: Optional["_native.TrdMap"] = None,
        strict: bool = False,
        dialect: str = "auto",
        storage_options: Optional[Dict[str, Any]] = None,
        cache: Optional[PathLike] = None,
    ) -> None:
        if not isinstance(byte_order, str):
            raise TypeError(f"byte_order must be a str, not {type(byte_order).__name__}")
        if threads is not None and (not isinstance(threads, int) or isinstance(threads, bool)):
            raise TypeError(f"threads must be None or an int, not {threads!r}")
        if byte_order not in ("auto", "little", "big"):
            raise ValueError(f"byte_order must be 'auto', 'little' or 'big', not {byte_order!r}")
        if not isinstance(dialect, str) or dialect not in ("auto", "seed", "pc-2009"):
            raise ValueError(f"dialect must be 'auto', 'seed' or 'pc-2009', not {dialect!r}")
        if trd_map is not None and not isinstance(trd_map, _native.TrdMap):
            raise TypeError(f"trd_map must be an ams02.trd.TrdMap, not {type(trd_map).__name__}")
        self._raw: Optional[_native.RawFile] = None
        self._path = ""
        raw, self._path = open_native(
            path,
            byte_order=byte_order,
            threads=threads,
            mmap=mmap,
            trd_map=trd_map,
            strict=bool(strict),
            dialect=dialect,
            storage_options=storage_options,
            cache=cache,
        )
        self._raw = raw

    @classmethod
    def _from_native(cls, raw: "_native.RawFile") -> "File":
        """Wraps a native file made elsewhere (e.g. a stream reassembled from CCSDS packets)."""
        self = cls.__new__(cls)
        self._path = raw.name
        self._raw = raw
        return self

    # -- properties ---------------------------------------------------------------------
    @property
    def byte_order(self) -> str:
        """``"little"`` or ``"big"``: the byte order of the 16-bit words on disk."""
        return self.raw.byte_order

    @property
    def n_events(self) -> int:
        """Number of science events (known from the index, without decoding)."""
        return self.raw.n_events

    @property
    def n_blocks(self) -> int:
        """Number of top-level blocks."""
        return self.raw.n_blocks

    @property
    def size(self) -> int:
        """Size of the data in bytes."""
        return self.raw.size

    @property
    def strict(self) -> bool:
        """Whether the first problem met raises :class:`ams02.FormatError`."""
        return self.raw.strict

    @property
    def threads(self) -> int:
        """Decoding threads (0 = all cores)."""
        return self.raw.threads

    @property
    def dialect(self) -> str:
        """The dialect the events are read in (FORMAT.md 11.2): ``"seed"`` (FORMAT.md as
        written) or ``"pc-2009"`` (the 2009 tracker PC DAQ, found by ``dialect="auto"``)."""
        return self.raw.dialect

    @property
    def trd_map(self) -> "_native.TrdMap":
        """The TRD map used to assign hits to modules."""
        return self.raw.trd_map

    # -- tables -------------------------------------------------------------------------
    def blocks(
        self,
        columns: Optional[Sequence[str]] = None,
        *,
        library: str = "np",
        nested: bool = False,
        filter_name: FilterName = None,
        cut: Optional[str] = None,
    ) -> Any:
        """One row per top-level block: offset, size, long, rr, rw, node, type, type_ext,
        data_type, status, tag, time (0 for requests).

        With ``nested=True`` the blocks inside envelopes (data types 0x1F0380 and the
        fine-time envelope 0x1F0383, FORMAT.md 10) are rows too, each right after its
        envelope, with three more columns: ``depth`` (0 at top level), ``envelope`` (the
        row of the enclosing envelope in this table, -1 at top level) and ``time_us`` (the
        fine-time envelope's microseconds on its inner block's row, 0 elsewhere). ``columns``, ``filter_name``, ``cut`` and
        ``library`` as in :meth:`events`."""
        library = check_library(library)
        _selection.check_cut(cut)
        table = self.raw.blocks_nested() if nested else self.raw.blocks()
        t = _selection.apply("blocks", table, columns, filter_name, cut)
        return convert_table(t, library)

    def lef_raw(
        self,
        columns: Optional[Sequence[str]] = None,
        *,
        library: str = "np",
        filter_name: FilterName = None,
        cut: Optional[str] = None,
    ) -> Any:
        """One row per Layer-0 front-end (LEF) raw event (FORMAT.md 11.1): ``offset`` (of
        the event's own block), ``time`` (Unix seconds, the block TIME), ``time_us`` (the
        enclosing fine-time envelope's microseconds), ``counter`` (8 bits), ``link``, and
        ``adc``, shape (n, 1024) uint16 in channel order (see :func:`ams02.l0.channel_map`).
        Calibrate with :func:`ams02.l0.calibrate`. ``columns``, ``filter_name``, ``cut``
        and ``library`` as in :meth:`events`."""
        library = check_library(library)
        _selection.check_cut(cut)
        t = _selection.apply("lef_raw", self.raw.lef_raw(), columns, filter_name, cut)
        return convert_table(t, library)

    def _decode(
        self,
        table: str,
        columns: Optional[Sequence[str]],
        library: str,
        entry_start: Optional[int],
        entry_stop: Optional[int],
        filter_name: FilterName = None,
        cut: Optional[str] = None,
    ) -> Any:
        return self._decoded([table], columns, library, entry_start, entry_stop, filter_name, cut)[table]

    def _decoded(
        self,
        names: Sequence[str],
        columns: Optional[Sequence[str]],
        library: str,
        entry_start: Optional[int],
        entry_stop: Optional[int],
        filter_name: FilterName = None,
        cut: Optional[str] = None,
    ) -> Dict[str, Any]:
        """The tables ``names`` (distinct) from one decoding pass, ``columns`` of each
        kept, converted to ``library``; ``"errors"`` is :meth:`errors`."""
        library = check_library(library)
        _check_entry(entry_start, "entry_start")
        _check_entry(entry_stop, "entry_stop")
        _selection.check_cut(cut)
        data = self.raw.decode(list(names), entry_start, entry_stop)
        labels = self.trd_map.modules()["label"] if library == "pd" else None
        return {
            n: self.errors(library=library)
            if n == "errors"
            else convert_table(_selection.apply(n, data[n], columns, filter_name, cut), library, labels)
            for n in names
        }

    def events(
        self,
        columns: Optional[Sequence[str]] = None,
        *,
        library: str = "np",
        entry_start: Optional[int] = None,
        entry_stop: Optional[int] = None,
        filter_name: FilterName = None,
        cut: Optional[str] = None,
    ) -> Any:
        """One row per science event (FORMAT.md 4, 9), in either layout.

        Columns: ``offset``, ``jmdc_node`` (the JMDC header's NODE, 0..15), ``tag``,
        ``status``, ``block_time`` (the event block's TIME); ``layout`` (0 unknown, 1 the
        2007 layout, 2 the flight layout: :data:`ams02.LAYOUTS`), ``jmdc_type`` (5 or
        0x10..0x13); ``run``, ``run_tag`` (the AMS run ID: words 2-3 of the header in both
        layouts; in the flight layout ``run`` holds it too), ``run_type`` (flight),
        ``event``, ``time`` (seconds: the JMDC event time in the 2007 layout, the block TIME
        in the flight layout), ``fine_time`` (microseconds); the 2007 header's
        ``jmdc_status``, ``gps``, ``groups``, ``gps_week``, ``gps_second``,
        ``gps_fraction``; the flight GPS record's ``gps_offset``, ``gps_words``, ``gps_n``
        and ``gps_values`` (n, 7); ``n_groups``, ``crc_ok``; ``level3`` with
        ``level3_offset`` and ``level3_words`` (the TYPE-6 sub-block in the 2007 layout,
        the level-3 record in the flight layout); ``jmdc_ok``, ``n_trd_hits`` and
        ``unix_time`` (the time rule of FORMAT.md 3 plus the fine time; NaN without a JMDC
        header).

        ``columns`` (exact names) and ``filter_name`` (wildcards ``"trd_*"``, a regular
        expression ``"/^n_/"``, a list of those or a callable) choose the columns;
        ``cut`` (a numexpr expression on the columns, e.g. ``"(run == 1) & (n_trd_hits >
        3)"``) the rows; ``entry_start``/``entry_stop`` the events (negative values count
        from the end, as in Python and uproot); ``library`` is ``"np"`` (``"numpy"``),
        ``"pd"`` (``"pandas"``), ``"pa"`` (``"pyarrow"``) or ``"ak"`` (``"awkward"``)."""
        return self._decode("events", columns, library, entry_start, entry_stop, filter_name, cut)

    def fragments(
        self,
        columns: Optional[Sequence[str]] = None,
        *,
        library: str = "np",
        entry_start: Optional[int] = None,
        entry_stop: Optional[int] = None,
        filter_name: FilterName = None,
        cut: Optional[str] = None,
    ) -> Any:
        """One row per fragment of every group, depth first (FORMAT.md 4.2, 9.2, 9.3).

        Columns: ``event_index``, ``group``, ``depth`` (0 the group's top node), ``parent``
        (a row of this same table, -1 for a top node), ``slave_id`` and ``node_status``
        (its status word), ``data_offset`` and ``n_words`` (its content), ``role`` (its
        role in the tree, by which it is walked: :data:`ams02.ROLES`), ``port`` (the slave
        ID on its master, -1 for a top node), ``cdp`` (status bit 5, reported, never
        followed), ``jinf_mask`` (a flight-layout JINF's 32-bit slave mask, 0 elsewhere),
        ``compressed`` (the group was Huffman-coded; ``data_offset`` then counts from the
        decoded group's first word) and ``coded_words`` (on a compressed group's top row,
        its coded size in words; the decoded size is ``n_words + 3``).

        ``columns`` (exact names) and ``filter_name`` (wildcards ``"trd_*"``, a regular
        expression ``"/^n_/"``, a list of those or a callable) choose the columns;
        ``cut`` (a numexpr expression on the columns, e.g. ``"(run == 1) & (n_trd_hits >
        3)"``) the rows; ``entry_start``/``entry_stop`` the events (negative values count
        from the end, as in Python and uproot); ``library`` is ``"np"`` (``"numpy"``),
        ``"pd"`` (``"pandas"``), ``"pa"`` (``"pyarrow"``) or ``"ak"`` (``"awkward"``)."""
        return self._decode("fragments", columns, library, entry_start, entry_stop, filter_name, cut)

    def trd_hits(
        self,
        columns: Optional[Sequence[str]] = None,
        *,
        library: str = "np",
        entry_start: Optional[int] = None,
        entry_stop: Optional[int] = None,
        filter_name: FilterName = None,
        cut: Optional[str] = None,
    ) -> Any:
        """One row per compressed-mode TRD hit (FORMAT.md 5), mapped to its module and to
        AMS offline layer/ladder/tube. ``event_index`` is the row in ``events()``;
        ``amplitude`` is int16 (ADC counts x 8; signed in the flight layout).

        ``columns`` (exact names) and ``filter_name`` (wildcards ``"trd_*"``, a regular
        expression ``"/^n_/"``, a list of those or a callable) choose the columns;
        ``cut`` (a numexpr expression on the columns, e.g. ``"(run == 1) & (n_trd_hits >
        3)"``) the rows; ``entry_start``/``entry_stop`` the events (negative values count
        from the end, as in Python and uproot); ``library`` is ``"np"`` (``"numpy"``),
        ``"pd"`` (``"pandas"``), ``"pa"`` (``"pyarrow"``) or ``"ak"`` (``"awkward"``)."""
        return self._decode("trd_hits", columns, library, entry_start, entry_stop, filter_name, cut)

    def trd_raw(
        self,
        columns: Optional[Sequence[str]] = None,
        *,
        library: str = "np",
        entry_start: Optional[int] = None,
        entry_stop: Optional[int] = None,
        filter_name: FilterName = None,
        cut: Optional[str] = None,
    ) -> Any:
        """One row per raw or mixed UDR read-out; ``adc`` has shape (n, 448) in channel
        order ``ufe * 64 + ch``.

        ``columns`` (exact names) and ``filter_name`` (wildcards ``"trd_*"``, a regular
        expression ``"/^n_/"``, a list of those or a callable) choose the columns;
        ``cut`` (a numexpr expression on the columns, e.g. ``"(run == 1) & (n_trd_hits >
        3)"``) the rows; ``entry_start``/``entry_stop`` the events (negative values count
        from the end, as in Python and uproot); ``library`` is ``"np"`` (``"numpy"``),
        ``"pd"`` (``"pandas"``), ``"pa"`` (``"pyarrow"``) or ``"ak"`` (``"awkward"``)."""
        return self._decode("trd_raw", columns, library, entry_start, entry_stop, filter_name, cut)

    def tables(
        self,
        names: Union[str, Sequence[str]] = ("events", "trd_hits"),
        *,
        library: str = "np",
        entry_start: Optional[int] = None,
        entry_stop: Optional[int] = None,
    ) -> Dict[str, Any]:
        """Several tables from one pass over the file: a dict from each name in ``names``
        (``"events"``, ``"fragments"``, ``"trd_hits"``, ``"trd_raw"``, ``"errors"``) to
        the table its method returns.

        Each table method reads the file anew; asking for several tables here reads it
        once, which is about twice as fast for ``events`` and ``trd_hits`` (see
        ``benchmarks/README.md``). With ``"errors"`` the pass runs every check, and
        ``errors`` is :meth:`errors` (the whole file's problems, found by that same pass
        when the range is the whole file)::

            t = f.tables(["events", "trd_hits"], library="pd")
            t["trd_hits"].groupby("module").amplitude.sum()
        """
        wanted = [names] if isinstance(names, str) else list(names)
        if not all(isinstance(n, str) for n in wanted):
            raise TypeError(f"names must be a table name or a sequence of them, not {names!r}")
        return self._decoded(list(dict.fromkeys(wanted)), None, library, entry_start, entry_stop)

    def errors(self, *, library: str = "np") -> Any:
        """One row per problem found in the file, sorted by byte offset: offset,
        event_index (-1 outside events), kind, detail. Decodes the whole file once."""
        check_library(library)
        e = self.raw.errors()
        table: Table = {
            "offset": e["offset"],
            "event_index": e["event_index"],
            "kind": np.asarray(e["kind"], dtype=str),
            "detail": np.asarray(e["detail"], dtype=str),
        }
        return convert_table(table, library)

    def skipped(self, *, library: str = "np") -> Any:
        """Byte ranges ``[start, end)`` not covered by any block (damaged or junk data),
        in ``library``'s table type."""
        library = check_library(library)
        start, end = self.raw.skipped()
        return convert_table({"start": start, "end": end}, library)

    def coverage(self, *, library: str = "np") -> Any:
        """The byte ranges ``[start, end)`` of the file in order, each ``kind`` "block" or
        "skipped": together they cover every byte exactly once, and each skipped range has
        a row in :meth:`errors` at its start saying why."""
        library = check_library(library)
        start, end, is_block = self.raw.coverage()
        kind = np.where(is_block, "block", "skipped")
        return convert_table({"start": start, "end": end, "kind": kind}, library)

    def summary(self) -> Dict[str, Any]:
        """The file in one dict, from one decoding pass (the events with every check): the
        one summary that :meth:`validate`, ``ams02 info`` and the transfer's inspection of
        each copy use.

        Keys: ``path``, ``ok`` (no problem at all), ``bytes``, ``byte_order``, ``blocks``,
        ``events``, ``runs`` (sorted run numbers of the events whose JMDC sub-block is
        valid), ``time_min``/``time_max`` (first and last ``unix_time`` of those events,
        Unix seconds, None without any), ``trd_hits``, ``bad_crc_events``,
        ``bytes_in_blocks``, ``bytes_skipped``, ``skipped_ranges``, ``errors`` (number of
        problems), ``error_kinds`` (problems by kind) and, where the core reports event
        layouts, ``layouts``. Computed once per open file.
        """
        cached = getattr(self, "_summary", None)
        if cached is not None and cached[0] is self._raw:
            return dict(cached[1])
        ev = self.raw.decode(["events", "errors"])["events"]
        errors = self.raw.errors()  # found by the pass above
        start, end, is_block = self.raw.coverage()
        lengths = (end - start).astype(np.int64)
        good = ev["jmdc_ok"].astype(bool)
        t = ev["unix_time"][good]
        t = t[np.isfinite(t)]
        kinds: Dict[str, int] = {}
        for k in errors["kind"]:
            kinds[str(k)] = kinds.get(str(k), 0) + 1
        out = {
            "path": self._path,
            "ok": not kinds,
            "bytes": self.size,
            "byte_order": self.byte_order,
            "blocks": self.n_blocks,
            "events": self.n_events,
            "runs": [int(r) for r in np.unique(ev["run"][good])],
            "time_min": float(t.min()) if len(t) else None,
            "time_max": float(t.max()) if len(t) else None,
            "trd_hits": int(ev["n_trd_hits"].sum()),
            "bad_crc_events": int((~ev["crc_ok"]).sum()),
            "bytes_in_blocks": int(lengths[is_block].sum()),
            "bytes_skipped": int(lengths[~is_block].sum()),
            "skipped_ranges": int((~is_block).sum()),
            "errors": len(errors["kind"]),
            "error_kinds": kinds,
        }
        if "layout" in ev:  # the layouts of the events, where the core reports them
            names = tuple(_native.LAYOUTS)
            out["layouts"] = [names[v] if v < len(names) else str(v) for v in np.unique(ev["layout"]).tolist()]
        self._summary = (self._raw, out)
        return dict(out)

    def validate(self) -> Dict[str, Any]:
        """A summary of the file's health: :meth:`summary` (sizes, bytes in blocks and
        skipped, events, runs, time range, bad CRCs, the number of problems by kind).
        ``ok`` is True when there is no problem."""
        return self.summary()

    def words(self, offset: int, n: int) -> np.ndarray:
        """``n`` 16-bit words at byte ``offset``, in the file's byte order resolved."""
        if offset < 0 or n < 0:
            raise ValueError(f"offset and n must not be negative (got {offset}, {n})")
        return self.raw.words(offset, n)

    def arrays(
        self,
        *,
        library: str = "ak",
        entry_start: Optional[int] = None,
        entry_stop: Optional[int] = None,
    ) -> Any:
        """Events with their TRD hits nested: an awkward array of records with every
        ``events()`` field and a ``trd_hits`` list of records, built from flat columns
        and offsets (no Python per event)."""
        if library != "ak":
            raise ValueError(f"arrays() returns awkward arrays: library must be 'ak', not {library!r}")
        _check_entry(entry_start, "entry_start")
        _check_entry(entry_stop, "entry_stop")
        ak = require("ak")
        t = self.raw.decode(["events", "trd_hits"], entry_start, entry_stop)
        return nest_hits(ak, t["events"], t["trd_hits"])

    # -- the schema -------------------------------------------------------------------
    def keys(self, table: str = "events", *, filter_name: FilterName = None) -> List[str]:
        """The column names of ``table`` (as uproot's ``keys``; any table of
        :func:`ams02.schema`), those ``filter_name`` keeps if given (wildcards,
        ``/regex/``, lists, callables)."""
        from . import _schema

        return _schema.keys(table, filter_name)

    def show(self, table: str = "events", *, stream: Any = None) -> None:
        """Prints the columns of ``table`` (any table of :func:`ams02.schema`): name,
        dtype, unit and meaning (as uproot's ``show``)."""
        from . import _schema

        _schema.show(table, stream)

    # (raw, path, close, closed and the context manager come from NativeHandle)
    def __repr__(self) -> str:
        if self._raw is None:
            return f"<ams02.File {self._path!r} (closed)>"
        return (
            f"<ams02.File {self._path!r}: {self.size} bytes, {self.byte_order}-endian, "
            f"{self.n_blocks} blocks, {self.n_events} events>"
        )

    def _repr_html_(self) -> str:
        """Jupyter's view: size, byte order, blocks, events, layouts, runs, time range and
        problems (from :meth:`summary`, which decodes the file once)."""
        import html
        import time

        if self._raw is None:
            return f"<p><b>ams02.File</b> {html.escape(self._path)} (closed)</p>"
        s = self.summary()

        def when(t: Optional[float]) -> str:
            return "-" if t is None else time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(t))

        runs = ", ".join(map(str, s["runs"][:12])) + (" ..." if len(s["runs"]) > 12 else "") or "-"
        kinds = ", ".join(f"{k}: {n}" for k, n in sorted(s["error_kinds"].items())) or "none"
        rows = [
            ("size", f"{s['bytes']:,} bytes"),
            ("byte order", f"{s['byte_order']}-endian words"),
            ("blocks", f"{s['blocks']:,}"),
            ("events", f"{s['events']:,}"),
            ("layouts", ", ".join(s.get("layouts", [])) or "-"),
            ("runs", runs),
            ("time", f"{when(s['time_min'])} .. {when(s['time_max'])}"),
            ("TRD hits", f"{s['trd_hits']:,}"),
            ("problems", f"{s['errors']:,} ({kinds})"),
        ]
        body = "".join(
            f"<tr><th style='text-align:left'>{html.escape(k)}</th><td style='text-align:left'>"
            f"{html.escape(v)}</td></tr>"
            for k, v in rows
        )
        return f"<p><b>ams02.File</b> <code>{html.escape(self._path)}</code></p><table>{body}</table>"


def _check_entry(value: Optional[int], name: str) -> None:
    """Entry numbers are ints; negative ones count from the end (as in uproot)."""
    if value is None:
        return
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
        raise TypeError(f"{name} must be None or an int, not {value!r}")


def nest_hits(ak: Any, events: Dict[str, np.ndarray], hits: Dict[str, np.ndarray]) -> Any:
    """Builds an awkward array of events with a nested ``trd_hits`` list from flat columns."""
    counts = events["n_trd_hits"].astype(np.int64)
    offsets = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    hit_fields = [k for k in hits if k != "event_index"]
    hit_records = ak.contents.RecordArray(
        [ak.contents.NumpyArray(hits[k]) for k in hit_fields], hit_fields
    )
    nested = ak.contents.ListOffsetArray(ak.index.Index64(offsets), hit_records)
    fields = list(events)
    contents = [ak.contents.NumpyArray(events[k]) for k in fields]
    return ak.Array(ak.contents.RecordArray(contents + [nested], fields + ["trd_hits"], length=len(counts)))


def _list_columns() -> None:
    """Appends the columns of each table (from the schema registry) to the docstrings of
    the table methods."""
    from . import _schema

    _schema.document("File", File)


_list_columns()
