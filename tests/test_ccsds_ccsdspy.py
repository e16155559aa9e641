"""Cross-check against a real peer: ccsdspy reads the same packet files.

APIDs, sequence counts, lengths, every primary-header field and the missing-packet
counts must agree; so must the secondary-header fields ccsdspy decodes from a fixed
layout. ccsdspy is a test-only dependency (``pip install ccsdspy``).
"""

from __future__ import annotations

import ast
import random
import re

import numpy as np
import pytest

import ams02
import ams02.ccsds
import ccsdsenc as enc

ccsdspy = pytest.importorskip("ccsdspy")
from ccsdspy import PacketArray, PacketField  # noqa: E402
from ccsdspy.utils import count_packets, read_primary_headers, split_by_apid  # noqa: E402

PRIMARY = {
    "CCSDS_VERSION_NUMBER": "version",
    "CCSDS_PACKET_TYPE": "type",
    "CCSDS_SECONDARY_FLAG": "sec_hdr",
    "CCSDS_SEQUENCE_FLAG": "seq_flags",
    "CCSDS_APID": "apid",
    "CCSDS_SEQUENCE_COUNT": "seq_count",
    "CCSDS_PACKET_LENGTH": "length",
}


def peer_headers(path) -> dict:
    """ccsdspy's primary headers per APID, and its missing-packet warnings."""
    out = {}
    with ccsdspy.log.log_to_list() as messages:
        for apid, stream in split_by_apid(str(path)).items():
            out[int(apid)] = read_primary_headers(stream)
    found = (re.search(r"Missing packets found (\[.*\])", r.getMessage()) for r in messages)
    missing = [len(ast.literal_eval(m.group(1))) for m in found if m]
    return {"headers": out, "missing_logged": missing}


def modular_missing(seq: np.ndarray) -> int:
    """Missing packets in a sequence of 14-bit counts, across the wrap."""
    s = seq.astype(np.int64)
    return int(((s[1:] - s[:-1] - 1) % 16384).sum())


def check_against_peer(path, *, wraps: bool) -> None:
    pf = ams02.ccsds.open(path, health_apid=None)
    peer = peer_headers(path)
    assert count_packets(str(path)) == len(pf)
    summary = pf.apids()
    assert sorted(peer["headers"]) == summary["apid"].tolist()
    for apid, ph in peer["headers"].items():
        ours = pf.packets(apid=apid)
        for theirs_name, ours_name in PRIMARY.items():
            np.testing.assert_array_equal(ours[ours_name].astype(np.int64), ph[theirs_name].astype(np.int64),
                                          err_msg=f"APID {apid} {ours_name}")
        row = summary["apid"].tolist().index(apid)
        seq = ph["CCSDS_SEQUENCE_COUNT"]
        assert summary["missing"][row] == modular_missing(seq) == int(ours["seq_gap"].sum())
        assert summary["first_seq"][row] == seq[0] and summary["last_seq"][row] == seq[-1]
        assert summary["count"][row] == len(seq)
        assert summary["bytes"][row] == int((ph["CCSDS_PACKET_LENGTH"].astype(np.int64) + 7).sum())
    if not wraps:
        # ccsdspy's own count (it does not handle the 14-bit wrap) agrees too
        logged = sorted(peer["missing_logged"])
        ours_missing = sorted(m for m in summary["missing"].tolist() if m)
        assert logged == ours_missing


def test_simulated_file_with_gaps(tmp_path):
    path = tmp_path / "sim.ccsds"
    ams02.ccsds.simulate_ccsds(path, 600, seed=3, drop=[2, 3, 50, 51, 52, 100], commands_every=7,
                               housekeeping_every=5)
    check_against_peer(path, wraps=False)


def test_simulated_file_across_the_wrap(tmp_path):
    path = tmp_path / "wrap.ccsds"
    ams02.ccsds.simulate_ccsds(path, 400, seed=5, min_packet=100, max_packet=400, first_seq=16000,
                               drop_fraction=0.05)
    pf = ams02.ccsds.open(path)
    assert pf.packets(["seq_count"], apid=976)["seq_count"].min() == 0  # it did wrap
    check_against_peer(path, wraps=True)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_hand_built_mixed_apids(tmp_path, seed):
    rng = random.Random(seed)
    f = enc.PacketFile()
    seq = {}
    for _ in range(300):
        a = rng.choice([976, 977, 980, 981, 1024, 2000])
        s = seq.get(a, rng.randrange(200)) + (rng.random() < 0.1) * rng.randint(1, 5)
        f.add(enc.random_packet(rng, a, s))
        seq[a] = s + 1
    path = tmp_path / "mixed.ccsds"
    path.write_bytes(f.to_bytes())
    check_against_peer(path, wraps=False)


def test_split_files_read_by_the_peer(tmp_path):
    path = tmp_path / "sim.ccsds"
    ams02.ccsds.simulate_ccsds(path, 200, seed=8, drop=[4], commands_every=3)
    pf = ams02.ccsds.open(path)
    for apid, part in pf.split(tmp_path / "parts").items():
        ph = read_primary_headers(str(part))
        ours = pf.packets(apid=apid)
        np.testing.assert_array_equal(ph["CCSDS_APID"], ours["apid"])
        np.testing.assert_array_equal(ph["CCSDS_SEQUENCE_COUNT"], ours["seq_count"])
        np.testing.assert_array_equal(ph["CCSDS_PACKET_LENGTH"], ours["length"])


def test_fixed_length_secondary_header_fields(tmp_path):
    rng = random.Random(4)
    f = enc.PacketFile()
    for i in range(500):
        p = enc.random_packet(rng, 976, i)
        p.sec_hdr = True
        p.user_data = rng.randbytes(200)
        f.add(p)
    path = tmp_path / "fixed.ccsds"
    path.write_bytes(f.to_bytes())
    layout = ccsdspy.FixedLength([
        PacketField(name="coarse_time", data_type="uint", bit_length=32),
        PacketField(name="fine_time", data_type="uint", bit_length=8),
        PacketField(name="time_id", data_type="uint", bit_length=2),
        PacketField(name="check_word", data_type="uint", bit_length=1),
        PacketField(name="zoe", data_type="uint", bit_length=1),
        PacketField(name="packet_type", data_type="uint", bit_length=4),
        PacketField(name="packet_id1", data_type="uint", bit_length=16),
        PacketField(name="packet_id2", data_type="uint", bit_length=16),
        PacketArray(name="data", data_type="uint", bit_length=8, array_shape=200),
    ])
    theirs = layout.load(str(path), include_primary_header=True)
    ours = ams02.ccsds.open(path).packets()
    for name in ("coarse_time", "fine_time", "time_id", "check_word", "zoe", "packet_type", "packet_id1",
                 "packet_id2"):
        np.testing.assert_array_equal(ours[name].astype(np.int64), theirs[name].astype(np.int64), err_msg=name)
    for theirs_name, ours_name in PRIMARY.items():
        np.testing.assert_array_equal(ours[ours_name].astype(np.int64), theirs[theirs_name].astype(np.int64))
