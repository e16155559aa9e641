"""Groups, fragments and TRD (issue 3): ams02 against the independent encoder."""

from __future__ import annotations

import random
import zlib
from collections import Counter

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import ams02
import amsenc as E
from _checks import assert_hits, assert_raw, assert_table, error_rows, n_rows, runs

TRD_RUN = dict(p_event=0.9, p_trd_group=0.75, max_groups=3)


@pytest.fixture(scope="module")
def labels():
    return np.asarray(ams02.trd.modules()["label"])


def check_groups(f, run: E.Run, labels) -> None:
    assert not run.incomplete
    assert_table(f.fragments(), run.truth_fragments(), E.FRAGMENT_COLUMNS, name="fragments")
    assert_hits(f.trd_hits(), run.truth_hits(), labels)
    assert_raw(f.trd_raw(), run.truth_raw())
    ev = f.events(columns=["n_trd_hits", "n_groups", "crc_ok"])
    assert_table(ev, run.truth_events(), {k: E.EVENT_COLUMNS[k] for k in ev})


# ---------------------------------------------------------------- properties


@given(run=runs(**TRD_RUN))
def test_random_trees(run, write_file, labels):
    path = write_file(run.to_bytes())
    f = ams02.open(path, byte_order=run.order)
    check_groups(f, run, labels)
    assert error_rows(f.errors()) == []


@given(run=runs(p_flight=0.8, p_coded=0.5, **TRD_RUN))
def test_random_flight_runs(run, write_file, labels):
    """The flight layout (FORMAT.md 9) and Huffman-coded groups (9.3) mixed with 2007-layout
    events, both byte orders: every table equals the independent encoder's truth."""
    path = write_file(run.to_bytes())
    f = ams02.open(path, byte_order=run.order)
    check_groups(f, run, labels)
    assert_table(f.events(), run.truth_events(), E.EVENT_COLUMNS, name="events")
    assert error_rows(f.errors()) == []


@given(run=runs(max_blocks=6, **TRD_RUN), data=st.data())
def test_words_at_fragment_offsets(run, data, write_file):
    raw = run.to_bytes()
    path = write_file(raw)
    f = ams02.open(path, byte_order=run.order)
    fr = f.fragments()
    words = E.unpack_words(raw, run.order)
    n = n_rows(fr)
    picks = data.draw(st.lists(st.integers(0, n - 1), max_size=8)) if n else []
    for i in picks:
        off, k = int(fr["data_offset"][i]), int(fr["n_words"][i])
        got = f.words(off, k)
        assert isinstance(got, np.ndarray) and got.dtype == np.uint16
        assert got.tolist() == words[off // 2 : off // 2 + k]
        # the status word follows the content
        assert int(f.words(off + 2 * k, 1)[0]) == int(fr["node_status"][i])


@given(run=runs(max_blocks=15, **TRD_RUN), data=st.data())
def test_trd_entry_range(run, data, write_file, labels):
    path = write_file(run.to_bytes())
    f = ams02.open(path, byte_order=run.order)
    n = run.n_events
    a = data.draw(st.integers(0, n))
    b = data.draw(st.integers(a, n))
    hits = [h for h in run.truth_hits() if a <= h["event_index"] < b]
    assert_hits(f.trd_hits(entry_start=a, entry_stop=b), hits, labels)
    raw = run.truth_raw()
    sel = (raw["event_index"] >= a) & (raw["event_index"] < b)
    assert_raw(f.trd_raw(entry_start=a, entry_stop=b), {k: v[sel] for k, v in raw.items()})


@pytest.mark.parametrize("order", E.ORDERS)
@pytest.mark.parametrize("mode", ["raw", "compressed", "mixed"])
def test_each_mode_all_udrs(order, mode, run_file, labels):
    rng = random.Random(zlib.crc32(f"{order}/{mode}".encode()))
    opts = E.RunOptions(trd_modes=(mode,), max_hits=30)
    run = E.Run(order)
    for ev in range(1, 6):
        kids = [E.jinf_u(crate, [E.random_udr(rng, crate, u, opts) for u in range(6)]) for crate in (1, 0)]
        kids.insert(1, E.random_tree(rng, 2, 4, exclude_ids=(2, 8)))
        run.add_event(jmdc=E.Jmdc(event=ev), groups=[E.Group(130, E.cddc(0, kids))])
    path, _ = run_file(run)
    f = ams02.open(path)
    check_groups(f, run, labels)
    raw = f.trd_raw()
    assert n_rows(raw) == (0 if mode == "compressed" else 5 * 12)
    if mode != "compressed":
        assert raw["adc"].shape == (60, 448)
        assert raw["crate"].tolist()[:12] == [1] * 6 + [0] * 6
        assert raw["slot"].tolist()[:12] == [1, 3, 4, 6, 7, 9] * 2
        assert int(raw["adc"].max()) <= 0xFFF
    assert error_rows(f.errors()) == []


@pytest.mark.parametrize("order", E.ORDERS)
def test_full_occupancy_covers_the_map(order, run_file, labels):
    """Every connected channel of all 12 UDRs hit once: every module gets 64 hits."""
    run = E.Run(order)
    kids = []
    for crate in (1, 0):
        udrs = []
        for u in range(6):
            hits = [(c, (c * 7 + u) & 0x7FFF) for c in E._CONNECTED[(crate, u)]]
            udrs.append(E.udr_frag(u, "compressed", hits=hits, hit_noise=[(c & 0x7F, c & 1) for c, _ in hits]))
        kids.append(E.jinf_u(crate, udrs))
    run.add_event(jmdc=E.Jmdc(event=1), groups=[E.Group(128, E.cddc(9, kids))])
    path, _ = run_file(run)
    f = ams02.open(path)
    check_groups(f, run, labels)
    h = f.trd_hits()
    assert n_rows(h) == 5248
    per_module = Counter(int(m) for m in h["module"])
    assert len(per_module) == 82 and set(per_module.values()) == {64}
    assert sorted(str(labels[m]) for m in per_module) == sorted(m[2] for m in E.TRD_MODULES)
    # every (ams_layer, ams_ladder, ams_tube) once
    triples = set(zip(h["ams_layer"].tolist(), h["ams_ladder"].tolist(), h["ams_tube"].tolist()))
    assert len(triples) == 5248
    assert f.events()["n_trd_hits"].tolist() == [5248]


@pytest.mark.parametrize("order", E.ORDERS)
def test_raw_channel_order(order, run_file):
    adc = [(3 * c + 1) & 0xFFF for c in range(448)]
    run = E.Run(order)
    udr = E.udr_frag(3, "raw", adc=adc, raw_noise=[0xA] * 448)
    run.add_event(jmdc=E.Jmdc(event=1), groups=[E.Group(131, E.cddc(0, [E.jinf_u(0, [udr])]))])
    path, _ = run_file(run)
    raw = ams02.open(path).trd_raw()
    assert raw["adc"].shape == (1, 448)
    assert raw["adc"][0].tolist() == adc
    assert (int(raw["crate"][0]), int(raw["slot"][0]), int(raw["udr"][0])) == (0, 6, 3)


@pytest.mark.parametrize("order", E.ORDERS)
def test_non_trd_positions_have_no_hits(order, run_file):
    """Nesting by node role (FORMAT.md 4.2): UDR-like data anywhere but under a JINF-U are
    an xDR's or a leaf's own data, never TRD hits."""
    u = lambda: E.udr_frag(0, "compressed", hits=[(1, 1)])  # noqa: E731
    groups = [
        E.Group(150, E.cddc(0, [E.jinf_u(1, [u()])])),  # a JINF top node: its slaves are xDRs
        E.Group(128, E.cddc(0, [E.cddc(3, [u()])])),  # JINJ port 3 is a JINF-T: its slave a TDR
        E.Group(128, E.cddc(0, [E.cddc(5, [E.jinf_u(1, [u()])])])),  # port 5 is an SDR: a leaf
        E.Group(136, E.leaf(0, E.jinf_u(1, [u()]).words())),  # a JLV1 node: a leaf
    ]
    run = E.Run(order)
    run.add_event(jmdc=E.Jmdc(event=1), groups=groups)
    path, _ = run_file(run)
    f = ams02.open(path)
    assert n_rows(f.trd_hits()) == 0
    assert f.events()["n_trd_hits"].tolist() == [0]
    fr = f.fragments()
    assert_table(fr, run.truth_fragments(), E.FRAGMENT_COLUMNS)
    assert fr["group"].tolist() == [0, 0, 1, 1, 1, 2, 2, 3]
    assert [ams02.ROLES[r] for r in fr["role"]] == ["jinf", "xdr", "jinj", "jinf_t", "xdr", "jinj", "sdr", "node"]
    assert error_rows(f.errors()) == []


@pytest.mark.parametrize("order", E.ORDERS)
def test_jinf_u_and_udr_as_top_nodes(order, run_file, labels):
    """FORMAT.md 4.3: a group whose top node is a JINF-U (198..205) or a UDR (474..509)."""
    rng = random.Random(5)
    opts = E.RunOptions(trd_modes=("compressed", "mixed", "raw"))
    groups = [
        E.Group(199, E.cddc(0, [E.random_udr(rng, 0, k, opts) for k in (0, 3)])),  # JF-U0B: crate U0
        E.Group(203, E.cddc(0, [E.random_udr(rng, 1, 5, opts)])),  # JF-U1B: crate U1
        E.Group(474 + 3 * 8 + 2, E.random_udr(rng, 1, 2, opts)),  # UDR node: crate 1, UDR 2
    ]
    run = E.Run(order)
    run.add_event(jmdc=E.Jmdc(event=1), groups=groups)
    path, _ = run_file(run)
    f = ams02.open(path)
    assert error_rows(f.errors()) == []
    assert_table(f.fragments(), run.truth_fragments(), E.FRAGMENT_COLUMNS)
    assert_hits(f.trd_hits(), run.truth_hits(), labels)
    raw = f.trd_raw()
    truth = run.truth_raw()
    for k in ("crate", "udr", "adc"):
        assert np.array_equal(raw[k], truth[k]), k


@pytest.mark.parametrize("order", E.ORDERS)
def test_large_run(order, tmp_path, labels):
    opts = E.RunOptions(p_event=0.95, p_raw=0.05, p_long=0.02, max_hits=10, max_udrs=4)
    run = E.random_run(random.Random(77), order, 2500, opts)
    p = tmp_path / "big.dat"
    run.write(p)
    f = ams02.open(p)
    check_groups(f, run, labels)
    assert len(run.hit_rows) > 10000
    assert error_rows(f.errors()) == []


# ---------------------------------------------------------------- bad input


def fragment_key_rows(fr: dict) -> list:
    """Fragments as tuples with the parent replaced by the parent's data_offset
    (so rows can be compared after others are dropped)."""
    out = []
    for i in range(n_rows(fr)):
        p = int(fr["parent"][i])
        pk = -1 if p < 0 else int(fr["data_offset"][p])
        out.append(
            (int(fr["event_index"][i]), int(fr["group"][i]), int(fr["depth"][i]), pk, int(fr["slave_id"][i]),
             int(fr["node_status"][i]), int(fr["data_offset"][i]), int(fr["n_words"][i]))
        )
    return out


def one_bad_event(order, bad_group: E.Group, *, with_good=True):
    """event 0: good; event 1: a good JINJ group (group 0) then ``bad_group``
    (group 1); event 2: good."""
    rng = random.Random(11)
    opts = E.RunOptions(trd_modes=("compressed", "mixed"))

    def good():
        return E.Group(128, E.cddc(0, [E.jinf_u(1, [E.random_udr(rng, 1, u, opts) for u in (0, 5)]), E.random_tree(rng, 2, 3, (2, 8))]))

    run = E.Run(order)
    run.add_event(jmdc=E.Jmdc(event=1), groups=[good()])
    run.add_event(jmdc=E.Jmdc(event=2), groups=([good()] if with_good else []) + [bad_group])
    run.add_event(jmdc=E.Jmdc(event=3), groups=[good()])
    return run


def decode_bad(run, run_file, bad_event=1, bad_group=1):
    path, _ = run_file(run)
    f = ams02.open(path)
    rows = error_rows(f.errors())
    info = run.event_infos[bad_event]
    grp = [i for i, s in enumerate(info["subblocks"]) if isinstance(s, E.Group)][bad_group]
    g_off = info["subblock_offsets"][grp]
    g_end = g_off + 2 * info["subblock_infos"][grp].n_words
    for o, e, _k, _d in rows:
        assert e == bad_event and g_off <= o < g_end, (rows, g_off, g_end)
    # everything outside the bad group is decoded as usual
    truth = fragment_key_rows(run.truth_fragments())
    got = fragment_key_rows(f.fragments())
    keep = lambda r: (r[0], r[1]) != (bad_event, bad_group)  # noqa: E731
    assert [r for r in got if keep(r)] == [r for r in truth if keep(r)]
    ev = f.events()
    assert ev["event"].tolist() == [1, 2, 3]
    return f, [k for _o, _e, k, _d in rows], rows


@pytest.mark.parametrize("order", E.ORDERS)
def test_fragment_overrun(order, run_file):
    child = E.leaf(4, [1, 2, 3])
    child.n_override = 40  # claims 40 words inside a parent with far fewer
    bad = E.Group(129, E.cddc(0, [E.leaf(1, [5]), child]))
    run = one_bad_event(order, bad)
    f, ks, rows = decode_bad(run, run_file)
    assert "fragment_overrun" in ks
    assert f.events()["crc_ok"].tolist() == [True, True, True]


@pytest.mark.parametrize("order", E.ORDERS)
def test_fragment_overrun_nested(order, run_file):
    inner = E.leaf(2, [1, 2])
    inner.n_override = 9  # overruns its parent (the CDDC), though not the group
    mid = E.cddc(3, [inner])
    bad = E.Group(129, E.cddc(0, [mid, E.leaf(1, [0] * 20)]))
    run = one_bad_event(order, bad)
    f, ks, rows = decode_bad(run, run_file)
    assert "fragment_overrun" in ks


@pytest.mark.parametrize("order", E.ORDERS)
def test_fragment_empty(order, run_file):
    top = E.Frag(status=E.ST_CDP, data=[3, 7, 7, 0x0001, 0])  # a good leaf, then N=0
    run = one_bad_event(order, E.Group(129, top))
    f, ks, rows = decode_bad(run, run_file)
    assert "fragment_empty" in ks


@pytest.mark.parametrize("order", E.ORDERS)
def test_udr_odd_compressed(order, run_file, labels):
    udr = E.udr_frag(2, "compressed", hits=[(10, 100), (70, 200)])
    udr.data.append(0x0033)  # a dangling channel word: ignored
    bad = E.Group(128, E.cddc(0, [E.jinf_u(1, [udr])]))
    run = one_bad_event(order, bad)
    f, ks, rows = decode_bad(run, run_file)
    assert ks == ["udr_odd_compressed"]
    assert_hits(f.trd_hits(), run.truth_hits(), labels)  # both complete pairs kept


@pytest.mark.parametrize("order", E.ORDERS)
def test_udr_odd_compressed_mixed(order, run_file, labels):
    udr = E.udr_frag(1, "mixed", adc=list(range(448)), hits=[(5, 9)])
    udr.data.append(0x0001)
    bad = E.Group(128, E.cddc(0, [E.jinf_u(0, [udr])]))
    run = one_bad_event(order, bad)
    f, ks, rows = decode_bad(run, run_file)
    assert ks == ["udr_odd_compressed"]
    assert_hits(f.trd_hits(), run.truth_hits(), labels)
    assert_raw(f.trd_raw(), run.truth_raw())


@pytest.mark.parametrize("order", E.ORDERS)
def test_trd_not_connected(order, run_file, labels):
    nc1 = E.udr_frag(1, "compressed", hits=[(6 * 64 + 5, 40), (3 * 64, 8)])  # U1 slot 3 UFE 6: NC
    nc0 = E.udr_frag(4, "compressed", hits=[(6 * 64 + 63, 41)])  # U0 slot 7 UFE 6: NC
    bad = E.Group(128, E.cddc(0, [E.jinf_u(1, [nc1]), E.jinf_u(0, [nc0])]))
    run = one_bad_event(order, bad)
    f, ks, rows = decode_bad(run, run_file)
    assert ks == ["trd_not_connected", "trd_not_connected"]
    assert_hits(f.trd_hits(), run.truth_hits(), labels)  # NC hits kept with module -1
    h = f.trd_hits()
    nc = h["module"] == -1
    assert int(nc.sum()) == 2
    assert h["layer"][nc].tolist() == [0, 0]
    assert h["channel"][nc].tolist() == [6 * 64 + 5, 6 * 64 + 63]
    assert h["slot"][nc].tolist() == [3, 7]
    assert h["crate"][nc].tolist() == [1, 0]
    assert f.events()["n_trd_hits"].tolist() == [len([x for x in run.truth_hits() if x["event_index"] == i]) for i in range(3)]


@pytest.mark.parametrize("order", E.ORDERS)
@pytest.mark.parametrize("sid", [24, 31])
def test_udr_slave_id(order, sid, run_file, labels):
    odd = E.udr_frag(0, "compressed", hits=[(1, 1)], slave_id=sid)
    odd.trd = {"ignore": True}
    good = E.udr_frag(5, "compressed", hits=[(2, 3)])
    bad = E.Group(128, E.cddc(0, [E.jinf_u(1, [odd, good])]))
    run = one_bad_event(order, bad)
    f, ks, rows = decode_bad(run, run_file)
    assert ks == ["udr_slave_id"]
    # the good UDR beside it is decoded (and the one with no UDR index gives no hit)
    assert_hits(f.trd_hits(), run.truth_hits(), labels)
    h = f.trd_hits()
    sel = (h["event_index"] == 1) & (h["udr"] == 5) & (h["channel"] == 2)
    assert h["amplitude"][sel].tolist() == [3]


@pytest.mark.parametrize("order", E.ORDERS)
@pytest.mark.parametrize("sid", [0, 1, 2, 3, 5, 22, 23])
def test_udr_index_is_slave_id_div_4(order, sid, run_file, labels):
    """FORMAT.md 4.3: UDR index = slave ID // 4 (4k the A side, 4k + 1 the B side)."""
    udr = E.udr_frag(sid // 4, "compressed", hits=[(7, 11)], slave_id=sid)
    run = E.Run(order)
    run.add_event(jmdc=E.Jmdc(event=1), groups=[E.Group(128, E.cddc(0, [E.jinf_u(0, [udr])]))])
    path, _ = run_file(run)
    f = ams02.open(path)
    assert error_rows(f.errors()) == []
    h = f.trd_hits()
    assert h["udr"].tolist() == [sid // 4] and h["crate"].tolist() == [0]
    assert_hits(h, run.truth_hits(), labels)


@pytest.mark.parametrize("order", E.ORDERS)
def test_udr_mode(order, run_file, labels):
    nomode = E.leaf(8, [1, 2, 3, 4])  # slave id 8 = UDR 2, neither RAW nor COMPRESSED
    bad = E.Group(128, E.cddc(0, [E.jinf_u(0, [nomode])]))
    run = one_bad_event(order, bad)
    f, ks, rows = decode_bad(run, run_file)
    assert ks == ["udr_mode"]
    h = f.trd_hits()
    assert ((h["event_index"] == 1) & (h["udr"] == 2) & (h["crate"] == 0)).sum() == 0
    assert_hits(h, run.truth_hits(), labels)


@pytest.mark.parametrize("order", E.ORDERS)
def test_udr_cdp_bit_decides_nothing(order, run_file, labels):
    """The CDP bit is reported, never followed: a UDR with CDP set is a UDR in both layouts;
    in flight data a UDR without it is a cdp_mismatch row, decoded all the same."""
    for cdp, flight, expected in ((True, False, []), (False, True, ["cdp_mismatch"]), (True, True, [])):
        udr = E.udr_frag(1, "compressed", hits=[(3, 9), (70, 10)], cdp=cdp)
        top = E.cddc(0, [E.jinf_u(1, [udr], cdp=not flight, mask=0 if flight else None)], cdp=not flight)
        run = E.Run(order)
        jm = E.FlightJmdc(event=1, run_id=1_400_000_000) if flight else E.Jmdc(event=1)
        run.add_event(jmdc=jm, groups=[E.Group(128, top)])
        path, _ = run_file(run)
        f = ams02.open(path)
        assert [k for *_x, k, _d in error_rows(f.errors())] == expected, (cdp, flight)
        assert_hits(f.trd_hits(), run.truth_hits(), labels)
        assert f.fragments()["cdp"].tolist()[-1] == cdp


@pytest.mark.parametrize("order", E.ORDERS)
@pytest.mark.parametrize("n", [447, 449, 0])
def test_udr_raw_length(order, n, run_file):
    udr = E.Frag(status=E.ST_RAW | 12, data=[0x0123] * n)
    bad = E.Group(128, E.cddc(0, [E.jinf_u(1, [udr])]))
    run = one_bad_event(order, bad)
    f, ks, rows = decode_bad(run, run_file)
    assert ks == ["udr_raw_length"]


@pytest.mark.parametrize("order", E.ORDERS)
def test_mixed_shorter_than_raw(order, run_file):
    udr = E.Frag(status=E.ST_RAW | E.ST_COMPRESSED | 12, data=[0x0123] * 100)
    bad = E.Group(128, E.cddc(0, [E.jinf_u(1, [udr])]))
    run = one_bad_event(order, bad)
    f, ks, rows = decode_bad(run, run_file)
    assert ks == ["udr_raw_length"]


@pytest.mark.parametrize("order", E.ORDERS)
def test_trd_channel_range(order, run_file):
    udr = E.udr_frag(0, "compressed", hits=[(448, 5), (511, 6)])
    udr.trd = {"ignore": True}
    bad = E.Group(128, E.cddc(0, [E.jinf_u(1, [udr])]))
    run = one_bad_event(order, bad)
    f, ks, rows = decode_bad(run, run_file)
    assert ks == ["trd_channel_range", "trd_channel_range"]


@pytest.mark.parametrize("order", E.ORDERS)
def test_group_malformed(order, run_file):
    # a TYPE=1 sub-block with only 2 data words: no room for event number, status and CRC
    raw = E.RawSub(E.subblock([2, 0], node=128, type=1)[0])
    run = E.Run(order)
    run.add_event(jmdc=E.Jmdc(event=1))
    run.add_event(subblocks=[E.Jmdc(event=2), raw])
    path, _ = run_file(run)
    f = ams02.open(path)
    rows = error_rows(f.errors())
    assert [(e, k) for _o, e, k, _d in rows] == [(1, "group_malformed")]


@pytest.mark.parametrize("order", E.ORDERS)
def test_type4_group_in_the_2007_layout(order, run_file, labels):
    """FORMAT.md 9.3: TYPE 4 groups are decoded in both layouts (B50A for this run tag)."""
    g4 = E.Group(128, E.cddc(0, [E.jinf_u(1, [E.udr_frag(0, "compressed", hits=[(1, 1), (9, 0x7FFF)])])]), type=4)
    run = E.Run(order)
    run.add_event(subblocks=[E.Jmdc(event=1, run_tag=1_000_000_000), g4])
    path, _ = run_file(run)
    f = ams02.open(path)
    assert error_rows(f.errors()) == []
    assert_table(f.fragments(), run.truth_fragments(), E.FRAGMENT_COLUMNS)
    assert_hits(f.trd_hits(), run.truth_hits(), labels)
    assert f.events()["n_groups"].tolist() == [1]
    assert f.fragments()["compressed"].all()


# ---------------------------------------------------------------- ams02.trd


def test_modules_table():
    m = ams02.trd.modules()
    n = len(m["label"])
    assert n == 82
    assert len(set(str(x) for x in m["label"])) == 82
    for k in ("label", "layer", "side", "position", "crate", "slot", "udr", "ufe", "ams_ladder", "direction"):
        assert k in m and len(m[k]) == 82, k
    ours = {row[2]: row for row in E.TRD_MODULES}
    for i in range(n):
        label = str(m["label"][i])
        layer, ladder, lab, crate, slot, ufe, direction = ours[label]
        assert int(m["layer"][i]) == layer == int(label[0])
        assert int(m["side"][i]) == (1 if label[1] == "+" else -1)
        assert int(m["position"][i]) == int(label[2:])
        assert int(m["crate"][i]) == E.CRATE_NUMBER[crate], label
        assert int(m["slot"][i]) == slot, label
        assert int(m["udr"][i]) == E.UDR_SLOTS.index(slot), label
        assert int(m["ufe"][i]) == ufe, label
        assert int(m["ams_ladder"][i]) == ladder, label
        assert int(m["direction"][i]) == direction, label


def test_two_four_correction():
    m = ams02.trd.modules()
    where = {str(m["label"][i]): (int(m["crate"][i]), int(m["slot"][i]), int(m["ufe"][i])) for i in range(82)}
    assert where["2-4"] == (1, 6, 5)  # U1 slot 6 UFE 5
    assert where["2+4"] == (0, 4, 5)  # U0 slot 4 UFE 5
    assert list(where.values()).count((0, 4, 5)) == 1


def test_links_and_nc():
    m = ams02.trd.modules()
    used = {(int(m["crate"][i]), int(m["slot"][i]), int(m["ufe"][i])) for i in range(82)}
    assert len(used) == 82
    links = {(c, s, u) for c in (0, 1) for s in (1, 3, 4, 6, 7, 9) for u in range(7)}
    assert len(links) == 84
    assert links - used == {(1, 3, 6), (0, 7, 6)}


def test_channel_map():
    cm = ams02.trd.channel_map()
    m = ams02.trd.modules()
    labels = np.asarray(m["label"])
    for k in ("crate", "slot", "udr", "ufe", "channel", "module", "ute", "ams_layer", "ams_ladder", "ams_tube"):
        assert len(cm[k]) == 5248, k
    keys = set()
    for i in range(5248):
        crate, slot, udr, ufe, channel = (int(cm[k][i]) for k in ("crate", "slot", "udr", "ufe", "channel"))
        assert slot == E.UDR_SLOTS[udr]
        assert ufe == channel // 64
        h = E.expected_hit(0, crate, udr, channel, 0)
        assert h["module"] is not None, (crate, slot, ufe)
        assert str(labels[int(cm["module"][i])]) == h["module"]
        assert int(cm["ute"][i]) == (channel % 64) // 16
        assert (int(cm["ams_layer"][i]), int(cm["ams_ladder"][i]), int(cm["ams_tube"][i])) == (
            h["ams_layer"], h["ams_ladder"], h["ams_tube"])
        keys.add((crate, udr, channel))
    assert len(keys) == 5248
    assert Counter(int(x) for x in cm["module"]) == {i: 64 for i in range(82)}
