"""Tests of the test encoder (tests/amsenc.py) against values worked out by
hand from FORMAT.md. These run without the ams02 package."""

from __future__ import annotations

import random
from collections import Counter

import numpy as np
import pytest

import amsenc as E

# ---------------------------------------------------------------- words


def test_pack_words_both_orders():
    assert E.pack_words([0x1234, 0xABCD], "little") == b"\x34\x12\xcd\xab"
    assert E.pack_words([0x1234, 0xABCD], "big") == b"\x12\x34\xab\xcd"
    assert E.unpack_words(b"\x34\x12\xcd\xab", "little") == [0x1234, 0xABCD]
    assert E.unpack_words(b"\x34\x12\xcd\xab", "big") == [0x3412, 0xCDAB]
    with pytest.raises(ValueError):
        E.pack_words([0x10000], "big")
    with pytest.raises(ValueError):
        E.pack_words([1], "middle")


def test_u32_is_msw_first():
    assert E.u32_words(0x12345678) == [0x1234, 0x5678]
    assert E.u32_words(0) == [0, 0]
    assert E.u32_words(0xFFFFFFFF) == [0xFFFF, 0xFFFF]
    # on disk, little-endian words: MSW first, each word byte-swapped
    assert E.pack_words(E.u32_words(0x12345678), "little") == b"\x34\x12\x78\x56"


def test_words_from_bytes_odd_puts_last_byte_high():
    assert E.words_from_bytes(b"\x11\x22\x33", pad=0xEE) == [0x1122, 0x33EE]
    assert E.words_from_bytes(b"\x11\x22") == [0x1122]


# ---------------------------------------------------------------- CRC


def test_crc_check_value():
    assert E.crc16_bitwise(b"123456789") == 0x29B1
    assert E.crc16(b"123456789") == 0x29B1


def test_crc_known_values():
    assert E.crc16(b"") == 0xFFFF  # init, no xorout
    assert E.crc16(b"A") == 0xB915  # published CRC-16/CCITT-FALSE of "A"


def test_crc_table_matches_bitwise():
    rng = random.Random(5)
    for n in range(0, 64):
        data = bytes(rng.getrandbits(8) for _ in range(n))
        assert E.crc16(data) == E.crc16_bitwise(data)


def test_crc_over_words_is_msb_first():
    words = [0x3132, 0x3334, 0x3536, 0x3738]  # "12345678"
    assert E.crc16_words(words) == E.crc16(b"12345678")
    # appending the CRC word gives 0 (FORMAT.md 4.2)
    c = E.crc16_words(words)
    assert E.crc16_words(words + [c]) == 0
    # independent of the byte order on disk: same words, same CRC
    assert E.crc16_words(E.unpack_words(E.pack_words(words, "little"), "little")) == c


# ---------------------------------------------------------------- blocks


def test_request_block_odd_size_padding():
    # request: RR=0 RW=1 NODE=0x1FF TYPE=3, FBI=2 TAG=0xABC, data bytes 11 22 33
    data = E.words_from_bytes(b"\x11\x22\x33", pad=0xEE)
    words, info = E.block(data, rr=False, rw=True, node=0x1FF, type=3, status=2, tag=0xABC, odd=True)
    # SIZE = ID(2) + secondary(2) + 3 data bytes = 7; no TIME in a request
    assert words == [7, 0x7FE3, 0x2ABC, 0x1122, 0x33EE]
    assert info.size == 7 and not info.long and info.time == 0
    assert info.n_words == 5 and info.n_header_words == 3
    assert E.pack_words(words, "little") == bytes.fromhex("0700e37fbc2a2211ee33")
    assert E.pack_words(words, "big") == bytes.fromhex("00077fe32abc112233ee")


def test_odd_block_next_block_starts_on_next_word():
    for order in E.ORDERS:
        run = E.Run(order)
        a = run.add_block(E.words_from_bytes(b"\x11\x22\x33"), rr=False, node=5, type=3, odd=True)
        b = run.add_block([0xBEEF], rr=True, node=6, type=2, time=0x01020304, status=1)
        assert (a.offset, a.size) == (0, 7)
        assert b.offset == 10  # 2 (size) + 7 bytes + 1 pad byte
        data = run.to_bytes()
        assert len(data) == 10 + 12  # size, ID, secondary, TIME x2, one data word
        assert E.chain_ok(data, order)


def test_reply_block_header_words():
    # reply: RR=1 RW=0 NODE=130 TYPE=0x0B, STATUS=8, TAG=0x123, TIME=0x4A5B6C7D
    words, info = E.block([0xAAAA, 0xBBBB], rr=True, node=130, type=0x0B, status=8, tag=0x123, time=0x4A5B6C7D)
    idw = 0x8000 | (130 << 5) | 0x0B
    assert idw == 0x904B
    assert words == [12, 0x904B, 0x8123, 0x4A5B, 0x6C7D, 0xAAAA, 0xBBBB]
    assert info.data_type == 0x0B


def test_type_ext_block():
    words, info = E.block([], rr=False, node=1, type=0x1F, type_ext=0x0456, tag=7)
    assert words == [6, (1 << 5) | 0x1F, 0x0456, 0x0007]
    assert info.type_ext == 0x0456
    assert info.data_type == 0x1F0456
    with pytest.raises(ValueError):
        E.block([], type=0x1F)
    with pytest.raises(ValueError):
        E.block([], type=3, type_ext=1)


def test_long_size_words():
    # forced L=1 on a small block: ((w0 & 0x7FFF) << 16) | w1 excludes both size words
    words, info = E.block([1, 2], rr=False, node=3, type=2, long=True)
    assert words[:2] == [0x8000, 8]
    assert info.long and info.size == 8 and info.n_size_words == 2
    assert E.size_words(0x12345, False) == [0x8001, 0x2345]
    # 0x7FFF still fits in 15 bits; 0x8000 does not and forces L=1
    w, inf = E.block([0] * 16380, rr=True, node=3, type=2, odd=True)  # 8 + 32760 - 1
    assert inf.size == 0x7FFF and w[0] == 0x7FFF and not inf.long
    w, inf = E.block([0] * 16380, rr=True, node=3, type=2)  # 8 + 32760
    assert inf.size == 0x8000 and w[:2] == [0x8000, 0x8000] and inf.long
    assert len(w) == 2 + 0x8000 // 2


def test_subblock_has_no_secondary_header():
    words, info = E.subblock([0x1111], rr=True, node=0, type=6)
    assert words == [4, 0x8006, 0x1111]
    assert info.n_header_words == 2 and info.tag == 0 and info.time == 0


def test_jmdc_subblock_by_hand():
    j = E.Jmdc(run=0x00012345, run_tag=0x4A000000, event=7, time=0x4A000010, fine_time=123456, status=0x0003)
    words, info = j.encode(1)
    assert words == [
        24, 0x8025,  # SIZE, RR=1 NODE=1 TYPE=5
        0x0001, 0x2345,  # run
        0x4A00, 0x0000,  # run tag
        0x0000, 0x0007,  # event
        0x4A00, 0x0010,  # time
        0x0001, 0xE240,  # fine time 123456
        0x0003,  # status, G=0, groups=3
    ]
    j = E.Jmdc(run=1, run_tag=2, event=3, time=4, fine_time=5, status=0x8001, gps_week=0x0800, gps_second=86400, gps_fraction=1)
    words, info = j.encode(2)
    assert info.size == 34
    assert words == [34, 0x8045, 0, 1, 0, 2, 0, 3, 0, 4, 0, 5, 0x8001, 0x0800, 0x0001, 0x5180, 0x0000, 0x0001]


def test_group_subblock_by_hand():
    top = E.cddc(3, [E.leaf(2, [0xAAAA])])
    g = E.Group(node=128, top=top)
    words, info = g.encode(0x12345)
    body = [0x2345, 2, 0xAAAA, 0x0002, 0x0023]
    crc = E.crc16_bitwise(bytes.fromhex("2345" "0002" "aaaa" "0002" "0023"))
    assert words == [14, 0x9001] + body + [crc]
    assert E.crc16_words(body + [crc]) == 0
    assert g.crc_ok(0x12345)
    bad = E.Group(node=128, top=top, crc=crc ^ 1)
    assert not bad.crc_ok(0x12345)


def test_fragment_words():
    f = E.leaf(4, [7, 8, 9], high=0x80)
    assert f.words() == [4, 7, 8, 9, 0x8004]
    c = E.cddc(2, [f, E.leaf(0, [])])
    assert c.status == 0x0022
    assert c.words() == [1 + 5 + 2, 4, 7, 8, 9, 0x8004, 1, 0x0000, 0x0022]
    assert c.is_cdp and not f.is_cdp


# ---------------------------------------------------------------- TRD


def test_udr_raw_sequencer_order():
    adc = list(range(448))  # channel order: value = ufe*64 + ch
    w = E.udr_raw_words(adc)
    assert len(w) == 448
    assert w[0] == 0  # UFE 0 ch 0
    assert w[1] == 64  # UFE 1 ch 0
    assert w[6] == 384  # UFE 6 ch 0
    assert w[7] == 1  # UFE 0 ch 1
    assert w[447] == 447  # UFE 6 ch 63
    noisy = E.udr_raw_words(adc, noise=[0xF] * 448)
    assert all(x == 0xF000 | y for x, y in zip(noisy, w))


def test_udr_compressed_words():
    assert E.udr_compressed_words([(447, 0x7FFF), (0, 8)]) == [0x01BF, 0x7FFF, 0, 8]
    assert E.udr_compressed_words([(447, 0x7FFF)], noise=[(0x7F, 1)]) == [0xFFBF, 0xFFFF]


def test_udr_frag_modes():
    f = E.udr_frag(3, "compressed", hits=[(1, 2)])
    assert f.status == 0x80 | 12 and f.content() == [1, 2]
    f = E.udr_frag(0, "raw", adc=[5] * 448)
    assert f.status == 0x40 and len(f.content()) == 448
    f = E.udr_frag(5, "mixed", adc=[5] * 448, hits=[(1, 2)])
    assert f.status == 0xC0 | 20 and len(f.content()) == 450 and f.content()[-2:] == [1, 2]


def test_trd_table_invariants():
    assert len(E.TRD_MODULES) == 82
    labels = [m[2] for m in E.TRD_MODULES]
    assert len(set(labels)) == 82
    links = Counter((m[3], m[4], m[5]) for m in E.TRD_MODULES)
    assert max(links.values()) == 1
    all_links = {(c, s, u) for c in ("U0", "U1") for s in E.UDR_SLOTS for u in range(7)}
    assert all_links - set(links) == {("U1", 3, 6), ("U0", 7, 6)}
    by = {m[2]: m for m in E.TRD_MODULES}
    assert by["2-4"][3:6] == ("U1", 6, 5)
    assert by["2+4"][3:6] == ("U0", 4, 5)
    assert Counter(m[0] for m in E.TRD_MODULES) == {1: 14, 2: 16, 3: 16, 4: 18, 5: 18}
    for layer in range(1, 6):
        rows = [m for m in E.TRD_MODULES if m[0] == layer]
        assert sorted(m[1] for m in rows) == list(range(len(rows)))  # ladders 0..n-1
        plus = {m[2][2:] for m in rows if m[2][1] == "+"}
        minus = {m[2][2:] for m in rows if m[2][1] == "-"}
        assert plus == minus  # one -n and one +n for each n
        assert all(m[2][0] == str(layer) for m in rows)


def test_expected_hit_coordinates():
    # U1, UDR 4 = slot 7, UFE 3 -> module 1-7 (layer 1, ladder 0, direction 0)
    h = E.expected_hit(0, crate=1, udr=4, channel=3 * 64 + 17, amplitude=80)
    assert (h["slot"], h["ufe"], h["module"], h["layer"]) == (7, 3, "1-7", 1)
    assert (h["ams_layer"], h["ams_ladder"], h["ams_tube"]) == (1, 0, 1)
    # U1, UDR 1 = slot 3, UFE 3 -> 1-5, direction 1: tube = 15 - ch%16
    h = E.expected_hit(0, crate=1, udr=1, channel=3 * 64 + 2, amplitude=1)
    assert (h["module"], h["ams_layer"], h["ams_ladder"], h["ams_tube"]) == ("1-5", 0, 2, 13)
    # U0 slot 9 UFE 1 -> 5+9: layer 5, ladder 17, direction 1; ch 63 -> ute 3, tube 0
    h = E.expected_hit(0, crate=0, udr=5, channel=64 + 63, amplitude=1)
    assert (h["module"], h["ams_layer"], h["ams_ladder"], h["ams_tube"]) == ("5+9", 19, 17, 0)
    # not connected: U1 slot 3 UFE 6
    h = E.expected_hit(0, crate=1, udr=1, channel=6 * 64, amplitude=1)
    assert h["module"] is None and h["layer"] == 0


# ---------------------------------------------------------------- runs


def test_event_offsets_by_hand():
    run = E.Run("little")
    run.add_block([], rr=False, node=511, type=2, tag=1)  # 6 bytes: size, ID, secondary, no data
    info = run.add_event(
        jmdc=E.Jmdc(event=9, time=100, fine_time=250000, status=0x0002),
        level3=E.Level3([1, 2, 3]),
        node=2,
        tag=0x77,
        time=99,
    )
    assert info.offset == 6
    # event: size, ID, secondary, TIME x2 = 10 bytes; JMDC sub-block 26 bytes; L3 at 6+36
    assert info.size == 2 * (4 + 13 + 5)
    ev = run.truth_events()
    assert ev["offset"].tolist() == [6]
    assert ev["level3_offset"].tolist() == [6 + 10 + 26 + 4]
    assert ev["level3_words"].tolist() == [3]
    assert ev["n_groups"].tolist() == [0] and ev["crc_ok"].tolist() == [True]
    assert ev["unix_time"].tolist() == [100 + 315964800 + 0.25]
    assert ev["groups"].tolist() == [2] and ev["gps"].tolist() == [False]
    assert ev["offset"].dtype == np.uint64 and ev["unix_time"].dtype == np.float64
    bl = run.truth_blocks()
    assert bl["offset"].tolist() == [0, 6]
    assert bl["time"].tolist() == [0, 99]
    words = E.unpack_words(run.to_bytes(), "little")
    assert words[3] == 2 * (4 + 13 + 5) and words[4] == 0x8000 | (2 << 5) | 5
    assert words[(6 + 10 + 26) // 2] == 8  # L3 SIZE: ID + 3 words = 8 bytes
    assert words[(6 + 10 + 26 + 4) // 2 :] == [1, 2, 3]


def test_fragment_truth_by_hand():
    run = E.Run("big")
    udr = E.udr_frag(2, "compressed", hits=[(70, 800)])  # slave id 8, slot 4
    top = E.cddc(1, [E.leaf(0, [5, 6]), E.jinf_u(0, [udr])])
    run.add_event(jmdc=E.Jmdc(event=0x10005), groups=[E.Group(node=129, top=top)], node=0)
    fr = run.truth_fragments()
    # event header 10 bytes, JMDC 26 bytes -> group sub-block at 36, data at 40
    # event number at 40, top content at 42: leaf [N=3,5,6,st] at 42, its data at 44
    # JINF-U0 at 50, content at 52: UDR [N=3, ch, amp, st] at 52, data at 54
    assert fr["data_offset"].tolist() == [42, 44, 52, 54]
    assert fr["depth"].tolist() == [0, 1, 1, 2]
    assert fr["parent"].tolist() == [-1, 0, 0, 2]
    assert fr["slave_id"].tolist() == [1, 0, 8, 8]
    assert fr["n_words"].tolist() == [4 + 6, 2, 4, 2]
    assert fr["node_status"].tolist() == [0x21, 0x00, 0x28, 0x88]
    words = E.unpack_words(run.to_bytes(), "big")
    assert words[40 // 2] == 0x0005
    assert words[54 // 2 : 54 // 2 + 2] == [70, 800]
    hits = run.truth_hits()
    assert len(hits) == 1
    assert (hits[0]["crate"], hits[0]["slot"], hits[0]["udr"], hits[0]["ufe"]) == (0, 4, 2, 1)
    assert hits[0]["module"] == "4+5"  # U0 slot 4 UFE 1
    assert run.truth_events()["n_trd_hits"].tolist() == [1]


def test_trd_truth_only_on_valid_paths():
    run = E.Run("little")
    u = lambda: E.udr_frag(0, "compressed", hits=[(1, 1)])  # noqa: E731
    groups = [
        E.Group(node=150, top=E.cddc(0, [E.jinf_u(1, [u()])])),  # not a JINJ
        E.Group(node=128, top=E.cddc(0, [E.cddc(3, [u()])])),  # port 3, not 2/8
        E.Group(node=128, top=E.cddc(0, [E.cddc(5, [E.jinf_u(1, [u()])])])),  # depth 2
        E.Group(node=131, top=E.cddc(0, [E.jinf_u(1, [u()])])),  # the real one
    ]
    run.add_event(groups=groups)
    assert len(run.truth_hits()) == 1
    assert run.truth_events()["n_trd_hits"].tolist() == [1]


def test_add_block_refuses_events():
    run = E.Run("little")
    with pytest.raises(ValueError):
        run.add_block([], rr=True, rw=False, node=0, type=5, status=0)
    run.add_block([], rr=True, rw=False, node=0, type=5, status=8)
    assert run.truth_events()["offset"].size == 0


def test_chain_checker():
    run = E.random_run(random.Random(3), "big", 12, E.RunOptions(big_block=True))
    data = run.to_bytes()
    assert E.chain_ok(data, "big")
    assert not E.chain_ok(data[:-2], "big")
    assert max(run.truth_blocks()["size"]) > 0x7FFF


def test_random_runs_are_self_consistent():
    for seed in range(20):
        for order in E.ORDERS:
            run = E.random_run(random.Random(seed), order, 15, E.RunOptions(big_block=seed % 7 == 0))
            data = run.to_bytes()
            assert E.chain_ok(data, order)
            assert not run.incomplete
            words = E.unpack_words(data, order)
            bl = run.truth_blocks()
            # every block starts where the previous one's SIZE says
            ends = [int(o) + 2 * (2 if lg else 1) + int(s) + (int(s) & 1) for o, s, lg in zip(bl["offset"], bl["size"], bl["long"])]
            assert [int(x) for x in bl["offset"][1:]] == ends[:-1]
            assert ends[-1] == len(data)
            # fragment rows point at their N word + 1 (non-top) and tile their parents
            fr = run.truth_fragments()
            for i in range(len(fr["depth"])):
                if fr["depth"][i] > 0:
                    off = int(fr["data_offset"][i])
                    assert words[off // 2 - 1] == fr["n_words"][i] + 1
                    assert words[off // 2 + int(fr["n_words"][i])] == fr["node_status"][i]
            # group CRCs check
            for info in run.event_infos:
                for s, a in zip(info["subblocks"], info["subblock_offsets"]):
                    if isinstance(s, E.Group):
                        n_sw = 2 if words[a // 2] & 0x8000 else 1
                        size = ((words[a // 2] & 0x7FFF) << 16 | words[a // 2 + 1]) if n_sw == 2 else words[a // 2]
                        body = words[a // 2 + n_sw + 1 : a // 2 + n_sw + size // 2]
                        assert E.crc16_words(body) == 0
