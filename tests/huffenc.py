"""An independent Huffman encoder (and reference decoder) of FORMAT.md section 9.3.

Written from FORMAT.md, not from the Rust code: the tests encode with it and decode with
the native module (and compare the native decoder's errors with :func:`decode`).

The code tables are read from the shared folder's ``data/huffman_tables.json`` when it
is there (``../shared`` beside the repository, else ``/work/shared``), else from the
tables the native module exposes (``ams02._native.huffman_table``); ``TABLES_SOURCE``
says which.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

ROOT = Path(__file__).resolve().parents[1]
SHARED_CANDIDATES = [ROOT.parent / "shared", Path("/work/shared")]
SWITCH_RUN = 1_307_049_984  # 0x4DE80000
TABLE_NAMES = ("B50A", "B606")
#: Unread bits allowed after END (a constant of the format).
MAX_TRAILING_BITS = 12

Table = List[Tuple[int, int]]


def shared_json() -> Optional[Path]:
    """The shared ``data/huffman_tables.json``, or None when the shared folder is absent."""
    for base in SHARED_CANDIDATES:
        p = base / "data" / "huffman_tables.json"
        if p.exists():
            return p
    return None


def _load() -> Tuple[Dict[str, Table], str]:
    p = shared_json()
    if p is not None:
        doc = json.loads(p.read_text())
        return {n: [(int(c), int(n_bits)) for c, n_bits in doc["tables"][n]] for n in TABLE_NAMES}, str(p)
    from ams02 import _native

    return {
        n: [(int(c), int(n_bits)) for c, n_bits in _native.huffman_table(n)] for n in TABLE_NAMES
    }, "ams02._native"


TABLES, TABLES_SOURCE = _load()


def table_for_run(run_id: int) -> str:
    """``B606`` when the run ID is above 1,307,049,984, else ``B50A``."""
    return "B606" if run_id > SWITCH_RUN else "B50A"


def max_len(table: str) -> int:
    """``L``: the length of the table's longest code."""
    return max(n for _, n in TABLES[table])


def encode(words: Sequence[int], table: str) -> List[int]:
    """The coded stream of ``words`` as on board: each word's high byte then its low
    byte, codes packed most significant bit first into 16-bit words, the last word
    padded with zero bits."""
    codes = TABLES[table]
    bits: List[str] = []
    for w in words:
        for b in ((w >> 8) & 0xFF, w & 0xFF):
            code, n = codes[b]
            bits.append(format(code, f"0{n}b"))
    s = "".join(bits)
    s += "0" * (-len(s) % 16)
    return [int(s[i : i + 16], 2) for i in range(0, len(s), 16)]


def to_bytes(coded: Sequence[int], byte_order: str) -> bytes:
    """Coded words as stored in a file of ``byte_order`` ("little" or "big")."""
    return b"".join(int(w).to_bytes(2, "little" if byte_order == "little" else "big") for w in coded)


def encode_bytes(words: Sequence[int], table: str, byte_order: str) -> bytes:
    """:func:`encode` then :func:`to_bytes`."""
    return to_bytes(encode(words, table), byte_order)


def plain_bytes(words: Sequence[int]) -> bytes:
    """The plain words as the decoder gives them: each word high byte first."""
    return b"".join(int(w).to_bytes(2, "big") for w in words)


class StreamError(Exception):
    """What :func:`decode` found wrong: ``kind`` (invalid, trailing, odd, too_long) and
    ``offset``, the byte offset of the 16-bit word holding the first bit concerned."""

    def __init__(self, kind: str, offset: int) -> None:
        super().__init__(f"{kind} at byte {offset}")
        self.kind = kind
        self.offset = offset


def decode(coded: Sequence[int], table: str, max_out: Optional[int] = None) -> bytes:
    """FORMAT.md 9.3 decoding, one bit at a time, of coded words (as numbers).

    Raises :class:`StreamError` for an invalid code, more than 12 bits unread after
    END, an odd number of bytes, or more than ``max_out`` bytes.
    """
    codes = {(n, c): b for b, (c, n) in enumerate(TABLES[table])}
    longest = max_len(table)
    total = 16 * len(coded)
    bits = "".join(format(w, "016b") for w in coded)

    def at(i: int, n: int) -> str:
        s = bits[i : i + n]
        return s + "0" * (n - len(s))

    out = bytearray()
    pos = 0
    while True:
        if at(pos, longest + 1) == "0" * (longest + 1):
            after = pos + longest + 1
            if total - after > MAX_TRAILING_BITS:
                raise StreamError("trailing", after // 16 * 2)
            break
        for n in range(1, longest + 1):
            b = codes.get((n, int(at(pos, n), 2)))
            if b is not None:
                break
        else:
            raise StreamError("invalid", pos // 16 * 2)
        if pos + n > total:  # a code that would end past the end: no byte for it
            break
        if max_out is not None and len(out) == max_out:
            raise StreamError("too_long", pos // 16 * 2)
        out.append(b)
        pos += n
    if len(out) % 2:
        raise StreamError("odd", pos // 16 * 2)
    return bytes(out)
