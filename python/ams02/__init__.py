"""ams02: AMS-02 raw data into columnar NumPy arrays.

Decodes AMS blocks, science events, the JMDC sub-block, detector data groups with their
fragment trees and CRC, TRD straw-tube data mapped to modules, and CCSDS packets, with a
Rust core that memory-maps files and decodes in parallel.

>>> import ams02
>>> info = ams02.simulate("run.dat", 1000)           # doctest: +SKIP
>>> with ams02.open("run.dat") as f:                  # doctest: +SKIP
...     events = f.events()
...     hits = f.trd_hits(library="pd")
"""

from __future__ import annotations

import os
from typing import Any, Dict, Optional, Union

from . import _native, l0, trd
from ._file import AMS_EPOCH_UNIX, File
from ._multi import concatenate, iterate
from ._native import Ams02Error, FormatError
from ._schema import schema
from .parquet import to_parquet

__version__: str = _native.__version__

#: ``events()["layout"]`` codes, by value: 0 "unknown" (no JMDC header), 1 "2007" (JMDC
#: header TYPE 5, FORMAT.md 4.1), 2 "flight" (TYPE 0x10..0x13, FORMAT.md 9.1).
LAYOUTS: tuple = tuple(_native.LAYOUTS)
#: ``fragments()["role"]`` codes, by value (FORMAT.md 4.2: nesting by node role).
ROLES: tuple = tuple(_native.ROLES)

__all__ = [
    "AMS_EPOCH_UNIX",
    "LAYOUTS",
    "ROLES",
    "Ams02Error",
    "File",
    "FormatError",
    "ccsds",
    "concatenate",
    "dask",
    "iterate",
    "l0",
    "open",
    "open_ccsds",
    "schema",
    "simulate",
    "simulate_ccsds",
    "to_parquet",
    "transfer",
    "trd",
]


def open(
    path: Any,
    *,
    byte_order: str = "auto",
    threads: Optional[int] = None,
    mmap: bool = True,
    trd_map: Optional["_native.TrdMap"] = None,
    strict: bool = False,
    dialect: str = "auto",
    storage_options: Optional[Dict[str, Any]] = None,
    cache: Optional[Union[str, "os.PathLike[str]"]] = None,
) -> File:
    """Opens an AMS block file: memory-maps it (or reads it) and checks that it holds AMS
    block data. The blocks are walked when first needed: a first whole-file call
    (``tables``, ``events()``, ``errors()``, ``iterate``, ...) walks and decodes in one
    streaming pass, so that a file not in the page cache is read once, while it decodes;
    ``n_events``, ``blocks()`` or a range of events walk the whole file first.

    Parameters
    ----------
    path:
        The file: a local path (``str`` or ``os.PathLike``), an fsspec URL
        (``"file://..."``, ``"https://..."``, ``"s3://..."``, ``"root://..."`` with
        fsspec-xrootd, ``"simplecache::https://..."``), a bytes-like object or a binary
        file object. Local files and cached copies are memory-mapped; other inputs are
        read once, in large ranges, into memory.
    byte_order:
        ``"auto"`` (decided from the file: block sizes chain from header to header only
        under the right order), ``"little"`` (files written by the AMS DAQ computers) or
        ``"big"`` (data as transmitted).
    threads:
        Decoding threads: None for every core, 1 for serial decoding; at most 4 x the
        cores available (ValueError beyond). Results are the same.
    mmap:
        Memory-map the file (default) or read it into memory (its bytes then count in
        this process's memory). A file that another process truncates or modifies while
        it is open never crashes the process: the next call that reads it raises
        :class:`FormatError` with ``kind == "file_changed"`` (a mapped file's vanished
        pages read as zeros meanwhile, and nothing decoded from them is returned).
    trd_map:
        The TRD map to assign hits to modules (default: the shipped flight map).
    strict:
        Raise :class:`FormatError` at the first problem (with the file, byte offset, block
        or event number and what was expected) instead of listing it in ``errors()``.
    dialect:
        ``"auto"`` (found in the file), ``"seed"`` (FORMAT.md as written) or ``"pc-2009"``
        (the 2009 tracker PC DAQ of FORMAT.md 11.2: JMDC 32-bit fields least significant
        word first, group CRC 0 = not computed). A file read in a dialect has one
        ``dialect`` row in ``errors()``.

    storage_options:
        Options of the URL's fsspec filesystem (credentials, endpoints, ...).
    cache:
        A folder: read a URL through fsspec's ``simplecache`` into it (a second open
        reads the local copy).

    Raises
    ------
    FileNotFoundError, IsADirectoryError, PermissionError
        The file cannot be opened (``filename`` and ``errno`` are set).
    ImportError
        The URL's fsspec implementation is missing (the message names the package).
    FormatError
        The file is not AMS block data (the message names the file and byte offset), for
        example a btdaq LEF raw file whose sizes count words (FORMAT.md 11.1).
    """
    return File(
        path,
        byte_order=byte_order,
        threads=threads,
        mmap=mmap,
        trd_map=trd_map,
        strict=strict,
        dialect=dialect,
        storage_options=storage_options,
        cache=cache,
    )


def simulate(
    path: Union[str, "os.PathLike[str]"],
    n_events: int,
    *,
    seed: int = 0,
    byte_order: str = "little",
    **options: Any,
) -> Dict[str, Any]:
    """Writes a synthetic run that follows FORMAT.md (written in Rust; about 2 KB/event).

    By default the events are in the **flight layout** (FORMAT.md 9), as real AMS-02 data
    since 2011: JMDC headers 0x10..0x13 with level-3 records (``level3_fraction``) and GPS
    records (``gps_fraction``), Unix times from the run ID ``run`` (default 1,400,000,000),
    JINF slave masks, CDP set on the xDRs, UDRs on their A and B sides, and groups
    Huffman-coded as on board (``compressed``: the fraction of groups coded, default all).
    ``layout="2007"`` writes the seed's 2007 layout (JMDC header of TYPE 5 with GPS words
    in ``gps_fraction`` of the events, a Level-3 sub-block in ``level3_fraction``; ``run``
    default 1,305,000,000, the JMDC words 0-1).

    Each event holds one or two groups with correct CRCs: a JINJ whose ports follow the
    port table of FORMAT.md 4.2 (tracker JINF-Ts with TDRs, the two JINF-Us with six UDRs
    each, SDRs, a JINF-R, a JINF-E, a JLV1; TRD UDRs in compressed mode and
    ``raw_fraction``/``mixed_fraction`` raw or mixed), and sometimes a JLV1 node's group.
    Other blocks come between events, once every ``other_block_every`` events on average
    (0: none): TYPE_EXT replies, requests and long blocks in both layouts; in the flight
    layout also the blocks of FORMAT.md 10: calibration bursts (TYPE 6 containers whose
    JMDC header numbers them ``sequence << 16 | total``), configuration (7) and
    housekeeping (8) containers, TYPE-5 blocks that fail the event test, stand-alone
    calibration replies (0x13, 0x14), CCEB (0x1B, nodes 24..31) and TOF slow-control (0x18,
    0x19, nodes 40..47) blocks. In the flight layout ``envelope_fraction`` (default 0.05) of
    the events, and of the slots of other blocks, are written inside envelopes (0x1F0380)
    or fine-time envelopes (0x1F0383, whose microseconds are the event's fine time: they
    are ``time_us`` in ``blocks(nested=True)``), some nested two deep. ``layout="2007"``
    writes no envelope and the same bytes as before they existed. The same seed writes the
    same bytes.

    Returns a summary: path, n_events (events inside envelopes included), n_blocks
    (top-level blocks, the rows of ``blocks()``), bytes, n_trd_hits, n_trd_raw, and what
    was written by the kinds of FORMAT.md 10, counting blocks at every depth:
    n_nested_blocks (blocks inside envelopes: ``blocks(nested=True)`` has n_blocks +
    n_nested_blocks rows), n_events_in_envelopes, n_envelopes, n_fine_time_envelopes,
    n_calibration, n_configuration, n_housekeeping, n_not_event, n_calibration_replies,
    n_cceb, n_tof_slow_control and n_other_blocks.

    Options: run, jmdc_node (0..15), gps_fraction, level3_fraction, second_group_fraction,
    raw_fraction, mixed_fraction, hits_per_udr, other_block_every, layout, compressed,
    envelope_fraction.
    """
    if n_events < 0:
        raise ValueError(f"n_events must not be negative, not {n_events}")
    return dict(
        _native.simulate(os.fspath(path), n_events, seed=seed, byte_order=byte_order, **options)
    )


def __getattr__(name: str) -> Any:
    # The CCSDS layer and the Dask collections are imported on first use. import_module
    # (not "from . import x", which would ask this function for x again) loads them.
    import importlib

    if name in ("ccsds", "open_ccsds", "simulate_ccsds"):
        ccsds = importlib.import_module(f"{__name__}.ccsds")
        return ccsds if name == "ccsds" else getattr(ccsds, name)
    if name in ("dask", "transfer"):
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'ams02' has no attribute {name!r}")
