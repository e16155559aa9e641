"""Type stubs of the native module ``ams02._native`` (the Rust core's bindings)."""

from os import PathLike
from typing import Any, Dict, Iterable, List, Optional, Tuple, Union

import numpy as np
from typing_extensions import final

__all__ = ["Ams02Error", "FormatError", "__version__", "ROLES", "LAYOUTS", "RawFile", "simulate", "TrdMap", "flight_map_text", "PacketFile", "simulate_ccsds", "lef_calibrate", "lef_subtract", "lef_channel_map", "StreamDecoder", "BlockStream", "open_chunks", "schema", "join_bytes", "Accumulator"]
__version__: str
#: Names of the ``role`` codes of ``fragments()`` (FORMAT.md 4.2), by code.
ROLES: List[str]
#: Names of the ``layout`` codes of ``events()``: "unknown", "2007", "flight".
LAYOUTS: List[str]

class Ams02Error(Exception):
    """Base class of every ams02 error."""

class FormatError(Ams02Error):
    """The data are not in the expected format (the message names the byte offset).

    Raised for a file that shrank, was modified or could not be read while it was open,
    its instance has ``kind == "file_changed"`` (the ``errors`` row kind of such a file
    skipped by ``on_error="skip"``)."""

@final
class TrdMap:
    """A map from UDR2 links to TRD straw modules."""

    def __new__(cls, text: str) -> "TrdMap": ...
    @staticmethod
    def flight() -> "TrdMap": ...
    @property
    def text(self) -> str: ...
    def modules(self) -> Dict[str, Any]: ...
    def channel_map(self) -> Dict[str, np.ndarray]: ...
    def __len__(self) -> int: ...

def flight_map_text() -> str: ...

@final
class Accumulator:
    """Tables that files are decoded into one after the other (``RawFile.decode_into``)."""

    def __new__(cls, tables: List[str]) -> Accumulator: ...
    @property
    def n_events(self) -> int: ...
    def finish(self) -> Dict[str, Dict[str, np.ndarray]]:
        """The tables (moved out: the accumulator is empty after)."""

@final
class RawFile:
    """An AMS block file, memory-mapped and indexed (the native half of ams02.File)."""

    def __new__(
        cls,
        path: Union[str, PathLike[str]],
        byte_order: str = "auto",
        threads: Optional[int] = None,
        mmap: bool = True,
        trd_map: Optional[TrdMap] = None,
        strict: bool = False,
        dialect: str = "auto",
    ) -> "RawFile": ...
    @property
    def strict(self) -> bool: ...
    @property
    def name(self) -> str: ...
    @property
    def byte_order(self) -> str: ...
    @property
    def n_blocks(self) -> int: ...
    @property
    def n_events(self) -> int: ...
    @property
    def size(self) -> int: ...
    @property
    def threads(self) -> int: ...
    @property
    def mapped(self) -> bool: ...
    def read_ahead_after(self, path: Union[str, PathLike[str]], nbytes: int) -> bool:
        """Asks that the first ``nbytes`` bytes of the local file ``path`` (the next file of
        a multi-file read) be read into the page cache once this file's streaming walk has
        asked the disk for its own last byte; False (nothing asked) when this file is
        walked already, not memory-mapped, or ``path`` cannot be opened."""
    def check(self) -> None:
        """Raises FormatError (``kind == "file_changed"``) if the file shrank, was modified
        or could not be read since it was opened; every read of the data checks this."""
    @property
    def trd_map(self) -> TrdMap: ...
    @property
    def dialect(self) -> str: ...
    def blocks(self) -> Dict[str, np.ndarray]: ...
    def blocks_nested(self) -> Dict[str, np.ndarray]: ...
    def lef_raw(self) -> Dict[str, np.ndarray]: ...
    def event_offsets(self) -> np.ndarray: ...
    def event_range(
        self, entry_start: Optional[int] = None, entry_stop: Optional[int] = None
    ) -> Tuple[int, int]: ...
    def decode(
        self,
        tables: List[str],
        entry_start: Optional[int] = None,
        entry_stop: Optional[int] = None,
    ) -> Dict[str, Dict[str, np.ndarray]]: ...
    def walk_to(self, upto: int, events: Optional[int] = None) -> Tuple[int, bool]:
        """Walks on until the events before byte ``upto`` (or ``events`` events) are
        known: (events known, whether that is all of them)."""
    def decode_known(self, tables: List[str], start: int, stop: int) -> Dict[str, Dict[str, np.ndarray]]:
        """``decode`` of the known events ``start..stop`` of a streaming read."""
    def decode_into(self, acc: Accumulator) -> Dict[str, int]:
        """Decodes every event into ``acc`` after the files decoded into it before: the
        rows each table gained."""
    def known_event(self, k: int) -> Optional[int]: ...
    def known_events_before(self, offset: int) -> int: ...
    def errors(self) -> Dict[str, Any]: ...
    def skipped(self) -> Tuple[np.ndarray, np.ndarray]: ...
    def coverage(self) -> Tuple[np.ndarray, np.ndarray, np.ndarray]: ...
    def words(self, offset: int, n: int) -> np.ndarray: ...

def simulate(
    path: Union[str, PathLike[str]],
    n_events: int,
    *,
    seed: int = 0,
    byte_order: str = "little",
    run: Optional[int] = None,
    jmdc_node: int = 1,
    gps_fraction: float = 0.3,
    level3_fraction: float = 0.2,
    second_group_fraction: float = 0.1,
    raw_fraction: float = 0.01,
    mixed_fraction: float = 0.01,
    hits_per_udr: float = 3.0,
    other_block_every: int = 20,
    layout: str = "flight",
    compressed: float = 1.0,
    envelope_fraction: float = 0.05,
) -> Dict[str, object]: ...

# -- inputs that are not local files (src/python/buffer.rs) --

def open_chunks(
    chunks: Iterable[bytes],
    name: str,
    *,
    size_hint: Optional[int] = None,
    byte_order: str = "auto",
    threads: Optional[int] = None,
    trd_map: Optional[TrdMap] = None,
    strict: bool = False,
    dialect: str = "auto",
) -> RawFile: ...

# -- the schema registry (src/python/schema.rs, from the table! definitions) --

def schema() -> List[Tuple[str, str, List[Tuple[str, str, str]]]]: ...
def join_bytes(out: np.ndarray, parts: List[np.ndarray], *, threads: Optional[int] = None) -> None:
    """Copies the uint8 arrays ``parts`` one after the other into ``out`` on every core
    (the column join of ``ams02.concatenate``)."""
    ...

# -- CCSDS (src/python/ccsds.rs) --

@final
class PacketFile:
    """A CCSDS packet file, memory-mapped and indexed (the native half of ams02.ccsds.PacketFile)."""

    def __new__(
        cls,
        path: Union[str, PathLike[str]],
        *,
        strict: bool = False,
        apids: Optional[List[int]] = None,
        health_apid: Optional[int] = 977,
        mmap: bool = True,
    ) -> "PacketFile": ...
    @property
    def name(self) -> str: ...
    @property
    def size(self) -> int: ...
    @property
    def n_packets(self) -> int: ...
    @staticmethod
    def packet_columns() -> List[str]: ...
    def packets(
        self, columns: Optional[List[str]] = None, apid: Optional[int] = None
    ) -> Dict[str, np.ndarray]: ...
    def apids(self) -> Dict[str, np.ndarray]: ...
    def split(self, out_dir: Union[str, PathLike[str]]) -> Dict[int, str]: ...
    def health_status(self, apid: int = 977) -> Tuple[Dict[str, np.ndarray], Dict[str, Any]]: ...
    def verify_commands(self) -> Dict[str, np.ndarray]: ...
    def errors(self) -> Dict[str, Any]: ...
    def reassemble(self, apid: int = 976) -> Tuple[RawFile, Dict[str, Any]]: ...

def simulate_ccsds(
    path: Union[str, PathLike[str]],
    n_events: int,
    *,
    seed: int = 0,
    min_packet: int = 100,
    max_packet: int = 4096,
    housekeeping_every: int = 16,
    commands_every: int = 0,
    drop: Optional[List[int]] = None,
    drop_fraction: float = 0.0,
    first_seq: int = 0,
    start_time: int = 1300000000,
    block_path: Optional[Union[str, PathLike[str]]] = None,
    duration_s: float = 0.0,
    runs: int = 1,
    run: int = 1305000000,
    chd: str = "counter",
    chd_excursion_every: int = 0,
    chd_excursion_length: int = 3,
    housekeeping_drop: Optional[List[int]] = None,
) -> Dict[str, Any]: ...

# -- Layer-0 front-end, LEF (src/python/l0.rs) --

def lef_calibrate(adc: np.ndarray) -> Dict[str, Any]: ...
def lef_subtract(adc: np.ndarray, pedestal: np.ndarray, common_noise: np.ndarray) -> np.ndarray: ...
def lef_channel_map() -> Dict[str, np.ndarray]: ...
# -- Huffman-coded groups, FORMAT.md 9.3 (src/python/huffman.rs) --

__all__ += ["huffman_decode", "huffman_encode", "huffman_table", "huffman_table_for_run"]

def huffman_decode(data: bytes, table: str, byte_order: str, max_out: Optional[int] = None) -> bytes:
    """Decodes a Huffman-coded stream into the plain group's bytes (words high byte first)."""
    ...

def huffman_encode(data: bytes, table: str, byte_order: str) -> bytes:
    """Huffman-codes plain bytes (words high byte first) as on board."""
    ...

def huffman_table(name: str) -> List[Tuple[int, int]]:
    """The code table ``name`` ("B50A" or "B606"): (code, length) of each byte value."""
    ...

def huffman_table_for_run(run_id: int) -> str:
    """The code table of a run ID: "B606" above 0x4DE80000, else "B50A"."""
    ...
@final
class StreamDecoder:
    """Decodes a live CCSDS packet stream piece by piece (src/ccsds/stream.rs)."""

    def __new__(
        cls,
        *,
        name: str = "stream",
        apids: Optional[List[int]] = None,
        health_apid: Optional[int] = 977,
        science_apid: Optional[int] = 976,
    ) -> "StreamDecoder": ...
    def feed(self, data: bytes) -> Dict[str, Any]: ...
    def finish(self) -> Dict[str, Any]: ...
    def reset(self, keep_sequence: bool = True) -> int: ...
    @property
    def pending(self) -> int: ...
    @property
    def position(self) -> int: ...
    @property
    def bytes_in(self) -> int: ...
    @property
    def packets(self) -> int: ...

@final
class BlockStream:
    """The complete blocks of a growing AMS block file, piece by piece."""

    def __new__(cls, byte_order: str = "little", *, name: str = "blocks") -> "BlockStream": ...
    def feed(self, data: bytes, end: bool = False) -> Tuple[Optional[RawFile], int]: ...
    @property
    def pending(self) -> int: ...
    @property
    def dropped(self) -> int: ...
