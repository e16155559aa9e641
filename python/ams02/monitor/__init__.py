"""``ams02 monitor``: the POCC's first look, a live web page of the detector's health and
the data's quality (issue 15; docs/monitor.md).

>>> from ams02.monitor import Monitor
>>> with Monitor(["listen://:8901"], port=8080) as m:     # doctest: +SKIP
...     print(m.url)
...     m.wait()

Sources (several at once): ``tcp://HOST:PORT`` (connect out, as to the ground relay),
``listen://[HOST]:PORT`` (accept one sender at a time), ``udp://[HOST]:PORT``, or a file
or directory watched for new and growing CCSDS packet files and AMS block files.

The server binds 127.0.0.1 unless told otherwise; any other host needs a read-only
``token``, required on every request and on the push channel.

Needs the ``monitor`` extra: ``pip install 'ams02[monitor]'`` (Starlette, uvicorn).
"""

from __future__ import annotations

import ipaddress
import os
import threading
import time
from typing import Any, List, Optional, Sequence, Union

from .ingest import Source, SourceSpec, parse_source
from .limits import WordLimits, default_limits_path, load_limits
from .replay import parse_rate, replay
from .state import MonitorState

PathLike = Union[str, "os.PathLike[str]"]

LOOPBACK = ("localhost",)


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and localhost."""
    if host in LOOPBACK:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Monitor:
    """Sources, state and web server; ``start()`` runs them in background threads."""

    def __init__(
        self,
        sources: Sequence[str],
        *,
        host: str = "127.0.0.1",
        port: int = 8080,
        limits: Optional[PathLike] = None,
        token: Optional[str] = None,
        stall_s: float = 5.0,
        interval_s: float = 0.5,
    ) -> None:
        if not sources:
            raise ValueError(
                "give at least one SOURCE (tcp://HOST:PORT, listen://:PORT, udp://:PORT, a path)"
            )
        if not is_loopback(host) and not token:
            raise ValueError(f"serving {host!r} (not loopback) needs a read-only --token")
        if token is not None and (len(token) < 8 or not token.isprintable() or " " in token):
            raise ValueError("the token must be at least 8 printable characters without spaces")
        self.specs: List[SourceSpec] = [parse_source(s) for s in sources]
        self.host, self.port = host, int(port)
        self.token = token
        self.limits: List[WordLimits] = load_limits(limits)
        self.state = MonitorState(self.limits, stall_s=stall_s)
        self.interval_s = interval_s
        self.sources: List[Source] = []
        self._server: Any = None
        self._thread: Optional[threading.Thread] = None
        self._ticker: Optional[threading.Thread] = None
        self._stop = threading.Event()

    # -- life ---------------------------------------------------------------------------
    def start(self, timeout_s: float = 10.0) -> "Monitor":
        """Starts the sources, the stall check and the server; returns when it serves."""
        import uvicorn

        from .server import create_app

        for spec in self.specs:
            src = Source(spec, self.state)
            src.start()
            self.sources.append(src)
        for src in self.sources:
            src.ready.wait(timeout_s)
        self._ticker = threading.Thread(target=self._tick, name="ams02-monitor tick", daemon=True)
        self._ticker.start()
        app = create_app(self.state, token=self.token, interval_s=self.interval_s)
        config = uvicorn.Config(
            app, host=self.host, port=self.port, log_level="warning", access_log=False, lifespan="off"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="ams02-monitor server", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the monitor's server did not start on {self.host}:{self.port}")
            time.sleep(0.02)
        if self.port == 0:
            for s in self._server.servers:
                for sock in s.sockets:
                    self.port = sock.getsockname()[1]
                    break
        return self

    def _tick(self) -> None:
        while not self._stop.wait(0.2):
            self.state.tick()

    def stop(self) -> None:
        """Stops the server and the sources."""
        self._stop.set()
        for s in self.sources:
            s.stop()
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)
        for s in self.sources:
            s.join(5)

    def wait(self) -> None:
        """Blocks until the server stops (Ctrl-C stops it)."""
        try:
            while self._thread is not None and self._thread.is_alive():
                self._thread.join(0.5)
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()

    def __enter__(self) -> "Monitor":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- addresses ----------------------------------------------------------------------
    @property
    def url(self) -> str:
        """The page's address (with the token, when there is one)."""
        h = f"[{self.host}]" if ":" in self.host else self.host
        q = f"/?token={self.token}" if self.token else "/"
        return f"http://{h}:{self.port}{q}"

    def source_port(self, i: int = 0) -> Optional[int]:
        """The port a listening source (``listen://``, ``udp://``) bound (useful with port 0)."""
        return self.sources[i].bound_port


__all__ = [
    "Monitor",
    "MonitorState",
    "default_limits_path",
    "load_limits",
    "parse_rate",
    "parse_source",
    "replay",
]
