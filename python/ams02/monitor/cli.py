"""The ``ams02 monitor``, ``ams02 replay`` and ``ams02 ccsds simulate`` commands."""

from __future__ import annotations

import argparse
import secrets
import sys
from typing import Any


def cmd_monitor(args: argparse.Namespace) -> int:
    try:
        from . import Monitor
    except ImportError as e:  # pragma: no cover - without the extra
        print(f"ams02 monitor needs the monitor extra (pip install 'ams02[monitor]'): {e}", file=sys.stderr)
        return 2
    token = args.token
    if token is None and args.token_file:
        with open(args.token_file, encoding="utf-8") as f:
            token = f.read().strip()
    if token == "generate":
        token = secrets.token_urlsafe(24)
    m = Monitor(
        args.sources,
        host=args.host,
        port=args.port,
        limits=args.limits,
        token=token,
        stall_s=args.stall,
        interval_s=args.interval,
    )
    m.start()
    if not args.quiet:
        shown = m.url if token is None or args.print_token else m.url.replace(token, "<token>")
        print(f"ams02 monitor: serving {shown}", flush=True)
        for s in m.specs:
            print(f"  source {s.name}", flush=True)
    m.wait()
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from .replay import expand, parse_rate, replay

    rate = parse_rate(args.rate) if args.rate else None
    files = expand(args.files)
    sent = replay(
        files,
        args.to,
        rate=rate,
        realtime=args.realtime,
        speed=args.speed,
        max_pause_s=args.max_pause,
        connect_timeout_s=args.connect_timeout,
        loops=args.loops,
    )
    if not args.quiet:
        print(f"ams02 replay: sent {sent:,} bytes of {len(files)} file(s) to {args.to}")
    return 0


def cmd_ccsds_simulate(args: argparse.Namespace) -> int:
    import time

    import ams02

    start = int(time.time()) if args.start_time == "now" else int(args.start_time)
    info = ams02.simulate_ccsds(
        args.out,
        args.events,
        seed=args.seed,
        housekeeping_every=args.housekeeping_every,
        drop_fraction=args.drop_fraction,
        start_time=start,
        duration_s=args.hours * 3600.0,
        runs=args.runs,
        chd=args.chd,
        chd_excursion_every=args.excursion_every,
        housekeeping_drop=[int(x) for x in args.housekeeping_drop.split(",") if x.strip()],
    )
    if not args.quiet:
        span = info["time_span"][1] - info["time_span"][0]
        print(
            f"wrote {info['path']}: {info['file_bytes']:,} bytes, {info['science_packets']:,} science and "
            f"{info['housekeeping_packets']:,} H&S packets over {span / 3600:.2f} h of coarse time, "
            f"runs {', '.join(map(str, info['runs']))}, {len(info['dropped'])} science packets dropped"
        )
    return 0


def add_parsers(sub: Any) -> None:
    """Adds ``monitor`` and ``replay`` to the ``ams02`` subcommands."""
    m = sub.add_parser(
        "monitor",
        help="serve a live web page of the health and data quality of CCSDS streams",
        description="Serve the POCC's first look: a live page of CHD words, link, science and alarms "
        "(docs/monitor.md).",
    )
    m.add_argument(
        "sources",
        nargs="+",
        metavar="SOURCE",
        help="tcp://HOST:PORT (connect out), listen://[HOST]:PORT, udp://[HOST]:PORT, or a file or "
        "directory to watch",
    )
    m.add_argument(
        "--host", default="127.0.0.1", help="address to serve on (default 127.0.0.1; others need --token)"
    )
    m.add_argument(
        "--port", type=int, default=8080, help="port to serve on (default 8080; 0 = any free port)"
    )
    m.add_argument("--limits", metavar="FILE", help="CHD limits (TOML; default: the shipped defaults)")
    m.add_argument(
        "--token",
        help="read-only access token required on every request ('generate' makes one: add --print-token)",
    )
    m.add_argument(
        "--token-file", metavar="FILE", help="read the token from FILE (keeps it off the command line)"
    )
    m.add_argument("--print-token", action="store_true", help="print the page's address with the token")
    m.add_argument(
        "--stall", type=float, default=5.0, help="seconds without a packet that raise a stall (default 5)"
    )
    m.add_argument("--interval", type=float, default=0.5, help="seconds between page updates (default 0.5)")
    m.add_argument("--quiet", "-q", action="store_true")
    m.set_defaults(func=cmd_monitor)

    r = sub.add_parser("replay", help="send CCSDS packet files to a monitor as the downlink would")
    r.add_argument("files", nargs="+", metavar="FILE")
    r.add_argument("--to", required=True, metavar="URL", help="tcp://HOST:PORT or udp://HOST:PORT")
    g = r.add_mutually_exclusive_group()
    g.add_argument("--rate", help="a steady rate, e.g. 20MB/s or 100Mb/s (default: as fast as it goes)")
    g.add_argument("--realtime", action="store_true", help="pace by the packets' coarse time")
    r.add_argument(
        "--speed", type=float, default=1.0, help="with --realtime: this many times faster (default 1)"
    )
    r.add_argument(
        "--max-pause",
        type=float,
        default=10.0,
        help="with --realtime: longest wait for a leap in coarse time, seconds (default 10)",
    )
    r.add_argument("--loops", type=int, default=1, help="send the files this many times (default 1)")
    r.add_argument("--connect-timeout", type=float, default=30.0, help="seconds to keep trying to connect")
    r.add_argument("--quiet", "-q", action="store_true")
    r.set_defaults(func=cmd_replay)


def add_ccsds_simulate_parser(ccsub: Any) -> None:
    """Adds ``ams02 ccsds simulate``."""
    s = ccsub.add_parser("simulate", help="write a simulated downlink: science, H&S, gaps, run changes")
    s.add_argument("out", metavar="OUT")
    s.add_argument("--events", type=int, default=20000, help="science events (default 20000)")
    s.add_argument(
        "--hours", type=float, default=1.0, help="hours of coarse time the packets span (default 1)"
    )
    s.add_argument("--runs", type=int, default=2, help="runs (a run change between each; default 2)")
    s.add_argument(
        "--chd",
        choices=("nominal", "counter"),
        default="nominal",
        help="CHD words: near nominal with limit crossings (default), or a counter",
    )
    s.add_argument(
        "--excursion-every",
        type=int,
        default=300,
        help="H&S packets between CHD limit crossings (default 300; 0 = none)",
    )
    s.add_argument(
        "--housekeeping-every", type=int, default=16, help="science packets per H&S packet (default 16)"
    )
    s.add_argument("--housekeeping-drop", default="", help="H&S packet numbers to leave out, comma-separated")
    s.add_argument(
        "--drop-fraction", type=float, default=0.001, help="science packets lost at random (default 0.001)"
    )
    s.add_argument(
        "--start-time", default="now", help="coarse time of the first packet: seconds, or 'now' (default)"
    )
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--quiet", "-q", action="store_true")
    s.set_defaults(func=cmd_ccsds_simulate)


__all__ = ["add_ccsds_simulate_parser", "add_parsers"]
