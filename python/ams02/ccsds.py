"""CCSDS packet files from the ISS interface (FORMAT.md section 7; the AMS-02 ICD).

>>> import ams02
>>> info = ams02.simulate_ccsds("run.ccsds", 1000, drop=[5])       # doctest: +SKIP
>>> with ams02.ccsds.open("run.ccsds") as pf:                       # doctest: +SKIP
...     hdr = pf.packets(["apid", "seq_count", "seq_gap"], apid=976)
...     summary = pf.apids(library="pd")
>>> with ams02.open_ccsds("run.ccsds") as f:                        # doctest: +SKIP
...     events = f.events()

A packet file is memory-mapped and walked once, in Rust, when it is opened. Bad bytes
(a version other than 0, a length that runs past the end of the file, garbage between
packets, a truncated last packet) are rows of :meth:`PacketFile.errors` with their byte
offsets; the walk resumes at the next plausible packet: a valid header (version 0, an
AMS-02 APID or one given in ``apids``, a length within the HRDL/LRDL bounds of its APID)
whose length lands on another valid header or on the end of the file.

Conventions where FORMAT.md and the ICD are silent:

- Health-and-status packets are those of one APID, ``health_apid`` (977 by default; the
  ICD marks the H&S APID "don't care"). Such a packet without the H&S layout (subset ID
  other than 308, no secondary header, fewer than 16 user-data words, more than 1280
  words in all) is an ``health_subset`` row of ``errors()``, never decoded.
- Command packets are those of APID 124 or with the check word flag set; the checksum
  word is the packet's last word (ICD figure 3.2.3.1-1).
"""

from __future__ import annotations

import os
import pathlib
from typing import Any, Dict, Iterable, List, Optional, Sequence, Union

import numpy as np

from . import _native, _schema
from ._convert import Table, check_library, convert_table
from ._file import File
from ._handle import NativeHandle
from ._selection import FilterName

PathLike = Union[str, "os.PathLike[str]"]

#: AMS-02 science data (Ku-band downlink, HRDL).
SCIENCE_APID = 976
#: AMS-02 housekeeping data (Ku-band downlink, HRDL); the default health-and-status APID.
HOUSEKEEPING_APID = 977
#: AMS-02 payload-to-payload data.
PAYLOAD_TO_PAYLOAD_APIDS = (980, 981)
#: Uplink commands.
COMMAND_APID = 124
#: Payload MDM to AMS-02.
PAYLOAD_MDM_APID = 1024
#: Broadcast ancillary data.
BROADCAST_APID = 2000
#: The H&S subset ID of AMS-02.
HEALTH_SUBSET_ID = 308

#: The columns of :meth:`PacketFile.packets`, in order.
PACKET_COLUMNS = tuple(_native.PacketFile.packet_columns())


def _apid(apid: int, name: str) -> int:
    """``apid`` as an int, checked to be an APID (0..2047)."""
    if isinstance(apid, bool) or not isinstance(apid, (int, np.integer)):
        raise TypeError(f"{name} must be an int, not {type(apid).__name__}")
    if not 0 <= int(apid) <= 2047:
        raise ValueError(f"{name} must be an APID (0..2047), not {apid}")
    return int(apid)


def _check_apid(apid: Optional[int], name: str) -> Optional[int]:
    return None if apid is None else _apid(apid, name)


class PacketFile(NativeHandle["_native.PacketFile"]):
    """A CCSDS packet file, memory-mapped and indexed. Open it with :func:`open`.

    Every table method returns one row per item in file order, as a dict of NumPy arrays
    (``library="np"``), a pandas DataFrame (``"pd"``), a pyarrow Table (``"pa"``) or an
    awkward array (``"ak"``).
    """

    def __init__(
        self,
        path: PathLike,
        *,
        strict: bool = False,
        apids: Optional[Iterable[int]] = None,
        health_apid: Optional[int] = HOUSEKEEPING_APID,
        mmap: bool = True,
    ) -> None:
        extra = None if apids is None else [_apid(a, "apids") for a in apids]
        self._path = os.fspath(path)
        self._health_apid = _check_apid(health_apid, "health_apid")
        self._raw: Optional[_native.PacketFile] = _native.PacketFile(
            self._path, strict=bool(strict), apids=extra, health_apid=self._health_apid, mmap=mmap
        )

    # -- properties ---------------------------------------------------------------------
    @property
    def size(self) -> int:
        """Bytes in the file."""
        return self.raw.size

    @property
    def n_packets(self) -> int:
        """Number of packets found."""
        return self.raw.n_packets

    @property
    def health_apid(self) -> Optional[int]:
        """The APID whose packets :meth:`health_status` decodes."""
        return self._health_apid

    def __len__(self) -> int:
        return self.n_packets

    # -- tables -------------------------------------------------------------------------
    def packets(
        self,
        columns: Optional[Sequence[str]] = None,
        *,
        library: str = "np",
        apid: Optional[int] = None,
    ) -> Any:
        """One row per packet (of ``apid`` only, when given).

        Columns: offset (uint64), version, type (uint8), sec_hdr (bool), apid (uint16),
        seq_flags (uint8), seq_count (uint16), length (uint16, the raw field: bytes after
        the primary header minus 1), coarse_time (uint32), fine_time, time_id (uint8),
        check_word, zoe (bool), packet_type (uint8), packet_id1, packet_id2 (uint16),
        data_offset (uint64), data_length (uint32), seq_gap (uint16: packets missing
        before this one in its APID's sequence, modulo 16384; 0 for an APID's first
        packet), time_s (float64: coarse + fine/256). Secondary-header fields are 0 when
        the flag is clear.
        """
        check_library(library)
        if isinstance(columns, str):
            columns = [columns]
        apid = _check_apid(apid, "apid")
        table = self.raw.packets(None if columns is None else list(columns), apid)
        return convert_table(table, library)

    def apids(self, *, library: str = "np") -> Any:
        """One row per APID, ascending: apid, count, first_seq, last_seq, missing (packets
        missing from the sequence, counted across the 14-bit wrap), bytes (of whole
        packets)."""
        check_library(library)
        return convert_table(self.raw.apids(), library)

    def split(self, out_dir: PathLike) -> Dict[int, pathlib.Path]:
        """Writes the packets of each APID, in file order, to
        ``out_dir/<stem>.apid<APID>.ccsds``; returns ``{apid: path}``."""
        files = self.raw.split(os.fspath(out_dir))
        return {int(a): pathlib.Path(p) for a, p in files.items()}

    def health_status(self, *, library: str = "np") -> Any:
        """One row per health-and-status packet (subset 308) of :attr:`health_apid`.

        Columns: offset (uint64), seq_count (uint16), time_s (float64), subset_id,
        service_request_id, service_request_data, caution_warning, cycle_counter,
        payload_message (uint16), chd (uint16, shape (n, 10): critical health data words
        1..10). Packets of that APID without the H&S layout are not rows: they are
        ``health_subset`` rows of :meth:`errors`.
        """
        check_library(library)
        if self._health_apid is None:
            raise ValueError(f"{self._path}: opened with health_apid=None: no H&S APID")
        table, _problems = self.raw.health_status(self._health_apid)
        return convert_table(table, library)

    def verify_commands(self, *, library: str = "np") -> Any:
        """One row per command packet (APID 124 or check word flag set): offset, apid,
        seq_count, checksum (the packet's last word), computed (the sum of its other
        words modulo 65536), ok. Failures are also ``command_checksum`` rows of
        :meth:`errors`."""
        check_library(library)
        return convert_table(self.raw.verify_commands(), library)

    def errors(self, *, library: str = "np") -> Any:
        """One row per problem, sorted by byte offset: offset, event_index (always -1
        here), kind, detail. Kinds: packet_overrun, packet_version, packet_garbage,
        sequence_gap, command_checksum, health_subset."""
        check_library(library)
        e = self.raw.errors()
        table: Table = {
            "offset": e["offset"],
            "event_index": e["event_index"],
            "kind": np.asarray(e["kind"], dtype=str),
            "detail": np.asarray(e["detail"], dtype=str),
        }
        return convert_table(table, library)

    def keys(self, table: str = "packets", *, filter_name: FilterName = None) -> List[str]:
        """The column names of ``table`` (any table of :func:`ams02.schema`; ``packets``
        by default), those ``filter_name`` keeps if given (as :meth:`ams02.File.keys`)."""
        return _schema.keys(table, filter_name)

    def show(self, table: str = "packets", *, stream: Any = None) -> None:
        """Prints the columns of ``table``: name, dtype, unit and meaning (as
        :meth:`ams02.File.show`)."""
        _schema.show(table, stream)

    def science(self, *, apid: int = SCIENCE_APID) -> "CcsdsFile":
        """The AMS block stream reassembled from the packets of ``apid`` (see
        :func:`open_ccsds`)."""
        checked = _apid(apid, "apid")
        raw, stream_map = self.raw.reassemble(checked)
        return CcsdsFile._wrap(raw, stream_map, self._path, checked)

    # (raw, path, close, closed and the context manager come from NativeHandle)
    def __repr__(self) -> str:
        if self._raw is None:
            return f"<ams02.ccsds.PacketFile {self._path!r} (closed)>"
        return f"<ams02.ccsds.PacketFile {self._path!r}: {self.size} bytes, {self.n_packets} packets>"


class CcsdsFile(File):
    """An AMS block stream reassembled from CCSDS science packets: an :class:`ams02.File`
    with the same tables.

    Offsets in ``blocks()``, ``events()`` and the block decoder's ``errors()`` rows are
    byte offsets in the reassembled stream; :meth:`stream_to_file_offset` maps them to
    the packet file. The rows the reassembly adds to ``errors()`` (``stream_gap``, and
    the packet file's own bad-byte rows) carry offsets in the packet file.
    """

    _stream_map: Dict[str, Any]
    _packet_path: str
    _apid: int

    @classmethod
    def _wrap(
        cls, raw: "_native.RawFile", stream_map: Dict[str, Any], packet_path: str, apid: int
    ) -> "CcsdsFile":
        self = cls._from_native(raw)
        assert isinstance(self, CcsdsFile)
        self._stream_map = stream_map
        self._packet_path = packet_path
        self._apid = apid
        return self

    @property
    def packet_path(self) -> str:
        """The packet file the stream came from."""
        return self._packet_path

    @property
    def apid(self) -> int:
        """The APID of the science packets."""
        return self._apid

    @property
    def n_gaps(self) -> int:
        """Sequence gaps met in the science packets."""
        return int(self._stream_map["gaps"])

    @property
    def dropped_bytes(self) -> int:
        """Bytes of science user data dropped around the gaps (the cut blocks)."""
        return int(self._stream_map["dropped_bytes"])

    def stream_map(self, *, library: str = "np") -> Any:
        """Contiguous pieces of the stream: stream_start, file_start, len (uint64), in
        ``library``'s table type."""
        library = check_library(library)
        return convert_table({k: self._stream_map[k] for k in ("stream_start", "file_start", "len")}, library)

    def stream_to_file_offset(self, offsets: Union[int, Sequence[int], np.ndarray]) -> Any:
        """Maps stream byte offsets (e.g. ``events()["offset"]``) to byte offsets in the
        packet file. Raises ValueError for an offset outside the stream."""
        arr = np.asarray(offsets)
        scalar = arr.ndim == 0
        arr = np.atleast_1d(arr)
        if arr.size and int(arr.min()) < 0:
            raise ValueError("stream offsets must not be negative")
        off = arr.astype(np.uint64)
        start = self._stream_map["stream_start"]
        length = self._stream_map["len"]
        file_start = self._stream_map["file_start"]
        if len(start) == 0:
            ok = np.zeros(len(off), dtype=bool)
            i = np.zeros(len(off), dtype=np.int64)
        else:
            i = np.searchsorted(start, off, side="right").astype(np.int64) - 1
            ok = i >= 0
            i = np.where(ok, i, 0)
            ok &= off < start[i] + length[i]
        if not ok.all():
            raise ValueError(f"stream offset {int(off[~ok][0])} is outside the reassembled stream")
        out = file_start[i] + (off - start[i])
        return int(out[0]) if scalar else out

    def __repr__(self) -> str:
        if self._raw is None:
            return f"<ams02.ccsds.CcsdsFile {self._packet_path!r} (closed)>"
        return (
            f"<ams02.ccsds.CcsdsFile {self._packet_path!r} APID {self._apid}: "
            f"{self.size} stream bytes, {self.n_blocks} blocks, {self.n_events} events, "
            f"{self.n_gaps} gaps>"
        )


def open(
    path: PathLike,
    *,
    strict: bool = False,
    apids: Optional[Iterable[int]] = None,
    health_apid: Optional[int] = HOUSEKEEPING_APID,
    mmap: bool = True,
) -> PacketFile:
    """Opens a CCSDS packet file: memory-maps it and walks its packets.

    Parameters
    ----------
    path:
        The file.
    strict:
        Raise :class:`ams02.FormatError` at the first problem (naming the file and byte
        offset) instead of reporting it in :meth:`PacketFile.errors`.
    apids:
        APIDs to accept as valid besides the AMS-02 ones (124, 976, 977, 980, 981, 1024,
        2000), with any length. Other APIDs are read only where the chain of packet
        lengths is intact.
    health_apid:
        The APID of health-and-status packets (default 977); None for none.
    mmap:
        Memory-map the file (default) or read it into memory.
    """
    return PacketFile(path, strict=strict, apids=apids, health_apid=health_apid, mmap=mmap)


def open_ccsds(
    path: PathLike,
    *,
    apid: int = SCIENCE_APID,
    strict: bool = False,
    apids: Optional[Iterable[int]] = None,
    mmap: bool = True,
) -> CcsdsFile:
    """Reassembles the AMS block stream from the science packets of a CCSDS packet file
    and opens it like :func:`ams02.open` (big-endian).

    The user data of consecutive packets of ``apid`` concatenate into the stream
    (FORMAT.md section 7). A sequence gap drops only the block it cuts: its bytes before
    the gap, and the bytes after it up to the next science event start whose size lands
    on another valid block header (or the end of the stream). Each gap is a
    ``stream_gap`` row of ``errors()`` at the packet-file offset of the packet where the
    cut block started, with the packet range in the detail.

    Raises
    ------
    FormatError
        No packet of ``apid`` (or, with ``strict``, any problem in the packet file).
    """
    with PacketFile(path, strict=strict, apids=apids, health_apid=None, mmap=mmap) as pf:
        return pf.science(apid=apid)


def simulate_ccsds(
    path: PathLike,
    n_events: int = 1000,
    *,
    seed: int = 0,
    min_packet: int = 100,
    max_packet: int = 4096,
    housekeeping_every: int = 16,
    commands_every: int = 0,
    drop: Sequence[int] = (),
    drop_fraction: float = 0.0,
    first_seq: int = 0,
    start_time: int = 1_300_000_000,
    block_path: Optional[PathLike] = None,
    duration_s: float = 0.0,
    runs: int = 1,
    run: int = 1_305_000_000,
    chd: str = "counter",
    chd_excursion_every: int = 0,
    chd_excursion_length: int = 3,
    housekeeping_drop: Sequence[int] = (),
) -> Dict[str, Any]:
    """Simulates a run (as :func:`ams02.simulate`, big-endian) and writes it as CCSDS
    packets (written in Rust).

    The block stream is cut into APID 976 packets of ``min_packet..max_packet`` bytes
    (ICD headers: version 0, type 1, secondary header, sequence flags 11, time ID 01);
    one APID 977 health-and-status packet (subset 308, 64 words) follows every
    ``housekeeping_every`` science packets and one APID 124 command (24 words, correct
    checksum) every ``commands_every``. Science packets numbered in ``drop`` (0-based),
    and a random ``drop_fraction`` of them, are left out to make gaps; their sequence
    counts are skipped. With ``block_path``, the block stream is written there too.

    A downlink for the monitor (``ams02 ccsds simulate``): ``duration_s`` spreads the
    packets' coarse times over that many seconds (8 packets a second when 0); ``runs``
    splits the events into that many runs numbered ``run``, ``run + 1``, ...;
    ``chd="nominal"`` writes CHD word ``j`` (1-based) near ``1000 j`` counts (noise of at
    most 50) and, every ``chd_excursion_every`` H&S packets, moves one word 450
    (caution) or 800 (alarm) counts away for ``chd_excursion_length`` packets
    (``chd="counter"``: word ``j`` of packet ``k`` is ``10 k + j - 1``); H&S packets
    numbered in ``housekeeping_drop`` are left out (a gap in APID 977 and in the H&S
    cycle counter).

    Returns a summary: path, n_events, stream_bytes, science_packets (made), dropped
    (packet numbers), dropped_ranges (stream byte ranges of the dropped packets),
    housekeeping_packets, command_packets, file_bytes, housekeeping_dropped, runs (run
    numbers), time_span (coarse times of the first and last packets).
    """
    if n_events < 0:
        raise ValueError(f"n_events must not be negative, not {n_events}")
    return dict(
        _native.simulate_ccsds(
            os.fspath(path),
            n_events,
            seed=seed,
            min_packet=min_packet,
            max_packet=max_packet,
            housekeeping_every=housekeeping_every,
            commands_every=commands_every,
            drop=[int(d) for d in drop],
            drop_fraction=drop_fraction,
            first_seq=first_seq,
            start_time=start_time,
            block_path=None if block_path is None else os.fspath(block_path),
            duration_s=float(duration_s),
            runs=int(runs),
            run=int(run),
            chd=str(chd),
            chd_excursion_every=int(chd_excursion_every),
            chd_excursion_length=int(chd_excursion_length),
            housekeeping_drop=[int(k) for k in housekeeping_drop],
        )
    )


_schema.document("PacketFile", PacketFile)
_schema.document("CcsdsFile", CcsdsFile)

__all__ = [
    "BROADCAST_APID",
    "COMMAND_APID",
    "CcsdsFile",
    "HEALTH_SUBSET_ID",
    "HOUSEKEEPING_APID",
    "PACKET_COLUMNS",
    "PAYLOAD_MDM_APID",
    "PAYLOAD_TO_PAYLOAD_APIDS",
    "PacketFile",
    "SCIENCE_APID",
    "open",
    "open_ccsds",
    "simulate_ccsds",
]
