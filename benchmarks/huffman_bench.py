"""Huffman decoding of coded groups (FORMAT.md 9.3): decoded MB/s on one core.

Payloads (decoded sizes of a tenth of ``size_bytes``, 1 to 16 MB; coded once with the
native on-board encoder ``ams02._native.huffman_encode``):

- *groups*: group words drawn as ``src/simulate.rs`` draws them (a JINJ group of the
  first kind: tracker-like concentrators of detector words, mostly below 0x1000 or
  0x8000; twelve TRD UDR2 fragments of sorted channel numbers and Landau-like
  amplitudes, 1 % raw read-outs of 448 values near 400; fragment length and node
  status words), about 2 KB a group;
- *random*: uniformly random bytes (the worst case: long codes, one byte a lookup).

Timed in CPU seconds of the decoding thread (median of ``repeats``, each long enough to
be measured): one
``huffman_decode`` call per group (as the group decoder will run it, plus the
Python call per group), and the same bytes as one stream (the decoder alone), for
both tables. The target is 1 GB/s of decoded output per core.

A peer in the same run, where pyarrow is installed: zstd (pyarrow's libzstd, level 1)
decoding the *groups* payload with its bytes shuffled. Shuffled, the bytes keep their
distribution but lose the repeats that zstd would otherwise match, so zstd stores them as
Huffman-coded literals (its four-stream decoder, one symbol a lookup, as here) and its
decode speed is the speed of a state-of-the-art Huffman decoder on this machine. The
same shuffled bytes are coded with the flight tables and decoded here as one stream.

    python benchmarks/huffman_bench.py [--size 160e6] [--repeats 5]
"""

from __future__ import annotations

import argparse
import math
import pathlib
import statistics
import time
from typing import Callable, Dict, List

import numpy as np

MB = 1e6
TARGET_MBPS = 1000.0
GROUP_MAX_OUT = 2 * 32767  # a short-form block's bound (issue 13)


def _detector_words(rng: np.random.Generator, n: int) -> List[int]:
    w = rng.integers(0, 1 << 16, size=n)
    return list(np.where(w & 0x8000, w & 0x0FFF, w))


def _fragment(buf: List[int], content: List[int], port: int, extra: int = 0) -> None:
    buf.append(len(content) + 1)
    buf.extend(content)
    buf.append(0x8000 | extra | (port & 0x1F))


def _udr(rng: np.random.Generator, raw_fraction: float = 0.01, hits: float = 3.0) -> List[int]:
    out: List[int] = []
    raw = rng.random() < raw_fraction
    if raw:
        out += list(380 + rng.integers(0, 40, size=448))
    else:
        channels = np.unique(rng.integers(0, 448, size=min(64, rng.poisson(hits))))
        for c in channels:
            u = (rng.random() * (1 << 53) + 1) / (1 << 53)
            adc = min(25.0 + rng.integers(0, 30) - 18.0 * math.log(u), 4000.0)
            out += [int(c), (int(adc * 8) | int(rng.integers(0, 8))) & 0x7FFF]
    return out


def _concentrator(rng: np.random.Generator, slaves: int, size: int) -> List[int]:
    buf: List[int] = []
    for s in range(slaves):
        _fragment(buf, _detector_words(rng, size // 2 + int(rng.integers(0, size))), s)
    return buf


def group_words(rng: np.random.Generator, event: int) -> List[int]:
    """One simulator-like group: event number, JINJ content, top status, a CRC-like word."""
    g: List[int] = [event & 0xFFFF]
    for port in (0, 1, 4):
        _fragment(g, _concentrator(rng, 3, 60), port, 0x0400)
    nested: List[int] = []
    _fragment(nested, _concentrator(rng, 2, 40), 3, 0x0400)
    _fragment(nested, _detector_words(rng, 30 + int(rng.integers(0, 30))), 7)
    _fragment(g, nested, 5, 0x0400)
    for port in (2, 8):
        crate: List[int] = []
        for udr in range(6):
            _fragment(crate, _udr(rng), udr * 4, 0x0100)
        _fragment(g, crate, port, 0x0400)
    for port in (10, 11):
        _fragment(g, _detector_words(rng, 20 + int(rng.integers(0, 40))), port)
    _fragment(g, _concentrator(rng, 2, 25), 12, 0x0400)
    _fragment(g, _concentrator(rng, 4, 12), 14, 0x0400)
    _fragment(g, _detector_words(rng, 20), 16)
    g.append(0x8400)
    g.append(int(rng.integers(0, 1 << 16)))
    return g


def payloads(size_bytes: int, seed: int = 1) -> Dict[str, List[bytes]]:
    """Plain payloads (bytes, words high byte first): simulator-like groups and random."""
    rng = np.random.default_rng(seed)
    groups: List[bytes] = []
    total = 0
    while total < size_bytes:
        g = np.asarray(group_words(rng, len(groups)), dtype=">u2").tobytes()
        groups.append(g)
        total += len(g)
    random = [rng.integers(0, 256, size=len(g), dtype=np.uint8).tobytes() for g in groups]
    return {"groups": groups, "random": random}


def _time(fn: Callable[[], object], repeats: int, min_seconds: float = 0.2) -> float:
    """Median CPU seconds of this thread for one call of ``fn`` (each timing repeats it for
    ``min_seconds``). CPU time, not wall time: on a shared machine the wall clock also
    counts the other processes' turns on the core."""
    t0 = time.thread_time()
    fn()
    one = max(time.thread_time() - t0, 1e-6)
    k = max(1, int(min_seconds / one))
    times = []
    for _ in range(repeats):
        t0 = time.thread_time()
        for _ in range(k):
            fn()
        times.append((time.thread_time() - t0) / k)
    return statistics.median(times)


def _row(payload: str, table: str, calls: str, n: int, ratio: float, mbps: float) -> Dict[str, object]:
    """One row of the table: ``n`` decoded bytes at ``mbps`` decoded MB/s."""
    return {
        "payload": payload,
        "table": table,
        "calls": calls,
        "decoded MB": n / MB,
        "coded/decoded": ratio,
        "decoded MB/s": mbps,
        "target MB/s": TARGET_MBPS,
        "met": "yes" if mbps >= TARGET_MBPS else "no",
    }


def run(workdir: pathlib.Path, size_bytes: int, repeats: int = 5) -> List[Dict[str, object]]:
    """Rows: name, decoded MB, coded/decoded, MB/s (decoded), target, met."""
    from ams02 import _native

    # A tenth of the run's size, 1..16 MB: 16 MB for the standard 1 GB run, 2 MB for --quick.
    size = int(min(max(size_bytes // 10, 1_000_000), 16_000_000))
    plain = payloads(size)
    rows: List[Dict[str, object]] = []
    order = "little"
    for kind in ("groups", "random"):
        for table in ("B50A", "B606"):
            parts = plain[kind]
            coded = [_native.huffman_encode(p, table, order) for p in parts]
            whole_plain = b"".join(parts)
            whole = _native.huffman_encode(whole_plain, table, order)
            for p, c in zip(parts[:50], coded[:50]):
                assert _native.huffman_decode(c, table, order, GROUP_MAX_OUT) == p
            assert _native.huffman_decode(whole, table, order) == whole_plain
            n = len(whole_plain)
            ratio = sum(len(c) for c in coded) / n

            def per_group(coded: List[bytes] = coded, table: str = table) -> None:
                for c in coded:
                    _native.huffman_decode(c, table, order, GROUP_MAX_OUT)

            def one_stream(whole: bytes = whole, table: str = table) -> None:
                _native.huffman_decode(whole, table, order)

            for how, fn in (("one call per group", per_group), ("one stream", one_stream)):
                if kind == "random" and how != "one stream":
                    continue
                payload = f"{kind} ({len(parts):,} x {n / len(parts) / 1e3:.1f} KB)"
                rows.append(_row(payload, table, how, n, ratio, n / MB / _time(fn, repeats)))
    rows += peer_rows(plain["groups"], repeats)
    return rows


def peer_rows(groups: List[bytes], repeats: int) -> List[Dict[str, object]]:
    """The decoder here against zstd's Huffman literals on the same bytes (module doc);
    no rows without pyarrow."""
    try:
        import pyarrow as pa
    except ImportError:
        return []
    from ams02 import _native

    rng = np.random.default_rng(2)
    shuffled = rng.permutation(np.frombuffer(b"".join(groups), dtype=np.uint8)).tobytes()
    n = len(shuffled)
    codec = pa.Codec("zstd", compression_level=1)
    packed = codec.compress(shuffled, asbytes=True)
    assert codec.decompress(packed, decompressed_size=n, asbytes=True) == shuffled

    def zstd() -> None:
        codec.decompress(packed, decompressed_size=n)

    rows: List[Dict[str, object]] = []
    cases = [(t, _native.huffman_encode(shuffled, t, "little")) for t in ("B50A", "B606")]
    for table, coded in cases:
        assert _native.huffman_decode(coded, table, "little") == shuffled

    def ours(coded: bytes, table: str) -> Callable[[], object]:
        return lambda: _native.huffman_decode(coded, table, "little")

    timed = [(f"{t} (this decoder)", len(c), ours(c, t)) for t, c in cases]
    timed.append((f"zstd {pa.__version__} level 1 (pyarrow's libzstd, peer)", len(packed), zstd))
    for name, coded_len, fn in timed:
        payload = f"groups, bytes shuffled (1 x {n / MB:.1f} MB)"
        rows.append(_row(payload, name, "one stream", n, coded_len / n, n / MB / _time(fn, repeats)))
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=float, default=160e6, help="run size: payloads are a tenth, 1..16 MB")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    rows = run(pathlib.Path("."), int(args.size), args.repeats)
    keys = list(rows[0])
    print("| " + " | ".join(keys) + " |")
    print("|" + "|".join("---" for _ in keys) + "|")
    for r in rows:
        print("| " + " | ".join(f"{v:,.3g}" if isinstance(v, float) and v < 10 else
                                 f"{v:,.0f}" if isinstance(v, float) else str(v) for v in r.values()) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
