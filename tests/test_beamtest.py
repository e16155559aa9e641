"""Envelopes (FORMAT.md 10), LEF raw events and their calibration (11.1) and the 2009
PC-DAQ dialect (11.2) against the independent encoder ``tests/lefenc.py``: synthetic
files, so that these run on a clone without the real files."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ams02
import lefenc as L

RUN = 1_232_707_072


def lef_adc(rng: np.random.Generator, n: int, *, zeros: bool = False) -> np.ndarray:
    """``n`` events of LEF samples: a pedestal per channel, common noise per event and VA,
    and channel noise (14-bit values)."""
    ped = rng.integers(1400, 2100, 1024)
    cn = np.repeat(rng.normal(0, 3, (n, 16)), 64, axis=1)
    adc = np.rint(ped + cn + rng.normal(0, 4, (n, 1024))).clip(0, (1 << 14) - 1).astype(np.uint16)
    if zeros:
        adc[rng.random(adc.shape) < 0.01] = 0
    return adc


def lef_file(
    adc: np.ndarray, *, polls: int = 2, t0: int = 1_654_502_079, us0: int = 189_637
) -> tuple[list[int], list[tuple[int, int, int]]]:
    """A file as l0_541.dat: each event (and ``polls`` empty polls before it) in a
    fine-time envelope; returns the words and, per event, (offset, time, time_us)."""
    words: list[int] = []
    truth: list[tuple[int, int, int]] = []
    us = us0
    t = t0
    for k, a in enumerate(adc):
        for _ in range(polls):
            us += 900
            words += L.fine_time_envelope(L.lef_poll(tag=0xB00, time=t), us % 1_000_000, tag=0xB00, time=t)
        us += 1234
        t = t0 + us // 1_000_000
        env = L.fine_time_envelope(
            L.lef_reply(a, counter=k % 256, link=1, tag=0xB00, time=t), us % 1_000_000, tag=0xB00, time=t
        )
        # The inner block starts after the envelope's 6 header words and 2 microseconds words.
        truth.append((2 * (len(words) + 8), t, us % 1_000_000))
        words += env
    return words, truth


def test_lef_raw_round_trip(write_file):
    rng = np.random.default_rng(5)
    adc = lef_adc(rng, 7)
    words, truth = lef_file(adc)
    with ams02.open(write_file(L.to_bytes(words))) as f:
        assert f.n_blocks == 7 * 3
        raw = f.lef_raw()
        assert np.array_equal(raw["adc"], adc)
        assert raw["offset"].tolist() == [t[0] for t in truth]
        assert raw["time"].tolist() == [t[1] for t in truth]
        assert raw["time_us"].tolist() == [t[2] for t in truth]
        assert raw["counter"].tolist() == list(range(7))
        assert raw["link"].tolist() == [1] * 7
        assert len(f.errors()["kind"]) == 0
        b = f.blocks(nested=True)
        assert len(b["offset"]) == 2 * 7 * 3
        assert b["depth"].tolist() == [0, 1] * 21
        assert b["envelope"].tolist() == sum(([-1, 2 * k] for k in range(21)), [])


@settings(max_examples=25)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 4), order=st.sampled_from(["little", "big"]))
def test_lef_planes_round_trip_any_samples(write_file, seed, n, order):
    rng = np.random.default_rng(seed)
    adc = rng.integers(0, 1 << 14, (n, 1024), dtype=np.uint16)
    words, _ = lef_file(adc, polls=0)
    with ams02.open(write_file(L.to_bytes(words, order)), byte_order=order) as f:
        assert np.array_equal(f.lef_raw()["adc"], adc)


def test_channel_map():
    m = ams02.l0.channel_map()
    c = np.arange(1024)
    assert np.array_equal(m["channel"], c)
    assert np.array_equal(m["va"], c // 64) and np.array_equal(m["va_channel"], c % 64)
    r = m["raw_channel"].astype(np.int64)
    assert np.array_equal(L.channel_of_raw(r), c)
    assert np.array_equal(m["adc"], r // 128)
    assert sorted(r.tolist()) == list(range(1024))


@settings(max_examples=10)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(100, 160), zeros=st.booleans())
def test_calibration_matches_the_numpy_oracle(seed, n, zeros):
    adc = lef_adc(np.random.default_rng(seed), n, zeros=zeros)
    cal = ams02.l0.calibrate(adc)
    ref = L.calibrate_numpy(adc)
    assert cal.valid == ref["valid"]
    for name in ("pedestal", "raw_sigma", "sigma", "common_noise"):
        got, want = getattr(cal, name), ref[name]
        assert got.dtype == np.float32 and got.shape == want.shape, name
        assert np.array_equal(got, want), name


def test_calibration_invariants_and_subtract():
    adc = lef_adc(np.random.default_rng(1), 300)
    cal = ams02.l0.calibrate(adc)
    assert cal.valid and cal.common_noise.shape == (300, 16)
    sig = ams02.l0.subtract(adc, cal)
    assert sig.dtype == np.float32
    want = (adc.astype(np.float32) - cal.pedestal).astype(np.float32) - np.repeat(
        cal.common_noise, 64, axis=1
    )
    assert np.array_equal(sig, want)
    rms = np.sqrt((sig.astype(np.float64) ** 2).mean(axis=0))
    assert np.allclose(rms, cal.sigma, rtol=1e-5)
    assert np.allclose((adc - cal.pedestal.astype(np.float64)).mean(axis=0), 0, atol=1e-3)
    # The common noise takes the VA-wide noise out: sigma near the channel noise (4).
    assert 3.5 < float(np.median(cal.sigma)) < 4.5 < float(np.median(cal.raw_sigma))
    assert cal.noise_per_va().shape == (16,)


def test_calibration_with_too_few_events():
    adc = lef_adc(np.random.default_rng(2), 60)
    cal = ams02.l0.calibrate(adc)
    assert not cal.valid
    assert np.all(cal.sigma == 0) and cal.common_noise.shape == (0, 16)
    ref = L.calibrate_numpy(adc)
    assert np.array_equal(cal.pedestal, ref["pedestal"]) and np.array_equal(cal.raw_sigma, ref["raw_sigma"])
    sig = ams02.l0.subtract(adc, cal)
    assert np.array_equal(sig, (adc.astype(np.float32) - cal.pedestal).astype(np.float32))
    with pytest.raises(ValueError, match="shape"):
        ams02.l0.calibrate(adc[:, :100])


def test_lef_payload_of_the_wrong_length(write_file):
    adc = lef_adc(np.random.default_rng(3), 3)
    words, truth = lef_file(adc, polls=0)
    bad = L.fine_time_envelope(L.block(L.LEF_NODE, L.LEF_TYPE, [1, 2, 3], time=9), 5, time=9)
    at = 2 * len(words)
    words += bad + lef_file(adc[:1], polls=0)[0]
    with ams02.open(write_file(L.to_bytes(words))) as f:
        e = f.errors()
        assert e["kind"].tolist() == ["lef_payload"]
        assert e["offset"].tolist() == [at + 16]
        assert "6 data bytes" in e["detail"][0]
        raw = f.lef_raw()
        assert np.array_equal(raw["adc"], np.concatenate([adc, adc[:1]]))


def test_envelope_inner_block_overrun_and_depth(write_file):
    poll = L.lef_poll(time=3)
    # An envelope whose second inner block's SIZE runs past it.
    over = list(poll)
    over[0] += 100
    env = L.envelope([poll, over], time=3)
    # Envelopes five deep: the fifth is at depth 4, its inside not walked.
    deep = poll
    for _ in range(5):
        deep = L.envelope([deep], time=3)
    tail = L.envelope([L.fine_time_envelope(poll, 42, time=3), poll], time=3)
    words = env + deep + tail
    with ams02.open(write_file(L.to_bytes(words))) as f:
        assert f.n_blocks == 3
        e = f.errors()
        assert e["kind"].tolist() == ["envelope_overrun", "envelope_depth"]
        assert e["offset"][0] == 2 * (6 + len(poll))
        assert e["offset"][1] == 2 * (len(env) + 6 * 4)
        b = f.blocks(nested=True)
        assert b["depth"].tolist() == [0, 1, 0, 1, 2, 3, 4, 0, 1, 2, 1]
        assert b["envelope"].tolist() == [-1, 0, -1, 2, 3, 4, 5, -1, 7, 8, 7]
        assert b["time_us"].tolist() == [0] * 9 + [42, 0]
        assert b["data_type"].tolist()[7:] == [L.ENVELOPE, L.FINE_TIME_ENVELOPE, L.LEF_TYPE, L.LEF_TYPE]
        top = f.blocks()
        assert np.array_equal(b["offset"][b["depth"] == 0], top["offset"])


def test_events_inside_envelopes_are_events(write_file):
    ev = [L.pc2009_event(RUN, k, RUN + 10, 5 * k, [[1, 2, 3]], crc=True) for k in (1, 2, 3)]
    hk = L.block(1, 8, [0, 0, 0])  # a housekeeping container between events: no error
    words = ev[0] + hk + L.fine_time_envelope(ev[1], 77) + L.envelope([hk, ev[2]])
    with ams02.open(write_file(L.to_bytes(words)), dialect="pc-2009") as f:
        assert f.n_blocks == 4 and f.n_events == 3
        e = f.events()
        assert e["event"].tolist() == [1, 2, 3]
        off1 = 2 * (len(ev[0]) + len(hk) + 8)
        off2 = 2 * (len(ev[0]) + len(hk) + len(L.fine_time_envelope(ev[1], 77)) + 6 + len(hk))
        assert e["offset"].tolist() == [0, off1, off2]
        assert e["fine_time"].tolist() == [5, 10, 15]
        assert np.all(e["crc_ok"])
        assert f.errors()["kind"].tolist() == ["dialect"]
        b = f.blocks(nested=True)
        assert b["time_us"].tolist() == [0, 0, 0, 77, 0, 0, 0]


@settings(max_examples=20)
@given(n=st.integers(1, 12), order=st.sampled_from(["little", "big"]), seed=st.integers(0, 1000))
def test_pc2009_dialect_round_trip(write_file, n, order, seed):
    rng = np.random.default_rng(seed)
    run = int(rng.integers(1_199_145_600, 1_293_840_000))
    fine = rng.integers(0, 1_000_000, n).tolist()
    words: list[int] = []
    for k in range(n):
        frags = [
            rng.integers(0, 65536, int(rng.integers(1, 6))).tolist() for _ in range(int(rng.integers(1, 3)))
        ]
        words += L.pc2009_event(run, k + 1, run + k, fine[k], frags)
    path = write_file(L.to_bytes(words, order))
    with ams02.open(path, byte_order=order) as f:
        assert f.dialect == "pc-2009"
        ev = f.events()
        assert ev["event"].tolist() == list(range(1, n + 1))
        assert np.all(ev["run"] == run) and np.all(ev["run_tag"] == run)
        assert ev["time"].tolist() == [run + k for k in range(n)]
        assert ev["fine_time"].tolist() == fine
        assert np.all(ev["crc_ok"])
        err = f.errors()
        assert err["kind"].tolist() == ["dialect"]
        assert set(np.unique(f.fragments()["event_index"]).tolist()) == set(range(n))
    with ams02.open(path, byte_order=order) as f:
        # A whole-file decode as the first call walks and decodes in one pass: the
        # dialect is decided there, before any event is decoded.
        streamed = f.events()
        assert f.dialect == "pc-2009"
        assert streamed["fine_time"].tolist() == fine and np.all(streamed["crc_ok"])
    with ams02.open(path, byte_order=order, dialect="seed") as f:
        assert f.dialect == "seed"
        kinds = f.errors()["kind"].tolist()
        assert kinds.count("crc_mismatch") == n and "dialect" not in kinds


def test_pc2009_auto_needs_counting_events(write_file):
    # Event numbers not counting 1, 2, ...: not the dialect under "auto".
    words = L.pc2009_event(RUN, 2, RUN, 0, [[1]]) + L.pc2009_event(RUN, 3, RUN, 0, [[1]])
    with ams02.open(write_file(L.to_bytes(words))) as f:
        assert f.dialect == "seed"
    with ams02.open(write_file(L.to_bytes(words)), dialect="pc-2009") as f:
        assert f.events()["event"].tolist() == [2, 3]
        assert "read in the 2009" in f.errors()["detail"][0]
    with pytest.raises(ValueError, match="dialect"):
        ams02.open(write_file(L.to_bytes(words)), dialect="2009")


def test_word_size_lef_files_are_refused(write_file):
    adc = lef_adc(np.random.default_rng(4), 3)
    data = L.to_bytes(sum((L.lef_words_record(a, k) for k, a in enumerate(adc)), []))
    assert len(data) == 3 * 1798
    with pytest.raises(ams02.FormatError, match="word-size layout"):
        ams02.open(write_file(data))
    one = L.to_bytes(L.lef_words_record(adc[0], 0))
    with pytest.raises(ams02.FormatError, match="LEFP"):
        ams02.open(write_file(one))
