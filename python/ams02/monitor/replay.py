"""``ams02 replay``: sends packet files as the downlink would, to a TCP or UDP port.

The bytes of each file are sent as they are (garbage and all), in order. Pacing:

- ``rate`` (bytes per second): a steady rate;
- ``realtime``: by the packets' coarse time (secondary header): a packet is sent when
  as much wall time has passed since the first packet as coarse time (divided by
  ``speed``); a coarse time that goes backwards or leaps more than ``max_pause_s`` ahead
  does not make the replay wait longer than that;
- neither: as fast as the receiver takes them.

Over UDP each packet is one datagram (whole packets: the packet index of the file).
"""

from __future__ import annotations

import os
import re
import socket
import threading
import time
from typing import Iterator, List, Optional, Sequence, Tuple

import numpy as np

from .ingest import parse_source

#: Bytes sent at a time (rate pacing and as-fast-as-possible).
SEND_SIZE = 256 * 1024


def parse_rate(text: str) -> float:
    """Bytes per second from ``"20MB/s"``, ``"100 Mb/s"``, ``"1.5 GB/s"``, ``"500kB/s"``, a number."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*([kKMGT]?)(i?)([bB]?)(?:/s|ps)?\s*", text)
    if not m:
        raise ValueError(f"rate {text!r}: write it like 20MB/s, 100Mb/s or 5e6 (bytes per second)")
    value = float(m.group(1))
    prefix = {"": 1, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}[m.group(2)]
    if m.group(3):
        prefix = {"": 1, "k": 1024, "K": 1024, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}[m.group(2)]
    bits = m.group(4) == "b"
    rate = value * prefix / (8 if bits else 1)
    if not rate > 0:
        raise ValueError(f"rate {text!r} must be positive")
    return rate


def _packet_index(path: str) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Offsets, lengths and times (s) of the packets of a file."""
    from .. import ccsds

    with ccsds.open(path) as pf:
        p = pf.packets(["offset", "length", "time_s", "sec_hdr"])
    return p["offset"].astype(np.int64), p["length"].astype(np.int64) + 7, p["time_s"]


def _pieces(path: str, realtime: bool, udp: bool) -> Iterator[Tuple[int, int, Optional[float]]]:
    """(start, end, packet time) byte ranges of the file, in order, covering it."""
    size = os.path.getsize(path)
    if not (realtime or udp):
        for s in range(0, size, SEND_SIZE):
            yield s, min(size, s + SEND_SIZE), None
        return
    off, length, t = _packet_index(path)
    if udp:
        for o, n, ti in zip(off.tolist(), length.tolist(), t.tolist()):
            yield o, o + n, ti
        return
    # TCP realtime: the bytes from one packet's start to the next (garbage travels with
    # the packet before it), grouped by coarse second.
    starts = np.concatenate(([0], off[1:])) if len(off) else np.array([0])
    ends = np.concatenate((off[1:], [size])) if len(off) else np.array([size])
    sec = np.floor(t).astype(np.int64) if len(t) else np.array([0])
    i = 0
    n = len(starts)
    while i < n:
        j = i + 1
        while j < n and sec[j] == sec[i] and ends[j - 1] - starts[i] < SEND_SIZE:
            j += 1
        yield int(starts[i]), int(ends[j - 1]), float(t[i]) if len(t) else None
        i = j


def connect(target: str, timeout_s: float = 30.0) -> Tuple[socket.socket, bool]:
    """A socket to ``tcp://HOST:PORT`` (retried until ``timeout_s``) or ``udp://HOST:PORT``."""
    spec = parse_source(target)
    if spec.kind == "udp":
        fam = socket.AF_INET6 if ":" in spec.host else socket.AF_INET
        s = socket.socket(fam, socket.SOCK_DGRAM)
        s.connect((spec.host, spec.port))
        return s, True
    if spec.kind != "tcp":
        raise ValueError(f"--to {target!r}: replay sends to tcp://HOST:PORT or udp://HOST:PORT")
    deadline = time.monotonic() + timeout_s
    delay = 0.1
    while True:
        try:
            s = socket.create_connection((spec.host, spec.port), timeout=10.0)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return s, False
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(1.0, delay * 2)


def replay(
    files: Sequence[str],
    to: str,
    *,
    rate: Optional[float] = None,
    realtime: bool = False,
    speed: float = 1.0,
    max_pause_s: float = 10.0,
    connect_timeout_s: float = 30.0,
    stop: Optional[threading.Event] = None,
    loops: int = 1,
) -> int:
    """Sends ``files`` to ``to``; returns the bytes sent. See the module docs."""
    if rate is not None and realtime:
        raise ValueError("choose --rate or --realtime, not both")
    if speed <= 0:
        raise ValueError("speed must be positive")
    sock, udp = connect(to, connect_timeout_s)
    sent = 0
    t0 = time.monotonic()
    first_t: Optional[float] = None
    wall_base = t0
    last_t: Optional[float] = None
    try:
        for _ in range(max(1, loops)):
            for path in files:
                with open(path, "rb") as f:
                    for start, end, pt in _pieces(path, realtime, udp):
                        if stop is not None and stop.is_set():
                            return sent
                        if realtime and pt is not None and pt > 0:
                            if first_t is None:
                                first_t, wall_base = pt, time.monotonic()
                            elif last_t is not None and (pt < last_t or pt - last_t > max_pause_s):
                                # time went backwards or leapt: carry on from here
                                first_t, wall_base = pt, time.monotonic()
                            last_t = pt
                            due = wall_base + (pt - first_t) / speed
                            wait = due - time.monotonic()
                            if wait > 0:
                                time.sleep(wait)
                        f.seek(start)
                        data = f.read(end - start)
                        if udp:
                            sock.send(data)
                        else:
                            sock.sendall(data)
                        sent += len(data)
                        if rate is not None:
                            due = t0 + sent / rate
                            wait = due - time.monotonic()
                            if wait > 0:
                                time.sleep(wait)
    finally:
        sock.close()
    return sent


def expand(files: Sequence[str]) -> List[str]:
    """Files, directories (their files, sorted) and glob patterns."""
    from .._multi import resolve_paths

    out: List[str] = []
    for a in files:
        out.extend(resolve_paths(a))
    return out
