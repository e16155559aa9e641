// ams02 monitor page: reads the state pushed by the server (server-sent events on
// /api/events; the browser reconnects by itself and gets the whole current state) and
// draws it. Read-only: the page sends nothing but GET requests.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const fmtInt = (x) => (x === null || x === undefined ? "-" : Math.round(x).toLocaleString("en-US"));
  const fmt = (x, d) => (x === null || x === undefined ? "-" : Number(x).toFixed(d));
  const hex = (x) => (x === null || x === undefined ? "-" : "0x" + x.toString(16).toUpperCase().padStart(4, "0"));
  const secs = (x) => {
    if (x === null || x === undefined) return "-";
    const a = Math.abs(x);
    if (a < 120) return x.toFixed(1) + " s";
    if (a < 7200) return (x / 60).toFixed(1) + " min";
    if (a < 172800) return (x / 3600).toFixed(1) + " h";
    return (x / 86400).toFixed(1) + " d";
  };
  const utc = (t) => (t ? new Date(t * 1000).toISOString().replace("T", " ").slice(0, 19) + " UTC" : "-");
  const COLORS = ["#4fc3f7", "#ffb74d", "#81c784", "#e57373", "#ba68c8", "#fff176", "#90a4ae", "#f06292"];
  const LEVEL_COLOR = { "-1": "#1b232d", 0: "#2e9e5b", 1: "#d9a400", 2: "#d33a2f" };
  let updates = 0;
  const charts = {};

  function text(id, v) {
    const e = $(id);
    if (e && e.textContent !== String(v)) e.textContent = v;
  }

  function row(tbody, key, cells) {
    let tr = tbody.querySelector(`tr[data-key="${CSS.escape(String(key))}"]`);
    if (!tr) {
      tr = document.createElement("tr");
      tr.dataset.key = key;
      for (let i = 0; i < cells.length; i++) tr.appendChild(document.createElement("td"));
      tbody.appendChild(tr);
    }
    cells.forEach((c, i) => {
      const td = tr.children[i];
      const [v, cls] = Array.isArray(c) ? c : [c, null];
      if (td.textContent !== String(v)) td.textContent = v;
      if (cls !== null) td.className = cls;
    });
    return tr;
  }

  function chart(id, series, opts) {
    const el = $(id);
    if (!el || typeof uPlot === "undefined") return null;
    const key = id + ":" + series.join(",");
    if (charts[id] && charts[id].key === key) return charts[id].u;
    if (charts[id]) charts[id].u.destroy();
    const width = Math.max(320, el.clientWidth || 360);
    const o = Object.assign({
      width: width, height: 160,
      scales: { x: { time: true } },
      axes: [{ stroke: "#8a99a8", grid: { stroke: "#2a3644" } }, { stroke: "#8a99a8", grid: { stroke: "#2a3644" }, size: 60 }],
      series: [{}].concat(series.map((s, i) => ({ label: s, stroke: COLORS[i % COLORS.length], width: 1.5 }))),
    }, opts || {});
    const empty = [[]].concat(series.map(() => []));
    const u = new uPlot(o, empty, el);
    charts[id] = { key: key, u: u };
    return u;
  }

  function histChart(id, label, binWidth) {
    return chart(id, [label], {
      scales: { x: { time: false } },
      series: [{ label: "bin" }, { label: label, stroke: "#4fc3f7", fill: "rgba(79,195,247,.25)", width: 1,
                                    paths: uPlot.paths.stepped({ align: 1 }) }],
      axes: [{ stroke: "#8a99a8", grid: { stroke: "#2a3644" } }, { stroke: "#8a99a8", grid: { stroke: "#2a3644" }, size: 60 }],
    });
  }

  function drawHealth(h) {
    text("hs-packets", fmtInt(h.packets));
    text("hs-cycle-breaks", fmtInt(h.cycle_breaks));
    const L = h.latest;
    const tb = document.querySelector("#chd-table tbody");
    h.limits.forEach((lim, j) => {
      const v = L ? L.chd[j] : "-";
      const lv = L ? "level-" + L.levels[j] : "level-none";
      const tr = row(tb, lim.word, [String(lim.word), lim.name, [String(v), lv],
        lim.caution ? lim.caution.join(" .. ") : "-", lim.alarm ? lim.alarm.join(" .. ") : "-"]);
      tr.children[2].id = "chd-" + lim.word;
      tr.children[2].dataset.level = L ? L.levels[j] : "none";
    });
    if (L) {
      text("chd-age", secs(L.age_s));
      text("hs-time", utc(L.time_s));
      text("hs-cycle", String(L.cycle_counter));
      text("hs-cw", hex(L.caution_warning));
      text("hs-srid", String(L.service_request_id));
      text("hs-srdata", hex(L.service_request_data));
      text("hs-payload", hex(L.payload_message));
    }
    // history strip: one row per word, one column per 10 s bin
    const c = $("history");
    const ctx = c.getContext("2d");
    const lv = h.history.level;
    const rows = lv.length, cols = rows ? lv[0].length : 0;
    const left = 60, top = 4, w = c.width - left - 4, rh = (c.height - top - 14) / Math.max(1, rows);
    ctx.fillStyle = "#0d1218";
    ctx.fillRect(0, 0, c.width, c.height);
    ctx.font = "11px sans-serif";
    for (let j = 0; j < rows; j++) {
      ctx.fillStyle = "#8a99a8";
      ctx.fillText(h.limits[j] ? h.limits[j].name : "CHD " + (j + 1), 2, top + rh * (j + 0.75));
      for (let i = 0; i < cols; i++) {
        ctx.fillStyle = LEVEL_COLOR[lv[j][i]];
        ctx.fillRect(left + (i * w) / cols, top + j * rh + 1, Math.ceil(w / cols), rh - 2);
      }
    }
    ctx.fillStyle = "#8a99a8";
    ctx.fillText("-60 min", left, c.height - 2);
    ctx.fillText("latest", c.width - 40, c.height - 2);
  }

  function drawLink(k, now) {
    text("link-packets", fmtInt(k.packets));
    text("link-bytes", fmtInt(k.bytes));
    text("link-since", secs(k.time_since_last_packet_s));
    text("hdr-since", secs(k.time_since_last_packet_s));
    text("link-latency", secs(k.latency_s));
    text("link-skipped", fmtInt(k.skipped_bytes));
    const kinds = Object.entries(k.decode_errors_by_kind).map(([a, b]) => `${a}: ${b}`).join(", ");
    text("link-errors", fmtInt(k.decode_errors) + (kinds ? ` (${kinds})` : ""));
    const ls = $("link-state");
    ls.textContent = k.stalled ? "STALL" : (k.packets ? "receiving" : "waiting");
    ls.className = "badge " + (k.stalled ? "badge-alarm" : (k.packets ? "badge-ok" : "badge-off"));
    const tb = document.querySelector("#apid-table tbody");
    k.apids.forEach((a) => {
      const g = a.last_gap;
      const tr = row(tb, a.apid, [a.apid < 0 ? "other" : String(a.apid), fmtInt(a.packets), fmtInt(a.bytes),
        fmt(a.packets_per_s, 1), fmtInt(a.bytes_per_s), fmtInt(a.gaps), fmtInt(a.lost),
        g ? `${g.lost} lost before seq ${g.seq}, ${secs(now - g.time)} ago` : "-"]);
      tr.dataset.apid = a.apid;
      ["apid", "packets", "bytes", "pps", "bps", "gaps", "lost", "lastgap"].forEach((n, i) => { tr.children[i].className = n; });
    });
    const names = k.apids.map((a) => String(a.apid));
    const t = k.rates.t;
    const upps = chart("chart-pps", names.map((n) => "APID " + n));
    if (upps) upps.setData([t].concat(names.map((n) => k.rates[n].packets)));
    const ubps = chart("chart-bps", names.map((n) => "APID " + n));
    if (ubps) ubps.setData([t].concat(names.map((n) => k.rates[n].bytes)));
  }

  function drawSources(list) {
    const tb = document.querySelector("#sources tbody");
    list.forEach((s) => {
      let note = s.last_error || "";
      if (s.status === "reconnecting" && s.next_retry_s) note = `retry every ${s.next_retry_s} s; ` + note;
      if (s.peer) note = "from " + s.peer;
      row(tb, s.name, [s.name, [s.status || "-", s.status === "reconnecting" || s.status === "failed" ? "level-alarm" : ""],
        fmtInt(s.bytes), fmtInt(s.reconnects || 0), note]);
    });
  }

  function drawScience(s) {
    text("sci-events", fmtInt(s.events));
    text("sci-eps", fmt(s.events_per_s, 1));
    text("sci-run", s.run === null ? "-" : String(s.run));
    text("sci-event", s.event === null ? "-" : String(s.event));
    text("sci-breaks", fmtInt(s.event_breaks));
    text("sci-badcrc", `${fmtInt(s.bad_crc)} (${fmt(100 * s.bad_crc_share, 2)} %; last 10 min ${fmt(100 * s.bad_crc_share_10min, 2)} %)`);
    text("sci-gaps", fmtInt(s.science_gaps));
    text("sci-dropped", fmtInt(s.science_dropped_bytes));
    text("trd-hits-mean", fmt(s.trd.hits_per_event_mean, 2));
    const ue = chart("chart-eps", ["events/s"]);
    if (ue) ue.setData([s.rates.t, s.rates.events]);
    const uh = histChart("chart-hits", "events");
    if (uh) uh.setData([s.trd.hits_per_event.map((_, i) => i), s.trd.hits_per_event]);
    const ua = histChart("chart-amp", "hits");
    if (ua) ua.setData([s.trd.amplitude.map((_, i) => i * s.trd.amplitude_bin_adc), s.trd.amplitude]);
    drawTrd(s.trd);
    const tb = document.querySelector("#problems tbody");
    Object.keys(s.problems_by_kind).sort().forEach((kind) => {
      row(tb, kind, [kind, fmtInt(s.problems_last_minute[kind] || 0), fmtInt(s.problems_by_kind[kind])]);
    });
  }

  function drawTrd(trd) {
    const c = $("trd-map");
    const ctx = c.getContext("2d");
    ctx.fillStyle = "#0d1218";
    ctx.fillRect(0, 0, c.width, c.height);
    if (!trd.modules || !trd.occupancy) {
      ctx.fillStyle = "#8a99a8";
      ctx.fillText("no TRD hits yet", 10, 20);
      return;
    }
    const m = trd.modules, occ = trd.occupancy;
    const max = Math.max(1, ...occ);
    const cw = (c.width - 50) / 18, rh = (c.height - 20) / 5;
    ctx.font = "10px sans-serif";
    for (let i = 0; i < m.label.length; i++) {
      const x = 40 + (m.side[i] > 0 ? 8 + m.position[i] : 9 - m.position[i]) * cw;
      const y = 4 + (5 - m.layer[i]) * rh;
      const f = occ[i] / max;
      ctx.fillStyle = `rgb(${Math.round(30 + 225 * f)}, ${Math.round(60 + 140 * f)}, ${Math.round(120 - 80 * f)})`;
      ctx.fillRect(x + 1, y + 1, cw - 2, rh - 2);
      ctx.fillStyle = f > 0.6 ? "#000" : "#dfe6ee";
      ctx.fillText(m.label[i], x + 3, y + rh / 2);
      ctx.fillText(String(occ[i]), x + 3, y + rh / 2 + 11);
    }
    ctx.fillStyle = "#8a99a8";
    for (let l = 1; l <= 5; l++) ctx.fillText("layer " + l, 2, 4 + (5 - l) * rh + rh / 2);
    ctx.fillText("-  side  +", c.width / 2 - 20, c.height - 4);
    c.dataset.total = String(occ.reduce((a, b) => a + b, 0));
  }

  function drawAlarms(a) {
    text("alarm-count", fmtInt(a.count));
    const list = $("alarms");
    const have = new Set(Array.from(list.children).map((li) => li.dataset.id));
    a.recent.forEach((x) => {
      if (have.has(String(x.id))) return;
      const li = document.createElement("li");
      li.dataset.id = x.id;
      li.dataset.kind = x.kind;
      li.className = x.level;
      const t = document.createElement("span"); t.className = "t"; t.textContent = utc(x.time);
      const k = document.createElement("span"); k.className = "k"; k.textContent = x.kind;
      const d = document.createElement("span"); d.className = "d"; d.textContent = x.detail;
      li.append(t, k, d);
      list.insertBefore(li, list.firstChild);
    });
    while (list.children.length > 200) list.removeChild(list.lastChild);
    const last = a.recent[a.recent.length - 1];
    text("alarm-latest", last ? `${last.kind}: ${last.detail}` : "-");
  }

  function draw(s) {
    updates += 1;
    document.body.dataset.updates = String(updates);
    text("updated", utc(s.now));
    drawHealth(s.health);
    drawLink(s.link, s.now);
    drawSources(s.sources);
    drawScience(s.science);
    drawAlarms(s.alarms);
    document.body.dataset.packets = String(s.link.packets);
    document.body.dataset.now = String(s.now);
  }

  function connect() {
    const es = new EventSource("api/events");
    const conn = $("conn");
    es.addEventListener("state", (ev) => {
      conn.textContent = "live";
      conn.className = "badge badge-ok";
      try { draw(JSON.parse(ev.data)); } catch (e) { console.error(e); }
    });
    es.onerror = () => {
      conn.textContent = "reconnecting";
      conn.className = "badge badge-alarm";
    };
  }

  document.addEventListener("DOMContentLoaded", connect);
})();
