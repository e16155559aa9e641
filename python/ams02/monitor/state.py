"""The monitor's state: totals, rolling windows and the alarm log, updated from the
decoder's batches (columns, never an object per packet) and read as one JSON snapshot.

Everything kept is bounded: per-second rings over the last 10 minutes (rates), per-minute
rings over the last hour (problems by kind), 10-second bins over the last hour (the CHD
history strip), fixed histograms (TRD hits per event, amplitude), 82 module counters,
at most :data:`MAX_APIDS` APIDs tracked one by one and :data:`MAX_ALARMS` alarms kept.
"""

from __future__ import annotations

import collections
import threading
import time
from typing import Any, Callable, Deque, Dict, List, Optional, Sequence

import numpy as np

from .limits import CHD_WORDS, LEVELS, WordLimits, load_limits

#: Seconds of the per-second rate windows.
RATE_WINDOW_S = 600
#: Minutes of the per-minute problem windows.
PROBLEM_WINDOW_MIN = 60
#: Seconds of the CHD history strip, and its bin.
HISTORY_S, HISTORY_BIN_S = 3600, 10
#: APIDs tracked one by one (others are summed as APID -1).
MAX_APIDS = 32
#: Alarms kept in the log.
MAX_ALARMS = 1000
#: TRD hits per event: bins 0..HITS_BINS-1, the last one is "that many or more".
HITS_BINS = 64
#: Amplitude spectrum: ADC counts (amplitude / 8) in bins of AMP_BIN up to AMP_MAX.
AMP_BIN, AMP_MAX = 16, 1024
#: Problems of the packet walk that are decoding errors of the CCSDS stream.
CCSDS_ERROR_KINDS = ("packet_garbage", "packet_version", "packet_overrun", "health_subset")


class Ring:
    """Sums per time slot over the last ``n`` slots (slot = ``int(t // width)``)."""

    def __init__(self, n: int, columns: int = 1, width: float = 1.0) -> None:
        self.n, self.width = n, width
        self.values = np.zeros((n, columns), dtype=np.float64)
        self.slot = np.full(n, -1, dtype=np.int64)

    def add(self, t: float, values: Sequence[float]) -> None:
        s = int(t // self.width)
        i = s % self.n
        if self.slot[i] != s:
            self.slot[i] = s
            self.values[i] = 0.0
        self.values[i] += values

    def series(self, now: float) -> np.ndarray:
        """The last ``n`` slots up to ``now``, oldest first (``n`` x columns)."""
        s = int(now // self.width)
        slots = np.arange(s - self.n + 1, s + 1)
        idx = slots % self.n
        ok = self.slot[idx] == slots
        out = np.where(ok[:, None], self.values[idx], 0.0)
        return out

    def total(self, now: float, last: int) -> np.ndarray:
        """Sum over the last ``last`` slots (the current one included)."""
        return self.series(now)[-last:].sum(axis=0)


class Alarms:
    """The alarm log: bounded, newest last, each with an id, wall time, kind, level."""

    def __init__(self, maxlen: int = MAX_ALARMS) -> None:
        self.log: Deque[Dict[str, Any]] = collections.deque(maxlen=maxlen)
        self.count = 0
        self.by_kind: Dict[str, int] = {}

    def add(self, t: float, kind: str, level: str, detail: str, **extra: Any) -> None:
        self.count += 1
        self.by_kind[kind] = self.by_kind.get(kind, 0) + 1
        self.log.append(
            {"id": self.count, "time": t, "kind": kind, "level": level, "detail": detail, **extra}
        )


def _i(x: Any) -> int:
    return int(x)


class MonitorState:
    """What the page shows, as numbers (thread-safe: one lock)."""

    def __init__(
        self,
        limits: Optional[List[WordLimits]] = None,
        *,
        stall_s: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.lock = threading.RLock()
        self.clock = clock
        self.limits = limits if limits is not None else load_limits()
        self.stall_s = float(stall_s)
        self.started = clock()
        self.alarms = Alarms()
        # link
        self.packets = 0
        self.bytes = 0
        self.skipped_bytes = 0
        self.ccsds_errors: Dict[str, int] = {}
        self.last_packet_wall: Optional[float] = None
        self.last_packet_time: Optional[float] = None
        self.latency_s: Optional[float] = None
        self.stalled = False
        self.apids: Dict[int, Dict[str, Any]] = {}
        self.apid_rates: Dict[int, Ring] = {}
        # health
        self.hs_packets = 0
        self.hs_latest: Optional[Dict[str, Any]] = None
        self.hs_levels = [0] * CHD_WORDS
        self.cycle_breaks = 0
        self.last_cycle: Optional[int] = None
        self.history_slot = np.full(HISTORY_S // HISTORY_BIN_S, -1, dtype=np.int64)
        self.history_last = np.full((HISTORY_S // HISTORY_BIN_S, CHD_WORDS), np.nan)
        self.history_level = np.zeros((HISTORY_S // HISTORY_BIN_S, CHD_WORDS), dtype=np.int8)
        # science
        self.events = 0
        self.bad_crc = 0
        self.run: Optional[int] = None
        self.event: Optional[int] = None
        self.event_breaks = 0
        self.runs_seen: List[int] = []
        self.science_gaps = 0
        self.science_dropped = 0
        self.block_bytes = 0
        self.event_rates = Ring(RATE_WINDOW_S, 2)  # events, bad CRC
        self.problem_kinds: Dict[str, int] = {}
        self.problem_rates: Dict[str, Ring] = {}
        self.hits_hist = np.zeros(HITS_BINS, dtype=np.int64)
        self.amp_hist = np.zeros(AMP_MAX // AMP_BIN, dtype=np.int64)
        self.trd_hits = 0
        self.modules: Optional[Dict[str, Any]] = None
        self.occupancy: Optional[np.ndarray] = None
        self.sources: Dict[str, Dict[str, Any]] = {}

    # -- sources ------------------------------------------------------------------------
    def source_status(self, name: str, **fields: Any) -> None:
        """Records what a source is doing (connected, reconnecting in N s, ...)."""
        with self.lock:
            s = self.sources.setdefault(name, {"name": name, "bytes": 0, "reconnects": 0})
            s.update(fields)
            s["since"] = self.clock()

    def source_event(self, name: str, kind: str, detail: str, level: str = "warning") -> None:
        with self.lock:
            self.alarms.add(self.clock(), kind, level, f"{name}: {detail}", source=name)

    # -- ingest -------------------------------------------------------------------------
    def ingest(self, batch: Dict[str, Any], source: str = "stream", nbytes: int = 0) -> None:
        """Takes one decoder batch (``ams02._native.StreamDecoder.feed``)."""
        now = self.clock()
        blocks = batch.get("blocks")
        science = None
        if blocks is not None:
            # The block decoder runs without the lock (it releases the GIL).
            science = blocks.decode(["events", "trd_hits", "errors"])
            science["errors"] = blocks.errors()
        with self.lock:
            if nbytes:
                src = self.sources.setdefault(source, {"name": source, "bytes": 0, "reconnects": 0})
                src["bytes"] = src.get("bytes", 0) + nbytes
            self._packets(batch, now)
            self._problems(batch["problems"], now)
            self._health(batch["health"], now)
            self.science_gaps += int(batch["science_gaps"])
            self.science_dropped += int(batch["science_dropped"])
            self.block_bytes += int(batch["block_bytes"])
            if science is not None:
                self._science(science, now)

    def ingest_blocks(self, raw: Any, source: str = "blocks", nbytes: int = 0, dropped: int = 0) -> None:
        """Takes the complete blocks of an AMS block file (``BlockStream.feed``)."""
        now = self.clock()
        science = None
        if raw is not None:
            science = raw.decode(["events", "trd_hits", "errors"])
            science["errors"] = raw.errors()
        with self.lock:
            if nbytes:
                src = self.sources.setdefault(source, {"name": source, "bytes": 0, "reconnects": 0})
                src["bytes"] = src.get("bytes", 0) + nbytes
            self.science_dropped += int(dropped)
            if science is not None:
                self.block_bytes += int(raw.size)
                self._science(science, now)

    def _packets(self, b: Dict[str, Any], now: float) -> None:
        apid = b["apid"]
        n = len(apid)
        self.skipped_bytes += int(b["skipped_bytes"])
        if n == 0:
            return
        length = b["length"].astype(np.int64)
        self.packets += n
        self.bytes += int(length.sum())
        self.last_packet_wall = now
        t = float(b["coarse_time"][-1]) + float(b["fine_time"][-1]) / 256.0
        if t > 0:
            self.last_packet_time = t
            self.latency_s = now - t
        if self.stalled:
            self.stalled = False
            self.alarms.add(now, "resume", "info", "packets again after a stall")
        gaps = b["seq_gap"]
        seq = b["seq_count"]
        for a in np.unique(apid):
            a = int(a)
            key = a if (a in self.apids or len(self.apids) < MAX_APIDS) else -1
            m = apid == a
            st = self.apids.setdefault(
                key,
                {
                    "apid": key,
                    "packets": 0,
                    "bytes": 0,
                    "gaps": 0,
                    "lost": 0,
                    "last_gap": None,
                    "last_seq": None,
                },
            )
            k = int(m.sum())
            nb = int(length[m].sum())
            st["packets"] += k
            st["bytes"] += nb
            st["last_seq"] = int(seq[m][-1])
            g = gaps[m]
            nz = np.flatnonzero(g)
            if len(nz):
                st["gaps"] += len(nz)
                st["lost"] += int(g[nz].sum())
                sq = seq[m]
                for i in nz[-5:]:
                    lost, to = int(g[i]), int(sq[i])
                    frm = (to - lost - 1) % 16384
                    st["last_gap"] = {"time": now, "lost": lost, "after_seq": frm, "seq": to}
                if len(nz) > 5:
                    self.alarms.add(
                        now,
                        "gap",
                        "warning",
                        f"APID {a}: {len(nz) - 5} more sequence gaps in this batch "
                        f"({int(g[nz[:-5]].sum())} packets lost)",
                        apid=a,
                    )
                for i in nz[-5:]:
                    lost, to = int(g[i]), int(sq[i])
                    self.alarms.add(
                        now,
                        "gap",
                        "warning",
                        f"APID {a}: {lost} packets lost before sequence count {to}",
                        apid=a,
                        lost=lost,
                        seq=to,
                    )
            ring = self.apid_rates.get(key)
            if ring is None:
                ring = self.apid_rates[key] = Ring(RATE_WINDOW_S, 2)
            ring.add(now, (k, nb))

    def _problems(self, p: Dict[str, Any], now: float) -> None:
        for kind in p["kind"]:
            if kind in CCSDS_ERROR_KINDS:
                self.ccsds_errors[kind] = self.ccsds_errors.get(kind, 0) + 1
        garbage = [
            (int(o), d) for o, k, d in zip(p["offset"], p["kind"], p["detail"]) if k in CCSDS_ERROR_KINDS
        ]
        for o, d in garbage[-3:]:
            self.alarms.add(now, "decode_error", "warning", f"stream byte {o}: {d}", offset=o)
        for kind in p["kind"]:
            if kind == "stream_gap":
                self._count_problem(str(kind), now)

    def _count_problem(self, kind: str, now: float, n: int = 1) -> None:
        self.problem_kinds[kind] = self.problem_kinds.get(kind, 0) + n
        r = self.problem_rates.get(kind)
        if r is None:
            if len(self.problem_rates) >= 64:
                return
            r = self.problem_rates[kind] = Ring(PROBLEM_WINDOW_MIN, 1, 60.0)
        r.add(now, (n,))

    def _health(self, h: Dict[str, Any], now: float) -> None:
        n = len(h["offset"])
        if n == 0:
            return
        self.hs_packets += n
        chd = h["chd"]
        cyc = h["cycle_counter"].astype(np.int64)
        # cycle counter breaks (16-bit counter)
        prev = np.concatenate(([self.last_cycle if self.last_cycle is not None else -1], cyc[:-1]))
        brk = (prev >= 0) & (((prev + 1) & 0xFFFF) != cyc)
        for i in np.flatnonzero(brk)[-5:]:
            self.alarms.add(
                now,
                "cycle_break",
                "warning",
                f"H&S cycle counter jumps from {int(prev[i])} to {int(cyc[i])}",
                after=int(prev[i]),
                value=int(cyc[i]),
            )
        self.cycle_breaks += int(brk.sum())
        self.last_cycle = int(cyc[-1])
        # limits: a crossing is a move to a worse band, per word, packet by packet
        levels = np.zeros(chd.shape, dtype=np.int8)
        for j, lim in enumerate(self.limits[:CHD_WORDS]):
            col = chd[:, j].astype(np.int64)
            if lim.alarm is not None:
                levels[:, j] = np.where((col < lim.alarm[0]) | (col > lim.alarm[1]), 2, 0)
            if lim.caution is not None:
                c = (col < lim.caution[0]) | (col > lim.caution[1])
                levels[:, j] = np.maximum(levels[:, j], np.where(c, 1, 0))
        prev_lv = np.vstack([np.asarray(self.hs_levels, dtype=np.int8)[None, :], levels[:-1]])
        rows, cols = np.nonzero(levels != prev_lv)
        for r, j in zip(rows.tolist(), cols.tolist()):
            lv, was = int(levels[r, j]), int(prev_lv[r, j])
            lim = self.limits[j]
            v = int(chd[r, j])
            t_pkt = float(h["time_s"][r])
            if lv > was:
                self.alarms.add(
                    now,
                    "limit",
                    LEVELS[lv],
                    f"{lim.name} = {v} crosses into {LEVELS[lv]} (packet time {t_pkt:.0f})",
                    word=j + 1,
                    value=v,
                    band=LEVELS[lv],
                    packet_time=t_pkt,
                )
            else:
                self.alarms.add(
                    now,
                    "limit_back",
                    "info",
                    f"{lim.name} = {v} back to {LEVELS[lv]}",
                    word=j + 1,
                    value=v,
                    band=LEVELS[lv],
                    packet_time=t_pkt,
                )
        self.hs_levels = [int(x) for x in levels[-1]]
        # history: the last value in each 10 s bin of packet time
        t = h["time_s"]
        slot = (np.asarray(t, dtype=np.float64) // HISTORY_BIN_S).astype(np.int64)
        i = slot % self.history_last.shape[0]
        # the last packet of each bin wins (NumPy assigns repeated indices in order)
        self.history_slot[i] = slot
        self.history_last[i] = chd
        self.history_level[i] = levels
        last = n - 1
        self.hs_latest = {
            "arrival": now,
            "time_s": float(t[last]),
            "seq_count": int(h["seq_count"][last]),
            "cycle_counter": int(cyc[last]),
            "caution_warning": int(h["caution_warning"][last]),
            "service_request_id": int(h["service_request_id"][last]),
            "service_request_data": int(h["service_request_data"][last]),
            "payload_message": int(h["payload_message"][last]),
            "chd": [int(x) for x in chd[last]],
        }

    def _science(self, s: Dict[str, Any], now: float) -> None:
        ev = s["events"]
        err = s["errors"]
        for kind in err["kind"]:
            self._count_problem(str(kind), now)
        n = len(ev["offset"])
        if n:
            ok = ev["jmdc_ok"]
            runs = ev["run"][ok].astype(np.int64)
            evn = ev["event"][ok].astype(np.int64)
            crc_bad = int((~ev["crc_ok"]).sum())
            self.events += n
            self.bad_crc += crc_bad
            self.event_rates.add(now, (n, crc_bad))
            if len(runs):
                prev_run = np.concatenate(([self.run if self.run is not None else -1], runs[:-1]))
                prev_ev = np.concatenate(([self.event if self.event is not None else -1], evn[:-1]))
                change = (prev_run >= 0) & (runs != prev_run)
                same = (prev_run == runs) & (prev_run >= 0)
                self.event_breaks += int((same & (evn != prev_ev + 1)).sum())
                if self.run is None:
                    self.runs_seen.append(int(runs[0]))
                for i in np.flatnonzero(change):
                    frm, to = int(prev_run[i]), int(runs[i])
                    self.alarms.add(
                        now,
                        "run_change",
                        "info",
                        f"run {frm} -> {to} (event {int(evn[i])})",
                        run=to,
                        previous=frm,
                    )
                    self.runs_seen = (self.runs_seen + [to])[-20:]
                self.run = int(runs[-1])
                self.event = int(evn[-1])
            nh = ev["n_trd_hits"].astype(np.int64)
            self.hits_hist += np.bincount(np.minimum(nh, HITS_BINS - 1), minlength=HITS_BINS)
        hits = s["trd_hits"]
        if len(hits["module"]):
            if self.occupancy is None:
                from .. import trd

                m = trd.modules()
                self.modules = {
                    k: [x.item() if hasattr(x, "item") else x for x in m[k]]
                    for k in ("label", "layer", "side", "position")
                }
                self.occupancy = np.zeros(len(m["label"]), dtype=np.int64)
            mod = hits["module"].astype(np.int64)
            mod = mod[(mod >= 0) & (mod < len(self.occupancy))]
            self.occupancy += np.bincount(mod, minlength=len(self.occupancy))
            adc = hits["amplitude"].astype(np.float64) / 8.0
            b = np.clip((adc // AMP_BIN).astype(np.int64), 0, len(self.amp_hist) - 1)
            self.amp_hist += np.bincount(b, minlength=len(self.amp_hist))
            self.trd_hits += len(mod)

    # -- time ---------------------------------------------------------------------------
    def tick(self) -> None:
        """Checks for a stall (no packet for ``stall_s`` seconds); call it often."""
        now = self.clock()
        with self.lock:
            since = now - (self.last_packet_wall if self.last_packet_wall is not None else self.started)
            if not self.stalled and since > self.stall_s:
                self.stalled = True
                down = [s["name"] for s in self.sources.values() if s.get("status") == "reconnecting"]
                why = f" (source down: {', '.join(down)})" if down else ""
                self.alarms.add(now, "stall", "alarm", f"no packet for {since:.1f} s{why}")

    # -- snapshot -----------------------------------------------------------------------
    def snapshot(self) -> Dict[str, Any]:
        """Every number on the page, as JSON-ready Python values."""
        with self.lock:
            now = self.clock()
            t_rate = np.arange(int(now) - RATE_WINDOW_S + 1, int(now) + 1)
            apids = []
            rates: Dict[str, Any] = {"t": t_rate.tolist()}
            for a in sorted(self.apids):
                st = dict(self.apids[a])
                ser = self.apid_rates[a].series(now)
                last10 = ser[-11:-1] if len(ser) > 10 else ser
                st["packets_per_s"] = float(last10[:, 0].mean()) if len(last10) else 0.0
                st["bytes_per_s"] = float(last10[:, 1].mean()) if len(last10) else 0.0
                apids.append(st)
                rates[str(a)] = {"packets": ser[:, 0].tolist(), "bytes": ser[:, 1].tolist()}
            ev = self.event_rates.series(now)
            ev10 = ev[-11:-1]
            nbins = self.history_last.shape[0]
            tl = self.last_packet_time if self.hs_latest is None else self.hs_latest["time_s"]
            s_end = int(tl // HISTORY_BIN_S) if tl is not None else int(now // HISTORY_BIN_S)
            slots = np.arange(s_end - nbins + 1, s_end + 1)
            idx = slots % nbins
            present = self.history_slot[idx] == slots
            hist_vals = np.where(present[:, None], self.history_last[idx], np.nan)
            hist_lv = np.where(present[:, None], self.history_level[idx], -1)
            minutes = int(now // 60)
            prob_t = list(range((minutes - PROBLEM_WINDOW_MIN + 1) * 60, (minutes + 1) * 60, 60))
            since = None if self.last_packet_wall is None else now - self.last_packet_wall
            latest = None
            if self.hs_latest is not None:
                latest = dict(self.hs_latest)
                latest["age_s"] = now - latest["arrival"]
                latest["levels"] = [LEVELS[x] for x in self.hs_levels]
            return {
                "now": now,
                "started": self.started,
                "uptime_s": now - self.started,
                "sources": [dict(s) for s in self.sources.values()],
                "link": {
                    "packets": self.packets,
                    "bytes": self.bytes,
                    "skipped_bytes": self.skipped_bytes,
                    "decode_errors": sum(self.ccsds_errors.values()),
                    "decode_errors_by_kind": dict(self.ccsds_errors),
                    "time_since_last_packet_s": since,
                    "last_packet_time": self.last_packet_time,
                    "latency_s": self.latency_s,
                    "stalled": self.stalled,
                    "stall_s": self.stall_s,
                    "apids": apids,
                    "rates": rates,
                },
                "health": {
                    "packets": self.hs_packets,
                    "latest": latest,
                    "cycle_breaks": self.cycle_breaks,
                    "limits": [lim.to_json() for lim in self.limits],
                    "history": {
                        "t": (slots * HISTORY_BIN_S).tolist(),
                        "chd": [[None if np.isnan(v) else int(v) for v in row] for row in hist_vals.T],
                        "level": hist_lv.T.astype(int).tolist(),
                    },
                },
                "science": {
                    "events": self.events,
                    "events_per_s": float(ev10[:, 0].mean()) if len(ev10) else 0.0,
                    "run": self.run,
                    "event": self.event,
                    "event_breaks": self.event_breaks,
                    "runs_seen": list(self.runs_seen),
                    "bad_crc": self.bad_crc,
                    "bad_crc_share": (self.bad_crc / self.events) if self.events else 0.0,
                    "bad_crc_share_10min": float(ev[:, 1].sum() / ev[:, 0].sum()) if ev[:, 0].sum() else 0.0,
                    "science_gaps": self.science_gaps,
                    "science_dropped_bytes": self.science_dropped,
                    "block_bytes": self.block_bytes,
                    "rates": {"t": t_rate.tolist(), "events": ev[:, 0].tolist()},
                    "problems_by_kind": dict(self.problem_kinds),
                    "problems_per_minute": {
                        "t": prob_t,
                        **{
                            k: r.series(now)[:, 0].astype(int).tolist() for k, r in self.problem_rates.items()
                        },
                    },
                    "problems_last_minute": {
                        k: int(r.series(now)[-1, 0]) for k, r in self.problem_rates.items()
                    },
                    "trd": {
                        "hits": self.trd_hits,
                        "hits_per_event": self.hits_hist.tolist(),
                        "hits_per_event_mean": float(
                            (np.arange(HITS_BINS) * self.hits_hist).sum() / max(1, self.hits_hist.sum())
                        ),
                        "amplitude_bin_adc": AMP_BIN,
                        "amplitude": self.amp_hist.tolist(),
                        "modules": self.modules,
                        "occupancy": None if self.occupancy is None else self.occupancy.tolist(),
                    },
                },
                "alarms": {
                    "count": self.alarms.count,
                    "by_kind": dict(self.alarms.by_kind),
                    "recent": list(self.alarms.log)[-50:],
                },
            }

    def alarm_log(self, since_id: int = 0) -> List[Dict[str, Any]]:
        """The alarms kept, oldest first (those after ``since_id``)."""
        with self.lock:
            return [a for a in self.alarms.log if a["id"] > since_id]
