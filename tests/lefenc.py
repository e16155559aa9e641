"""An independent encoder, written from FORMAT.md sections 2, 10 and 11 (never from the
Rust code), for the beam-test data: envelopes and fine-time envelopes (10), LEF raw
events (11.1), btdaq's word-size LEF record layout (refused by ``open``), and events of
the 2009 tracker PC-DAQ dialect (11.2).

Everything is built as lists of 16-bit words; :func:`to_bytes` stores them.
"""

from __future__ import annotations

import struct
from typing import Iterable, List, Sequence

import numpy as np

ENVELOPE = 0x1F0380
FINE_TIME_ENVELOPE = 0x1F0383
LEF_NODE = 0x40
LEF_TYPE = 0x13
CHANNELS = 1024


def to_bytes(words: Sequence[int], order: str = "little") -> bytes:
    """The words stored in ``order`` (FORMAT.md 1)."""
    fmt = "<" if order == "little" else ">"
    return struct.pack(f"{fmt}{len(words)}H", *words)


def block(
    node: int,
    data_type: int,
    data: Sequence[int] = (),
    *,
    reply: bool = True,
    status: int = 0,
    tag: int = 0,
    time: int = 0,
) -> List[int]:
    """A top-level block (FORMAT.md 2): size word(s), ID, TYPE_EXT when ``data_type`` is
    above 0x1F, secondary header, TIME in replies, then ``data`` words."""
    ext = data_type > 0x1F
    ty = 0x1F if ext else data_type
    body = [(0x8000 if reply else 0) | (node << 5) | ty]
    if ext:
        assert data_type >> 16 == 0x1F
        body.append(data_type & 0xFFFF)
    body.append((status << 12) | tag)
    if reply:
        body += [time >> 16, time & 0xFFFF]
    body += list(data)
    size = 2 * len(body)
    if size < 0x8000:
        return [size] + body
    return [0x8000 | (size >> 16), size & 0xFFFF] + body


def envelope(inner: Iterable[Sequence[int]], *, node: int = 1, tag: int = 0, time: int = 0) -> List[int]:
    """An envelope 0x1F0380 holding the complete blocks ``inner`` (FORMAT.md 10)."""
    data: List[int] = []
    for b in inner:
        data += list(b)
    return block(node, ENVELOPE, data, tag=tag, time=time)


def fine_time_envelope(
    inner: Sequence[int], us: int, *, node: int = 20, tag: int = 0, time: int = 0
) -> List[int]:
    """A fine-time envelope 0x1F0383: microseconds (MSW first), then one block."""
    return block(node, FINE_TIME_ENVELOPE, [us >> 16, us & 0xFFFF] + list(inner), tag=tag, time=time)


# -- LEF raw events (FORMAT.md 11.1) ---------------------------------------------------


def channel_of_raw(r: np.ndarray) -> np.ndarray:
    """``c = (15 - r // 64) * 64 + r % 64``."""
    return (15 - r // 64) * 64 + r % 64


def lef_planes(adc: np.ndarray) -> List[int]:
    """The 896 plane words of one event whose samples (channel order) are ``adc``.

    Raw channel ``r = 128 a + g`` is ADC ``a``, group ``g``; byte ``b`` of group ``g``
    (stream byte ``14 g + b``) holds bit ``b`` of the 8 samples, ADC ``a`` in bit ``a``;
    stream bytes pair into words high byte first."""
    adc = np.asarray(adc, dtype=np.uint16)
    assert adc.shape == (CHANNELS,) and int(adc.max()) < 1 << 14
    stream = bytearray(1792)
    for g in range(128):
        for b in range(14):
            byte = 0
            for a in range(8):
                v = int(adc[channel_of_raw(128 * a + g)])
                byte |= ((v >> b) & 1) << a
            stream[14 * g + b] = byte
    return [(stream[2 * k] << 8) | stream[2 * k + 1] for k in range(896)]


def lef_reply(adc: np.ndarray, counter: int, link: int = 0, *, tag: int = 0, time: int = 0) -> List[int]:
    """A LEF raw event: a reply of TYPE 0x13 from node 0x40, data = the counter/link
    word and the plane words (1794 bytes)."""
    return block(LEF_NODE, LEF_TYPE, [(link << 8) | (counter & 0xFF)] + lef_planes(adc), tag=tag, time=time)


def lef_poll(*, tag: int = 0, time: int = 0) -> List[int]:
    """An empty poll: the same reply without data."""
    return block(LEF_NODE, LEF_TYPE, [], tag=tag, time=time)


def lef_words_record(adc: np.ndarray, counter: int) -> List[int]:
    """One record of btdaq's word-size LEF layout (``trunkBT/DecodeL0/LEFP*.bin``): SIZE in
    words counting the size word (898), ID 0x8013, the counter word, 896 plane words."""
    planes = lef_planes(adc)
    return [len(planes) + 2, 0x8013, counter << 8] + planes


# -- calibration, written from FORMAT.md 11.1 in NumPy ------------------------------------


def calibrate_numpy(adc: np.ndarray) -> dict:
    """FORMAT.md 11.1's calibration, float32 throughout, in NumPy: an independent oracle."""
    adc = np.asarray(adc)
    n = adc.shape[0]
    ped = np.zeros(CHANNELS, np.float32)
    rsig = np.zeros(CHANNELS, np.float32)
    above_total = 0
    for c in range(CHANNELS):
        s = np.sort(adc[:, c][adc[:, c] > 0].astype(np.float32))
        acc = np.float32(0)
        for v in s:
            acc = np.float32(acc + v)
        cnt = np.float32(len(s))
        ped[c] = np.float32(acc / cnt)
        acc = np.float32(0)
        for v in s:
            d = np.float32(v - ped[c])
            acc = np.float32(acc + np.float32(d * d))
        rsig[c] = np.sqrt(np.float32(acc / cnt), dtype=np.float32)
        above_total += len(s)
    valid = above_total // CHANNELS >= 100
    sig = np.zeros(CHANNELS, np.float32)
    if not valid:
        return dict(
            pedestal=ped, raw_sigma=rsig, sigma=sig, common_noise=np.zeros((0, 16), np.float32), valid=False
        )
    diff = (adc.astype(np.float32) - ped).astype(np.float32)  # (n, 1024), float32 subtraction
    va = np.sort(diff.reshape(n, 16, 64), axis=2)
    cn = ((va[:, :, 31].astype(np.float64) + va[:, :, 32].astype(np.float64)) * 0.5).astype(np.float32)
    d = (diff - np.repeat(cn, 64, axis=1)).astype(np.float32)
    sq = (d * d).astype(np.float32)
    acc = np.zeros(CHANNELS, np.float32)
    for e in range(n):  # a running float32 sum in event order
        acc = (acc + sq[e]).astype(np.float32)
    sig = np.sqrt((acc / np.float32(n)).astype(np.float32)).astype(np.float32)
    return dict(pedestal=ped, raw_sigma=rsig, sigma=sig, common_noise=cn, valid=True)


# -- the 2009 tracker PC-DAQ dialect (FORMAT.md 11.2) --------------------------------------


def crc16(words: Sequence[int]) -> int:
    """CRC-16/CCITT-FALSE over words fed MSB first (FORMAT.md 4.2)."""
    crc = 0xFFFF
    for w in words:
        for byte in (w >> 8, w & 0xFF):
            crc ^= byte << 8
            for _ in range(8):
                crc = ((crc << 1) ^ 0x1021) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
    return crc


def pc2009_event(
    run: int, event: int, time: int, fine_time: int, tracker: Sequence[Sequence[int]], *, crc: bool = False
) -> List[int]:
    """A science event of the 2009 PC DAQ: top-level TYPE 5 from node 0 (TIME = the event
    time), a JMDC sub-block whose 32-bit fields are stored least significant word first
    (run = run tag), and a group from node 130 (JINJ-2) whose content is one fragment per
    entry of ``tracker`` (each the content words of a tracker JINF-T slave, port 0) and
    whose CRC word is 0 (``crc=True`` writes the right CRC instead). Each entry of
    ``tracker`` is the data of one TDR (slave 0) under its own JINF-T on JINJ port 0, 1, 3,
    9, ..., whose content ends with its two slave-mask words, as in the real 2009 files
    (ams02's convention for this dialect)."""
    lsw = lambda v: [v & 0xFFFF, v >> 16]  # noqa: E731
    jmdc = [0x8005] + lsw(run) + lsw(run) + lsw(event) + lsw(time) + lsw(fine_time) + [0]
    jmdc = [2 * len(jmdc)] + jmdc
    content: List[int] = []
    ports = (0, 1, 3, 9, 16, 17, 22, 23)
    for k, frag in enumerate(tracker):
        tdr = [len(frag) + 1] + list(frag) + [0x8000]  # status word: DATA, slave ID 0
        jinf = tdr + [0x0000, 0x0000]  # slave mask: every TDR replied
        content += [len(jinf) + 1] + jinf + [0x8000 | ports[k % len(ports)]]
    words = [event & 0xFFFF] + content + [0x8000 | 0x0]  # top node status
    words.append(crc16(words) if crc else 0)
    group = [0x8000 | (130 << 5) | 1] + words
    group = [2 * len(group)] + group
    return block(0, 5, jmdc + group, time=time)
