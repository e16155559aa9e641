"""The copy paths of ``ams02 sync``: checksums, the kernel copy and its buffered fallback,
the rate limit, the read-back at the destination and the decode of a copy.

:class:`Copier` does the work of one file's ``copying`` and ``verifying`` states for the
state machine (:mod:`ams02.transfer._sync`), which decides what happens to the file and
records it in the catalog; nothing here touches the catalog.
"""

from __future__ import annotations

import concurrent.futures as _cf
import hashlib
import os
import re
import tempfile
import threading
import time
import zlib
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple, Union

from ._catalog import MAX_PROBLEMS
from ._faults import Injector
from ._fs import FileSystem, Stat, copy_range, start_writeback

#: Bytes per read of the destination by the checks of ``--check-destination``.
_CHECK_CHUNK = 1 << 20

Problems = List[Tuple[int, int, str, str]]

try:  # a SIMD adler32 with the same result, if installed
    from zlib_ng.zlib_ng import adler32 as _adler32
except ImportError:  # pragma: no cover - depends on the environment
    _adler32 = zlib.adler32

# Written bytes after which the kernel is asked to start writing them to disk.
_WRITEBACK = 8 << 20
# Bytes per read when checksumming a local file (fits the CPU caches: sha256 and adler32
# go over each piece while it is still there).
_HASH_CHUNK = 1 << 20


def checksum_file(
    path: str,
    *,
    sha256: bool = True,
    stop: Optional[threading.Event] = None,
    chunk_size: int = _HASH_CHUNK,
) -> Tuple[int, str, Optional[str]]:
    """Reads a local file once and returns (bytes, adler32 as 8 hex digits, sha256 hex
    digest or None without ``sha256``). Both checksums go over each piece read while it
    is in the CPU caches; zlib and hashlib release the GIL on these pieces, so threads
    checksumming different files run in parallel. Stops early (with what it has) when
    ``stop`` is set."""
    a, total = 1, 0
    h = hashlib.sha256() if sha256 else None
    buf = bytearray(chunk_size)
    mv = memoryview(buf)
    with open(path, "rb", buffering=0) as f:
        try:
            os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_SEQUENTIAL)
        except (AttributeError, OSError):  # pragma: no cover - not on every OS
            pass
        while stop is None or not stop.is_set():
            n = f.readinto(mv)
            if not n:
                break
            data = mv[:n]
            if h is not None:
                h.update(data)
            a = _adler32(data, a)
            total += n
    return total, f"{a & 0xFFFFFFFF:08x}", h.hexdigest() if h is not None else None


_RATE_RE = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([A-Za-z]*?)\s*(?:/\s*s|ps)?\s*$")
_PREFIX = {"": 1, "k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12, "ki": 2**10, "mi": 2**20, "gi": 2**30}


def parse_rate(rate: Union[int, float, str, None]) -> Optional[float]:
    """Parses a bandwidth into bytes per second: a number (bytes/s) or a string such as
    ``"36Mb/s"`` (megabits), ``"100MB/s"`` (megabytes), ``"1.5Gbps"``, ``"512KiB/s"``.
    A lower-case ``b`` means bits, an upper-case ``B`` bytes; ``None``/``0`` means no cap."""
    if rate is None:
        return None
    if isinstance(rate, (int, float)) and not isinstance(rate, bool):
        value = float(rate)
    else:
        m = _RATE_RE.match(str(rate))
        if not m:
            raise ValueError(f"cannot read the rate {rate!r}: use e.g. '36Mb/s', '100MB/s', 5e6")
        num, unit = float(m.group(1)), m.group(2)
        bits = unit.endswith("b") or unit.endswith("bit")
        prefix = unit[:-3] if unit.endswith("bit") else unit[:-1] if unit[-1:] in "bB" else unit
        if prefix.lower() not in _PREFIX:
            raise ValueError(f"cannot read the rate {rate!r}: unknown unit {unit!r}")
        value = num * _PREFIX[prefix.lower()] / (8 if bits else 1)
    if value < 0:
        raise ValueError(f"the rate must not be negative, not {rate!r}")
    return value or None


class TokenBucket:
    """A token bucket shared by all workers: ``rate`` bytes per second on average, bursts
    of at most ``burst`` bytes. :meth:`charge` is called after each read and sleeps the
    caller until the bytes are paid for."""

    def __init__(self, rate: float, burst: Optional[float] = None) -> None:
        self.rate = float(rate)
        self.burst = float(burst if burst is not None else max(64 * 1024, rate / 20))
        self._tokens = self.burst
        self._last = time.monotonic()
        self._lock = threading.Lock()

    def charge(self, n: int) -> None:
        """Takes ``n`` bytes' worth of tokens, sleeping while the bucket is in debt."""
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
            self._last = now
            self._tokens -= n
            wait = -self._tokens / self.rate if self._tokens < 0 else 0.0
        if wait > 0:
            time.sleep(wait)


class SourceChanged(OSError):
    """The source file changed while it was being copied."""


class ChecksumMismatch(OSError):
    """The copy read back at the destination differs from what was read at the source."""


def _stat_equal(a: Optional[Stat], b: Optional[Stat]) -> bool:
    return a is not None and b is not None and a[0] == b[0] and abs(a[1] - b[1]) < 1e-6


def _timed_inspect(path: str, name: str) -> Tuple[float, Dict[str, Any], List[Tuple[int, int, str, str]]]:
    t0 = time.perf_counter()
    meta, problems = inspect_file(path, name)
    return time.perf_counter() - t0, meta, problems


def inspect_file(
    path: str, name: Optional[str] = None
) -> Tuple[Dict[str, Any], List[Tuple[int, int, str, str]]]:
    """Decodes one file in lenient mode: returns catalog metadata (byte_order, n_blocks,
    n_events, run_min, run_max, runs, time_min, time_max, n_errors, flagged, validation)
    and its error rows (offset, event_index, kind, detail). A file that is not AMS block
    data at all is flagged with one ``not_ams_data`` row, never an exception."""
    import ams02

    name = name or path
    try:
        with ams02.open(path) as f:
            # File.summary(), the one summary (as File.validate() and `ams02 info`): one
            # pass for the events and every check; errors() are those that pass found.
            s = f.summary()
            err = f.errors()
            runs = s["runs"]
            kinds = s["error_kinds"]
            meta = {
                "byte_order": s["byte_order"],
                "n_blocks": int(s["blocks"]),
                "n_events": int(s["events"]),
                "run_min": min(runs) if runs else None,
                "run_max": max(runs) if runs else None,
                "runs": ",".join(str(r) for r in runs[:200]) + (",..." if len(runs) > 200 else ""),
                "time_min": s["time_min"],
                "time_max": s["time_max"],
                "n_errors": int(s["errors"]),
                "flagged": int(s["errors"] > 0),
                "validation": "ok" if s["ok"] else ", ".join(f"{k}: {n}" for k, n in sorted(kinds.items())),
            }
            problems = [
                (int(o), int(i), str(k), str(d).replace(path, name))
                for o, i, k, d in zip(
                    err["offset"][:MAX_PROBLEMS],
                    err["event_index"][:MAX_PROBLEMS],
                    err["kind"][:MAX_PROBLEMS],
                    err["detail"][:MAX_PROBLEMS],
                )
            ]
            return meta, problems
    except ams02.Ams02Error as e:  # FormatError: not AMS block data at all
        msg = str(e).replace(path, name)
        meta = {
            "byte_order": None,
            "n_blocks": 0,
            "n_events": 0,
            "run_min": None,
            "run_max": None,
            "runs": "",
            "time_min": None,
            "time_max": None,
            "n_errors": 1,
            "flagged": 1,
            "validation": f"not_ams_data: {msg}",
        }
        return meta, [(0, -1, "not_ams_data", msg)]


@dataclass
class CopyJob:
    """One file being copied: its relative path, the source's (size, mtime) when it was
    listed (then when it was copied) and the decode started on its copy while it is
    fsynced (a future of (seconds, metadata, problems))."""

    rel: str
    stat: Stat
    predecode: Optional["_cf.Future[Tuple[float, Dict[str, Any], Problems]]"] = None


class Copier:
    """Copies files from ``src`` to ``dst`` and verifies the copies (see the module docs
    of :mod:`ams02.transfer._sync` for the two copy paths)."""

    def __init__(
        self,
        src: FileSystem,
        dst: FileSystem,
        *,
        workers: int,
        bucket: Optional["TokenBucket"],
        validate: bool,
        verify: str,
        chunk_size: int,
        fault: Injector,
    ) -> None:
        self.src, self.dst = src, dst
        self.workers = workers
        self.bucket = bucket
        self.validate = validate
        self.verify_sha256 = verify == "sha256"
        self.chunk = chunk_size if bucket is None else max(16 * 1024, min(chunk_size, int(bucket.rate / 10)))
        self.fault = fault
        # Local to local without a rate cap: the kernel copies (cleared if it cannot).
        self._kernel_copy = src.local and dst.local and bucket is None and hasattr(os, "copy_file_range")
        self._hash_pool: Optional[_cf.ThreadPoolExecutor] = None
        self._hash_lock = threading.Lock()

    def hasher(self) -> _cf.ThreadPoolExecutor:
        """The helper threads of local copies (two per worker): one checksums the source
        while the kernel copies it, one decodes the copy while it is being fsynced."""
        with self._hash_lock:
            if self._hash_pool is None:
                self._hash_pool = _cf.ThreadPoolExecutor(2 * self.workers, thread_name_prefix="ams02-helper")
            return self._hash_pool

    @staticmethod
    def drop_predecode(task: CopyJob) -> None:
        """Forgets a decode started on a copy that is being discarded (after it ends)."""
        pre, task.predecode = task.predecode, None
        if pre is not None:
            _cf.wait([pre])

    def close(self) -> None:
        """Stops the helper threads."""
        with self._hash_lock:
            if self._hash_pool is not None:
                self._hash_pool.shutdown(wait=True)
                self._hash_pool = None

    def copy(self, task: CopyJob, tmp: str, info: Dict[str, Optional[str]]) -> Tuple[int, str, str, float]:
        """Copies the source to ``tmp`` (flushed and fsynced): returns (bytes, adler32,
        sha256, seconds). The checksums are those of the bytes read at the source."""
        t0 = time.perf_counter()
        before = self.src.stat(task.rel)
        if before is None:
            raise FileNotFoundError(f"{self.src.full(task.rel)}: the source file vanished")
        got = self._copy_kernel(task, tmp, info, before[0]) if self._kernel_copy else None
        if got is None:
            got = self._copy_stream(task, tmp, info)
        total, a, sha = got
        if self.fault:
            self.fault("copied", info)
        after = self.src.stat(task.rel)
        if total != before[0] or not _stat_equal(before, after):
            self.drop_predecode(task)
            self.dst.remove(tmp)
            raise SourceChanged(
                f"{self.src.full(task.rel)}: the source changed while being copied "
                f"(size {before[0]} -> {after[0] if after else 'gone'}, {total} bytes read; "
                f"mtime {before[1]:.3f} -> {after[1] if after else 0:.3f})"
            )
        task.stat = before
        return total, a, sha, time.perf_counter() - t0

    def _copy_kernel(
        self, task: CopyJob, tmp: str, info: Dict[str, Optional[str]], size: int
    ) -> Optional[Tuple[int, str, str]]:
        """Local to local without a rate cap: the kernel copies (``copy_file_range``, no
        user-space buffer, writeback started every few MB) while a helper thread reads
        the source once more and checksums what it read. Returns (bytes, adler32, sha256),
        or None (and no temporary file) when the system cannot copy this way (an error
        saying so, or nothing copied from a file of ``size`` > 0 bytes, as some file
        systems do).

        The checksums are of the source as read, independently of the copy; the copy is
        then read back and compared with them by :meth:`_verify`, so a copy that differs
        from the source in any way (the kernel's copy, the disk, a source changed between
        the two reads) fails the attempt."""
        src_path, dst_path = self.src.local_path(task.rel), self.dst.local_path(tmp)
        assert src_path is not None and dst_path is not None
        stop = threading.Event()
        hashed = self.hasher().submit(checksum_file, src_path, stop=stop, chunk_size=_HASH_CHUNK)
        total, flushed = 0, 0
        try:
            with self.src.open_read(task.rel) as fin:
                fout = self.dst.open_new(tmp)
                try:
                    while True:
                        n = copy_range(fin.fileno(), fout.fileno(), self.chunk)
                        if n == 0 and total == 0 and size > 0:
                            n = None  # copies nothing from a non-empty file: not supported here
                        if n is None:  # not supported here: nothing copied yet, or stream it all
                            self._kernel_copy = False  # this attempt's retries stream
                            if total:
                                raise OSError(
                                    f"{self.dst.full(tmp)}: copy_file_range stopped working mid-file"
                                )
                            fout.close()
                            self.dst.remove(tmp)
                            stop.set()
                            _cf.wait([hashed])
                            return None
                        if not n:
                            break
                        total += n
                        if total - flushed >= _WRITEBACK:
                            start_writeback(fout, flushed, total - flushed)
                            flushed = total
                        if total == n and self.fault:
                            self.fault("copy", info)
                    if self.validate:  # decode the copy (in the page cache) while it is fsynced
                        task.predecode = self.hasher().submit(_timed_inspect, dst_path, task.rel)
                    self.dst.finish(fout)
                except BaseException:
                    try:
                        fout.close()
                    finally:
                        self.dst.remove(tmp)
                    raise
        except BaseException:
            stop.set()
            _cf.wait([hashed])
            self.drop_predecode(task)
            raise
        nbytes, a, sha = hashed.result()
        if nbytes != total:
            self.drop_predecode(task)
            self.dst.remove(tmp)
            raise SourceChanged(
                f"{self.src.full(task.rel)}: the source changed while being copied "
                f"({total} bytes copied, {nbytes} read to checksum)"
            )
        assert sha is not None
        return total, a, sha

    def _copy_stream(self, task: CopyJob, tmp: str, info: Dict[str, Optional[str]]) -> Tuple[int, str, str]:
        """Reads the source once through a buffer, checksums what it read (the shared token
        bucket charged for every byte) and writes it to ``tmp``: fsspec URLs, a rate cap,
        or a system without ``copy_file_range``. Returns (bytes, adler32, sha256)."""
        a, h, total, flushed = 1, hashlib.sha256(), 0, 0
        buf = bytearray(self.chunk)
        mv = memoryview(buf)
        local_out = self.dst.local
        with self.src.open_read(task.rel) as fin:
            fout = self.dst.open_new(tmp)
            try:
                readinto = getattr(fin, "readinto", None)
                first = True
                while True:
                    if readinto is not None:
                        n = readinto(mv)
                        if not n:
                            break
                        data: Any = mv[:n]
                    else:  # pragma: no cover - backends without readinto
                        data = fin.read(self.chunk)
                        n = len(data)
                        if not n:
                            break
                    if self.bucket is not None:
                        self.bucket.charge(n)
                    a = _adler32(data, a)
                    h.update(data)
                    out = data if local_out else bytes(data)
                    while out:
                        w = fout.write(out)
                        if w is None or w >= len(out):
                            break
                        out = out[w:]
                    if local_out and total - flushed >= _WRITEBACK:
                        start_writeback(fout, flushed, total - flushed)
                        flushed = total
                    total += n
                    if first and self.fault:
                        first = False
                        self.fault("copy", info)
                self.dst.finish(fout)
            except BaseException:
                try:  # an object store's buffered file would upload on close(): discard it
                    discard = getattr(fout, "discard", None)
                    discard() if callable(discard) else fout.close()
                finally:
                    self.dst.remove(tmp)
                raise
        return total, f"{a & 0xFFFFFFFF:08x}", h.hexdigest()

    def readback(self, rel: str, spool: Optional[Any]) -> Tuple[int, str, Optional[str]]:
        """Reads a file at the destination: (size, adler32, sha256 or None unless
        ``verify="sha256"``), copying it to ``spool`` on the way if given."""
        a, total = 1, 0
        h = hashlib.sha256() if self.verify_sha256 else None
        buf = bytearray(max(self.chunk, 1 << 20) if self.bucket is None else (4 << 20))
        mv = memoryview(buf)
        with self.dst.open_read(rel) as f:
            readinto = getattr(f, "readinto", None)
            while True:
                if readinto is not None:
                    n = readinto(mv)
                    data: Any = mv[:n]
                else:  # pragma: no cover
                    data = f.read(len(buf))
                    n = len(data)
                if not n:
                    break
                a = _adler32(data, a)
                if h is not None:
                    h.update(data)
                if spool is not None:
                    spool.write(data)
                total += n
        return total, f"{a & 0xFFFFFFFF:08x}", h.hexdigest() if h is not None else None

    def verify(
        self, task: CopyJob, rel: str, expect: Tuple[int, str, str]
    ) -> Tuple[float, float, Dict[str, Any], List[Tuple[int, int, str, str]]]:
        """Reads ``rel`` back at the destination, compares with the source checksums and
        decodes it. Returns (verify seconds, validate seconds, metadata, problems)."""
        t0 = time.perf_counter()
        local = self.dst.local_path(rel)
        src_local = self.src.local_path(task.rel)
        spool = None
        if self.validate and local is None and src_local is None:
            spool = tempfile.NamedTemporaryFile(prefix="ams02-verify-", suffix=".dat")
        try:
            got = self.readback(rel, spool)
            t1 = time.perf_counter()
            if got[:2] != expect[:2] or (got[2] is not None and got[2] != expect[2]):
                raise ChecksumMismatch(
                    f"{self.dst.full(task.rel)}: the copy differs from the source: "
                    f"size {expect[0]} vs {got[0]}, adler32 {expect[1]} vs {got[1]}"
                    + (f", sha256 {expect[2][:16]}... vs {got[2][:16]}..." if got[2] else "")
                )
            meta: Dict[str, Any] = {}
            problems: List[Tuple[int, int, str, str]] = []
            validate_s = 0.0
            pre, task.predecode = task.predecode, None
            if self.validate and pre is not None:
                # Decoded while being fsynced: the bytes just compared with the source's
                # checksums, unless something wrote to the copy in between, which the
                # comparison would have caught.
                validate_s, meta, problems = pre.result()
            elif self.validate:
                if spool is not None:
                    spool.flush()
                path = local or src_local or (spool.name if spool is not None else None)
                assert path is not None
                meta, problems = inspect_file(path, task.rel)
                if local is None and src_local is not None:  # decoded the source: still the same?
                    if not _stat_equal(self.src.stat(task.rel), task.stat):
                        raise SourceChanged(
                            f"{self.src.full(task.rel)}: the source changed after being copied"
                        )
                validate_s = time.perf_counter() - t1
            return t1 - t0, validate_s, meta, problems
        finally:
            if spool is not None:
                spool.close()

    def check(self, rel: str, expect: Tuple[int, str, str]) -> Optional[str]:
        """Re-reads a destination file and compares its size, adler32 and sha256 with
        ``expect`` (the catalog's): None if they agree, else what differs (an error
        reading it counts as damage too)."""
        return check_copy(self.dst, rel, expect)


def check_copy(fs: FileSystem, rel: str, expect: Tuple[int, str, str]) -> Optional[str]:
    """Re-reads ``rel`` on ``fs``, with its size, adler32 and sha256: None if they are
    ``expect``, else what differs."""
    try:
        local = fs.local_path(rel)
        if local is not None:
            got = checksum_file(local, chunk_size=_CHECK_CHUNK)
        else:
            a, h, total = 1, hashlib.sha256(), 0
            with fs.open_read(rel) as f:
                while True:
                    data = f.read(_CHECK_CHUNK)
                    if not data:
                        break
                    a = _adler32(data, a)
                    h.update(data)
                    total += len(data)
            got = (total, f"{a & 0xFFFFFFFF:08x}", h.hexdigest())
    except OSError as e:
        return f"{fs.full(rel)}: cannot be read back: {e.strerror or e}"
    if got == tuple(expect):
        return None
    diff = [f"size {expect[0]} recorded, {got[0]} found"] if got[0] != expect[0] else []
    if got[1] != expect[1]:
        diff.append(f"adler32 {expect[1]} recorded, {got[1]} found")
    if got[2] != expect[2]:
        diff.append(f"sha256 {str(expect[2])[:16]}... recorded, {str(got[2])[:16]}... found")
    return f"{fs.full(rel)}: damaged at the destination: " + ", ".join(diff)
