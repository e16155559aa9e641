"""A pure-Python encoder for AMS-02 block files, written from FORMAT.md only.

It never imports ``ams02``: everything here is derived from the normative
reading in ``FORMAT.md`` (sections 1-6 and 9) so the tests compare two independent
implementations. Builders return the bytes together with the truth, shaped like
the decoder's tables (dicts of NumPy arrays with the decoder's dtypes).

Conventions used below (all from FORMAT.md):

* words are 16-bit; bit 15 is the MSB; a 32-bit value is two words, MSW first;
* on disk each word is little-endian ("little") or big-endian ("big");
* an odd block SIZE puts the last data byte in the HIGH half of the last word
  and a pad byte in its low half;
* SIZE counts the bytes after the size word(s).
"""

from __future__ import annotations

import random
import struct
from dataclasses import dataclass, field
from typing import Iterable, Optional, Sequence

import numpy as np

# --------------------------------------------------------------------------
# constants (FORMAT.md)
# --------------------------------------------------------------------------

GPS_TO_UNIX = 315964800  # 0x12D53D80, section 3
assert GPS_TO_UNIX == 0x12D53D80

# node status word bits (section 4.2)
ST_DATA = 1 << 15
ST_COMPRESSED = 1 << 7
ST_RAW = 1 << 6
ST_CDP = 1 << 5
ST_SLAVE_MASK = 0x1F

TYPE_EXT_MARK = 0x1F
TYPE_EVENT = 5  # event block and JMDC sub-block
TYPE_GROUP = 1
TYPE_LEVEL3 = 6

JINJ_NODES = range(128, 136)
JMDC_NODES = range(0, 16)  # NODE 0..15: the JMDCs 0..3 four times over (section 4)
LEF_NODE, LEF_TYPE = 0x40, 0x13  # a reply of this TYPE from this node is a LEF event (11.1)
TYPE_FLIGHT = range(0x10, 0x14)  # flight-layout JMDC header TYPEs (section 9.1)
TYPE_GROUP_CODED = 4  # Huffman-coded group (section 9.3)

# the layouts (events()["layout"]) and the node roles (fragments()["role"]), by code
LAYOUT_UNKNOWN, LAYOUT_2007, LAYOUT_FLIGHT = 0, 1, 2
ROLES = ["jinj", "jinf_t", "jinf_u", "jinf_r", "jinf_e", "jinf", "sdr", "jlv1", "xdr", "udr", "unknown_port", "node"]
ROLE = {name: code for code, name in enumerate(ROLES)}
# section 4.2: the JINJ port table
JINJ_PORT_ROLE = {}
for _p in (0, 1, 3, 9, 16, 17, 22, 23):
    JINJ_PORT_ROLE[_p] = "jinf_t"
for _p in (2, 8):
    JINJ_PORT_ROLE[_p] = "jinf_u"
for _p in (10, 11):
    JINJ_PORT_ROLE[_p] = "jinf_r"
for _p in (12, 13):
    JINJ_PORT_ROLE[_p] = "jinf_e"
for _p in (*range(4, 8), *range(18, 22)):
    JINJ_PORT_ROLE[_p] = "sdr"
for _p in (14, 15):
    JINJ_PORT_ROLE[_p] = "jlv1"
for _p in range(24, 32):
    JINJ_PORT_ROLE[_p] = "unknown_port"
CONCENTRATORS = ("jinj", "jinf_t", "jinf_u", "jinf_r", "jinf_e", "jinf")
JINFS = CONCENTRATORS[1:]
# the CDP bit the flight layout expects (None: not checked)
EXPECTED_CDP = {"sdr": True, "xdr": True, "udr": True, "jlv1": None, "unknown_port": None, "node": None}
for _r in CONCENTRATORS:
    EXPECTED_CDP[_r] = False


def top_role(node: int) -> str:
    """The role of a group's top node from its NODE (sections 4.2, 4.3)."""
    if node in JINJ_NODES:
        return "jinj"
    if 198 <= node <= 205:
        return "jinf_u"
    if 150 <= node <= 205:
        return "jinf"
    if 474 <= node <= 509:
        return "udr"
    if 282 <= node <= 473:
        return "xdr"
    return "node"


def child_role(parent: str, slave_id: int) -> str:
    """The role of a fragment from its master's role and its slave ID."""
    if parent == "jinj":
        return JINJ_PORT_ROLE[slave_id]
    if parent == "jinf_u":
        return "udr"
    return "xdr"


def jinf_u_node_crate(node: int) -> int:
    """Section 4.3: JF-U0 A/B/P/S are 198..201 (crate 0), JF-U1 202..205 (crate 1)."""
    return 0 if node <= 201 else 1


def udr_node_place(node: int) -> tuple:
    """Section 4.3: (crate, UDR index) of a UDR node 474..509."""
    k = (node - 474) // 3
    return k // 6, k % 6


def unix_seconds(t: int) -> float:
    """Section 3: below 10^9 seconds count from 1980-01-06, else they are Unix seconds."""
    return float(t) + GPS_TO_UNIX if t < 1_000_000_000 else float(t)


def signed16(w: int) -> int:
    return w - 0x10000 if w & 0x8000 else w
JINF_U_PORT_TO_CRATE = {2: 1, 8: 0}  # JINJ port (slave id) -> crate (1 = U1/RAM, 0 = U0/WAKE)
CRATE_TO_JINF_U_PORT = {1: 2, 0: 8}
UDR_SLOTS = (1, 3, 4, 6, 7, 9)  # UDR index -> slot (section 4.3)
UDR_CHANNELS = 448

# --------------------------------------------------------------------------
# TRD module table: FORMAT.md section 5.1, transcribed by hand
# (layer, ams_ladder, label, crate, slot, ufe, direction)
# --------------------------------------------------------------------------

TRD_MODULES = [
    (1, 0, "1-7", "U1", 7, 3, 0),
    (1, 1, "1-6", "U1", 7, 4, 0),
    (1, 2, "1-5", "U1", 3, 3, 1),
    (1, 3, "1-4", "U1", 3, 4, 1),
    (1, 4, "1-3", "U1", 7, 5, 0),
    (1, 5, "1-2", "U1", 7, 6, 0),
    (1, 6, "1-1", "U1", 3, 5, 1),
    (1, 7, "1+1", "U0", 7, 5, 1),
    (1, 8, "1+2", "U0", 3, 4, 0),
    (1, 9, "1+3", "U0", 3, 3, 0),
    (1, 10, "1+4", "U0", 7, 4, 1),
    (1, 11, "1+5", "U0", 7, 3, 1),
    (1, 12, "1+6", "U0", 3, 2, 0),
    (1, 13, "1+7", "U0", 3, 1, 0),
    (2, 0, "2-8", "U1", 3, 1, 0),
    (2, 1, "2-7", "U1", 3, 2, 0),
    (2, 2, "2-6", "U0", 7, 1, 1),
    (2, 3, "2-5", "U0", 7, 2, 1),
    (2, 4, "2-4", "U1", 6, 5, 0),
    (2, 5, "2-3", "U1", 6, 6, 0),
    (2, 6, "2-2", "U0", 6, 5, 1),
    (2, 7, "2-1", "U0", 6, 6, 1),
    (2, 8, "2+1", "U1", 6, 4, 0),
    (2, 9, "2+2", "U1", 6, 3, 0),
    (2, 10, "2+3", "U0", 4, 6, 1),
    (2, 11, "2+4", "U0", 4, 5, 1),
    (2, 12, "2+5", "U1", 7, 2, 0),
    (2, 13, "2+6", "U1", 7, 1, 0),
    (2, 14, "2+7", "U0", 3, 0, 1),
    (2, 15, "2+8", "U0", 1, 0, 1),
    (3, 0, "3-8", "U1", 3, 0, 0),
    (3, 1, "3-7", "U1", 1, 0, 0),
    (3, 2, "3-6", "U0", 9, 0, 1),
    (3, 3, "3-5", "U0", 7, 0, 1),
    (3, 4, "3-4", "U1", 4, 5, 0),
    (3, 5, "3-3", "U1", 4, 6, 0),
    (3, 6, "3-2", "U0", 6, 3, 1),
    (3, 7, "3-1", "U0", 6, 4, 1),
    (3, 8, "3+1", "U1", 6, 2, 0),
    (3, 9, "3+2", "U1", 6, 1, 0),
    (3, 10, "3+3", "U0", 4, 4, 1),
    (3, 11, "3+4", "U0", 4, 3, 1),
    (3, 12, "3+5", "U1", 9, 6, 0),
    (3, 13, "3+6", "U1", 9, 5, 0),
    (3, 14, "3+7", "U0", 3, 6, 1),
    (3, 15, "3+8", "U0", 3, 5, 1),
    (4, 0, "4-9", "U0", 9, 5, 1),
    (4, 1, "4-8", "U0", 9, 6, 1),
    (4, 2, "4-7", "U1", 4, 1, 0),
    (4, 3, "4-6", "U1", 4, 2, 0),
    (4, 4, "4-5", "U0", 4, 0, 1),
    (4, 5, "4-4", "U0", 6, 0, 1),
    (4, 6, "4-3", "U1", 4, 3, 0),
    (4, 7, "4-2", "U1", 4, 4, 0),
    (4, 8, "4-1", "U0", 6, 2, 1),
    (4, 9, "4+1", "U0", 6, 1, 1),
    (4, 10, "4+2", "U1", 6, 0, 0),
    (4, 11, "4+3", "U1", 4, 0, 0),
    (4, 12, "4+4", "U0", 4, 2, 1),
    (4, 13, "4+5", "U0", 4, 1, 1),
    (4, 14, "4+6", "U1", 9, 4, 0),
    (4, 15, "4+7", "U1", 9, 3, 0),
    (4, 16, "4+8", "U0", 1, 6, 1),
    (4, 17, "4+9", "U0", 1, 5, 1),
    (5, 0, "5-9", "U1", 1, 1, 1),
    (5, 1, "5-8", "U1", 1, 2, 1),
    (5, 2, "5-7", "U1", 9, 0, 0),
    (5, 3, "5-6", "U1", 7, 0, 0),
    (5, 4, "5-5", "U1", 1, 3, 1),
    (5, 5, "5-4", "U1", 1, 4, 1),
    (5, 6, "5-3", "U1", 9, 1, 0),
    (5, 7, "5-2", "U1", 9, 2, 0),
    (5, 8, "5-1", "U1", 1, 6, 1),
    (5, 9, "5+1", "U1", 1, 5, 1),
    (5, 10, "5+2", "U0", 1, 4, 0),
    (5, 11, "5+3", "U0", 1, 3, 0),
    (5, 12, "5+4", "U0", 9, 4, 1),
    (5, 13, "5+5", "U0", 9, 3, 1),
    (5, 14, "5+6", "U0", 1, 2, 0),
    (5, 15, "5+7", "U0", 1, 1, 0),
    (5, 16, "5+8", "U0", 9, 2, 1),
    (5, 17, "5+9", "U0", 9, 1, 1),
]

CRATE_NUMBER = {"U0": 0, "U1": 1}
# (crate number, slot, ufe) -> row of TRD_MODULES
TRD_LINK = {(CRATE_NUMBER[c], slot, ufe): i for i, (_l, _ld, _lab, c, slot, ufe, _d) in enumerate(TRD_MODULES)}
NC_LINKS = {(1, 3, 6), (0, 7, 6)}  # (crate, slot, ufe) with no module


def trd_module_of(crate: int, slot: int, ufe: int) -> Optional[tuple]:
    """The TRD_MODULES row connected to (crate, slot, ufe), or None for NC."""
    i = TRD_LINK.get((crate, slot, ufe))
    return None if i is None else TRD_MODULES[i]


# --------------------------------------------------------------------------
# words and byte order (section 1)
# --------------------------------------------------------------------------

ORDERS = ("little", "big")


def _fmt(order: str) -> str:
    if order == "little":
        return "<"
    if order == "big":
        return ">"
    raise ValueError(f"byte order must be 'little' or 'big', not {order!r}")


def pack_words(words: Sequence[int], order: str) -> bytes:
    """16-bit words -> bytes, each word in ``order``."""
    for w in words:
        if not 0 <= w <= 0xFFFF:
            raise ValueError(f"word out of range: {w!r}")
    return struct.pack(f"{_fmt(order)}{len(words)}H", *words)


def unpack_words(data: bytes, order: str) -> list:
    if len(data) % 2:
        raise ValueError("odd number of bytes")
    return list(struct.unpack(f"{_fmt(order)}{len(data) // 2}H", data))


def u32_words(value: int) -> list:
    """A 32-bit value as two words, most significant word first."""
    if not 0 <= value <= 0xFFFFFFFF:
        raise ValueError(f"not a u32: {value!r}")
    return [value >> 16, value & 0xFFFF]


def words_from_bytes(data: bytes, pad: int = 0) -> list:
    """Data bytes -> words, byte 2k in the high half; an odd last byte goes in the
    high half of the last word with ``pad`` in its low half (section 2)."""
    out = []
    for i in range(0, len(data) - 1, 2):
        out.append((data[i] << 8) | data[i + 1])
    if len(data) % 2:
        out.append((data[-1] << 8) | (pad & 0xFF))
    return out


# --------------------------------------------------------------------------
# CRC-16/CCITT-FALSE (section 4.2)
# --------------------------------------------------------------------------


def crc16_bitwise(data: bytes, crc: int = 0xFFFF) -> int:
    """Reference bit-by-bit CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF)."""
    for b in data:
        crc ^= b << 8
        for _ in range(8):
            if crc & 0x8000:
                crc = ((crc << 1) ^ 0x1021) & 0xFFFF
            else:
                crc = (crc << 1) & 0xFFFF
    return crc


_CRC_TABLE = [crc16_bitwise(bytes([i]), 0) for i in range(256)]


def crc16(data: bytes, crc: int = 0xFFFF) -> int:
    """Table-driven CRC-16/CCITT-FALSE, same result as :func:`crc16_bitwise`."""
    tab = _CRC_TABLE
    for b in data:
        crc = ((crc << 8) & 0xFFFF) ^ tab[(crc >> 8) ^ b]
    return crc


def crc16_words(words: Iterable[int]) -> int:
    """CRC over 16-bit words, each fed most significant bit (byte) first."""
    return crc16(b"".join(w.to_bytes(2, "big") for w in words))


# --------------------------------------------------------------------------
# the AMS block (section 2)
# --------------------------------------------------------------------------


@dataclass
class BlockInfo:
    """Everything about one encoded block (relative to its own first word)."""

    size: int  # SIZE: bytes after the size word(s)
    long: bool
    rr: bool
    rw: bool
    node: int
    type: int
    type_ext: int  # 0 if absent
    status: int  # top 4 bits of the secondary header (0 for sub-blocks)
    tag: int
    time: int  # 0 without TIME
    n_size_words: int  # 1 or 2
    n_header_words: int  # size word(s) + ID + TYPE_EXT + secondary header + TIME
    n_words: int  # total words on disk (pad included)
    offset: int = 0  # absolute byte offset, filled in by the run

    @property
    def data_type(self) -> int:
        return (TYPE_EXT_MARK << 16) | self.type_ext if self.type == TYPE_EXT_MARK else self.type


def id_word(rr: bool, rw: bool, node: int, type_: int) -> int:
    if not 0 <= node <= 0x1FF:
        raise ValueError(f"NODE is 9 bits: {node}")
    if not 0 <= type_ <= 0x1F:
        raise ValueError(f"TYPE is 5 bits: {type_}")
    return (int(bool(rr)) << 15) | (int(bool(rw)) << 14) | (node << 5) | type_


def size_words(size: int, long: bool) -> list:
    if size > 0x7FFF:
        long = True
    if long:
        if not 0 <= size <= 0x7FFFFFFF:
            raise ValueError(f"size out of range: {size}")
        return [0x8000 | (size >> 16), size & 0xFFFF]
    return [size]


def block(
    data: Sequence[int] = (),
    *,
    rr: bool = True,
    rw: bool = False,
    node: int = 0,
    type: int = 0,
    type_ext: Optional[int] = None,
    top: bool = True,
    status: int = 0,
    tag: int = 0,
    time: int = 0,
    long: bool = False,
    odd: bool = False,
    size: Optional[int] = None,
) -> tuple:
    """Encode one AMS block. Returns (words, BlockInfo).

    ``data`` are the data words; with ``odd=True`` the last data word carries
    only one data byte (its high half) and SIZE is odd. ``top`` blocks get the
    secondary header (STATUS/FBI | TAG) and, if ``rr``, the 32-bit TIME;
    sub-blocks get neither. ``long`` forces L=1 (sizes above 0x7FFF force it
    anyway). ``size`` overrides the SIZE written (for corrupt-data tests).
    """
    data = list(data)
    header = [id_word(rr, rw, node, type)]
    if type == TYPE_EXT_MARK:
        if type_ext is None:
            raise ValueError("TYPE=0x1F needs a TYPE_EXT")
        header.append(type_ext & 0xFFFF)
    elif type_ext is not None:
        raise ValueError("TYPE_EXT only with TYPE=0x1F")
    if top:
        if not 0 <= status <= 0xF or not 0 <= tag <= 0xFFF:
            raise ValueError("STATUS is 4 bits, TAG 12 bits")
        header.append((status << 12) | tag)
        if rr:
            header += u32_words(time)
    if odd and not data:
        raise ValueError("an odd size needs at least one data word")
    true_size = 2 * (len(header) + len(data)) - (1 if odd else 0)
    if size is None:
        size = true_size
    long = bool(long or size > 0x7FFF)
    sw = size_words(size, long)
    words = sw + header + data
    info = BlockInfo(
        size=size,
        long=long,
        rr=bool(rr),
        rw=bool(rw),
        node=node,
        type=type,
        type_ext=type_ext if type == TYPE_EXT_MARK else 0,
        status=status if top else 0,
        tag=tag if top else 0,
        time=time if (top and rr) else 0,
        n_size_words=len(sw),
        n_header_words=len(sw) + len(header),
        n_words=len(words),
    )
    return words, info


def subblock(data: Sequence[int] = (), **kw) -> tuple:
    """A sub-block: an AMS block without secondary header (and no TIME)."""
    return block(data, top=False, **kw)


# --------------------------------------------------------------------------
# fragments (section 4.2)
# --------------------------------------------------------------------------


@dataclass
class Frag:
    """One node's reply: ``[N, content..., status]`` with N = len(content) + 1.

    If ``children`` is not None the content is the concatenation of the
    children's fragments (the status should then have CDP set); otherwise the
    content is ``data``. ``trd`` carries the truth of a UDR fragment (set by
    :func:`udr_frag`), ``n_override`` forges the N word.
    """

    status: int
    data: list = field(default_factory=list)
    children: Optional[list] = None
    trd: Optional[dict] = None
    n_override: Optional[int] = None
    mask: Optional[int] = None  # flight-layout JINF slave mask: two words after the children

    def content(self) -> list:
        if self.children is not None:
            out = []
            for c in self.children:
                out += c.words()
            if self.mask is not None:
                out += u32_words(self.mask)
            return out
        return list(self.data)

    def words(self) -> list:
        c = self.content()
        n = len(c) + 1 if self.n_override is None else self.n_override
        return [n] + c + [self.status]

    @property
    def slave_id(self) -> int:
        return self.status & ST_SLAVE_MASK

    @property
    def is_cdp(self) -> bool:
        return bool(self.status & ST_CDP)


def node_status(slave_id: int, *, cdp: bool = False, raw: bool = False, compressed: bool = False, high: int = 0) -> int:
    """A node status word. ``high`` supplies bits 15..8 (flags with no meaning
    for the decoding of the layout)."""
    if not 0 <= slave_id <= 31:
        raise ValueError("slave id is 5 bits")
    return ((high & 0xFF) << 8) | (ST_COMPRESSED if compressed else 0) | (ST_RAW if raw else 0) | (ST_CDP if cdp else 0) | slave_id


def cddc(
    slave_id: int, children: list, *, high: int = 0, extra_bits: int = 0, cdp: bool = True, mask: Optional[int] = None
) -> Frag:
    """A concentrator fragment (a JINJ or a JINF by its place) holding ``children``:
    CDP set by default (the 2007 convention of this project's earlier data; the flight
    layout has it clear: ``cdp=False``). ``mask`` adds a flight JINF's slave mask words.
    ``extra_bits`` may set bits 7/6 too."""
    return Frag(
        status=node_status(slave_id, cdp=cdp, high=high) | (extra_bits & 0xC0), children=list(children), mask=mask
    )


def jinf(slave_id: int, children: list, *, mask: int = 0, high: int = 0) -> Frag:
    """A flight-layout JINF (CDP clear) with its slave mask."""
    return cddc(slave_id, children, high=high, cdp=False, mask=mask)


def leaf(slave_id: int, data: Sequence[int], *, high: int = 0, extra_bits: int = 0, cdp: bool = False) -> Frag:
    """A non-concentrator fragment with its own data words (``cdp=True`` for a flight xDR)."""
    return Frag(status=node_status(slave_id, high=high, cdp=cdp) | (extra_bits & 0xC0), data=list(data))


# --------------------------------------------------------------------------
# TRD UDR content (section 5)
# --------------------------------------------------------------------------


def udr_raw_words(adc_channel_order: Sequence[int], noise: Optional[Sequence[int]] = None) -> list:
    """448 ADC values in CHANNEL order (index ufe*64+ch) -> 448 words in
    sequencer order (word i = UFE i%7, channel i//7). ``noise`` (448 values of
    0..15, in sequencer order) goes in the top 4 bits, which carry no ADC."""
    if len(adc_channel_order) != UDR_CHANNELS:
        raise ValueError("448 ADC values")
    out = []
    for i in range(UDR_CHANNELS):
        ufe, ch = i % 7, i // 7
        v = adc_channel_order[ufe * 64 + ch]
        if not 0 <= v <= 0xFFF:
            raise ValueError("ADC is 12 bits")
        top = (noise[i] & 0xF) << 12 if noise is not None else 0
        out.append(top | v)
    return out


def udr_compressed_words(hits: Sequence[tuple], noise: Optional[Sequence[tuple]] = None) -> list:
    """(channel 0..511, amplitude 0..0x7FFF) pairs -> words. ``noise`` gives,
    per hit, (bits 15..9 of the channel word, bit 15 of the amplitude word)."""
    out = []
    for k, (channel, amp) in enumerate(hits):
        if not 0 <= channel <= 0x1FF or not 0 <= amp <= 0x7FFF:
            raise ValueError("channel 9 bits, amplitude 15 bits")
        hi_c, hi_a = noise[k] if noise is not None else (0, 0)
        out.append(((hi_c & 0x7F) << 9) | channel)
        out.append(((hi_a & 1) << 15) | amp)
    return out


def udr_frag(
    udr: int,
    mode: str,
    *,
    adc: Optional[Sequence[int]] = None,
    hits: Sequence[tuple] = (),
    raw_noise: Optional[Sequence[int]] = None,
    hit_noise: Optional[Sequence[tuple]] = None,
    high: int = 0,
    slave_id: Optional[int] = None,
    cdp: bool = False,
) -> Frag:
    """A UDR fragment: mode "raw", "compressed" or "mixed" (``cdp=True`` as in flight data;
    ``slave_id`` default 4 * udr, the A side)."""
    raw = mode in ("raw", "mixed")
    comp = mode in ("compressed", "mixed")
    if not (raw or comp):
        raise ValueError(mode)
    data = []
    if raw:
        if adc is None:
            raise ValueError("raw/mixed needs adc")
        data += udr_raw_words(adc, raw_noise)
    if comp:
        data += udr_compressed_words(hits, hit_noise)
    sid = 4 * udr if slave_id is None else slave_id
    st = node_status(sid, raw=raw, compressed=comp, high=high, cdp=cdp)
    words = data[UDR_CHANNELS:] if raw else data
    return Frag(
        status=st,
        data=data,
        trd={
            "udr": udr,
            "mode": mode,
            "adc": list(adc) if raw else None,
            "hits": list(hits) if comp else [],
            # (channel word, amplitude word) of each hit, for the flight layout's signed reading
            "hit_words": [(words[2 * k], words[2 * k + 1]) for k in range(len(words) // 2)] if comp else [],
        },
    )


def jinf_u(
    crate: int, udrs: Sequence[Frag], *, high: int = 0, extra_bits: int = 0, cdp: bool = True, mask: Optional[int] = None
) -> Frag:
    """JINF-U1 (crate 1, JINJ port 2) or JINF-U0 (crate 0, port 8); flight data:
    ``cdp=False`` and a ``mask``."""
    return cddc(CRATE_TO_JINF_U_PORT[crate], udrs, high=high, extra_bits=extra_bits, cdp=cdp, mask=mask)


# --------------------------------------------------------------------------
# event sub-blocks (section 4)
# --------------------------------------------------------------------------


@dataclass
class Jmdc:
    run: int = 0
    run_tag: int = 0
    event: int = 1
    time: int = 0
    fine_time: int = 0
    status: int = 0  # the whole JMDC status word; bit 15 = G
    gps_week: int = 0
    gps_second: int = 0
    gps_fraction: int = 0
    # sub-block ID fields
    node: Optional[int] = None  # default: the event's JMDC node
    rr: bool = True
    rw: bool = False
    type: int = TYPE_EVENT
    gps_words: Optional[bool] = None  # write the 5 GPS words; default: G bit
    size: Optional[int] = None  # SIZE override

    @property
    def gps(self) -> bool:
        return bool(self.status & 0x8000)

    def data_words(self) -> list:
        w = u32_words(self.run) + u32_words(self.run_tag) + u32_words(self.event)
        w += u32_words(self.time) + u32_words(self.fine_time) + [self.status]
        gw = self.gps if self.gps_words is None else self.gps_words
        if gw:
            w += [self.gps_week] + u32_words(self.gps_second) + u32_words(self.gps_fraction)
        return w

    def encode(self, event_node: int) -> tuple:
        node = event_node if self.node is None else self.node
        return subblock(self.data_words(), rr=self.rr, rw=self.rw, node=node, type=self.type, size=self.size)


def record_words(n: int, body: Sequence[int] = (), flags: int = 0) -> list:
    """A flight JMDC header record (section 9.1) of ``n`` bytes: the high byte of its first
    word holds ``flags`` (bits 7..5) and ``n`` (bits 4..0); it occupies ceil(n / 2) words
    (at least one), filled from ``body`` (the first word's low byte is body[0]'s)."""
    words = max(1, (n + 1) // 2)
    out = list(body[:words]) + [0] * max(0, words - len(body))
    out[0] = ((flags & 7) << 13) | ((n & 0x1F) << 8) | (out[0] & 0xFF)
    return out


@dataclass
class FlightJmdc:
    """The flight-layout JMDC header (section 9.1): TYPE 0x10..0x13 from the records."""

    fine_ms: int = 0
    run_type: int = 0
    run_id: int = 0
    event: int = 1
    level3: Optional[list] = None  # the level-3 record's words (record_words)
    gps: Optional[list] = None  # the GPS record's words
    extra: list = field(default_factory=list)  # words after the records
    node: Optional[int] = None
    rr: bool = True
    rw: bool = False
    type: Optional[int] = None  # override (default from the records present)
    size: Optional[int] = None

    @property
    def type_(self) -> int:
        if self.type is not None:
            return self.type
        return 0x10 | (1 if self.level3 is not None else 0) | (2 if self.gps is not None else 0)

    def data_words(self) -> list:
        w = [self.fine_ms & 0xFFFF, self.run_type & 0xFFFF] + u32_words(self.run_id) + u32_words(self.event)
        w += list(self.level3 or []) + list(self.gps or []) + list(self.extra)
        return w

    def encode(self, event_node: int) -> tuple:
        node = event_node if self.node is None else self.node
        return subblock(self.data_words(), rr=self.rr, rw=self.rw, node=node, type=self.type_, size=self.size)


@dataclass
class Group:
    """A detector data group sub-block (TYPE=1) whose top node is ``top``.

    The top node's N word is not written: the group data are
    ``event number, top content, top status, CRC``."""

    node: int
    top: Frag
    event_number: Optional[int] = None  # default: low 16 bits of the JMDC event
    crc: Optional[int] = None  # override of the CRC word
    type: int = TYPE_GROUP
    rr: bool = True
    rw: bool = False
    long: bool = False
    size: Optional[int] = None

    def body(self, jmdc_event: int) -> list:
        evn = (jmdc_event & 0xFFFF) if self.event_number is None else self.event_number
        return [evn] + self.top.content() + [self.top.status]

    coded: Optional[list] = None  # override of a TYPE 4 group's coded stream words

    def data_words(self, jmdc_event: int) -> list:
        b = self.body(jmdc_event)
        c = crc16_words(b) if self.crc is None else self.crc
        return b + [c]

    def coded_stream(self, jmdc_event: int, run_id: int) -> list:
        """A TYPE 4 group's data: its plain words Huffman-coded with the table of
        ``run_id`` (section 9.3; the encoder of tests/huffenc.py)."""
        if self.coded is not None:
            return list(self.coded)
        import huffenc

        return huffenc.encode(self.data_words(jmdc_event), huffenc.table_for_run(run_id))

    def coded_words(self) -> int:
        return self._coded_words

    def encode(self, jmdc_event: int, run_id: int = 0) -> tuple:
        data = self.data_words(jmdc_event)
        if self.type == TYPE_GROUP_CODED:
            data = self.coded_stream(jmdc_event, run_id)
        self._coded_words = len(data)
        return subblock(data, rr=self.rr, rw=self.rw, node=self.node, type=self.type, long=self.long, size=self.size)

    def crc_ok(self, jmdc_event: int) -> bool:
        b = self.body(jmdc_event)
        return self.crc is None or self.crc == crc16_words(b)


@dataclass
class Level3:
    data: list = field(default_factory=list)
    node: Optional[int] = None  # default: the event's JMDC node
    rr: bool = True
    rw: bool = False
    long: bool = False
    type: int = TYPE_LEVEL3

    def encode(self, event_node: int) -> tuple:
        node = event_node if self.node is None else self.node
        return subblock(self.data, rr=self.rr, rw=self.rw, node=node, type=self.type, long=self.long)


@dataclass
class RawSub:
    """Arbitrary words placed among the sub-blocks (for malformed events)."""

    words: list

    def encode(self, event_node: int) -> tuple:
        return list(self.words), None


# --------------------------------------------------------------------------
# truth tables: names and dtypes exactly as the decoder's outputs
# --------------------------------------------------------------------------

BLOCK_COLUMNS = {
    "offset": np.uint64,
    "size": np.uint32,
    "long": np.bool_,
    "rr": np.bool_,
    "rw": np.bool_,
    "node": np.uint16,
    "type": np.uint8,
    "type_ext": np.uint16,
    "data_type": np.uint32,
    "status": np.uint8,
    "tag": np.uint16,
    "time": np.uint32,
}

EVENT_COLUMNS = {
    "offset": np.uint64,
    "jmdc_node": np.uint16,
    "tag": np.uint16,
    "status": np.uint8,
    "block_time": np.uint32,
    "layout": np.uint8,
    "jmdc_type": np.uint8,
    "run": np.uint32,
    "run_tag": np.uint32,
    "run_type": np.uint16,
    "event": np.uint32,
    "time": np.uint32,
    "fine_time": np.uint32,
    "jmdc_status": np.uint16,
    "gps": np.bool_,
    "groups": np.uint8,
    "gps_week": np.uint16,
    "gps_second": np.uint32,
    "gps_fraction": np.uint32,
    "gps_offset": np.uint64,
    "gps_words": np.uint32,
    "gps_n": np.uint8,
    "gps_values": np.uint32,  # (n, 7)
    "n_groups": np.uint16,
    "crc_ok": np.bool_,
    "level3": np.bool_,
    "level3_offset": np.uint64,
    "level3_words": np.uint32,
    "jmdc_ok": np.bool_,
    "n_trd_hits": np.uint32,
    "unix_time": np.float64,
}

FRAGMENT_COLUMNS = {
    "event_index": np.int64,
    "group": np.uint8,
    "depth": np.uint8,
    "parent": np.int64,
    "slave_id": np.uint8,
    "node_status": np.uint16,
    "data_offset": np.uint64,
    "n_words": np.uint32,
    "role": np.uint8,
    "port": np.int8,
    "cdp": np.bool_,
    "jinf_mask": np.uint32,
    "compressed": np.bool_,
    "coded_words": np.uint32,
}

TRD_HIT_COLUMNS = {
    "event_index": np.int64,
    "crate": np.uint8,
    "slot": np.uint8,
    "udr": np.uint8,
    "ufe": np.uint8,
    "channel": np.uint16,
    "amplitude": np.int16,
    "module": np.int16,
    "layer": np.uint8,
    "ams_layer": np.uint8,
    "ams_ladder": np.uint8,
    "ams_tube": np.uint8,
}

TRD_RAW_COLUMNS = {
    "event_index": np.int64,
    "crate": np.uint8,
    "slot": np.uint8,
    "udr": np.uint8,
    "adc": np.uint16,
}

ERROR_COLUMNS = {
    "offset": np.uint64,
    "event_index": np.int64,
}


def _table(rows: list, columns: dict) -> dict:
    out = {}
    for name, dt in columns.items():
        out[name] = np.array([r[name] for r in rows], dtype=dt)
        if name == "gps_values":
            out[name] = out[name].reshape(len(rows), 7)
    return out


def expected_hit(event_index: int, crate: int, udr: int, channel: int, amplitude: int) -> dict:
    """The trd_hits row for one compressed hit (section 5.1). ``module`` holds
    the module LABEL (or None if the link is not connected): compare by label."""
    slot = UDR_SLOTS[udr]
    ufe, ch = channel // 64, channel % 64
    row = {
        "event_index": event_index,
        "crate": crate,
        "slot": slot,
        "udr": udr,
        "ufe": ufe,
        "channel": channel,
        "amplitude": amplitude,
    }
    m = trd_module_of(crate, slot, ufe)
    if m is None:
        row.update(module=None, layer=0, ams_layer=None, ams_ladder=None, ams_tube=None)
    else:
        layer, ladder, label, _c, _s, _u, direction = m
        row.update(
            module=label,
            layer=layer,
            ams_layer=4 * (layer - 1) + ch // 16,
            ams_ladder=ladder,
            ams_tube=(ch % 16) if direction == 0 else 15 - ch % 16,
        )
    return row


# --------------------------------------------------------------------------
# the run builder
# --------------------------------------------------------------------------


class Run:
    """A block file under construction, with its truth.

    ``add_block`` / ``add_event`` / ``add_junk`` append; ``to_bytes()`` gives the
    file; ``truth_*()`` give the tables the decoder must return.
    """

    def __init__(self, order: str = "little"):
        _fmt(order)
        self.order = order
        self.words: list = []
        self.block_rows: list = []
        self.block_infos: list = []
        self.event_rows: list = []
        self.fragment_rows: list = []
        self.hit_rows: list = []
        self.raw_rows: list = []  # (event_index, crate, slot, udr, adc list)
        self.junk: list = []  # (offset, n_bytes)
        self.layouts: list = []  # per event: its layout code
        self.event_infos: list = []  # per event: dict with sub-block offsets
        self.incomplete = False  # True once something was added whose truth is not modelled

    # -- positions ---------------------------------------------------------
    @property
    def offset(self) -> int:
        return 2 * len(self.words)

    @property
    def n_events(self) -> int:
        return len(self.event_rows)

    def to_bytes(self) -> bytes:
        return pack_words(self.words, self.order)

    def write(self, path) -> bytes:
        data = self.to_bytes()
        with open(path, "wb") as f:
            f.write(data)
        return data

    # -- appending ---------------------------------------------------------
    def _append_block(self, words: list, info: BlockInfo) -> BlockInfo:
        info.offset = self.offset
        self.words += words
        self.block_infos.append(info)
        self.block_rows.append(
            {
                "offset": info.offset,
                "size": info.size,
                "long": info.long,
                "rr": info.rr,
                "rw": info.rw,
                "node": info.node,
                "type": info.type,
                "type_ext": info.type_ext,
                "data_type": info.data_type,
                "status": info.status,
                "tag": info.tag,
                "time": info.time,
            }
        )
        return info

    def add_block(self, data: Sequence[int] = (), **kw) -> BlockInfo:
        """Any top-level block (see :func:`block`). It must NOT qualify as a
        science event (use :meth:`add_event` for those)."""
        words, info = block(data, top=True, **kw)
        if is_event_header(info):
            raise ValueError("use add_event for science events")
        return self._append_block(words, info)

    def add_event_like_block(self, data: Sequence[int] = (), **kw) -> BlockInfo:
        """A top-level block that is not a science event although it may look
        like one (e.g. TYPE=5 from a JMDC with STATUS != 0 or RW=1)."""
        return self.add_block(data, **kw)

    def add_junk(self, words: Sequence[int]) -> int:
        off = self.offset
        self.words += list(words)
        self.junk.append((off, 2 * len(words)))
        return off

    def add_event(
        self,
        *,
        jmdc: Optional[Jmdc] = None,
        groups: Sequence[Group] = (),
        level3: Optional[Level3] = None,
        node: int = 0,
        tag: int = 0,
        time: int = 0,
        long: bool = False,
        subblocks: Optional[list] = None,
    ) -> BlockInfo:
        """A science event: RR=1, RW=0, NODE ``node`` (0..15), TYPE=5, STATUS=0.

        By default the sub-blocks are the JMDC, the groups, then the Level-3.
        ``subblocks`` replaces that list (any mix of Jmdc, Group, Level3, RawSub)
        for malformed events; the truth is then only partly meaningful.
        """
        if node not in JMDC_NODES:
            raise ValueError("an event comes from a JMDC node 0..15")
        if jmdc is None and subblocks is None:
            jmdc = Jmdc()
        if subblocks is None:
            subblocks = [jmdc] + list(groups) + ([level3] if level3 is not None else [])
        jm = next((s for s in subblocks if isinstance(s, (Jmdc, FlightJmdc))), None)
        jmdc_event = jm.event if jm is not None else 0
        # the run ID that chooses the Huffman table (section 9.3): words 2-3 of the header
        if isinstance(jm, Jmdc) and jm is subblocks[0]:
            run_id = jm.run_tag
        elif isinstance(jm, FlightJmdc) and jm is subblocks[0]:
            run_id = jm.run_id
        else:
            run_id = time

        # sub-block words with offsets relative to the event data start
        rel = []
        data = []
        infos = []
        for s in subblocks:
            if isinstance(s, Group):
                w, inf = s.encode(jmdc_event, run_id)
            else:
                w, inf = s.encode(node)
            rel.append(2 * len(data))
            infos.append(inf)
            data += w
        words, info = block(data, rr=True, rw=False, node=node, type=TYPE_EVENT, top=True, status=0, tag=tag, time=time, long=long)
        info = self._append_block(words, info)
        data_start = info.offset + 2 * info.n_header_words
        abs_off = [data_start + r for r in rel]
        ev_index = len(self.event_rows)

        # truth for the event row
        first = subblocks[0] if subblocks else None
        row = {
            "offset": info.offset,
            "jmdc_node": node,
            "tag": tag,
            "status": 0,
            "block_time": time,
        }
        zero = dict(
            layout=LAYOUT_UNKNOWN, jmdc_type=0, run=0, run_tag=0, run_type=0, event=0, time=0, fine_time=0,
            jmdc_status=0, gps=False, groups=0, gps_week=0, gps_second=0, gps_fraction=0,
            gps_offset=0, gps_words=0, gps_n=0, gps_values=[0] * 7, unix_time=float("nan"),
        )
        row.update(zero)
        level3_record = None
        jmdc_ok = False
        if isinstance(first, (Jmdc, FlightJmdc)) and (first.node if first.node is not None else node) in JMDC_NODES:
            row["jmdc_node"] = first.node if first.node is not None else node
            hdr_at = abs_off[0] + 2 * infos[0].n_header_words  # first data word of the header
            if isinstance(first, Jmdc) and first.type == TYPE_EVENT:
                j = first
                jmdc_ok = True
                g = j.gps
                row.update(
                    layout=LAYOUT_2007, jmdc_type=TYPE_EVENT, run=j.run, run_tag=j.run_tag, event=j.event,
                    time=j.time, fine_time=j.fine_time, jmdc_status=j.status, gps=g, groups=j.status & 0x1F,
                    gps_week=j.gps_week if g else 0, gps_second=j.gps_second if g else 0,
                    gps_fraction=j.gps_fraction if g else 0,
                    unix_time=unix_seconds(j.time) + j.fine_time / 1e6,
                )
            elif isinstance(first, FlightJmdc) and first.type_ in TYPE_FLIGHT:
                j = first
                t = j.type_
                row.update(layout=LAYOUT_FLIGHT, jmdc_type=t)
                pos = hdr_at + 12
                ok = True
                recs = {}
                data_end = hdr_at + 2 * len(j.data_words())
                for present, name, words in ((t & 1, "level3", j.level3), (t & 2, "gps", j.gps)):
                    if not present:
                        continue
                    if not words or pos + 2 * max(1, (((words[0] >> 8) & 0x1F) + 1) // 2) > data_end:
                        ok = False
                        break
                    n = (words[0] >> 8) & 0x1F
                    nw = max(1, (n + 1) // 2)
                    recs[name] = (pos, nw, n, words[:nw])
                    pos += 2 * nw
                if ok:
                    jmdc_ok = True
                    row.update(
                        layout=LAYOUT_FLIGHT, jmdc_type=t, run=j.run_id, run_tag=j.run_id, run_type=j.run_type,
                        event=j.event, time=time, fine_time=j.fine_ms * 1000, gps=bool(t & 2),
                        unix_time=unix_seconds(time) + j.fine_ms * 1000 / 1e6,
                    )
                    if "level3" in recs:
                        level3_record = recs["level3"][:2]
                    if "gps" in recs:
                        at, nw, n, words = recs["gps"]
                        row.update(gps_offset=at, gps_words=nw)
                        if n % 2 == 1 and (n + 1) % 4 == 0 and (n + 1) // 4 <= 7:
                            vals = [(words[2 * k] << 16) | words[2 * k + 1] for k in range((n + 1) // 4)]
                            row.update(gps_n=len(vals), gps_values=vals + [0] * (7 - len(vals)))
        row["jmdc_ok"] = jmdc_ok
        layout = row["layout"]
        self.layouts.append(layout)
        grp = [
            (s, a, inf) for s, a, inf in zip(subblocks, abs_off, infos)
            if isinstance(s, Group) and s.type in (TYPE_GROUP, TYPE_GROUP_CODED)
        ]
        row["n_groups"] = len(grp)
        row["crc_ok"] = all(s.crc_ok(jmdc_event) for s, _a, _i in grp)
        l3 = [(s, a, inf) for s, a, inf in zip(subblocks, abs_off, infos) if isinstance(s, Level3) and s.type == TYPE_LEVEL3]
        if l3 and layout != LAYOUT_FLIGHT:
            s, a, inf = l3[0]
            row.update(level3=True, level3_offset=a + 2 * inf.n_header_words, level3_words=len(s.data))
        elif level3_record is not None:
            row.update(level3=True, level3_offset=level3_record[0], level3_words=level3_record[1])
        else:
            row.update(level3=False, level3_offset=0, level3_words=0)

        # fragments and TRD truth
        n_hits = 0
        for gi, (s, a, inf) in enumerate(grp):
            content_start = a + 2 * inf.n_header_words + 2  # after the event-number word
            n_hits += self._walk_group(ev_index, gi, s, content_start, layout)
        row["n_trd_hits"] = n_hits
        self.event_rows.append(row)
        self.event_infos.append(
            {"offset": info.offset, "info": info, "subblock_offsets": abs_off, "subblock_infos": infos, "subblocks": subblocks}
        )
        return info

    def _fragment_row(self, ev: int, gi: int, depth: int, parent: int, f: Frag, data_offset: int, role: str, port: int) -> int:
        row = len(self.fragment_rows)
        self.fragment_rows.append(
            {
                "event_index": ev,
                "group": gi,
                "depth": depth,
                "parent": parent,
                "slave_id": f.status & ST_SLAVE_MASK,
                "node_status": f.status,
                "data_offset": data_offset,
                "n_words": len(f.content()),
                "role": ROLE[role],
                "port": port,
                "cdp": bool(f.status & ST_CDP),
                "jinf_mask": (f.mask or 0) if role in JINFS else 0,
                "compressed": False,
                "coded_words": 0,
            }
        )
        return row

    def _walk_group(self, ev: int, gi: int, g: Group, content_start: int, layout: int) -> int:
        """The truth of one group: fragments walked by node role (section 4.2), and the
        TRD hits and raw read-outs of its UDRs (4.3, 5). Returns the hits."""
        top = g.top
        role = top_role(g.node)
        if g.type == TYPE_GROUP_CODED:
            content_start = 2  # data_offset counts from the decoded group's first word
        first_row = len(self.fragment_rows)
        top_row = self._fragment_row(ev, gi, 0, -1, top, content_start, role, -1)
        n_hits = [0]
        if role in CONCENTRATORS:
            if top.children is None:
                self.incomplete = True  # hand-made content: no truth below the top
            else:
                crate = jinf_u_node_crate(g.node) if role == "jinf_u" else None
                self._walk_children(ev, gi, top, role, top_row, 1, content_start, crate, layout, n_hits)
        elif role == "udr":
            crate, udr = udr_node_place(g.node)
            self._udr_truth(ev, crate, udr, top, layout, n_hits)
        if g.type == TYPE_GROUP_CODED:
            for r in self.fragment_rows[first_row:]:
                r["compressed"] = True
            self.fragment_rows[top_row]["coded_words"] = g.coded_words()
        return n_hits[0]

    def _udr_truth(self, ev: int, crate: int, udr: int, u: Frag, layout: int, n_hits: list) -> None:
        if u.trd is None or u.trd.get("ignore"):
            self.incomplete = True  # not a UDR built by udr_frag: no truth
            return
        t = u.trd
        if t["adc"] is not None:
            self.raw_rows.append((ev, crate, UDR_SLOTS[udr], udr, list(t["adc"])))
        for k, (channel, amp) in enumerate(t["hits"]):
            if layout == LAYOUT_FLIGHT:
                amp = signed16(t["hit_words"][k][1])
            self.hit_rows.append(expected_hit(ev, crate, udr, channel, amp))
            n_hits[0] += 1

    def _walk_children(
        self, ev: int, gi: int, parent: Frag, parent_role: str, parent_row: int, depth: int, start: int,
        crate: Optional[int], layout: int, n_hits: list,
    ) -> None:
        pos = start
        for c in parent.children:
            role = child_role(parent_role, c.slave_id)
            row = self._fragment_row(ev, gi, depth, parent_row, c, pos + 2, role, c.slave_id)
            n = len(c.content())
            if role in CONCENTRATORS:
                if c.children is None:
                    self.incomplete = True  # hand-made content: no truth below
                else:
                    child_crate = JINF_U_PORT_TO_CRATE[c.slave_id] if role == "jinf_u" else None
                    self._walk_children(ev, gi, c, role, row, depth + 1, pos + 2, child_crate, layout, n_hits)
            elif role == "udr":
                if c.slave_id < 24 and crate is not None:
                    self._udr_truth(ev, crate, c.slave_id // 4, c, layout, n_hits)
                else:
                    self.incomplete = True
            if c.n_override is not None:
                self.incomplete = True
            pos += 2 * (n + 2)

    # -- truth tables ------------------------------------------------------
    def truth_blocks(self) -> dict:
        return _table(self.block_rows, BLOCK_COLUMNS)

    def truth_events(self) -> dict:
        return _table(self.event_rows, EVENT_COLUMNS)

    def truth_fragments(self) -> dict:
        return _table(self.fragment_rows, FRAGMENT_COLUMNS)

    def truth_hits(self) -> list:
        """List of row dicts (``module`` is a label or None; NC hits have None
        for the AMS coordinates): see :func:`expected_hit`."""
        return list(self.hit_rows)

    def truth_raw(self) -> dict:
        rows = self.raw_rows
        out = {
            "event_index": np.array([r[0] for r in rows], dtype=np.int64),
            "crate": np.array([r[1] for r in rows], dtype=np.uint8),
            "slot": np.array([r[2] for r in rows], dtype=np.uint8),
            "udr": np.array([r[3] for r in rows], dtype=np.uint8),
            "adc": np.array([r[4] for r in rows], dtype=np.uint16).reshape(len(rows), UDR_CHANNELS),
        }
        return out


def is_event_header(info: BlockInfo) -> bool:
    """Section 4: RR=1, RW=0, NODE 0..15, TYPE=5, STATUS=0."""
    return info.rr and not info.rw and info.node in JMDC_NODES and info.type == TYPE_EVENT and info.status == 0


# --------------------------------------------------------------------------
# a minimal independent chain walker (for choosing test inputs only)
# --------------------------------------------------------------------------


def chain_ok(data: bytes, order: str) -> bool:
    """True if top-level block sizes chain from offset 0 to exactly the end of
    ``data`` under ``order`` (the weakest reading of section 1's rule: every
    SIZE >= 2)."""
    if len(data) == 0 or len(data) % 2:
        return False
    fmt = _fmt(order) + "H"
    pos = 0
    n = len(data)
    while pos < n:
        if pos + 2 > n:
            return False
        (w0,) = struct.unpack_from(fmt, data, pos)
        if w0 & 0x8000:
            if pos + 4 > n:
                return False
            (w1,) = struct.unpack_from(fmt, data, pos + 2)
            size = ((w0 & 0x7FFF) << 16) | w1
            hdr = 4
        else:
            size = w0
            hdr = 2
        if size < 2:
            return False
        pos += hdr + size + (size & 1)
    return pos == n


def first_block_fits(data: bytes, order: str) -> bool:
    """True if the first size word (read in ``order``) gives a block of at
    least 2 bytes that ends inside ``data``."""
    if len(data) < 2:
        return False
    fmt = _fmt(order) + "H"
    (w0,) = struct.unpack_from(fmt, data, 0)
    if w0 & 0x8000:
        if len(data) < 4:
            return False
        (w1,) = struct.unpack_from(fmt, data, 2)
        size, hdr = ((w0 & 0x7FFF) << 16) | w1, 4
    else:
        size, hdr = w0, 2
    return size >= 2 and hdr + size + (size & 1) <= len(data)


# --------------------------------------------------------------------------
# random generation (used by the property tests and the large runs)
# --------------------------------------------------------------------------


@dataclass
class RunOptions:
    p_event: float = 0.6  # share of top-level blocks that are science events
    max_groups: int = 2
    p_gps: float = 0.5
    p_level3: float = 0.3
    p_long: float = 0.1  # force L=1 on a block / group / Level-3 sub-block
    p_odd: float = 0.2  # odd SIZE on non-event blocks
    p_type_ext: float = 0.2
    p_request: float = 0.4  # among non-event blocks
    p_decoy: float = 0.15  # among non-event blocks: TYPE=5 JMDC replies that are not events
    big_block: bool = False  # one non-event block with SIZE > 0x7FFF
    trd_modes: tuple = ("raw", "compressed", "mixed")
    p_trd_group: float = 0.6  # share of groups that are JINJ trees with TRD data
    p_raw: float = 1.0  # scales the chance a UDR uses raw/mixed (big runs use less)
    max_hits: int = 12
    max_udrs: int = 6
    allow_nc: bool = False  # allow hits on not-connected links
    random_subblock_bits: bool = True  # random RR/RW in sub-block ID words
    p_flight: float = 0.0  # share of events in the flight layout (section 9)
    p_coded: float = 0.0  # share of flight groups Huffman-coded (TYPE 4, section 9.3)


def random_words(rng: random.Random, n: int) -> list:
    return [rng.getrandbits(16) for _ in range(n)]


def _connected_channels(crate: int, udr: int) -> list:
    slot = UDR_SLOTS[udr]
    return [c for c in range(UDR_CHANNELS) if (crate, slot, c // 64) not in NC_LINKS]


_CONNECTED = {(cr, u): _connected_channels(cr, u) for cr in (0, 1) for u in range(6)}


def random_udr(rng: random.Random, crate: int, udr: int, opts: RunOptions, flight: bool = False) -> Frag:
    modes = list(opts.trd_modes)
    if opts.p_raw < 1.0 and rng.random() > opts.p_raw and "compressed" in modes:
        mode = "compressed"
    else:
        mode = rng.choice(modes)
    adc = raw_noise = None
    if mode in ("raw", "mixed"):
        adc = [rng.getrandbits(12) for _ in range(UDR_CHANNELS)]
        raw_noise = [rng.getrandbits(4) for _ in range(UDR_CHANNELS)]
    hits = []
    hit_noise = []
    if mode in ("compressed", "mixed"):
        pool = range(UDR_CHANNELS) if opts.allow_nc else _CONNECTED[(crate, udr)]
        for _ in range(rng.randint(0, opts.max_hits)):
            hits.append((rng.choice(pool), rng.getrandbits(15)))
            hit_noise.append((rng.getrandbits(7), rng.getrandbits(1)))
    # Slave ID 4k + 0..3: UDR index k (section 4.3; 4k is the A side, 4k + 1 the B side).
    sid = 4 * udr + rng.choice((0, 0, 1, rng.randrange(4)))
    cdp = True if flight else bool(rng.getrandbits(1))  # the 2007 layout does not check CDP
    return udr_frag(
        udr, mode, adc=adc, hits=hits, raw_noise=raw_noise, hit_noise=hit_noise, high=rng.getrandbits(8),
        slave_id=sid, cdp=cdp,
    )


def _cdp_bits(rng: random.Random, role: str, flight: bool) -> bool:
    """The CDP bit of a node: as its role says in flight data, at random in the 2007 layout
    (which does not check it)."""
    expected = EXPECTED_CDP[role]
    if flight and expected is not None:
        return expected
    return bool(rng.getrandbits(1))


def random_xdr(rng: random.Random, sid: int, flight: bool, max_words: int = 12) -> Frag:
    """An xDR (TDR, RDR, EDR) or other leaf with random data."""
    return leaf(
        sid, random_words(rng, rng.randint(0, max_words)), high=rng.getrandbits(8),
        extra_bits=rng.getrandbits(2) << 6, cdp=_cdp_bits(rng, "xdr", flight),
    )


def random_jinf(rng: random.Random, port: int, role: str, flight: bool, max_slaves: int = 3) -> Frag:
    """A JINF (T, R or E) on JINJ ``port`` with random xDR slaves (and its mask in flight)."""
    kids = [random_xdr(rng, rng.randrange(24), flight) for _ in range(rng.randint(0, max_slaves))]
    return cddc(
        port, kids, high=rng.getrandbits(8), extra_bits=rng.getrandbits(2) << 6, cdp=_cdp_bits(rng, role, flight),
        mask=rng.getrandbits(32) if flight else None,
    )


def random_port(rng: random.Random, port: int, flight: bool) -> Frag:
    """A random non-TRD slave of a JINJ on ``port`` (not 2 or 8), by the port's role."""
    role = JINJ_PORT_ROLE[port]
    if role in JINFS:
        return random_jinf(rng, port, role, flight)
    return leaf(
        port, random_words(rng, rng.randint(0, 12)), high=rng.getrandbits(8), extra_bits=rng.getrandbits(2) << 6,
        cdp=_cdp_bits(rng, role, flight),
    )


def random_tree(rng: random.Random, depth: int = 1, max_depth: int = 3, exclude_ids: tuple = (), flight: bool = False) -> Frag:
    """A random non-TRD slave of a JINJ (a JINF-T/R/E with xDRs, an SDR, a JLV1, ...), by the
    port table of section 4.2. (``depth`` and ``max_depth`` are kept for callers: the roles
    fix the depth.) Flight data use no port 24..31."""
    ports = [p for p in range(24 if flight else 32) if p not in exclude_ids and p not in (2, 8)]
    return random_port(rng, rng.choice(ports), flight)


def random_jinf_u(rng: random.Random, crate: int, opts: RunOptions, flight: bool = False) -> Frag:
    udrs = rng.sample(range(6), rng.randint(0, opts.max_udrs))
    return jinf_u(
        crate, [random_udr(rng, crate, u, opts, flight) for u in udrs], high=rng.getrandbits(8),
        extra_bits=rng.getrandbits(2) << 6, cdp=_cdp_bits(rng, "jinf_u", flight),
        mask=rng.getrandbits(32) if flight else None,
    )


def random_group(rng: random.Random, opts: RunOptions, flight: bool = False) -> Group:
    bits = {}
    if opts.random_subblock_bits:
        bits = {"rr": bool(rng.getrandbits(1)), "rw": bool(rng.getrandbits(1))}
    long = rng.random() < opts.p_long
    r = rng.random()
    rest = (1 - opts.p_trd_group) / 4
    if r < opts.p_trd_group:
        # a JINJ with TRD crates plus other detectors
        kids = []
        for crate in (1, 0):
            if rng.random() < 0.7:
                kids.append(random_jinf_u(rng, crate, opts, flight))
        for _ in range(rng.randint(0, 3)):
            kids.append(random_tree(rng, flight=flight))
        rng.shuffle(kids)
        top = cddc(
            rng.getrandbits(5), kids, high=rng.getrandbits(8), extra_bits=rng.getrandbits(2) << 6,
            cdp=_cdp_bits(rng, "jinj", flight),
        )
        return Group(node=rng.choice(JINJ_NODES), top=top, long=long, **bits)
    if r < opts.p_trd_group + rest:
        # a JINF-U as the top node (crate by node), its UDRs below
        node = rng.choice(range(198, 206))
        crate = jinf_u_node_crate(node)
        udrs = rng.sample(range(6), rng.randint(0, opts.max_udrs))
        top = cddc(
            rng.getrandbits(5), [random_udr(rng, crate, u, opts, flight) for u in udrs], high=rng.getrandbits(8),
            cdp=_cdp_bits(rng, "jinf_u", flight), mask=rng.getrandbits(32) if flight else None,
        )
        return Group(node=node, top=top, long=long, **bits)
    if r < opts.p_trd_group + 2 * rest:
        # a UDR as the top node: its content is the UDR's data
        node = rng.choice(range(474, 510))
        crate, udr = udr_node_place(node)
        return Group(node=node, top=random_udr(rng, crate, udr, opts, flight), long=long, **bits)
    if r < opts.p_trd_group + 3 * rest:
        # another JINF as the top node, or a JLV1 node (a leaf), or a group of nodes of
        # no known role (leaf): never TRD hits
        node = rng.choice([*range(150, 198), *range(136, 140), *range(0, 128)])
        if top_role(node) == "jinf":
            top = random_jinf(rng, rng.getrandbits(5), "jinf", flight)
        else:
            top = leaf(rng.getrandbits(5), cddc(2, [udr_frag(0, "compressed", hits=[(5, 100)])]).words(), high=rng.getrandbits(8))
        return Group(node=node, top=top, long=long, **bits)
    # a single TDR (one level): content is its data, top status is its status
    node = rng.choice(range(282, 474))
    top = random_xdr(rng, rng.getrandbits(5), flight, 20)
    return Group(node=node, top=top, long=long, **bits)


class RunState:
    def __init__(self, rng: random.Random):
        self.run = rng.getrandbits(32)
        self.run_tag = rng.getrandbits(32)
        self.event = rng.choice([1, rng.getrandbits(32) | 1])
        self.time = rng.getrandbits(32)


def random_flight_event(run: Run, rng: random.Random, st: RunState, opts: RunOptions) -> BlockInfo:
    """A flight-layout event (section 9): JMDC header 0x10..0x13 with its records, groups
    with JINF masks and role-true CDP bits."""
    node = rng.randrange(16)
    l3 = record_words(9, random_words(rng, 5), rng.getrandbits(3)) if rng.random() < opts.p_level3 else None
    gps = None
    if rng.random() < opts.p_gps:
        n = rng.choice((3, 7, 11, 15, 19, 23, 27))
        gps = record_words(n, random_words(rng, (n + 1) // 2), rng.getrandbits(3))
    bits = {}
    if opts.random_subblock_bits:
        bits = {"rr": bool(rng.getrandbits(1)), "rw": bool(rng.getrandbits(1))}
    jm = FlightJmdc(
        fine_ms=rng.randrange(1000), run_type=rng.getrandbits(16), run_id=st.run_tag, event=st.event & 0xFFFFFFFF,
        level3=l3, gps=gps, **bits,
    )
    st.event += 1 if rng.random() < 0.9 else rng.randint(2, 70000)
    groups = [random_group(rng, opts, flight=True) for _ in range(rng.randint(0, opts.max_groups))]
    for g in groups:
        if rng.random() < opts.p_coded:
            g.type = TYPE_GROUP_CODED
    return run.add_event(
        jmdc=jm, groups=groups, node=node, tag=rng.getrandbits(12), time=rng.getrandbits(32),
        long=rng.random() < opts.p_long,
    )


def random_event(run: Run, rng: random.Random, st: RunState, opts: RunOptions) -> BlockInfo:
    if rng.random() < opts.p_flight:
        return random_flight_event(run, rng, st, opts)
    node = rng.randrange(16)
    gps = rng.random() < opts.p_gps
    status = (0x8000 if gps else 0) | (rng.getrandbits(10) << 5) | rng.getrandbits(5)
    bits = {}
    if opts.random_subblock_bits:
        bits = {"rr": bool(rng.getrandbits(1)), "rw": bool(rng.getrandbits(1))}
    jm = Jmdc(
        run=st.run,
        run_tag=st.run_tag,
        event=st.event & 0xFFFFFFFF,
        time=st.time & 0xFFFFFFFF,
        fine_time=rng.getrandbits(32) if rng.random() < 0.2 else rng.randrange(1_000_000),
        status=status,
        gps_week=rng.getrandbits(16),
        gps_second=rng.getrandbits(32),
        gps_fraction=rng.getrandbits(32),
        **bits,
    )
    st.event += 1 if rng.random() < 0.9 else rng.randint(2, 70000)
    st.time += rng.randint(0, 2)
    groups = [random_group(rng, opts) for _ in range(rng.randint(0, opts.max_groups))]
    l3 = None
    if rng.random() < opts.p_level3:
        l3bits = {}
        if opts.random_subblock_bits:
            l3bits = {"rr": bool(rng.getrandbits(1)), "rw": bool(rng.getrandbits(1))}
        l3 = Level3(random_words(rng, rng.randint(0, 16)), long=rng.random() < opts.p_long, **l3bits)
    return run.add_event(
        jmdc=jm,
        groups=groups,
        level3=l3,
        node=node,
        tag=rng.getrandbits(12),
        time=rng.getrandbits(32),
        long=rng.random() < opts.p_long,
    )


def random_nonevent(run: Run, rng: random.Random, opts: RunOptions, big: bool = False) -> BlockInfo:
    long = rng.random() < opts.p_long
    n = rng.randint(0x4000, 0x4100) if big else rng.randint(0, 24)
    data = random_words(rng, n)
    odd = bool(data) and rng.random() < opts.p_odd
    if rng.random() < opts.p_decoy:
        # looks like an event (TYPE=5 from a JMDC, with a JMDC sub-block) but
        # has RW=1 or STATUS != 0
        jw, _ = subblock(Jmdc(event=rng.getrandbits(32)).data_words(), node=0, type=TYPE_EVENT)
        r = rng.random()
        if r < 0.35:
            kw = dict(rr=True, rw=True, status=rng.randrange(16))
        elif r < 0.7:
            kw = dict(rr=True, rw=False, status=rng.randrange(1, 16))
        else:  # a request (no TIME), FBI 0
            kw = dict(rr=False, rw=False, status=0)
        return run.add_block(jw, node=rng.randrange(4), type=TYPE_EVENT, tag=rng.getrandbits(12), time=rng.getrandbits(32), long=long, **kw)
    rr = rng.random() >= opts.p_request
    rw = bool(rng.getrandbits(1))
    node = rng.randrange(512)
    if rng.random() < opts.p_type_ext:
        type_, type_ext = TYPE_EXT_MARK, rng.getrandbits(16)
    else:
        type_, type_ext = rng.randrange(0x1F), None
    status = rng.randrange(16)
    if rr and not rw and node in JMDC_NODES and type_ == TYPE_EVENT and status == 0:
        status = 8  # would be a science event otherwise
    if rr and node == LEF_NODE and LEF_TYPE in (type_, type_ext):
        node += 1  # would be a LEF reply of a length section 11.1 does not allow otherwise
    return run.add_block(
        data, rr=rr, rw=rw, node=node, type=type_, type_ext=type_ext, status=status,
        tag=rng.getrandbits(12), time=rng.getrandbits(32), long=long, odd=odd,
    )


def random_run(rng: random.Random, order: str, n_blocks: int, opts: Optional[RunOptions] = None) -> Run:
    """A run of ``n_blocks`` top-level blocks, mixing events and other blocks."""
    opts = opts or RunOptions()
    run = Run(order)
    st = RunState(rng)
    big_at = rng.randrange(n_blocks) if (opts.big_block and n_blocks) else -1
    for i in range(n_blocks):
        if i == big_at:
            random_nonevent(run, rng, opts, big=True)
        elif rng.random() < opts.p_event:
            random_event(run, rng, st, opts)
        else:
            random_nonevent(run, rng, opts)
    return run


# --------------------------------------------------------------------------
# a tiny independent reader (to check files we did not write, e.g. simulate())
# --------------------------------------------------------------------------


def _size_at(words: list, i: int) -> tuple:
    """(SIZE, number of size words) of the block whose first word is words[i]."""
    w0 = words[i]
    if w0 & 0x8000:
        return ((w0 & 0x7FFF) << 16) | words[i + 1], 2
    return w0, 1


def walk_top_blocks(data: bytes, order: str) -> list:
    """[(offset, SIZE, n_size_words, id_word)] of the top-level blocks of a
    well-formed file (raises ValueError otherwise)."""
    if not chain_ok(data, order):
        raise ValueError("not a well-formed block file")
    words = unpack_words(data, order)
    out = []
    i = 0
    while i < len(words):
        size, ns = _size_at(words, i)
        out.append((2 * i, size, ns, words[i + ns]))
        i += ns + (size + 1) // 2
    return out


def event_subblocks(words: list, offset: int, size: int, n_size_words: int) -> list:
    """[(offset, SIZE, n_size_words, id_word)] of the sub-blocks of the event
    block at byte ``offset`` (RR=1 top-level: ID, secondary, TIME x2)."""
    i = offset // 2 + n_size_words + 4
    end = offset // 2 + n_size_words + (size + 1) // 2
    out = []
    while i < end:
        s, ns = _size_at(words, i)
        out.append((2 * i, s, ns, words[i + ns]))
        i += ns + (s + 1) // 2
    if i != end:
        raise ValueError("sub-blocks do not tile the event")
    return out


# --------------------------------------------------------------------------
# blocks between events and envelopes (section 10), read back independently
# --------------------------------------------------------------------------

ENVELOPE = 0x1F0380
FINE_TIME_ENVELOPE = 0x1F0383
MAX_ENVELOPE_DEPTH = 4

# the kinds of section 10's table (and science events), as read from a header
BLOCK_KINDS = (
    "event",
    "envelope",
    "fine_time_envelope",
    "calibration",
    "configuration",
    "housekeeping",
    "not_event",
    "calibration_reply",
    "cceb",
    "tof_slow_control",
    "other",
)


def block_kind(row: dict) -> str:
    """The kind of a block (a row of :func:`walk_nested_blocks`) by section 10's table."""
    dt, node, rr = row["data_type"], row["node"], row["rr"]
    if dt == ENVELOPE:
        return "envelope"
    if dt == FINE_TIME_ENVELOPE:
        return "fine_time_envelope"
    if row["type"] == TYPE_EVENT:
        event = rr and not row["rw"] and node in JMDC_NODES and row["status"] == 0
        return "event" if event else "not_event"
    containers = {6: "calibration", 7: "configuration", 8: "housekeeping"}
    if row["type"] in containers and rr and node in JMDC_NODES:
        return containers[row["type"]]
    if row["type"] in (0x13, 0x14) and rr:
        return "calibration_reply"
    if row["type"] == 0x1B and 24 <= node <= 31:
        return "cceb"
    if row["type"] in (0x18, 0x19) and 40 <= node <= 47:
        return "tof_slow_control"
    return "other"


def _header_at(words: list, i: int, end: int, top: bool) -> dict:
    """The header of the block at word ``i`` (section 2), which must end by word ``end``."""
    size, ns = _size_at(words, i)
    if size < 2 or i + ns + (size + 1) // 2 > end:
        raise ValueError(f"block at word {i} does not fit")
    j = i + ns
    ident = words[j]
    rr, rw = bool(ident >> 15), bool((ident >> 14) & 1)
    node, type_ = (ident >> 5) & 0x1FF, ident & 0x1F
    j += 1
    type_ext = 0
    if type_ == TYPE_EXT_MARK:
        type_ext = words[j]
        j += 1
    status = tag = time = 0
    if top:
        status, tag = words[j] >> 12, words[j] & 0x0FFF
        j += 1
        if rr:
            time = (words[j] << 16) | words[j + 1]
            j += 2
    data_type = (TYPE_EXT_MARK << 16) | type_ext if type_ == TYPE_EXT_MARK else type_
    return dict(
        offset=2 * i, size=size, long=ns == 2, rr=rr, rw=rw, node=node, type=type_, type_ext=type_ext,
        data_type=data_type, status=status, tag=tag, time=time, data_start=j,
        next=i + ns + (size + 1) // 2,
    )


def walk_nested_blocks(data: bytes, order: str) -> list:
    """Every block of a well-formed file in file order, the blocks inside envelopes right
    after their envelope (section 10), as dicts: the header fields, ``depth``, ``envelope``
    (the row of the enclosing envelope, -1 at top level), ``time_us`` (the fine-time
    envelope's microseconds on its inner block, else 0) and ``kind`` (:func:`block_kind`).
    Raises ValueError on anything malformed."""
    if not chain_ok(data, order):
        raise ValueError("not a well-formed block file")
    words = unpack_words(data, order)
    rows: list = []

    def visit(i: int, end: int, depth: int, parent: int, time_us: int) -> int:
        h = _header_at(words, i, end, top=True)
        h.update(depth=depth, envelope=parent, time_us=time_us)
        h["kind"] = block_kind(h)
        row = len(rows)
        rows.append(h)
        if h["kind"] in ("envelope", "fine_time_envelope"):
            if depth >= MAX_ENVELOPE_DEPTH:
                raise ValueError("envelopes nested too deep")
            j, stop = h["data_start"], h["next"]
            if h["kind"] == "fine_time_envelope":
                us = (words[j] << 16) | words[j + 1]
                if visit(j + 2, stop, depth + 1, row, us) != stop:
                    raise ValueError("a fine-time envelope holds one block")
            else:
                while j < stop:
                    j = visit(j, stop, depth + 1, row, 0)
        return h["next"]

    i = 0
    while i < len(words):
        i = visit(i, len(words), 0, -1, 0)
    return rows


def flight_jmdc_of_event(words: list, row: dict) -> dict:
    """Words 0-5 of the flight-layout JMDC header (section 9.1) of the block ``row`` (a row
    of :func:`walk_nested_blocks`; ``words`` the file's words, :func:`unpack_words`): fine
    time (ms), run type, run ID, event number."""
    j = row["data_start"]
    size, ns = _size_at(words, j)
    ident = words[j + ns]
    if (ident & 0x1F) not in TYPE_FLIGHT or ((ident >> 5) & 0x1FF) not in JMDC_NODES:
        raise ValueError("not a flight-layout JMDC header")
    w = words[j + ns + 1 : j + ns + 7]
    return dict(fine_ms=w[0], run_type=w[1], run=(w[2] << 16) | w[3], event=(w[4] << 16) | w[5])
