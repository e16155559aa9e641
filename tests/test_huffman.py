"""Huffman-coded groups (FORMAT.md 9.3): the native tables against the shared JSON and
their fingerprints, and the native decoder against the independent encoder and
reference decoder of ``tests/huffenc.py``."""

from __future__ import annotations

import hashlib
import json
import re
import struct
from typing import List, Optional, Sequence, Tuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ams02
from ams02 import _native

import huffenc

#: ``sha256_of_big_endian_u32_entries`` of the shared JSON: the SHA-256 of the 256
#: entries in byte-value order, each the 32-bit value ``code << 16 | length`` big-endian.
FINGERPRINTS = {
    "B50A": "c1df7bc2c97bf1df438dc5d309efdbb6d6a40ad5fb1ac681fc9c778fbade4bdf",
    "B606": "e0a827288c32a3a0bcfdb9d20294682f94b82f990bb1a23a5b8824c70e9a9350",
}
ORDERS = ("little", "big")

KINDS = {"no code": "invalid", "left unread": "trailing", "odd number": "odd", "more than": "too_long"}


def fingerprint(entries: Sequence[Tuple[int, int]]) -> str:
    return hashlib.sha256(b"".join(struct.pack(">I", (c << 16) | n) for c, n in entries)).hexdigest()


def native(stream: bytes, table: str, order: str, max_out: Optional[int] = None) -> Tuple[str, object]:
    """("ok", bytes) or (kind, offset) of a FormatError of the native decoder."""
    try:
        return "ok", _native.huffman_decode(stream, table, order, max_out)
    except ams02.FormatError as e:
        msg = str(e)
        kinds = [k for s, k in KINDS.items() if s in msg]
        m = re.search(r"\(at byte (\d+)\)$", msg)
        assert len(kinds) == 1 and m, msg
        assert msg.startswith(f"{table}: "), msg
        return kinds[0], int(m.group(1))


def reference(coded: Sequence[int], table: str, max_out: Optional[int] = None) -> Tuple[str, object]:
    try:
        return "ok", huffenc.decode(coded, table, max_out)
    except huffenc.StreamError as e:
        return e.kind, e.offset


def bits_to_words(bits: str) -> List[int]:
    bits += "0" * (-len(bits) % 16)
    return [int(bits[i : i + 16], 2) for i in range(0, len(bits), 16)]


def code(table: str, byte: int) -> str:
    c, n = huffenc.TABLES[table][byte]
    return format(c, f"0{n}b")


# -- tables ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["B50A", "B606"])
def test_native_tables_have_the_fingerprints(name: str) -> None:
    t = _native.huffman_table(name)
    assert len(t) == 256
    assert fingerprint(t) == FINGERPRINTS[name]


@pytest.mark.parametrize("name", ["B50A", "B606"])
def test_native_tables_equal_the_shared_json(name: str) -> None:
    p = huffenc.shared_json()
    if p is None:
        pytest.skip("the shared folder (../shared or /work/shared) with data/huffman_tables.json is absent")
    doc = json.loads(p.read_text())
    assert [tuple(e) for e in doc["tables"][name]] == _native.huffman_table(name)
    assert doc["sha256_of_big_endian_u32_entries"][name] == FINGERPRINTS[name]
    assert doc["switch_run"] == huffenc.SWITCH_RUN


def test_longest_codes_and_table_choice() -> None:
    assert (huffenc.max_len("B50A"), huffenc.max_len("B606")) == (11, 10)
    for run in (0, 1, huffenc.SWITCH_RUN - 1, huffenc.SWITCH_RUN, huffenc.SWITCH_RUN + 1, 2**32 - 1):
        assert _native.huffman_table_for_run(run) == huffenc.table_for_run(run)
    assert _native.huffman_table_for_run(0x4DE80000) == "B50A"
    assert _native.huffman_table_for_run(0x4DE80001) == "B606"


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="B50A or B606"):
        _native.huffman_decode(b"", "B999", "little")
    with pytest.raises(ValueError, match="byte_order"):
        _native.huffman_decode(b"", "B50A", "auto")
    with pytest.raises(ValueError, match="odd"):
        _native.huffman_encode(b"\x01", "B50A", "big")
    with pytest.raises(ValueError):
        _native.huffman_table("b50a")


# -- round trips ------------------------------------------------------------------------------

words_st = st.lists(
    st.one_of(st.integers(0, 63), st.integers(0, 0xFFF), st.integers(0, 0xFFFF)), max_size=400
)


@settings(max_examples=150, deadline=None)
@given(words=words_st, table=st.sampled_from(huffenc.TABLE_NAMES), order=st.sampled_from(ORDERS))
def test_python_encoded_streams_decode_natively(words: List[int], table: str, order: str) -> None:
    stream = huffenc.encode_bytes(words, table, order)
    plain = huffenc.plain_bytes(words)
    assert _native.huffman_decode(stream, table, order) == plain
    assert _native.huffman_decode(stream, table, order, len(plain)) == plain
    # The native encoder (used by the simulator) writes the same stream.
    assert _native.huffman_encode(plain, table, order) == stream
    if words:
        kind, _ = native(stream, table, order, len(plain) - 1)
        assert kind == "too_long"


@settings(max_examples=300, deadline=None)
@given(
    words=st.lists(st.one_of(st.integers(0, 63), st.integers(0, 0xFFFF)), min_size=1, max_size=120),
    table=st.sampled_from(huffenc.TABLE_NAMES),
    order=st.sampled_from(ORDERS),
    flips=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 15)), max_size=3),
    cut=st.integers(0, 2),
    extra=st.lists(st.one_of(st.just(0), st.integers(0, 0xFFFF)), max_size=2),
)
def test_corrupted_streams_fail_as_the_reference(
    words: List[int], table: str, order: str, flips: List[Tuple[int, int]], cut: int, extra: List[int]
) -> None:
    coded = huffenc.encode(words, table)
    for i, b in flips:
        coded[i % len(coded)] ^= 1 << b
    coded = coded[: max(0, len(coded) - cut)] + extra
    assert native(huffenc.to_bytes(coded, order), table, order, 300) == reference(coded, table, 300)


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=80), table=st.sampled_from(huffenc.TABLE_NAMES), order=st.sampled_from(ORDERS))
def test_random_bytes_decode_as_the_reference(data: bytes, table: str, order: str) -> None:
    even = data[: len(data) & ~1]
    coded = [int.from_bytes(even[i : i + 2], order) for i in range(0, len(even), 2)]  # type: ignore[arg-type]
    # An odd last byte is not read.
    assert native(data, table, order) == reference(coded, table)


# -- hand-made streams ------------------------------------------------------------------------


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("table", huffenc.TABLE_NAMES)
def test_edge_cases(table: str, order: str) -> None:
    L = huffenc.max_len(table)

    def dec(bits: str) -> Tuple[str, object]:
        return native(huffenc.to_bytes(bits_to_words(bits), order), table, order)

    # No words: no bytes, no error.
    assert dec("") == ("ok", b"")
    # END inside the stream, partly in the padding, or entirely past the end.
    two = code(table, 0x12) + code(table, 0x34)
    assert dec(two + "0" * (L + 1)) == ("ok", b"\x12\x34")
    assert dec(two) == ("ok", b"\x12\x34")
    # Three bytes: odd, reported at the END's word.
    three = two + code(table, 0x56)
    assert dec(three) == ("odd", len(three) // 16 * 2)
    # Bits left after END: 12 are fine, 13 are too many (a 1 after END's zeros).
    for left in (12, 13):
        a, b = next(
            (a, b)
            for a in range(256)
            for b in range(256)
            if (len(code(table, a) + code(table, b)) + L + 1 + left) % 16 == 0
        )
        s = code(table, a) + code(table, b) + "0" * (L + 1)
        stream = s + "1" + "0" * (left - 1)
        assert len(stream) % 16 == 0
        want = ("ok", bytes([a, b])) if left == 12 else ("trailing", len(s) // 16 * 2)
        assert dec(stream) == want


@pytest.mark.parametrize("order", ORDERS)
def test_invalid_codes(order: str) -> None:
    # B50A: eleven zeros then a 1 is its only pattern that is no code.
    s = code("B50A", 0xAB) * 3 + "0" * 11 + "1"
    assert native(huffenc.to_bytes(bits_to_words(s), order), "B50A", order) == (
        "invalid",
        len(s) - 12 >> 4 << 1,
    )
    # B606: an unused 10-bit pattern.
    used = {code("B606", b) for b in range(256)}
    free = next(
        p for p in (format(i, "010b") for i in range(1, 1024)) if not any(p.startswith(u) for u in used)
    )
    s = code("B606", 7) * 9 + free
    assert native(huffenc.to_bytes(bits_to_words(s), order), "B606", order) == (
        "invalid",
        len(s) - 10 >> 4 << 1,
    )


def test_benchmark_peer_rows_decode_the_same_bytes():
    """`benchmarks/huffman_bench.py` times this decoder against zstd's Huffman literals on
    one shuffled payload: both round trips are checked there, and the rows say what was
    timed (not a timing test)."""
    pytest.importorskip("pyarrow")
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "huffman_bench.py"
    spec = importlib.util.spec_from_file_location("huffman_bench", path)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    groups = bench.payloads(200_000)["groups"]
    rows = bench.peer_rows(groups, 1)
    assert [r["table"].split()[0] for r in rows] == ["B50A", "B606", "zstd"]
    n = sum(len(g) for g in groups)
    assert all(r["decoded MB"] == n / 1e6 and r["decoded MB/s"] > 0 for r in rows)
    # shuffled, the bytes keep their distribution: zstd codes them (Huffman literals)
    # below their size, the flight tables near it (as on the unshuffled groups)
    assert rows[2]["coded/decoded"] < 0.97
    assert 0.9 < rows[0]["coded/decoded"] < 1.2
