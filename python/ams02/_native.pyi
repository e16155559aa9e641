"""Type stubs of the native module ``ams02._native`` (the Rust core's bindings)."""

from os import PathLike
from typing import Any, Dict, Iterable, List, Optional, Tuple, Union

import numpy as np
from typing_extensions import final

__all__ = ["Ams02Error", "FormatError", "__version__", "ROLES", "LAYOUTS", "RawFile", "simulate", "TrdMap", "flight_map_text", "PacketFile", "simulate_ccsds", "open_chunks", "schema"]
__version__: str
#: Names of the ``role`` codes of ``fragments()`` (FORMAT.md 4.2), by code.
ROLES: List[str]
#: Names of the ``layout`` codes of ``events()``: "unknown", "2007", "flight".
LAYOUTS: List[str]

class Ams02Error(Exception):
    """Base class of every ams02 error."""

class FormatError(Ams02Error):
    """The data are not in the expected format (the message names the byte offset)."""

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
    def trd_map(self) -> TrdMap: ...
    def blocks(self) -> Dict[str, np.ndarray]: ...
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
    run: int = 1305000000,
    jmdc_node: int = 1,
    gps_fraction: float = 0.3,
    level3_fraction: float = 0.2,
    second_group_fraction: float = 0.1,
    raw_fraction: float = 0.01,
    mixed_fraction: float = 0.01,
    hits_per_udr: float = 3.0,
    other_block_every: int = 20,
    layout: str = "flight",
    run_id: int = 1400000000,
    compressed: float = 1.0,
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
) -> RawFile: ...

# -- the schema registry (src/python/schema.rs, from the table! definitions) --

def schema() -> List[Tuple[str, str, List[Tuple[str, str, str]]]]: ...

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
) -> Dict[str, Any]: ...
