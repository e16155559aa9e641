"""``ams02 monitor``: the stream decoder against the independent encoder
(tests/ccsdsenc.py), the state against the truth of the simulator and of the file
decoders, the sources' faults (garbage, reconnects, truncated and rewritten files), the
JSON API and its token, and ``ams02 replay``."""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from typing import Any, Dict, List

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import ams02
from ams02 import _native

import ccsdsenc as enc

pytest.importorskip("starlette", reason="the monitor extra (starlette) is not installed")
pytest.importorskip("uvicorn", reason="the monitor extra (uvicorn) is not installed")

from ams02.monitor import Monitor, parse_rate, parse_source  # noqa: E402
from ams02.monitor.ingest import Pipeline, sniff_kind  # noqa: E402
from ams02.monitor.limits import load_limits, parse_limits  # noqa: E402
from ams02.monitor.replay import replay  # noqa: E402
from ams02.monitor.state import MonitorState  # noqa: E402


# -- helpers ------------------------------------------------------------------------------
def feed_in_pieces(data: bytes, pieces: List[int], **kw: Any) -> List[Dict[str, Any]]:
    d = _native.StreamDecoder(**kw)
    out, pos, i = [], 0, 0
    while pos < len(data):
        k = pieces[i % len(pieces)]
        out.append(d.feed(data[pos : pos + k]))
        pos += k
        i += 1
    out.append(d.finish())
    return out


def cat(batches: List[Dict[str, Any]], key: str) -> np.ndarray:
    return np.concatenate([b[key] for b in batches])


def wait_for(cond: Any, timeout: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def get(url: str, token: str = "") -> Any:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def hs_packet(seq: int, cycle: int, chd: List[int], t: int) -> enc.Packet:
    return enc.Packet(
        apid=977,
        seq_count=seq,
        coarse_time=t,
        fine_time=0,
        user_data=enc.health_user_data(
            cycle_counter=cycle, caution_warning=cycle % 3, service_request_id=7, chd=chd, more=[0] * 34
        ),
    )


# -- the stream decoder against the independent encoder -----------------------------------
@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10**6), pieces=st.lists(st.integers(5, 9000), min_size=1, max_size=6))
@example(seed=2068, pieces=[5])  # drew an HRDL packet of 4,104 bytes before
def test_stream_decoder_equals_encoder_truth(seed: int, pieces: List[int]) -> None:
    rng = random.Random(seed)
    f = enc.PacketFile()
    seqs: Dict[int, int] = {}
    junk_total = 0
    chds = []
    for i in range(rng.randint(5, 60)):
        r = rng.random()
        if r < 0.1 and all(k == "packet" for k, _ in f.parts[-2:]):
            # bytes that no header can start (version bits 111): skipped and counted (a
            # lone packet between two runs of them cannot be confirmed by any walk)
            n = rng.randint(1, 300)
            f.junk(bytes([0xE0 | rng.getrandbits(5) for _ in range(n)]))
            junk_total += n
            continue
        apid = rng.choice([976, 976, 977, 980])
        s = seqs.get(apid, rng.randrange(16384))
        if rng.random() < 0.1:
            s = (s + rng.randint(1, 50)) % 16384  # a gap
        if apid == 977:
            chd = [rng.getrandbits(16) for _ in range(10)]
            chds.append(chd)
            p = hs_packet(s, i, chd, 1000 + i)
        else:
            # (a secondary header added after the draw could take an HRDL packet past
            # 4096 bytes: a packet of no valid length, rightly not found)
            p = enc.random_packet(rng, apid, s, sec_hdr=True)
        f.add(p)
        seqs[apid] = (s + 1) % 16384
    data = f.to_bytes()
    truth = f.truth()
    batches = feed_in_pieces(data, pieces, science_apid=None)
    np.testing.assert_array_equal(cat(batches, "offset"), truth["offset"])
    np.testing.assert_array_equal(cat(batches, "apid"), truth["apid"])
    np.testing.assert_array_equal(cat(batches, "seq_count"), truth["seq_count"])
    np.testing.assert_array_equal(cat(batches, "seq_gap"), truth["seq_gap"])
    np.testing.assert_array_equal(cat(batches, "coarse_time"), truth["coarse_time"])
    np.testing.assert_array_equal(cat(batches, "length"), truth["length"].astype(np.int64) + 7)
    assert sum(b["skipped_bytes"] for b in batches) == junk_total
    hs = np.concatenate([b["health"]["chd"] for b in batches]).reshape(-1, 10)
    np.testing.assert_array_equal(hs, np.array(chds, dtype=np.uint16).reshape(-1, 10))
    gaps = [k for b in batches for k in b["problems"]["kind"] if k == "sequence_gap"]
    assert len(gaps) == int((truth["seq_gap"] > 0).sum())


def test_stream_decoder_science_equals_file_decode(tmp_path: Any) -> None:
    path = tmp_path / "run.ccsds"
    info = ams02.simulate_ccsds(path, 1500, seed=4, drop=[20, 21, 90], housekeeping_every=7, runs=2)
    data = path.read_bytes()
    with ams02.open_ccsds(path) as f:
        ev_file = f.events(["run", "event", "n_trd_hits", "crc_ok"])
    for pieces in ([1 << 20], [4096, 333, 17], [65536, 1]):
        batches = feed_in_pieces(data, pieces)
        runs, events, hits = [], [], []
        for b in batches:
            if b["blocks"] is not None:
                ev = b["blocks"].decode(["events"])["events"]
                runs.append(ev["run"])
                events.append(ev["event"])
                hits.append(ev["n_trd_hits"])
        np.testing.assert_array_equal(np.concatenate(events), ev_file["event"])
        np.testing.assert_array_equal(np.concatenate(runs), ev_file["run"])
        np.testing.assert_array_equal(np.concatenate(hits), ev_file["n_trd_hits"])
        assert sum(b["science_gaps"] for b in batches) == 2
    assert sorted(set(ev_file["run"].tolist())) == info["runs"]


def test_stream_decoder_reset_keeps_sequences() -> None:
    f = enc.PacketFile()
    for s in range(4):
        f.add(hs_packet(s, s, list(range(10)), 10))
    data = f.to_bytes()
    d = _native.StreamDecoder()
    b1 = d.feed(data[:-10])  # the last packet cut by a dropped connection
    assert len(b1["offset"]) == 3
    assert d.reset(True) == len(data) - (3 * len(data) // 4) - 10
    b2 = d.feed(hs_packet(5, 5, list(range(10)), 11).to_bytes())
    assert b2["seq_gap"].tolist() == [2]  # 3 (cut) and 4 were lost while the link was down
    d.reset(False)
    b3 = d.feed(hs_packet(9, 9, list(range(10)), 12).to_bytes())
    assert b3["seq_gap"].tolist() == [0]


# -- the state against the simulator's truth -----------------------------------------------
def crossings(chd: np.ndarray, limits: Any) -> int:
    """Moves to a worse band, word by word, packet by packet (from ok)."""
    n = 0
    for j, lim in enumerate(limits):
        prev = 0
        for v in chd[:, j]:
            lv = (
                2
                if not lim.alarm[0] <= v <= lim.alarm[1]
                else (1 if not lim.caution[0] <= v <= lim.caution[1] else 0)
            )
            n += lv > prev
            prev = lv
    return n


def test_state_equals_truth(tmp_path: Any) -> None:
    path = tmp_path / "dump.ccsds"
    info = ams02.simulate_ccsds(
        path,
        2500,
        seed=9,
        drop=[30, 31, 32],
        housekeeping_every=4,
        runs=2,
        chd="nominal",
        chd_excursion_every=25,
        housekeeping_drop=[7],
        duration_s=600,
    )
    data = path.read_bytes()
    with ams02.ccsds.open(path) as pf:
        cut = int(pf.packets(["offset"])["offset"][10])
    data = data[:cut] + b"\xff" * 123 + data[cut:]  # garbage between packets: one resynchronisation
    state = MonitorState(load_limits())
    pipe = Pipeline(state, "test")
    for k in range(0, len(data), 50_000):
        pipe.feed(data[k : k + 50_000])
    pipe.finish()
    s = state.snapshot()
    path.write_bytes(data)
    with ams02.ccsds.open(path) as pf:
        apids = pf.apids()
        hs = pf.health_status()
    with ams02.open_ccsds(path) as f:
        ev = f.events(["run", "event", "crc_ok"])
    by = {a["apid"]: a for a in s["link"]["apids"]}
    assert sorted(by) == apids["apid"].tolist()
    for i, a in enumerate(apids["apid"].tolist()):
        assert by[a]["packets"] == apids["count"][i]
        assert by[a]["bytes"] == apids["bytes"][i]
        assert by[a]["lost"] == apids["missing"][i]
    assert by[976]["gaps"] == 1 and by[976]["lost"] == 3
    assert by[977]["gaps"] == 1 and by[977]["lost"] == 1
    assert s["link"]["skipped_bytes"] == 123
    assert s["link"]["packets"] == int(apids["count"].sum())
    latest = s["health"]["latest"]
    assert latest["chd"] == hs["chd"][-1].tolist()
    assert latest["cycle_counter"] == int(hs["cycle_counter"][-1])
    assert latest["caution_warning"] == int(hs["caution_warning"][-1])
    assert s["health"]["packets"] == info["housekeeping_packets"] == len(hs["offset"])
    assert s["health"]["cycle_breaks"] == 1
    n_cross = crossings(hs["chd"], load_limits())
    assert n_cross >= 4
    assert s["alarms"]["by_kind"]["limit"] == n_cross
    assert s["science"]["events"] == len(ev["event"])
    assert s["science"]["run"] == info["runs"][-1] == int(ev["run"][-1])
    assert s["science"]["event"] == int(ev["event"][-1])
    assert s["science"]["bad_crc"] == int((~ev["crc_ok"]).sum())
    assert s["alarms"]["by_kind"]["run_change"] == 1
    assert s["science"]["runs_seen"] == info["runs"]
    assert s["science"]["science_gaps"] == 1
    assert s["science"]["trd"]["hits"] > 0
    assert len(s["science"]["trd"]["occupancy"]) == 82
    json.dumps(s)  # JSON-ready


def test_limits_file(tmp_path: Any) -> None:
    lim = load_limits()
    assert len(lim) == 10 and lim[0].caution == (700, 1300) and lim[9].alarm == (9400, 10600)
    assert [lim[0].level(v) for v in (1000, 1450, 200, 1300, 1301)] == [0, 1, 2, 0, 1]
    p = tmp_path / "l.toml"
    p.write_text('[chd.3]\nname = "HV"\ncaution = [10, 20]\n')
    got = load_limits(p)
    assert (
        got[2].name == "HV" and got[2].caution == (10, 20) and got[2].alarm is None and got[0].caution is None
    )
    for bad in (
        {"chd": {"11": {}}},
        {"chd": {"1": {"caution": [5, 1]}}},
        {"chd": {"1": {"colour": 1}}},
        {"chd": {"1": {"caution": [0, 100], "alarm": [10, 50]}}},
        {"other": {}},
    ):
        with pytest.raises(ValueError):
            parse_limits(bad)
    p.write_text("not = [toml")
    with pytest.raises(ValueError, match="TOML"):
        load_limits(p)


def test_sources_and_rates() -> None:
    assert parse_source("listen://:9000").host == "127.0.0.1"
    assert parse_source("tcp://relay.example:1234").port == 1234
    assert parse_source("udp://0.0.0.0:5").host == "0.0.0.0"
    for bad in ("tcp://:1", "ftp://x:1", "listen://x", "tcp://h:99999"):
        with pytest.raises(ValueError):
            parse_source(bad)
    assert parse_rate("20MB/s") == 20e6 and parse_rate("100Mb/s") == 12.5e6 and parse_rate("1KiB/s") == 1024
    with pytest.raises(ValueError):
        parse_rate("fast")
    assert sniff_kind(enc.Packet(apid=976, user_data=b"x" * 90).to_bytes()) == "ccsds"
    assert sniff_kind(b"\x10\x00\x05\x80\x00\x00") == "blocks"
    assert sniff_kind(b"\x00") is None


# -- the server, the sources' faults, replay -------------------------------------------------
def test_api_token_and_read_only(tmp_path: Any) -> None:
    path = tmp_path / "a.ccsds"
    ams02.simulate_ccsds(path, 200, seed=1)
    with pytest.raises(ValueError, match="token"):
        Monitor([str(path)], host="0.0.0.0")
    token = "s3cret-token-123"
    with Monitor([str(path)], port=0, token=token) as m:
        base = f"http://127.0.0.1:{m.port}"
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(base + "/api/state", timeout=5)
        assert e.value.code == 401
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(base + "/static/app.js", timeout=5)
        assert e.value.code == 401
        wait_for(lambda: get(base + "/api/state", token)["link"]["packets"] > 0, what="packets")
        with ams02.ccsds.open(path) as pf:
            n = pf.n_packets
        wait_for(lambda: get(base + "/api/state", token)["link"]["packets"] == n, what="all packets")
        h = get(base + "/api/health", token)
        assert h["packets"] == n and h["sources"][0]["status"] == "watching"
        assert "alarms" in get(base + f"/api/alarms?token={token}")
        req = urllib.request.Request(
            base + "/api/state", method="POST", data=b"{}", headers={"Authorization": f"Bearer {token}"}
        )
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(req, timeout=5)
        assert e.value.code == 405
        # the page's address with the token sets the cookie for its own requests
        with urllib.request.urlopen(base + f"/?token={token}", timeout=5) as r:
            assert "ams02_monitor_token" in r.headers["set-cookie"]
            assert "default-src 'self'" in r.headers["content-security-policy"]
            page = r.read().decode()
        assert "http://" not in page and "https://" not in page  # nothing from outside


def test_tcp_reconnect_stall_and_garbage(tmp_path: Any) -> None:
    path = tmp_path / "g.ccsds"
    ams02.simulate_ccsds(path, 300, seed=2)
    good = path.read_bytes()
    with ams02.ccsds.open(path) as pf:
        n = pf.n_packets
    port = free_port()
    with Monitor([f"tcp://127.0.0.1:{port}"], port=0, stall_s=0.5) as m:
        base = f"http://127.0.0.1:{m.port}"
        wait_for(lambda: any(a["kind"] == "stall" for a in get(base + "/api/alarms")["alarms"]), what="stall")
        src = get(base + "/api/state")["sources"][0]
        assert src["status"] == "reconnecting" and src["next_retry_s"] > 0
        srv = socket.create_server(("127.0.0.1", port))
        srv.settimeout(15)
        conn, _ = srv.accept()
        conn.sendall(good[:1000] + b"\xee" * 77 + good[1000:])
        conn.close()
        wait_for(lambda: get(base + "/api/state")["link"]["packets"] == n, what="packets after reconnect")
        s = get(base + "/api/state")
        assert s["link"]["skipped_bytes"] == 77 and s["link"]["decode_errors"] >= 1
        wait_for(
            lambda: any(a["kind"] == "disconnect" for a in get(base + "/api/alarms")["alarms"]),
            what="disconnect",
        )
        # the relay comes back: the monitor reconnects by itself
        conn, _ = srv.accept()
        conn.sendall(good)
        conn.close()
        srv.close()
        wait_for(lambda: get(base + "/api/state")["link"]["packets"] == 2 * n, what="second connection")
        kinds = [a["kind"] for a in get(base + "/api/alarms")["alarms"]]
        assert "resume" in kinds


def test_watched_file_grows_truncates_rewrites(tmp_path: Any) -> None:
    src = tmp_path / "src.ccsds"
    ams02.simulate_ccsds(src, 400, seed=3)
    data = src.read_bytes()
    with ams02.ccsds.open(src) as pf:
        n = pf.n_packets
    d = tmp_path / "incoming"
    d.mkdir()
    target = d / "dump.ccsds"
    with Monitor([str(d)], port=0) as m:
        base = f"http://127.0.0.1:{m.port}"
        with open(target, "wb") as f:
            f.write(data[: len(data) // 3])
            f.flush()
            time.sleep(0.5)
            f.write(data[len(data) // 3 :])
        wait_for(lambda: get(base + "/api/state")["link"]["packets"] == n, what="growing file")
        assert get(base + "/api/state")["link"]["skipped_bytes"] == 0
        # truncated: read on from the new end, nothing counted twice
        os.truncate(target, len(data) // 2)
        wait_for(
            lambda: any(a["kind"] == "file_truncated" for a in get(base + "/api/alarms")["alarms"]),
            what="truncation",
        )
        assert get(base + "/api/state")["link"]["packets"] == n
        # rewritten with other content: read again from its start
        other = tmp_path / "other.ccsds"
        ams02.simulate_ccsds(other, 100, seed=8)
        with ams02.ccsds.open(other) as pf:
            n2 = pf.n_packets
        tmp = d / "dump.ccsds.part"
        tmp.write_bytes(other.read_bytes())
        os.replace(tmp, target)
        wait_for(lambda: get(base + "/api/state")["link"]["packets"] == n + n2, what="rewritten file")
        assert any(a["kind"] == "file_rewritten" for a in get(base + "/api/alarms")["alarms"])


def test_watched_block_file(tmp_path: Any) -> None:
    d = tmp_path / "blocks"
    d.mkdir()
    tmp = tmp_path / "run.dat"
    info = ams02.simulate(tmp, 500, seed=5)
    data = tmp.read_bytes()
    with ams02.open(tmp) as f:
        n_ev = f.n_events
    with Monitor([str(d)], port=0) as m:
        base = f"http://127.0.0.1:{m.port}"
        with open(d / "run.dat", "wb") as f:
            f.write(data[:7777])
            f.flush()
            time.sleep(0.4)
            f.write(data[7777:])
        wait_for(lambda: get(base + "/api/state")["science"]["events"] == n_ev, what="block file events")
        s = get(base + "/api/state")
        assert s["science"]["run"] == info.get("run", 1400000000)
        assert s["link"]["packets"] == 0


def test_replay_listen_udp_and_realtime(tmp_path: Any) -> None:
    path = tmp_path / "r.ccsds"
    ams02.simulate_ccsds(path, 300, seed=6, duration_s=2.0)
    with ams02.ccsds.open(path) as pf:
        n = pf.n_packets
    with Monitor(["listen://127.0.0.1:0", "udp://127.0.0.1:0"], port=0) as m:
        base = f"http://127.0.0.1:{m.port}"
        t0 = time.monotonic()
        sent = replay([str(path)], f"tcp://127.0.0.1:{m.source_port(0)}", realtime=True, speed=4.0)
        took = time.monotonic() - t0
        assert sent == path.stat().st_size
        assert 0.3 < took < 5.0  # 2 s of coarse time at 4 x
        wait_for(lambda: get(base + "/api/state")["link"]["packets"] == n, what="tcp replay")
        replay([str(path)], f"udp://127.0.0.1:{m.source_port(1)}", rate=2e6)
        wait_for(lambda: get(base + "/api/state")["link"]["packets"] == 2 * n, what="udp replay")
    # the command line
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "ams02",
            "replay",
            str(path),
            "--to",
            "tcp://127.0.0.1:1",
            "--connect-timeout",
            "0.2",
        ],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2 and "error" in out.stderr


def test_ccsds_simulate_command(tmp_path: Any) -> None:
    out = tmp_path / "hours.ccsds"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "ams02",
            "ccsds",
            "simulate",
            str(out),
            "--events",
            "3000",
            "--hours",
            "2",
            "--runs",
            "3",
            "--start-time",
            "1300000000",
            "--excursion-every",
            "50",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "runs 1305000000, 1305000001, 1305000002" in r.stdout
    with ams02.ccsds.open(out) as pf:
        p = pf.packets(["coarse_time", "apid"])
        hs = pf.health_status()
    span = int(p["coarse_time"].max()) - int(p["coarse_time"].min())
    assert 5000 < span < 9000
    assert set(np.unique(p["apid"]).tolist()) == {976, 977}
    assert crossings(hs["chd"], load_limits()) >= 1
