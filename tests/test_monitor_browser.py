"""The monitor's page in a real browser: headless Chromium (Debian's ``chromium`` and
``chromium-driver``, driven by Selenium) loads the page while ``ams02 replay --realtime``
streams a simulated dump whose truth is known, and reads back what the page shows.

Skipped, saying why, where Chromium, its driver or Selenium is missing
(scripts/test.sh installs Chromium from Debian where it can)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from typing import Any, Callable, Dict, Iterator

import numpy as np
import pytest

import ams02

pytest.importorskip("starlette", reason="the monitor extra (starlette) is not installed")
webdriver = pytest.importorskip(
    "selenium.webdriver", reason="selenium is not installed (pip install selenium)"
)

from selenium.webdriver.common.by import By  # noqa: E402

from ams02.monitor import Monitor  # noqa: E402
from ams02.monitor.limits import load_limits  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
if not (CHROMIUM and DRIVER):
    pytest.skip(
        "headless Chromium and chromedriver are not installed "
        "(apt-get install chromium chromium-driver; scripts/test.sh does it)",
        allow_module_level=True,
    )


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    opts = Options()
    opts.binary_location = CHROMIUM
    for a in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1600,2400",
        "--disable-extensions",
        "--no-first-run",
    ):
        opts.add_argument(a)
    try:
        drv = webdriver.Chrome(service=Service(DRIVER), options=opts)
    except Exception as e:  # a browser that cannot start here
        pytest.skip(f"headless Chromium does not start: {e}")
    drv.set_page_load_timeout(30)
    yield drv
    drv.quit()


def wait_until(cond: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            if cond():
                return
        except Exception as e:  # an element not drawn yet
            last = e
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what} ({last})")


def num(text: str) -> int:
    return int(text.replace(",", "").split()[0])


def truth_of(path: str) -> Dict[str, Any]:
    """What the page must show, from the file decoders (tested against the independent
    encoder) and the limits."""
    with ams02.ccsds.open(path) as pf:
        apids = pf.apids()
        hs = pf.health_status()
    with ams02.open_ccsds(path) as f:
        ev = f.events(["run", "event"])
    lim = load_limits()
    crossings = 0
    for j, w in enumerate(lim):
        prev = 0
        for v in hs["chd"][:, j]:
            lv = (
                2
                if not w.alarm[0] <= v <= w.alarm[1]
                else (1 if not w.caution[0] <= v <= w.caution[1] else 0)
            )
            crossings += lv > prev
            prev = lv
    last_levels = []
    for j, w in enumerate(lim):
        v = int(hs["chd"][-1, j])
        last_levels.append(
            "alarm"
            if not w.alarm[0] <= v <= w.alarm[1]
            else "caution"
            if not w.caution[0] <= v <= w.caution[1]
            else "ok"
        )
    return {
        "apids": {
            int(a): (int(c), int(m)) for a, c, m in zip(apids["apid"], apids["count"], apids["missing"])
        },
        "packets": int(apids["count"].sum()),
        "chd": hs["chd"][-1].tolist(),
        "levels": last_levels,
        "cycle": int(hs["cycle_counter"][-1]),
        "hs_packets": len(hs["offset"]),
        "events": len(ev["event"]),
        "run": int(ev["run"][-1]),
        "event": int(ev["event"][-1]),
        "crossings": crossings,
    }


def test_page_shows_the_truth(tmp_path: Any, browser: Any) -> None:
    dump = str(tmp_path / "dump.ccsds")
    # 6 s of coarse time, replayed at 2 x: a CHD excursion (caution then alarm), a lost
    # H&S packet, lost science packets, a run change.
    info = ams02.simulate_ccsds(
        dump,
        2400,
        seed=11,
        housekeeping_every=3,
        duration_s=6.0,
        runs=2,
        chd="nominal",
        chd_excursion_every=40,
        chd_excursion_length=4,
        housekeeping_drop=[10],
        drop=[50, 51],
    )
    truth = truth_of(dump)
    assert truth["crossings"] >= 2 and len(info["runs"]) == 2
    with Monitor(["listen://127.0.0.1:0"], port=0, interval_s=0.25, stall_s=2.0) as m:
        browser.get(m.url)
        wait_until(lambda: browser.find_element(By.ID, "conn").text == "live", 20, "the push channel")
        assert browser.find_element(By.ID, "link-packets").text == "0"
        t0 = time.monotonic()
        rep = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "ams02",
                "replay",
                dump,
                "--to",
                f"tcp://127.0.0.1:{m.source_port()}",
                "--realtime",
                "--speed",
                "2",
            ]
        )
        # the page updates while the replay runs
        wait_until(
            lambda: 0 < num(browser.find_element(By.ID, "link-packets").text) < truth["packets"],
            20,
            "a partial count during the replay",
        )
        assert rep.wait(60) == 0
        took = time.monotonic() - t0
        assert took > 2.0  # paced by coarse time
        wait_until(
            lambda: num(browser.find_element(By.ID, "link-packets").text) == truth["packets"],
            20,
            "every packet on the page",
        )
        wait_until(
            lambda: num(browser.find_element(By.ID, "sci-events").text) == truth["events"],
            10,
            "every event on the page",
        )

        def read_page() -> Dict[str, Any]:
            # the text the page shows, gathered in one round trip
            t = browser.execute_script("""
                const txt = (id) => document.getElementById(id).textContent;
                const rows = Array.from(document.querySelectorAll('#apid-table tbody tr')).map((tr) => [
                    tr.dataset.apid, tr.querySelector('.packets').textContent,
                    tr.querySelector('.lost').textContent, tr.querySelector('.gaps').textContent]);
                const alarms = Array.from(document.querySelectorAll('#alarms li')).map((li) => [li.dataset.kind, li.textContent]);
                const chd = [], levels = [];
                for (let w = 1; w <= 10; w++) {
                    const e = document.getElementById('chd-' + w);
                    chd.push(e.textContent); levels.push(e.dataset.level);
                }
                return {chd: chd, levels: levels, rows: rows, alarms: alarms,
                        cycle: txt('hs-cycle'), cycle_breaks: txt('hs-cycle-breaks'), hs_packets: txt('hs-packets'),
                        events: txt('sci-events'), run: txt('sci-run'), event: txt('sci-event'),
                        trd_total: document.getElementById('trd-map').dataset.total || '0'};
            """)
            return {
                "chd": [num(x) for x in t["chd"]],
                "levels": t["levels"],
                "apids": {int(a): (num(p), num(lost), num(g)) for a, p, lost, g in t["rows"]},
                "cycle": num(t["cycle"]),
                "cycle_breaks": num(t["cycle_breaks"]),
                "hs_packets": num(t["hs_packets"]),
                "events": num(t["events"]),
                "run": num(t["run"]),
                "event": num(t["event"]),
                "limit_alarms": sum(1 for k, _ in t["alarms"] if k == "limit"),
                "run_changes": [x for k, x in t["alarms"] if k == "run_change"],
                "gap_alarms": sum(1 for k, _ in t["alarms"] if k == "gap"),
                "trd_total": int(t["trd_total"]),
            }

        wait_until(lambda: read_page()["limit_alarms"] == truth["crossings"], 10, "the limit alarms")
        shown = read_page()
        assert shown["chd"] == truth["chd"]
        assert shown["levels"] == truth["levels"]
        assert shown["cycle"] == truth["cycle"]
        assert shown["cycle_breaks"] == 1
        assert shown["hs_packets"] == truth["hs_packets"]
        assert {a: (p, lost) for a, (p, lost, _) in shown["apids"].items()} == truth["apids"]
        assert shown["apids"][976][2] == 1 and shown["apids"][977][2] == 1
        assert shown["gap_alarms"] == 2
        assert shown["events"] == truth["events"]
        assert shown["run"] == truth["run"] == info["runs"][1]
        assert shown["event"] == truth["event"]
        assert shown["limit_alarms"] == truth["crossings"]
        assert (
            len(shown["run_changes"]) == 1
            and f"{info['runs'][0]} -> {info['runs'][1]}" in shown["run_changes"][0]
        )
        assert shown["trd_total"] > 0
        # a browser that reconnects gets the current state at once
        browser.refresh()
        wait_until(
            lambda: num(browser.find_element(By.ID, "link-packets").text) == truth["packets"],
            10,
            "the state after a reload",
        )
        again = read_page()
        assert again["chd"] == truth["chd"] and again["events"] == truth["events"]
        # no packet any more: the page shows the stall
        wait_until(lambda: browser.find_element(By.ID, "link-state").text == "STALL", 15, "the stall")
        logs = (
            [e for e in browser.get_log("browser") if e.get("level") == "SEVERE"]
            if hasattr(browser, "get_log")
            else []
        )
        assert not logs, logs
