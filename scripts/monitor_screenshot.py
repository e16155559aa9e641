#!/usr/bin/env python3
"""Regenerates docs/monitor.png: the monitor's page in headless Chromium while a
simulated downlink (an hour of coarse time, two runs, CHD limit crossings, lost packets)
is replayed into it.

    python scripts/monitor_screenshot.py [--out docs/monitor.png]

Needs the monitor extra, selenium, and Debian's chromium and chromium-driver.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(HERE.parent / "docs" / "monitor.png"))
    ap.add_argument("--width", type=int, default=1700)
    ap.add_argument("--height", type=int, default=1900)
    args = ap.parse_args()

    import ams02
    from ams02.monitor import Monitor, replay
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not (chromium and driver):
        print("needs chromium and chromedriver (apt-get install chromium chromium-driver)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        dump = os.path.join(tmp, "dump.ccsds")
        now = int(time.time())
        # an hour of coarse time ending now; replayed at a steady rate
        ams02.simulate_ccsds(dump, 60_000, seed=7, housekeeping_every=8, duration_s=3600, runs=2,
                             chd="nominal", chd_excursion_every=150, chd_excursion_length=6,
                             housekeeping_drop=[400], drop_fraction=0.0005, start_time=now - 3600)
        with Monitor(["listen://127.0.0.1:0"], port=0, interval_s=0.5) as m:
            opts = Options()
            opts.binary_location = chromium
            for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                      f"--window-size={args.width},{args.height}", "--hide-scrollbars"):
                opts.add_argument(a)
            drv = webdriver.Chrome(service=Service(driver), options=opts)
            try:
                drv.get(m.url)
                t = threading.Thread(target=replay, args=([dump], f"tcp://127.0.0.1:{m.source_port()}"),
                                     kwargs={"rate": 8e6})
                t.start()
                t.join()
                time.sleep(2.5)  # a few updates after the last packet
                Path(args.out).parent.mkdir(parents=True, exist_ok=True)
                drv.save_screenshot(args.out)
            finally:
                drv.quit()
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
