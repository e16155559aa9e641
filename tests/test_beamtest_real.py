"""The real beam-test files of the public bozzochet/btdaq repository (issue 18, FORMAT.md
10, 11): LEF raw events and their calibration from ``l0_541.dat``, the 2009 tracker
PC-DAQ dialect of ``tdr2009_*.dat``.

The files are not in git: they live in ``data/real/`` of the shared folder, found as
``$AMS02_REAL_DATA``, else ``../shared/data/real`` beside the repository, else
``/work/shared/data/real``. Without them every test here is skipped, saying so.

**btdaq's own output.** The expected calibration fingerprints below were produced by
btdaq itself, built out of tree: ``tests/btdaq/make_reference.sh`` pastes, verbatim
(``sed`` line ranges of bozzochet/btdaq commit 7a73515),
``DecodeDataAMSL0::ReadOneEventFromFile(FILE*)`` (trunkBT/Decode/src/DecodeDataAMSL0.cxx
453-692), the decodestyle-0 reading loop of ``DecodeDataAMSL0::ProcessCalibration`` and
``DecodeData::ComputeCalibration`` (trunkBT/Decode/include/DecodeData.hh 737-1068)
between small shims standing in for ROOT and the class hierarchy, compiles them with g++
12.2 ``-O3 -std=c++17`` (btdaq's Makefile flags, no ``-march``: no FMA) and runs them on
``l0_541.dat``: 114 events, calibration valid. The sha256 values are of its float32
arrays (pedestal, raw sigma, sigma: 1024 values each; common noise: (114, 16),
event-major) and of its 114 x 1024 samples as uint16, event-major.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest

import ams02
import lefenc

ROOT = Path(__file__).resolve().parents[1]


def _real_dir() -> Path | None:
    env = os.environ.get("AMS02_REAL_DATA")
    candidates = (
        [Path(env)] if env else [ROOT.parent / "shared" / "data" / "real", Path("/work/shared/data/real")]
    )
    for c in candidates:
        if (c / "SHA256SUMS").is_file():
            return c
    return None


REAL = _real_dir()
pytestmark = pytest.mark.skipif(
    REAL is None,
    reason="the real btdaq files are absent (set AMS02_REAL_DATA, or put the shared folder's data/real beside the repository as ../shared/data/real)",
)

# btdaq's own calibration of l0_541.dat (see the module docstring).
BTDAQ_SHA256 = {
    "pedestal": "6e76d53365837a99ccced05139c63fa982b3325617a0b2ec69a961bcde9f1b6f",
    "raw_sigma": "eebe54c4f91ae189ff340aa97fef74cee8d6d9c5f6c75385daa778faebb384e4",
    "sigma": "35d240d01d2527d8d64d0d816466bb30e5cda46e607a040b0d9e807470fa131b",
    "common_noise": "4a7fb625982c664e63e509c3bb8811c0fb86194a41a36db492897961057b4a92",
    "adc": "a6c9783e32e43f844c07e8a14200321e6eb26ac112dc16cb7ecec84535dbb4bf",
}
# A handful of btdaq's values, as printed by numpy (repr of float32).
BTDAQ_VALUES = {
    "pedestal": {0: 1727.0438, 64: 1668.2982, 1023: 1784.0614},
    "raw_sigma": {0: 5.490649, 64: 2.0215054, 1023: 2.2837553},
    "sigma": {0: 5.11156, 64: 1.9889923, 1023: 2.194722},
}
# btdaq's first three event times (TimeStamp, TimeStamp_ns / 1000).
BTDAQ_TIMES = [(1654502079, 189637), (1654502079, 190528), (1654502079, 194231)]


def sha(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def real(name: str) -> Path:
    assert REAL is not None
    return REAL / name


def test_checksums_are_the_shared_files():
    sums = dict(
        reversed(line.split()) for line in (real("SHA256SUMS")).read_text().splitlines() if line.strip()
    )
    for name in ("l0_541.dat", "tdr2009_1232707072.dat", "tdr2009_1232707209.dat"):
        assert hashlib.sha256(real(name).read_bytes()).hexdigest() == sums[name]


@pytest.fixture(scope="module")
def l0():
    with ams02.open(real("l0_541.dat")) as f:
        yield f, f.blocks(), f.blocks(nested=True), f.lef_raw()


def test_l0_blocks_and_envelopes(l0):
    f, top, nested, _ = l0
    assert f.byte_order == "little"
    assert f.n_blocks == len(top["offset"]) == 125_455
    dt, n = np.unique(top["data_type"], return_counts=True)
    assert dict(zip(dt.tolist(), n.tolist())) == {0x1F0205: 2, 0x1F0383: 125_453}
    assert set(top["node"][top["data_type"] == 0x1F0383].tolist()) == {20}
    assert set(top["node"][top["data_type"] == 0x1F0205].tolist()) == {511}
    # Every envelope's inner block, right after it: a reply of TYPE 0x13 from node 0x40.
    assert len(nested["offset"]) == 125_455 + 125_453
    inner = nested["depth"] == 1
    assert inner.sum() == 125_453 and set(nested["depth"].tolist()) == {0, 1}
    rows = np.flatnonzero(inner)
    assert np.array_equal(nested["envelope"][rows], rows - 1)
    assert np.all(nested["envelope"][~inner] == -1)
    assert np.all(nested["data_type"][inner] == 0x13) and np.all(nested["node"][inner] == 0x40)
    assert np.all(nested["rr"][inner])
    # TAG and TIME as the envelope's.
    assert np.array_equal(nested["tag"][rows], nested["tag"][rows - 1])
    assert np.array_equal(nested["time"][rows], nested["time"][rows - 1])
    # 125,339 empty polls (SIZE 8: ID, secondary header, TIME) and 114 raw events.
    sizes, counts = np.unique(nested["size"][inner], return_counts=True)
    assert dict(zip(sizes.tolist(), counts.tolist())) == {8: 125_339, 8 + 1794: 114}
    assert np.all(nested["time_us"][inner] <= 999_999)
    assert np.all(nested["time_us"][~inner] == 0)
    assert np.array_equal(nested["offset"][~inner], top["offset"])
    assert len(f.errors()["kind"]) == 0
    assert f.n_events == 0  # no science event in this file


def test_l0_lef_raw_events(l0):
    f, _, nested, raw = l0
    assert len(raw["offset"]) == 114
    assert raw["adc"].shape == (114, 1024) and raw["adc"].dtype == np.uint16
    assert np.all(raw["adc"] < 1 << 14)
    # The counter steps by one (8 bits), the times rise.
    steps = np.diff(raw["counter"].astype(np.int64)) % 256
    assert np.all(steps == 1)
    t = raw["time"].astype(np.float64) + raw["time_us"] * 1e-6
    assert np.all(np.diff(t) > 0)
    assert [(int(a), int(b)) for a, b in zip(raw["time"][:3], raw["time_us"][:3])] == BTDAQ_TIMES
    assert set(raw["link"].tolist()) == {0}
    # Each row is the inner block of a fine-time envelope, with its microseconds.
    rows = np.searchsorted(nested["offset"], raw["offset"])
    assert np.array_equal(nested["offset"][rows], raw["offset"])
    assert np.array_equal(nested["time_us"][rows], raw["time_us"])
    assert np.all(nested["depth"][rows] == 1)
    # The samples are btdaq's, value by value.
    assert sha(raw["adc"]) == BTDAQ_SHA256["adc"]


def test_l0_calibration_is_btdaqs(l0):
    raw = l0[3]
    cal = ams02.l0.calibrate(raw["adc"])
    assert cal.valid
    for name in ("pedestal", "raw_sigma", "sigma", "common_noise"):
        a = getattr(cal, name)
        assert a.dtype == np.float32
        assert sha(a) == BTDAQ_SHA256[name], name
    assert cal.common_noise.shape == (114, 16)
    for name, values in BTDAQ_VALUES.items():
        for c, v in values.items():
            assert getattr(cal, name)[c] == np.float32(v), (name, c)


def test_l0_calibration_matches_the_numpy_oracle(l0):
    raw = l0[3]
    cal = ams02.l0.calibrate(raw["adc"])
    ref = lefenc.calibrate_numpy(raw["adc"])
    for name in ("pedestal", "raw_sigma", "sigma", "common_noise"):
        assert np.array_equal(getattr(cal, name), ref[name]), name


def test_l0_calibration_invariants(l0):
    raw = l0[3]
    adc = raw["adc"]
    cal = ams02.l0.calibrate(adc)
    sig = ams02.l0.subtract(adc, cal)
    assert sig.dtype == np.float32 and sig.shape == adc.shape
    # Pedestal-subtracted samples average 0 per channel (float32 rounding).
    ped_sub = adc.astype(np.float64) - cal.pedestal
    assert np.max(np.abs(ped_sub.mean(axis=0))) < 1e-3
    # The RMS of the raw samples around the pedestal is the raw sigma.
    assert np.allclose(np.sqrt((ped_sub**2).mean(axis=0)), cal.raw_sigma, rtol=1e-5)
    # Common-noise-subtracted: the RMS is sigma within float32 rounding, and the mean is
    # minus the mean common noise of the channel's VA (0 up to the VA's drift).
    rms = np.sqrt((sig.astype(np.float64) ** 2).mean(axis=0))
    assert np.allclose(rms, cal.sigma, rtol=1e-5)
    cn_mean = np.repeat(cal.common_noise.astype(np.float64).mean(axis=0), 64)
    assert np.allclose(sig.astype(np.float64).mean(axis=0), -cn_mean, atol=1e-3)
    assert np.max(np.abs(sig.mean(axis=0))) < 3 * cal.sigma.max() / np.sqrt(len(adc))
    # The common noise is the median of each VA's pedestal-subtracted values.
    va = (adc.astype(np.float32) - cal.pedestal).reshape(-1, 16, 64)
    assert np.allclose(np.median(va, axis=2), cal.common_noise, atol=1e-4)


@pytest.mark.parametrize("name", ["tdr2009_1232707072.dat", "tdr2009_1232707209.dat"])
def test_tdr2009_dialect(name):
    run = int(name.split("_")[1].split(".")[0])
    with ams02.open(real(name)) as f:
        assert f.dialect == "pc-2009"
        ev = f.events()
        n = f.n_events
        assert n > 0
        assert np.array_equal(ev["event"], np.arange(1, n + 1))
        assert np.all(ev["run"] == run) and np.all(ev["run_tag"] == run)
        assert np.array_equal(ev["time"], ev["block_time"])
        assert np.all(ev["fine_time"] < 1_000_000)
        assert np.all(ev["crc_ok"]) and np.all(ev["jmdc_ok"])
        assert np.all(np.diff(ev["unix_time"]) >= 0)
        err = f.errors()
        assert list(err["kind"]).count("dialect") == 1
        assert "not checked" in err["detail"][list(err["kind"]).index("dialect")]
        assert "crc_mismatch" not in set(err["kind"]) and "group_event_number" not in set(err["kind"])
        assert err["kind"].tolist() == ["dialect"]
        fr = f.fragments()
        # The tracker fragments: per event the JINJ, its JINFs and their TDRs (nesting by
        # node role; the JINFs end with two slave-mask words, as in flight data).
        assert set(np.unique(fr["event_index"]).tolist()) == set(range(n))
        roles = [ams02.ROLES[r] for r in fr["role"]]
        assert roles.count("jinj") == n and roles.count("xdr") >= n
        assert set(roles) <= {"jinj", "jinf_t", "jinf_u", "jinf_r", "jinf_e", "xdr"}
    # Read as the seed says, every group's CRC fails and the fields are garbled.
    with ams02.open(real(name), dialect="seed") as f:
        assert f.dialect == "seed"
        ev = f.events()
        assert not np.any(ev["crc_ok"])
        assert not np.any(ev["run"] == run)
        assert "dialect" not in set(f.errors()["kind"])


def test_not_lef_word_layout():
    # The real files open; none is taken for the word-size LEF layout.
    for name in ("l0_541.dat", "tdr2009_1232707072.dat"):
        with ams02.open(real(name)) as f:
            assert f.n_blocks > 0
