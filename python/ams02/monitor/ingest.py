"""Sources of the monitor: CCSDS packet streams over TCP (connecting out or listening),
UDP, and watched files or directories (CCSDS packet files and AMS block files).

Each source runs in its own thread with blocking I/O and feeds its bytes, as they come,
to a :class:`ams02._native.StreamDecoder` (the Rust walk of ``src/ccsds/stream.rs``: one
call per piece, columns back) and the batches to :class:`~.state.MonitorState`.

Faults: garbage in a stream is skipped by the decoder (counted, shown); a connection
that drops is retried with a doubling backoff (0.5 s up to 10 s), its status shown on
the page and the silence raised as a stall; a watched file that shrinks is read on from
its new end, and one rewritten (another inode, or different first bytes) is read again
from its start.
"""

from __future__ import annotations

import os
import socket
import threading
import zlib
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple
from urllib.parse import urlsplit

from .. import _native
from .state import MonitorState

#: Bytes read at a time.
READ_SIZE = 1 << 20
#: Largest backoff between reconnections, seconds.
MAX_BACKOFF_S = 10.0
#: Seconds between polls of watched files.
POLL_S = 0.2
#: Bytes of a file's start compared to tell a rewrite.
HEAD_BYTES = 4096
#: Suffixes of files still being written by a transfer (ignored until renamed).
PARTIAL_SUFFIXES = (".part", ".tmp", ".partial", ".filepart")
#: AMS-02 APIDs (FORMAT.md 7), for telling a packet file from a block file.
KNOWN_APIDS = (124, 976, 977, 980, 981, 1024, 2000)


@dataclass(frozen=True)
class SourceSpec:
    """A parsed SOURCE: ``kind`` is tcp, listen, udp or path."""

    kind: str
    host: str = ""
    port: int = 0
    path: str = ""

    @property
    def name(self) -> str:
        if self.kind == "path":
            return self.path
        return f"{self.kind}://{self.host}:{self.port}"


def parse_source(text: str) -> SourceSpec:
    """``tcp://HOST:PORT``, ``listen://[HOST]:PORT``, ``udp://[HOST]:PORT`` or a path.

    Listening sources bind 127.0.0.1 unless a host is given."""
    if "://" not in text:
        return SourceSpec("path", path=os.path.abspath(text))
    u = urlsplit(text)
    if u.scheme not in ("tcp", "listen", "udp"):
        raise ValueError(
            f"source {text!r}: the schemes are tcp://, listen://, udp:// (or a file or directory)"
        )
    try:
        port = u.port
    except ValueError:
        port = None
    if port is None or not 0 <= port <= 65535 or (port == 0 and u.scheme == "tcp"):
        raise ValueError(f"source {text!r} needs a port, e.g. {u.scheme}://127.0.0.1:8901")
    host = u.hostname or ""
    if u.scheme == "tcp" and not host:
        raise ValueError(f"source {text!r}: tcp:// connects out and needs a host")
    return SourceSpec(u.scheme, host or "127.0.0.1", port)


class Pipeline:
    """One decoder feeding the state (one stream)."""

    def __init__(self, state: MonitorState, name: str) -> None:
        self.state = state
        self.name = name
        self.decoder = _native.StreamDecoder(name=name)

    def feed(self, data: bytes) -> None:
        if data:
            self.state.ingest(self.decoder.feed(data), self.name, len(data))

    def finish(self) -> None:
        self.state.ingest(self.decoder.finish(), self.name)

    def broken(self, keep_sequence: bool = True) -> None:
        """The stream broke: the partial packet is dropped (the next bytes start anew)."""
        self.decoder.reset(keep_sequence)


class Source(threading.Thread):
    """A source thread; ``stop()`` ends it."""

    def __init__(self, spec: SourceSpec, state: MonitorState) -> None:
        super().__init__(name=f"ams02-monitor {spec.name}", daemon=True)
        self.spec = spec
        self.state = state
        self.stopping = threading.Event()
        self.bound_port: Optional[int] = None
        self.ready = threading.Event()

    def stop(self) -> None:
        self.stopping.set()

    def status(self, **fields: Any) -> None:
        self.state.source_status(self.spec.name, kind=self.spec.kind, **fields)

    def run(self) -> None:  # pragma: no cover - dispatch
        try:
            {"tcp": self._tcp, "listen": self._listen, "udp": self._udp, "path": self._watch}[
                self.spec.kind
            ]()
        except Exception as e:  # never take the monitor down
            self.status(status="failed", last_error=f"{type(e).__name__}: {e}")
            self.state.source_event(self.spec.name, "source_failed", f"{type(e).__name__}: {e}", "alarm")
        finally:
            self.ready.set()

    # -- TCP, connecting out ------------------------------------------------------------
    def _tcp(self) -> None:
        pipe = Pipeline(self.state, self.spec.name)
        backoff = 0.5
        first = True
        while not self.stopping.is_set():
            self.status(status="connecting")
            try:
                sock = socket.create_connection((self.spec.host, self.spec.port), timeout=5.0)
            except OSError as e:
                self.status(status="reconnecting", next_retry_s=backoff, last_error=str(e))
                if first:
                    self.ready.set()
                first = False
                self.stopping.wait(backoff)
                backoff = min(MAX_BACKOFF_S, backoff * 2)
                continue
            first = False
            self.ready.set()
            backoff = 0.5
            self.status(status="connected", next_retry_s=None)
            self._read_socket(sock, pipe)
            if not self.stopping.is_set():
                s = self.state.sources.get(self.spec.name, {})
                self.status(
                    status="reconnecting", next_retry_s=backoff, reconnects=s.get("reconnects", 0) + 1
                )
                self.state.source_event(self.spec.name, "disconnect", "connection closed; reconnecting")

    def _read_socket(self, sock: socket.socket, pipe: Pipeline) -> None:
        sock.settimeout(0.5)
        try:
            while not self.stopping.is_set():
                try:
                    data = sock.recv(READ_SIZE)
                except socket.timeout:
                    continue
                except OSError as e:
                    self.status(last_error=str(e))
                    break
                if not data:
                    break
                pipe.feed(data)
        finally:
            sock.close()
            pipe.broken(keep_sequence=True)

    # -- TCP, listening -----------------------------------------------------------------
    def _listen(self) -> None:
        pipe = Pipeline(self.state, self.spec.name)
        srv = socket.create_server((self.spec.host, self.spec.port), reuse_port=False)
        srv.settimeout(0.5)
        self.bound_port = srv.getsockname()[1]
        self.status(status="listening", port=self.bound_port)
        self.ready.set()
        try:
            while not self.stopping.is_set():
                try:
                    conn, peer = srv.accept()
                except socket.timeout:
                    continue
                self.status(status="connected", peer=f"{peer[0]}:{peer[1]}")
                self._read_socket(conn, pipe)
                if not self.stopping.is_set():
                    s = self.state.sources.get(self.spec.name, {})
                    self.status(status="listening", peer=None, reconnects=s.get("reconnects", 0) + 1)
                    self.state.source_event(
                        self.spec.name,
                        "disconnect",
                        "the sender closed the connection; waiting for the next one",
                    )
        finally:
            srv.close()

    # -- UDP ----------------------------------------------------------------------------
    def _udp(self) -> None:
        pipe = Pipeline(self.state, self.spec.name)
        sock = socket.socket(socket.AF_INET6 if ":" in self.spec.host else socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        sock.bind((self.spec.host, self.spec.port))
        sock.settimeout(0.2)
        self.bound_port = sock.getsockname()[1]
        self.status(status="listening", port=self.bound_port)
        self.ready.set()
        buf: List[bytes] = []
        size = 0
        try:
            while not self.stopping.is_set():
                try:
                    data = sock.recv(65536)
                    buf.append(data)
                    size += len(data)
                    if size < READ_SIZE:
                        continue
                except socket.timeout:
                    pass
                if buf:
                    pipe.feed(b"".join(buf))
                    buf, size = [], 0
        finally:
            sock.close()

    # -- files and directories ----------------------------------------------------------
    def _watch(self) -> None:
        self.status(status="watching")
        self.ready.set()
        files: Dict[str, WatchedFile] = {}
        while not self.stopping.is_set():
            for path in self._list():
                w = files.get(path)
                if w is None:
                    w = files[path] = WatchedFile(path, self.state)
                try:
                    w.poll(self.stopping)
                except OSError as e:
                    self.status(last_error=f"{path}: {e}")
            for path in [p for p in files if not os.path.exists(p)]:
                files.pop(path).close()
            self.status(status="watching", files=len(files))
            self.stopping.wait(POLL_S)

    def _list(self) -> List[str]:
        p = self.spec.path
        if os.path.isdir(p):
            out = []
            for e in sorted(os.scandir(p), key=lambda e: e.name):
                if e.is_file() and not e.name.startswith(".") and not e.name.endswith(PARTIAL_SUFFIXES):
                    out.append(e.path)
            return out
        return [p] if os.path.isfile(p) else []


def sniff_kind(head: bytes) -> Optional[str]:
    """``"ccsds"`` when ``head`` starts with a plausible AMS-02 packet header, ``"blocks"``
    otherwise; None when there are too few bytes to tell."""
    if len(head) < 6:
        return None
    w0 = int.from_bytes(head[0:2], "big")
    length = int.from_bytes(head[4:6], "big") + 7
    if w0 >> 13 == 0 and (w0 & 0x7FF) in KNOWN_APIDS and length >= 16:
        return "ccsds"
    return "blocks"


def sniff_order(head: bytes) -> str:
    """The byte order of a block file's first block: the one whose size word gives a block
    that a plausible ID word follows (little-endian, the DAQ's, when both or neither)."""
    if len(head) < 4:
        return "little"
    for order in ("little", "big"):
        w0 = int.from_bytes(head[0:2], order)  # type: ignore[arg-type]
        w1 = int.from_bytes(head[2:4], order)  # type: ignore[arg-type]
        if w0 & 0x8000 == 0 and 4 <= w0 <= 65534 and w1 & 0x1F in (5, 0x1F, 1, 2, 3, 4, 6, 7, 8, 9):
            return order
    return "little"


class WatchedFile:
    """A file watched for growth, truncation and rewrites."""

    def __init__(self, path: str, state: MonitorState) -> None:
        self.path = path
        self.state = state
        self.inode: Optional[Tuple[int, int]] = None
        self.offset = 0
        self.head_crc: Optional[int] = None
        self.head_len = 0
        self.kind: Optional[str] = None
        self.pipe: Optional[Pipeline] = None
        self.blocks: Optional[Any] = None

    def close(self) -> None:
        if self.pipe is not None:
            self.pipe.finish()

    def _start(self, head: bytes) -> None:
        self.kind = sniff_kind(head)
        if self.kind == "ccsds":
            self.pipe = Pipeline(self.state, self.path)
        elif self.kind == "blocks":
            self.blocks = _native.BlockStream(sniff_order(head), name=self.path)

    def _restart(self, why: str) -> None:
        self.state.source_event(self.path, "file_rewritten", why)
        if self.pipe is not None:
            self.pipe.broken(keep_sequence=False)
        self.offset = 0
        self.head_crc = None
        self.head_len = 0
        self.kind = None
        self.pipe = None
        self.blocks = None

    def poll(self, stopping: threading.Event) -> None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return
        ino = (st.st_dev, st.st_ino)
        if self.inode is not None and ino != self.inode:
            self._restart("replaced by another file; read again from its start")
        self.inode = ino
        with open(self.path, "rb") as f:
            if self.head_len:
                h = f.read(self.head_len)
                if len(h) < self.head_len or zlib.crc32(h) != self.head_crc:
                    self._restart("its first bytes changed (rewritten); read again from its start")
            if st.st_size < self.offset:
                self.state.source_event(
                    self.path,
                    "file_truncated",
                    f"shrank from {self.offset} to {st.st_size} bytes; reading on from its new end",
                )
                if self.pipe is not None:
                    self.pipe.broken(keep_sequence=True)
                self.offset = st.st_size
                return
            f.seek(self.offset)
            while not stopping.is_set():
                data = f.read(READ_SIZE)
                if not data:
                    break
                if self.kind is None:
                    head = data[:HEAD_BYTES]
                    if sniff_kind(head) is None:
                        return  # too short to tell: wait for more
                    self._start(head)
                if self.head_len < HEAD_BYTES and self.offset < HEAD_BYTES:
                    f2 = data[: HEAD_BYTES - self.offset]
                    prev = b""
                    if self.offset:
                        with open(self.path, "rb") as g:
                            prev = g.read(self.offset)
                    h = (prev + f2)[:HEAD_BYTES]
                    self.head_len, self.head_crc = len(h), zlib.crc32(h)
                self.offset += len(data)
                self.state.source_status(self.path, kind="file", status="reading", offset=self.offset)
                if self.pipe is not None:
                    self.pipe.feed(data)
                elif self.blocks is not None:
                    raw, dropped = self.blocks.feed(data)
                    self.state.ingest_blocks(raw, self.path, len(data), dropped)
