"""Fault injection for tests: make a worker sleep, die, corrupt its copy or disturb its
source at a named step of the state machine.

Set ``AMS02_TRANSFER_FAULT`` (or pass ``fault=`` to :func:`ams02.transfer.sync`) to a
``;``-separated list of ``STEP:ACTION[=ARG][*COUNT][@GLOB]`` items:

STEP
    ``copy`` (after the first chunk is written to the temporary copy), ``copied`` (the
    temporary copy is complete and fsynced, its source checksums not yet recorded),
    ``verify`` (state ``verifying`` committed, the destination not yet read back),
    ``rename`` (verified and validated, just before the rename into place) and
    ``renamed`` (after the rename, before state ``done`` is committed) and ``commit``
    (inside the transaction that records ``done``, metadata and error rows).
ACTION
    ``kill`` (SIGKILL this process), ``sleep=SECONDS``, ``flip`` (flip a byte in the middle
    of the temporary copy), ``grow-source`` (append bytes to the source file),
    ``touch-source`` (bump the source's mtime), ``fail`` (raise an OSError).
COUNT
    fire at most this many times in this process (default: every time).
GLOB
    only for files whose relative path matches (``fnmatch``).

Example: ``AMS02_TRANSFER_FAULT="verify:flip*1;renamed:kill@run-002.dat"``.
"""

from __future__ import annotations

import fnmatch
import os
import signal
import threading
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Union

ENV = "AMS02_TRANSFER_FAULT"
STEPS = ("copy", "copied", "verify", "rename", "renamed", "commit")
ACTIONS = ("kill", "sleep", "flip", "grow-source", "touch-source", "fail")

#: ``hook(step, info)`` where info has relpath, src_path, tmp_path (local paths or None).
Hook = Callable[[str, Dict[str, Optional[str]]], None]


@dataclass
class _Fault:
    step: str
    action: str
    arg: Optional[str]
    count: Optional[int]
    glob: Optional[str]


def parse(spec: str) -> List[_Fault]:
    """Parses a fault specification (see the module docs); raises ValueError if malformed."""
    faults: List[_Fault] = []
    for item in filter(None, (s.strip() for s in spec.split(";"))):
        glob = None
        if "@" in item:
            item, glob = item.split("@", 1)
        count = None
        if "*" in item:
            item, c = item.rsplit("*", 1)
            count = int(c)
        step, _, action = item.partition(":")
        arg = None
        if "=" in action:
            action, arg = action.split("=", 1)
        if step not in STEPS or action not in ACTIONS:
            raise ValueError(
                f"bad fault {item!r}: STEP must be one of {', '.join(STEPS)} and ACTION "
                f"one of {', '.join(ACTIONS)}"
            )
        faults.append(_Fault(step, action, arg, count, glob))
    return faults


class Injector:
    """Fires the faults of a specification (and an optional Python hook) at each step."""

    def __init__(self, spec: Union[str, Hook, None]) -> None:
        self._hook: Optional[Hook] = None
        self._faults: List[_Fault] = []
        if callable(spec):
            self._hook = spec
        elif spec:
            self._faults = parse(spec)
        self._lock = threading.Lock()

    @classmethod
    def from_env(cls, spec: Union[str, Hook, None]) -> "Injector":
        """The injector for ``spec``, or for ``$AMS02_TRANSFER_FAULT`` when spec is None."""
        return cls(os.environ.get(ENV) if spec is None else spec)

    def __bool__(self) -> bool:
        return bool(self._hook or self._faults)

    def __call__(self, step: str, info: Dict[str, Optional[str]]) -> None:
        if self._hook is not None:
            self._hook(step, info)
        for f in self._faults:
            if f.step != step:
                continue
            if f.glob and not fnmatch.fnmatch(info.get("relpath") or "", f.glob):
                continue
            with self._lock:
                if f.count is not None:
                    if f.count <= 0:
                        continue
                    f.count -= 1
            _fire(f, info)


def _fire(f: _Fault, info: Dict[str, Optional[str]]) -> None:
    if f.action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(60)  # pragma: no cover - the signal is delivered first
    elif f.action == "sleep":
        time.sleep(float(f.arg or 1))
    elif f.action == "fail":
        raise OSError(f"injected fault at step {f.step}")
    elif f.action == "flip":
        path = info.get("tmp_path")
        if path:
            flip_byte(path)
    elif f.action in ("grow-source", "touch-source"):
        path = info.get("src_path")
        if path:
            if f.action == "grow-source":
                with open(path, "ab") as fh:
                    fh.write(b"\0" * int(f.arg or 16))
            st = os.stat(path)
            os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


def flip_byte(path: str, offset: Optional[int] = None) -> int:
    """Inverts the bits of one byte of a file (the middle one by default); returns its offset."""
    with open(path, "r+b") as fh:
        size = os.fstat(fh.fileno()).st_size
        if size == 0:
            return -1
        pos = size // 2 if offset is None else offset
        fh.seek(pos)
        b = fh.read(1)
        fh.seek(pos)
        fh.write(bytes([b[0] ^ 0xFF]))
        fh.flush()
        os.fsync(fh.fileno())
    return pos
