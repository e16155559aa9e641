"""A pure-Python CCSDS packet encoder for the tests, written from FORMAT.md section 7
and the ICD figures (seed 001) only.

It never imports ``ams02``: the tests compare two independent implementations. Fields
are placed bit by bit with the ICD's numbering (bit 0 = MSB of a 16-bit word), not with
the shifts the Rust decoder uses. Builders return the bytes together with the truth,
shaped like the decoder's tables (dicts of NumPy arrays with the decoder's dtypes).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

# --------------------------------------------------------------------------
# constants (FORMAT.md section 7, ICD appendix D)
# --------------------------------------------------------------------------

APID_SCIENCE = 976
APID_HOUSEKEEPING = 977
APID_P2P = (980, 981)
APID_COMMAND = 124
APID_MDM = 1024
APID_BROADCAST = 2000
KNOWN_APIDS = (124, 976, 977, 980, 981, 1024, 2000)
HRDL_APIDS = (976, 977, 980, 981)
SEQ_MOD = 16384
SUBSET_308 = 308

#: Word 1 of the primary header as printed, bit 0 (MSB) first, in ICD figures
#: 3.1.2.2-1 (science), -2 (housekeeping), -3 (payload-to-payload) and -8 (uplink).
FIGURE_WORD1_BITS = {
    "3.1.2.2-1": "0 0 0 1 1 0 1 1 1 1 0 1 0 0 0 0",
    "3.1.2.2-2": "0 0 0 1 1 0 1 1 1 1 0 1 0 0 0 1",
    "3.1.2.2-3": "0 0 0 1 1 0 1 1 1 1 0 1 0 1 0 0",
    "3.1.2.2-8": "0 0 0 1 1 0 0 0 0 1 1 1 1 1 0 0",
}
#: The APID each figure names.
FIGURE_APID = {"3.1.2.2-1": 976, "3.1.2.2-2": 977, "3.1.2.2-3": 980, "3.1.2.2-8": 124}
#: Figure 3.1.2.2-8, word 6 bits 8..15: time ID 01, check word 1, spare 0, type 1010.
FIGURE_8_WORD6_LOW_BITS = "0 1 1 0 1 0 1 0"
#: Figure 3.1.2.2-8, word 7: spare, packet/element ID, cmd/data, spare, LDP.
FIGURE_8_WORD7_BITS = "0 0 0 0 1 0 0 0 1 1 1 1 0 0 1 0"


def bits_to_word(bits: str) -> int:
    """A 16-bit word from its bits as printed in the ICD, bit 0 (MSB) first."""
    b = bits.split()
    assert len(b) == 16 and set(b) <= {"0", "1"}
    return sum(int(x) << (15 - i) for i, x in enumerate(b))


def put_field(word: int, value: int, first_bit: int, n_bits: int) -> int:
    """Sets ICD bits ``first_bit .. first_bit + n_bits - 1`` (bit 0 = MSB) of a word."""
    assert 0 <= value < (1 << n_bits), (value, n_bits)
    shift = 16 - first_bit - n_bits
    mask = ((1 << n_bits) - 1) << shift
    return (word & ~mask) | (value << shift)


def get_field(word: int, first_bit: int, n_bits: int) -> int:
    """Reads ICD bits ``first_bit .. first_bit + n_bits - 1`` of a word."""
    return (word >> (16 - first_bit - n_bits)) & ((1 << n_bits) - 1)


def words_to_bytes(words: Iterable[int]) -> bytes:
    """Big-endian bytes of 16-bit words."""
    out = bytearray()
    for w in words:
        assert 0 <= w <= 0xFFFF
        out += bytes([w >> 8, w & 0xFF])
    return bytes(out)


def bytes_to_words(data: bytes) -> List[int]:
    assert len(data) % 2 == 0
    return [(data[i] << 8) | data[i + 1] for i in range(0, len(data), 2)]


# --------------------------------------------------------------------------
# packets
# --------------------------------------------------------------------------


@dataclass
class Packet:
    """One packet: header fields and user data (bytes after the headers)."""

    apid: int
    seq_count: int = 0
    user_data: bytes = b""
    version: int = 0
    type: int = 1
    sec_hdr: bool = True
    seq_flags: int = 3
    coarse_time: int = 0
    fine_time: int = 0
    time_id: int = 1
    check_word: bool = False
    zoe: bool = False
    packet_type: int = 0
    packet_id1: int = 0
    packet_id2: int = 0
    length: Optional[int] = None  # the raw field; None = computed

    @property
    def header_len(self) -> int:
        return 16 if self.sec_hdr else 6

    @property
    def total_len(self) -> int:
        return self.header_len + len(self.user_data)

    @property
    def length_field(self) -> int:
        return self.total_len - 7 if self.length is None else self.length

    def header_words(self) -> List[int]:
        w1 = 0
        w1 = put_field(w1, self.version, 0, 3)
        w1 = put_field(w1, self.type, 3, 1)
        w1 = put_field(w1, int(self.sec_hdr), 4, 1)
        w1 = put_field(w1, self.apid, 5, 11)
        w2 = put_field(put_field(0, self.seq_flags, 0, 2), self.seq_count, 2, 14)
        w3 = self.length_field
        words = [w1, w2, w3]
        if self.sec_hdr:
            w6 = 0
            w6 = put_field(w6, self.fine_time, 0, 8)
            w6 = put_field(w6, self.time_id, 8, 2)
            w6 = put_field(w6, int(self.check_word), 10, 1)
            w6 = put_field(w6, int(self.zoe), 11, 1)
            w6 = put_field(w6, self.packet_type, 12, 4)
            words += [self.coarse_time >> 16, self.coarse_time & 0xFFFF, w6, self.packet_id1, self.packet_id2]
        return words

    def to_bytes(self) -> bytes:
        return words_to_bytes(self.header_words()) + bytes(self.user_data)

    def truth(self, offset: int, seq_gap: int = 0) -> dict:
        sec = self.sec_hdr
        return {
            "offset": offset,
            "version": self.version,
            "type": self.type,
            "sec_hdr": sec,
            "apid": self.apid,
            "seq_flags": self.seq_flags,
            "seq_count": self.seq_count,
            "length": self.length_field,
            "coarse_time": self.coarse_time if sec else 0,
            "fine_time": self.fine_time if sec else 0,
            "time_id": self.time_id if sec else 0,
            "check_word": self.check_word if sec else False,
            "zoe": self.zoe if sec else False,
            "packet_type": self.packet_type if sec else 0,
            "packet_id1": self.packet_id1 if sec else 0,
            "packet_id2": self.packet_id2 if sec else 0,
            "data_offset": offset + self.header_len,
            "data_length": len(self.user_data),
            "seq_gap": seq_gap,
            "time_s": (self.coarse_time + self.fine_time / 256.0) if sec else 0.0,
        }


#: The decoder's dtypes of the ``packets()`` columns.
PACKET_DTYPES = {
    "offset": np.uint64,
    "version": np.uint8,
    "type": np.uint8,
    "sec_hdr": np.bool_,
    "apid": np.uint16,
    "seq_flags": np.uint8,
    "seq_count": np.uint16,
    "length": np.uint16,
    "coarse_time": np.uint32,
    "fine_time": np.uint8,
    "time_id": np.uint8,
    "check_word": np.bool_,
    "zoe": np.bool_,
    "packet_type": np.uint8,
    "packet_id1": np.uint16,
    "packet_id2": np.uint16,
    "data_offset": np.uint64,
    "data_length": np.uint32,
    "seq_gap": np.uint16,
    "time_s": np.float64,
}


def table(rows: Sequence[dict], dtypes: Dict[str, type] = PACKET_DTYPES) -> Dict[str, np.ndarray]:
    return {k: np.array([r[k] for r in rows], dtype=t) for k, t in dtypes.items()}


def seq_gaps(packets: Sequence[Packet]) -> List[int]:
    """Packets missing before each packet in its APID's sequence, modulo 16384."""
    last: Dict[int, int] = {}
    out = []
    for p in packets:
        out.append(0 if p.apid not in last else (p.seq_count - last[p.apid] - 1) % SEQ_MOD)
        last[p.apid] = p.seq_count
    return out


def apid_summary(packets: Sequence[Packet]) -> Dict[str, np.ndarray]:
    rows: Dict[int, dict] = {}
    for p, gap in zip(packets, seq_gaps(packets)):
        r = rows.setdefault(p.apid, {"apid": p.apid, "count": 0, "first_seq": p.seq_count, "missing": 0, "bytes": 0})
        r["count"] += 1
        r["last_seq"] = p.seq_count
        r["missing"] += gap
        r["bytes"] += p.total_len
    ordered = [rows[a] for a in sorted(rows)]
    dtypes = {"apid": np.uint16, "count": np.uint64, "first_seq": np.uint16, "last_seq": np.uint16,
              "missing": np.uint64, "bytes": np.uint64}
    return table(ordered, dtypes)


@dataclass
class PacketFile:
    """A packet file under construction: packets, and junk between them."""

    parts: List[Tuple[str, object]] = field(default_factory=list)  # ("packet", Packet) | ("junk", bytes)

    def add(self, p: Packet) -> "PacketFile":
        self.parts.append(("packet", p))
        return self

    def junk(self, data: bytes) -> "PacketFile":
        self.parts.append(("junk", bytes(data)))
        return self

    def to_bytes(self) -> bytes:
        return b"".join(p.to_bytes() if k == "packet" else p for k, p in self.parts)  # type: ignore[union-attr]

    def packets(self) -> List[Packet]:
        return [p for k, p in self.parts if k == "packet"]  # type: ignore[misc]

    def offsets(self) -> List[int]:
        out, pos = [], 0
        for k, p in self.parts:
            if k == "packet":
                out.append(pos)
                pos += p.total_len  # type: ignore[union-attr]
            else:
                pos += len(p)  # type: ignore[arg-type]
        return out

    def junk_offsets(self) -> List[int]:
        out, pos = [], 0
        for k, p in self.parts:
            if k == "junk":
                out.append(pos)
                pos += len(p)  # type: ignore[arg-type]
            else:
                pos += p.total_len  # type: ignore[union-attr]
        return out

    def truth(self) -> Dict[str, np.ndarray]:
        pk = self.packets()
        return table([p.truth(o, g) for p, o, g in zip(pk, self.offsets(), seq_gaps(pk))])


# --------------------------------------------------------------------------
# health and status, commands
# --------------------------------------------------------------------------


def health_user_data(
    subset_id: int = SUBSET_308,
    service_request_id: int = 0,
    service_request_data: int = 0,
    caution_warning: int = 0,
    cycle_counter: int = 0,
    payload_message: int = 0,
    chd: Sequence[int] = tuple(range(10)),
    more: Sequence[int] = (),
) -> bytes:
    """User data of an H&S packet (ICD figure 3.2.2.2-1, words 9 onwards)."""
    assert len(chd) == 10
    words = [subset_id, service_request_id, service_request_data, caution_warning, cycle_counter,
             payload_message, *chd, *more]
    return words_to_bytes(words)


def checksum(words: Sequence[int]) -> int:
    """The sum of 16-bit words ignoring overflow (ICD 3.2.3.1)."""
    s = 0
    for w in words:
        s = (s + w) & 0xFFFF
    return s


def command_packet(seq_count: int, data_words: Sequence[int], *, mode: int = 1, corrupt: bool = False,
                   apid: int = APID_COMMAND, ldp: int = 183) -> Packet:
    """An LRDL command (ICD figures 3.1.2.2-8 and 3.2.3.1-1): 8 header words, spare,
    legal station mode, data, then the checksum word (the last word)."""
    w7 = 0
    w7 = put_field(w7, 0, 0, 1)  # spare
    w7 = put_field(w7, 1, 1, 4)  # packet/element ID 0001
    w7 = put_field(w7, 0, 5, 1)  # command packet
    w7 = put_field(w7, 0, 6, 2)  # spare
    w7 = put_field(w7, ldp, 8, 8)
    p = Packet(apid=apid, seq_count=seq_count, time_id=1, check_word=True, packet_type=0b1010,
               packet_id1=w7, packet_id2=SUBSET_308, coarse_time=0x12345678, fine_time=7)
    body = [0, mode, *data_words]
    p.user_data = words_to_bytes(body + [0])
    total = checksum(bytes_to_words(p.to_bytes())[:-1])
    if corrupt:
        total ^= 0x0100
    p.user_data = words_to_bytes(body + [total])
    return p


# --------------------------------------------------------------------------
# the science stream
# --------------------------------------------------------------------------


def packetize(stream: bytes, sizes: Sequence[int], *, first_seq: int = 0, drop: Iterable[int] = (),
              apid: int = APID_SCIENCE) -> Tuple[bytes, List[Tuple[int, int]], List[int]]:
    """Cuts ``stream`` into packets of user-data sizes taken in turn from ``sizes``;
    packets numbered in ``drop`` are left out. Returns the file, the stream ranges
    of the dropped packets, and the file offsets of the written packets.
    The last packet takes the rest of the stream when a packet of fewer than 84 bytes
    of user data (100 with headers, the HRDL minimum) would be left over.
    """
    drop = set(drop)
    out = bytearray()
    dropped: List[Tuple[int, int]] = []
    offsets: List[int] = []
    pos, i = 0, 0
    while pos < len(stream):
        left = len(stream) - pos
        n = min(sizes[i % len(sizes)], left)
        if 0 < left - n < 84:
            n = left if left <= 4080 else left - 84
        if i in drop:
            dropped.append((pos, pos + n))
        else:
            p = Packet(apid=apid, seq_count=(first_seq + i) % SEQ_MOD, user_data=stream[pos:pos + n],
                       coarse_time=1_000_000 + i, fine_time=(i * 37) % 256, packet_id1=1, packet_id2=i % 65536)
            offsets.append(len(out))
            out += p.to_bytes()
        pos += n
        i += 1
    return bytes(out), dropped, offsets


def random_packet(rng: random.Random, apid: Optional[int] = None, seq: int = 0,
                  sec_hdr: Optional[bool] = None) -> Packet:
    """A packet of a known APID, within that APID's size bounds; with a secondary header
    (``sec_hdr=True``), without, or (None) with one but for one HRDL packet in ten."""
    apid = rng.choice(KNOWN_APIDS) if apid is None else apid
    if apid in HRDL_APIDS:
        lo, hi = 100, 4096
    elif apid == APID_COMMAND:
        lo, hi = 48, 128
    else:
        lo, hi = 16, 2560
    if sec_hdr is not None:
        sec = sec_hdr
    else:
        sec = True if apid not in HRDL_APIDS else rng.random() < 0.9
    hl = 16 if sec else 6
    n = rng.randint(max(lo - hl, 0), hi - hl)
    return Packet(
        apid=apid, seq_count=seq % SEQ_MOD, user_data=rng.randbytes(n), sec_hdr=sec,
        type=rng.getrandbits(1), seq_flags=rng.getrandbits(2), coarse_time=rng.getrandbits(32),
        fine_time=rng.getrandbits(8), time_id=rng.getrandbits(2), check_word=False,
        zoe=bool(rng.getrandbits(1)), packet_type=rng.getrandbits(4), packet_id1=rng.getrandbits(16),
        packet_id2=rng.getrandbits(16),
    )
