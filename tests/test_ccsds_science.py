"""The science stream: AMS blocks reassembled from APID 976 packets (FORMAT.md 7).

A reassembled stream must decode to exactly the events of the run it came from; with
gaps, to exactly the events whose blocks did not touch a missing packet.
"""

from __future__ import annotations

import random

import numpy as np
import pytest

import ams02
import ams02.ccsds
import amsenc
import ccsdsenc as enc


def lost_blocks(blocks: dict, dropped: list) -> np.ndarray:
    """Per block: True when any of its bytes lies in a dropped stream range."""
    start = blocks["offset"].astype(np.int64)
    size = blocks["size"].astype(np.int64)
    end = start + size + 2 + 2 * blocks["long"].astype(np.int64) + (size & 1)
    lost = np.zeros(len(start), dtype=bool)
    for a, b in dropped:
        lost |= (start < b) & (end > a)
    return lost


def kept_events(events: dict, blocks: dict, dropped: list) -> np.ndarray:
    # An event is kept when the top-level block that holds it is: its own block, or the
    # envelope it is inside (FORMAT.md 10), the last top-level block starting at or before it.
    lost = lost_blocks(blocks, dropped)
    holder = np.searchsorted(blocks["offset"], events["offset"], side="right") - 1
    return ~lost[holder]


def assert_events_equal(got: dict, want: dict, keep: np.ndarray) -> None:
    assert list(got) == list(want)
    for k in want:
        if k.endswith("offset"):  # positions in the stream move with the gaps
            continue
        np.testing.assert_array_equal(got[k], want[k][keep], err_msg=k)


def hits_by_event(hits: dict, events: dict, keep=None) -> list:
    numbers = events["event"]
    rows = []
    for i in range(len(hits["event_index"])):
        ev = int(hits["event_index"][i])
        if keep is not None and not keep[ev]:
            continue
        rows.append((int(numbers[ev]),) + tuple(int(hits[k][i]) if k != "module" else hits[k][i]
                                                for k in ("crate", "slot", "udr", "channel", "amplitude", "module")))
    return sorted(rows, key=str)


@pytest.fixture(scope="module")
def run_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("ccsdsrun")
    out = {}
    for name, kw in {
        "clean": dict(commands_every=9),
        "gaps": dict(drop=[0, 5, 6, 7, 40, 41, 120], drop_fraction=0.04),
        "small": dict(min_packet=100, max_packet=300, drop_fraction=0.1, first_seq=16300),
    }.items():
        pkt, blk = d / f"{name}.ccsds", d / f"{name}.blk"
        summary = ams02.ccsds.simulate_ccsds(pkt, 800, seed=11, block_path=blk, **kw)
        out[name] = (pkt, blk, summary)
    return out


def test_stream_without_gaps_is_the_run(run_files):
    pkt, blk, summary = run_files["clean"]
    assert summary["dropped"] == [] and summary["command_packets"] > 0
    f = ams02.open_ccsds(pkt)
    ref = ams02.open(blk, byte_order="big")
    assert f.byte_order == "big" and f.size == blk.stat().st_size == summary["stream_bytes"]
    for table in ("blocks", "events", "fragments", "trd_hits"):
        got, want = getattr(f, table)(), getattr(ref, table)()
        assert list(got) == list(want)
        for k in want:
            np.testing.assert_array_equal(got[k], want[k], err_msg=f"{table}.{k}")
    assert f.errors()["offset"].size == 0 and f.n_gaps == 0 and f.dropped_bytes == 0
    # stream offsets map to the same bytes in the packet file
    raw, data = blk.read_bytes(), pkt.read_bytes()
    ev = f.events()["offset"]
    fo = f.stream_to_file_offset(ev)
    assert all(data[int(b)] == raw[int(a)] for a, b in zip(ev[:200], fo[:200]))
    assert f.stream_to_file_offset(0) == 16
    with pytest.raises(ValueError):
        f.stream_to_file_offset(f.size)
    sm = f.stream_map()
    assert int(sm["len"].sum()) == f.size
    assert "0 gaps" in repr(f) and f.apid == 976 and f.packet_path == str(pkt)


@pytest.mark.parametrize("name", ["gaps", "small"])
def test_stream_with_gaps_drops_only_the_cut_blocks(run_files, name):
    pkt, blk, summary = run_files[name]
    dropped = summary["dropped_ranges"]
    assert dropped
    ref = ams02.open(blk, byte_order="big")
    want_events, blocks = ref.events(), ref.blocks()
    keep = kept_events(want_events, blocks, dropped)
    assert 0 < keep.sum() < len(keep)
    f = ams02.open_ccsds(pkt)
    got = f.events()
    assert len(got["event"]) == keep.sum()
    assert_events_equal(got, want_events, keep)
    assert hits_by_event(f.trd_hits(), got) == hits_by_event(ref.trd_hits(), want_events, keep)
    # one stream_gap row per gap, at the packet-file offset of a science packet
    e = f.errors()
    assert set(e["kind"].tolist()) == {"stream_gap"}
    starts_late = 0 in summary["dropped"]  # the stream then starts inside a block: one more row
    assert len(e["kind"]) == f.n_gaps + starts_late and f.n_gaps > 0
    pf = ams02.ccsds.open(pkt)
    sci = set(pf.packets(["offset"], apid=976)["offset"].tolist())
    assert set(e["offset"].tolist()) <= sci
    details = e["detail"].tolist()
    assert sum("does not start with a block" in d for d in details) == starts_late
    assert sum("packets missing" in d for d in details) == f.n_gaps
    assert f.dropped_bytes > 0


def test_gap_rows_name_the_packet_range(tmp_path):
    rng = random.Random(2)
    run = amsenc.random_run(rng, "big", 60, amsenc.RunOptions(p_event=1.0))
    stream = run.to_bytes()
    data, dropped, offsets = enc.packetize(stream, [97, 310, 150], drop=[8])
    path = tmp_path / "one_gap.ccsds"
    path.write_bytes(data)
    f = ams02.open_ccsds(path)
    e = f.errors()
    assert e["kind"].tolist() == ["stream_gap"]
    # the cut block started in a packet at or before the one before the gap
    assert e["offset"][0] in offsets[:8]
    d = e["detail"][0]
    assert "sequence count jumps from 7" in d and "to 9" in d and "1 packets missing" in d
    assert f"packet at byte {offsets[8]}" in d  # the first packet after the gap


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_independent_run_through_independent_packets(tmp_path, seed):
    # amsenc writes the run, ccsdsenc the packets: the decoder sees neither's code.
    rng = random.Random(seed)
    opts = amsenc.RunOptions(p_event=0.8)
    run = amsenc.random_run(rng, "big", 120, opts)
    stream = run.to_bytes()
    sizes = [rng.randint(84, 700) for _ in range(17)]
    n_packets = len(enc.packetize(stream, sizes)[2])
    drop = sorted(rng.sample(range(1, n_packets - 1), 3))
    data, dropped, _ = enc.packetize(stream, sizes, first_seq=16380, drop=drop)
    path = tmp_path / "run.ccsds"
    path.write_bytes(data)
    want = run.truth_events()
    blocks = run.truth_blocks()
    keep = kept_events(want, blocks, dropped)
    f = ams02.open_ccsds(path)
    got = f.events()
    assert len(got["event"]) == keep.sum()
    assert_events_equal(got, want, keep)
    # and without gaps, everything
    data, _, _ = enc.packetize(stream, sizes, first_seq=16380)
    path.write_bytes(data)
    g = ams02.open_ccsds(path)
    assert_events_equal(g.events(), want, np.ones(len(want["event"]), dtype=bool))
    np.testing.assert_array_equal(g.events()["offset"], want["offset"])


def test_stream_starting_inside_a_block(tmp_path):
    rng = random.Random(9)
    run = amsenc.random_run(rng, "big", 40, amsenc.RunOptions(p_event=1.0))
    stream = run.to_bytes()
    data, dropped, _ = enc.packetize(stream, [200], drop=[0])  # the first packet is missing
    path = tmp_path / "late.ccsds"
    path.write_bytes(data)
    f = ams02.open_ccsds(path)
    keep = kept_events(run.truth_events(), run.truth_blocks(), dropped)
    assert_events_equal(f.events(), run.truth_events(), keep)
    e = f.errors()
    assert e["kind"].tolist() == ["stream_gap"] and e["offset"].tolist() == [0]
    assert "does not start with a block" in e["detail"][0]


def test_packet_file_damage_reaches_the_stream_errors(run_files, tmp_path):
    pkt, blk, _ = run_files["clean"]
    data = bytearray(pkt.read_bytes())
    pf = ams02.ccsds.open(pkt)
    offs = pf.packets(["offset"], apid=976)["offset"]
    at = int(offs[30])
    data[at] |= 0x40  # version 2: the packet is skipped, making a gap
    bad = tmp_path / "bad.ccsds"
    bad.write_bytes(bytes(data))
    f = ams02.open_ccsds(bad)
    kinds = f.errors()["kind"].tolist()
    assert "packet_version" in kinds and "stream_gap" in kinds
    assert f.errors()["offset"][kinds.index("packet_version")] == at
    with pytest.raises(ams02.FormatError, match=f"at byte {at}"):
        ams02.open_ccsds(bad, strict=True)


def test_no_science_packets(tmp_path):
    p = tmp_path / "hk.ccsds"
    p.write_bytes(enc.Packet(apid=977, user_data=enc.health_user_data(more=[0] * 40)).to_bytes())
    with pytest.raises(ams02.FormatError, match="no packet of APID 976"):
        ams02.open_ccsds(p)


# ---------------------------------------------------------------------------
# the simulator
# ---------------------------------------------------------------------------


def test_simulate_ccsds_packets_follow_the_icd(run_files):
    pkt, blk, s = run_files["clean"]
    pf = ams02.ccsds.open(pkt)
    assert pf.errors()["offset"].size == 0
    p = pf.packets()
    assert set(p["version"].tolist()) == {0} and set(p["type"].tolist()) == {1}
    assert p["sec_hdr"].all() and set(p["seq_flags"].tolist()) == {3} and set(p["time_id"].tolist()) == {1}
    sci = p["apid"] == 976
    total = p["length"].astype(int) + 7
    assert total[sci].min() >= 100 and total[sci].max() <= 4096
    assert int(p["data_length"][sci].sum()) == s["stream_bytes"] == blk.stat().st_size
    a = pf.apids()
    counts = dict(zip(a["apid"].tolist(), a["count"].tolist()))
    assert counts == {124: s["command_packets"], 976: s["science_packets"], 977: s["housekeeping_packets"]}
    assert int(a["bytes"].sum()) == s["file_bytes"] == pkt.stat().st_size
    hs = pf.health_status()
    assert hs["cycle_counter"].tolist() == list(range(s["housekeeping_packets"]))
    assert (hs["subset_id"] == 308).all()
    assert pf.verify_commands()["ok"].all()
    # one H&S packet after every 16 science packets
    order = p["apid"].tolist()
    first_hk = order.index(977)
    assert order[:first_hk].count(976) == 16


def test_simulate_ccsds_gaps_and_wrap(run_files):
    pkt, _, s = run_files["small"]
    dropped = set(s["dropped"])
    written = [i for i in range(s["science_packets"]) if i not in dropped]
    first, last = written[0], written[-1]
    pf = ams02.ccsds.open(pkt)
    a = pf.apids()
    row = a["apid"].tolist().index(976)
    assert a["count"][row] == len(written)
    assert a["first_seq"][row] == (16300 + first) % 16384
    assert a["last_seq"][row] == (16300 + last) % 16384
    assert a["missing"][row] == len([d for d in dropped if first < d < last])
    seq = pf.packets(["seq_count"], apid=976)["seq_count"].astype(int)
    assert seq.max() == 16383 and seq.min() == 0  # wrapped
    gaps = pf.packets(["seq_gap"], apid=976)["seq_gap"]
    assert int(gaps.sum()) == a["missing"][row]


def test_simulate_ccsds_is_deterministic_and_checks_arguments(tmp_path):
    a, b = tmp_path / "a.ccsds", tmp_path / "b.ccsds"
    ams02.ccsds.simulate_ccsds(a, 30, seed=4)
    ams02.ccsds.simulate_ccsds(b, 30, seed=4)
    assert a.read_bytes() == b.read_bytes()
    with pytest.raises(ValueError):
        ams02.ccsds.simulate_ccsds(a, 30, min_packet=50)
    with pytest.raises(ValueError):
        ams02.ccsds.simulate_ccsds(a, 30, drop_fraction=2.0)
    with pytest.raises(ValueError):
        ams02.ccsds.simulate_ccsds(a, -1)


def test_stream_ending_inside_a_block(tmp_path):
    rng = random.Random(12)
    run = amsenc.random_run(rng, "big", 40, amsenc.RunOptions(p_event=1.0))
    stream = run.to_bytes()
    sizes = [150]
    n_packets = len(enc.packetize(stream, sizes)[2])
    data, dropped, offsets = enc.packetize(stream, sizes, drop=[n_packets - 1])
    path = tmp_path / "cut.ccsds"
    path.write_bytes(data)
    f = ams02.open_ccsds(path)
    keep = kept_events(run.truth_events(), run.truth_blocks(), dropped)
    assert keep.sum() < len(keep)
    assert_events_equal(f.events(), run.truth_events(), keep)
    e = f.errors()
    assert e["kind"].tolist() == ["stream_gap"]
    assert "stream ends inside the block starting at byte" in e["detail"][0]
    assert e["offset"][0] in offsets
