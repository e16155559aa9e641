"""The simulator's blocks between events and envelopes (FORMAT.md 10), checked against an
independent reading of its output (tests/amsenc.py, written from FORMAT.md), and the
2007 layout pinned to the bytes it wrote before these blocks existed."""

from __future__ import annotations

import collections
import hashlib

import numpy as np
import pytest

import amsenc as E
import ams02

# summary key -> kind of FORMAT.md 10's table (amsenc.block_kind)
SUMMARY_KINDS = {
    "n_envelopes": "envelope",
    "n_fine_time_envelopes": "fine_time_envelope",
    "n_calibration": "calibration",
    "n_configuration": "configuration",
    "n_housekeeping": "housekeeping",
    "n_not_event": "not_event",
    "n_calibration_replies": "calibration_reply",
    "n_cceb": "cceb",
    "n_tof_slow_control": "tof_slow_control",
    "n_other_blocks": "other",
}
HEADER_COLUMNS = (
    "offset",
    "size",
    "long",
    "rr",
    "rw",
    "node",
    "type",
    "type_ext",
    "data_type",
    "status",
    "tag",
    "time",
)


@pytest.fixture(scope="module", params=["little", "big"])
def flight_run(request, tmp_path_factory):
    """A default (flight-layout) run of 3000 events, its summary and its independent reading."""
    path = tmp_path_factory.mktemp("sim") / f"flight_{request.param}.dat"
    summary = ams02.simulate(path, 3000, seed=21, byte_order=request.param)
    data = path.read_bytes()
    return path, summary, data, request.param, E.walk_nested_blocks(data, request.param)


def test_flight_run_opens_without_errors_and_counts_every_kind(flight_run):
    path, summary, data, order, rows = flight_run
    kinds = collections.Counter(r["kind"] for r in rows)
    # Every kind of FORMAT.md 10 is written in a run of a few thousand events.
    for key, kind in SUMMARY_KINDS.items():
        assert summary[key] == kinds[kind], key
        assert kinds[kind] > 0, kind
    assert summary["n_events"] == kinds["event"] == 3000
    assert summary["n_blocks"] == sum(r["depth"] == 0 for r in rows)
    assert summary["n_nested_blocks"] == sum(r["depth"] > 0 for r in rows)
    assert summary["n_events_in_envelopes"] == sum(r["depth"] > 0 and r["kind"] == "event" for r in rows)
    assert summary["bytes"] == len(data)
    # Envelopes nest two deep now and then; envelopes also hold blocks that are not events.
    assert max(r["depth"] for r in rows) == 2
    inner_kinds = {r["kind"] for r in rows if r["depth"] > 0}
    assert {"event", "fine_time_envelope", "tof_slow_control"} <= inner_kinds
    assert len(inner_kinds - {"event", "fine_time_envelope"}) >= 3
    with ams02.open(path) as f:
        assert f.byte_order == order
        assert len(f.errors()["kind"]) == 0
        assert f.n_events == 3000
        assert f.n_blocks == summary["n_blocks"]


def test_blocks_and_nested_blocks_equal_the_independent_reading(flight_run):
    path, summary, data, order, rows = flight_run
    top = [r for r in rows if r["depth"] == 0]
    with ams02.open(path) as f:
        b = f.blocks()
        for c in HEADER_COLUMNS:
            assert b[c].tolist() == [int(r[c]) for r in top], c
        n = f.blocks(nested=True)
        assert len(n["offset"]) == summary["n_blocks"] + summary["n_nested_blocks"]
        for c in HEADER_COLUMNS + ("depth", "envelope", "time_us"):
            assert n[c].tolist() == [int(r[c]) for r in rows], c
        # Each section-10 kind, as the decoder's columns give it (node, type, data_type).
        for kind in ("calibration", "configuration", "housekeeping"):
            sel = [k for k, r in enumerate(rows) if r["kind"] == kind]
            assert set(n["type"][sel].tolist()) == {
                dict(calibration=6, configuration=7, housekeeping=8)[kind]
            }
            assert np.all(n["node"][sel] <= 15) and np.all(n["rr"][sel])
        cceb = [k for k, r in enumerate(rows) if r["kind"] == "cceb"]
        assert set(n["type"][cceb].tolist()) == {0x1B} and np.all(
            (n["node"][cceb] >= 24) & (n["node"][cceb] <= 31)
        )
        tof = [k for k, r in enumerate(rows) if r["kind"] == "tof_slow_control"]
        assert set(n["type"][tof].tolist()) <= {0x18, 0x19}
        assert np.all((n["node"][tof] >= 40) & (n["node"][tof] <= 47))
        assert int(np.sum(n["data_type"] == E.ENVELOPE)) == summary["n_envelopes"]
        assert int(np.sum(n["data_type"] == E.FINE_TIME_ENVELOPE)) == summary["n_fine_time_envelopes"]


def test_calibration_bursts_number_their_containers(flight_run):
    # FORMAT.md 10: a calibration container's event number is sequence << 16 | expected total.
    _, _, data, order, rows = flight_run
    words = E.unpack_words(data, order)
    numbers = [E.flight_jmdc_of_event(words, r)["event"] for r in rows if r["kind"] == "calibration"]
    k = 0
    while k < len(numbers):
        total = numbers[k] & 0xFFFF
        assert 2 <= total <= 4
        assert numbers[k : k + total] == [(s << 16) | total for s in range(1, total + 1)]
        k += total


def test_events_inside_envelopes_are_events_with_the_envelope_microseconds(flight_run):
    path, summary, data, order, rows = flight_run
    events = [k for k, r in enumerate(rows) if r["kind"] == "event"]
    with ams02.open(path) as f:
        e = f.events()
        assert e["offset"].tolist() == [rows[k]["offset"] for k in events]
        assert e["event"].tolist() == list(range(1, 3001))
        assert e["time"].tolist() == [rows[k]["time"] for k in events]
        words = E.unpack_words(data, order)
        jmdc = [E.flight_jmdc_of_event(words, rows[k]) for k in events]
        assert e["fine_time"].tolist() == [j["fine_ms"] * 1000 for j in jmdc]
        n = f.blocks(nested=True)
    in_fine = [
        k
        for k in events
        if rows[k]["envelope"] >= 0 and rows[rows[k]["envelope"]]["kind"] == "fine_time_envelope"
    ]
    assert len(in_fine) > 20
    us = n["time_us"][in_fine]
    assert np.all(us > 0) and np.all(us <= 999_999)
    # The envelope's microseconds refine the event's fine time (milliseconds in the flight
    # layout), and the envelope's TIME is the event's.
    pos = {k: i for i, k in enumerate(events)}
    fine = e["fine_time"][[pos[k] for k in in_fine]]
    assert np.array_equal(us // 1000 * 1000, fine)
    assert [rows[rows[k]["envelope"]]["time"] for k in in_fine] == [rows[k]["time"] for k in in_fine]


def test_envelope_fraction_and_other_block_every(tmp_path):
    p = tmp_path / "r.dat"
    s = ams02.simulate(p, 400, seed=3, envelope_fraction=1.0, other_block_every=0)
    rows = E.walk_nested_blocks(p.read_bytes(), "little")
    assert s["n_events_in_envelopes"] == s["n_events"] == 400
    assert all(r["depth"] > 0 for r in rows if r["kind"] == "event")
    assert s["n_blocks"] == 400 and s["n_envelopes"] + s["n_fine_time_envelopes"] > 400
    with ams02.open(p) as f:
        assert f.n_events == 400 and len(f.errors()["kind"]) == 0
    s = ams02.simulate(p, 400, seed=3, envelope_fraction=0.0, other_block_every=2)
    rows = E.walk_nested_blocks(p.read_bytes(), "little")
    assert s["n_nested_blocks"] == 0 and all(r["depth"] == 0 for r in rows)
    assert s["n_envelopes"] == s["n_fine_time_envelopes"] == 0
    assert s["n_blocks"] == len(rows) > 450
    with pytest.raises(ValueError, match="envelope_fraction"):
        ams02.simulate(p, 10, envelope_fraction=1.5)


# sha256 of runs written by the simulator before it wrote section-10 blocks (main at
# d879156): the 2007 layout must keep these bytes.
PINNED_2007 = {
    ("little", 0): "b85a81693c512a976bf4fea949e4865f48718f1d46903ee165ff337c0d91eadc",
    ("big", 0): "b2112ad672d654a17b1d05f9bb3d46213420bcef1e2b6fdf6e31e6b7da3f7e69",
    ("little", 1): "4bae3b276292de1e9319800a86de479178acba3f7aa30fcb0e136228e17ed60e",
    ("big", 1): "d1219c73c7931b28acd4e0a9e64e89c8a324a92d9be52b6196100e19d6a9b651",
}


@pytest.mark.parametrize("order,variant", sorted(PINNED_2007))
def test_2007_layout_writes_the_same_bytes(tmp_path, order, variant):
    p = tmp_path / "r2007.dat"
    extra = dict(raw_fraction=0.1, mixed_fraction=0.1, other_block_every=3) if variant else {}
    s = ams02.simulate(p, 300, seed=5, byte_order=order, layout="2007", **extra)
    assert hashlib.sha256(p.read_bytes()).hexdigest() == PINNED_2007[(order, variant)]
    # No envelopes in the 2007 layout, whatever envelope_fraction says.
    assert s["n_envelopes"] == s["n_fine_time_envelopes"] == s["n_nested_blocks"] == 0
    s2 = ams02.simulate(p, 300, seed=5, byte_order=order, layout="2007", envelope_fraction=1.0, **extra)
    assert hashlib.sha256(p.read_bytes()).hexdigest() == PINNED_2007[(order, variant)]
    assert s2 == s
