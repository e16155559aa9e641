"""``sync``: the multi-threaded finite-state machine that moves files from SRC to DST.

Each file goes ``discovered -> copying -> verifying -> done`` (or ``failed``), every
transition committed to the catalog in one transaction:

copying
    the file is copied to a temporary name beside its final one
    (``DIR/.NAME.ams02-part-TOKEN``, recorded in the catalog *before* it is created),
    flushed and fsynced, and its adler32 and sha256 are computed from the bytes read at
    the source. Local to local without a rate cap, the kernel copies
    (``copy_file_range``: no user-space buffer, writeback started every few MB) while a
    helper thread reads the source once more and checksums it (the read-back below then
    proves that the copy and the checksummed bytes are the same); otherwise (fsspec
    URLs, ``max_rate``, a system without ``copy_file_range``) the source is read once
    through a buffer, checksummed on the way and written, the shared token bucket
    charged for every byte read. The source's size and mtime before and after, and the
    byte counts, must agree, or the source changed while being copied and the attempt
    fails.
verifying
    the source checksums are recorded; the temporary copy is read back at the destination
    (from its page cache or disk, never from the bytes written) and its size and adler32
    (and sha256 with ``verify="sha256"``) compared with the source's; it is decoded by
    ``ams02.open`` in lenient mode (byte order, blocks, events, runs, time range, error
    rows: files with errors are moved all the same, and flagged; on the kernel-copy path
    the decode runs while the copy is being fsynced, and its result is used only once the
    read-back matched); then renamed atomically into place.
done
    metadata, error rows and timings are committed.

A failed attempt is retried with exponential backoff up to ``retries`` attempts; the
error stays in ``files.last_error`` and the ``attempts`` history. A run that was killed is
picked up exactly where it stopped: an interrupted copy is deleted and started again, a
complete temporary copy (``verifying``) is verified and renamed without copying it again,
and a file already renamed into place is checked against the recorded checksums and marked
done.
"""

from __future__ import annotations

import concurrent.futures as _cf
import hashlib
import os
import re
import socket
import tempfile
import threading
import time
import zlib
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Callable, Dict, List, Mapping, Optional, Tuple, Union

import numpy as np

from ._catalog import DEFAULT_NAME, MAX_PROBLEMS, Catalog, is_postgres
from ._faults import Hook, Injector
from ._fs import FileSystem, Stat, TransferError, copy_range, is_url, open_fs, part_name, start_writeback

#: The required sustained throughput of the transfer system, in Mb/s (three times the
#: nominal data rate, so that a lagging copy catches up).
REQUIRED_MBIT_S = 36.0
#: The nominal AMS-02 data rate in Mb/s.
NOMINAL_MBIT_S = 12.0

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

PathOrURL = Union[str, "os.PathLike[str]"]
Progress = Callable[[str, Dict[str, Any]], None]

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


@dataclass
class SyncResult:
    """What one :func:`sync` call did (summed over its passes with ``watch``)."""

    src: str
    dst: str
    catalog: str
    passes: int = 0
    files_copied: int = 0
    files_recovered: int = 0
    files_skipped: int = 0
    files_failed: int = 0
    files_flagged: int = 0
    bytes_copied: int = 0
    seconds: float = 0.0
    failures: Dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when no file is left failed."""
        return self.files_failed == 0

    @property
    def mbyte_s(self) -> float:
        """Throughput in MB/s (10^6 bytes per second of wall time)."""
        return self.bytes_copied / self.seconds / 1e6 if self.seconds > 0 else 0.0

    @property
    def mbit_s(self) -> float:
        """Throughput in Mb/s."""
        return self.mbyte_s * 8

    def as_dict(self) -> Dict[str, Any]:
        """A JSON-friendly summary."""
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d.update(ok=self.ok, mbyte_s=self.mbyte_s, mbit_s=self.mbit_s)
        return d


def default_catalog(dst: PathOrURL) -> str:
    """The catalog used when none is given: ``DST/.ams02-catalog.sqlite`` for a local DST;
    for a remote one, ``$AMS02_CATALOG_DIR`` (default ``~/.local/state/ams02``)
    ``/catalog-<host-and-path>-<hash>.sqlite``, on this machine."""
    d = os.fspath(dst)
    if not is_url(d):
        base = d[len("file://") :] if d.startswith("file://") else d
        return os.path.join(os.path.abspath(os.path.expanduser(base)), DEFAULT_NAME)
    folder = os.environ.get("AMS02_CATALOG_DIR") or os.path.join(
        os.path.expanduser("~"), ".local", "state", "ams02"
    )
    url = d.rstrip("/")
    tag = re.sub(r"[^A-Za-z0-9]+", "-", url.split("://", 1)[1])[-60:].strip("-")
    return os.path.join(folder, f"catalog-{tag}-{hashlib.sha256(url.encode()).hexdigest()[:10]}.sqlite")


def default_workers() -> int:
    """The default number of workers: the cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - not on every OS
        return max(1, os.cpu_count() or 1)


def _stat_equal(a: Optional[Stat], b: Optional[Stat]) -> bool:
    return a is not None and b is not None and a[0] == b[0] and abs(a[1] - b[1]) < 1e-6


def _timed_inspect(path: str, name: str) -> Tuple[float, Dict[str, Any], List[Tuple[int, int, str, str]]]:
    t0 = time.perf_counter()
    meta, problems = inspect_file(path, name)
    return time.perf_counter() - t0, meta, problems


def inspect_file(path: str, name: Optional[str] = None) -> Tuple[Dict[str, Any], List[Tuple[int, int, str, str]]]:
    """Decodes one file in lenient mode: returns catalog metadata (byte_order, n_blocks,
    n_events, run_min, run_max, runs, time_min, time_max, n_errors, flagged, validation)
    and its error rows (offset, event_index, kind, detail). A file that is not AMS block
    data at all is flagged with one ``not_ams_data`` row, never an exception."""
    import ams02

    name = name or path
    try:
        with ams02.open(path) as f:
            # One pass for both: the events and every check.
            tables = f.tables(["events", "errors"])
            ev, err = tables["events"], tables["errors"]
            good = ev["jmdc_ok"].astype(bool)
            runs = np.unique(ev["run"][good]) if good.any() else np.unique(ev["run"])
            t = ev["unix_time"][good]
            t = t[np.isfinite(t)]
            n_err = int(len(err["kind"]))
            kinds: Dict[str, int] = {}
            for k in err["kind"]:
                kinds[str(k)] = kinds.get(str(k), 0) + 1
            meta = {
                "byte_order": f.byte_order,
                "n_blocks": int(f.n_blocks),
                "n_events": int(f.n_events),
                "run_min": int(runs.min()) if len(runs) else None,
                "run_max": int(runs.max()) if len(runs) else None,
                "runs": ",".join(str(int(r)) for r in runs[:200]) + (",..." if len(runs) > 200 else ""),
                "time_min": float(t.min()) if len(t) else None,
                "time_max": float(t.max()) if len(t) else None,
                "n_errors": n_err,
                "flagged": int(n_err > 0),
                "validation": "ok" if not n_err else ", ".join(f"{k}: {n}" for k, n in sorted(kinds.items())),
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
            "byte_order": None, "n_blocks": 0, "n_events": 0, "run_min": None, "run_max": None,
            "runs": "", "time_min": None, "time_max": None, "n_errors": 1, "flagged": 1,
            "validation": f"not_ams_data: {msg}",
        }
        return meta, [(0, -1, "not_ams_data", msg)]


@dataclass
class _Task:
    rel: str
    file_id: int
    stat: Stat
    mode: str  # "copy", "resume" (verify the complete temporary copy) or "adopt" (verify the final file)
    row: Dict[str, Any]
    attempts: int = 0
    #: the decode of the temporary copy, started while it is being fsynced:
    #: (seconds, metadata, problems) once done
    predecode: Optional["_cf.Future[Tuple[float, Dict[str, Any], List[Tuple[int, int, str, str]]]]"] = None


class _Syncer:
    def __init__(
        self,
        src: FileSystem,
        dst: FileSystem,
        cat: Catalog,
        *,
        workers: int,
        bucket: Optional[TokenBucket],
        retries: int,
        backoff: float,
        validate: bool,
        verify: str,
        chunk_size: int,
        injector: Injector,
        progress: Optional[Progress],
    ) -> None:
        self.src, self.dst, self.cat = src, dst, cat
        self.workers = workers
        self.bucket = bucket
        self.retries = retries
        self.backoff = backoff
        self.validate = validate
        self.verify_sha256 = verify == "sha256"
        self.chunk = chunk_size if bucket is None else max(16 * 1024, min(chunk_size, int(bucket.rate / 10)))
        self.fault = injector
        self.progress = progress
        # Local to local without a rate cap: the kernel copies (cleared if it cannot).
        self._kernel_copy = src.local and dst.local and bucket is None and hasattr(os, "copy_file_range")
        self._hash_pool: Optional[_cf.ThreadPoolExecutor] = None
        self._hash_lock = threading.Lock()
        self._result_lock = threading.Lock()
        self._stop = threading.Event()

    def _hasher(self) -> _cf.ThreadPoolExecutor:
        """The helper threads of local copies (two per worker): one checksums the source
        while the kernel copies it, one decodes the copy while it is being fsynced."""
        with self._hash_lock:
            if self._hash_pool is None:
                self._hash_pool = _cf.ThreadPoolExecutor(2 * self.workers, thread_name_prefix="ams02-helper")
            return self._hash_pool

    @staticmethod
    def _drop_predecode(task: _Task) -> None:
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

    # -- planning -----------------------------------------------------------------------
    def plan(self, first_pass: bool, result: SyncResult) -> List[_Task]:
        """Lists both sides, recovers interrupted rows and returns the tasks of this pass."""
        src_root, dst_root = self.src.url, self.dst.url
        src_files = self.src.walk()
        dst_files = self.dst.walk()
        rows = self.cat.files(src_root, dst_root)
        now = time.time()
        with self.cat.transaction():  # attempts of a dead process never finished
            self.cat.execute(
                "UPDATE attempts SET outcome = 'interrupted', ended_at = ? WHERE outcome = 'running' "
                "AND file_id IN (SELECT id FROM files WHERE src_root = ? AND dst_root = ?)",
                (now, src_root, dst_root),
            )
        keep_parts = set()
        tasks: List[_Task] = []
        order = sorted(src_files, key=lambda r: (src_files[r][1], r))
        new = [rel for rel in order if rel not in rows]
        if new:  # every new file in one transaction (one commit, not one per file)
            with self.cat.transaction():
                ids = {rel: self.cat.discover(src_root, dst_root, rel, *src_files[rel]) for rel in new}
        for rel in order:
            st = src_files[rel]
            row = rows.get(rel)
            if row is None:
                tasks.append(_Task(rel, ids[rel], st, "copy", {"attempts": 0}))
                continue
            state = row["state"]
            recorded = (row["size"], row["src_mtime"]) if row["size"] is not None else None
            unchanged = _stat_equal(st, recorded)
            if state == "done":
                d = dst_files.get(rel)
                if unchanged and d is not None and d[0] == row["size"]:
                    result.files_skipped += 1
                    continue
                tasks.append(_Task(rel, row["id"], st, "copy", row))
            elif state == "verifying" and unchanged and row["adler32"]:
                tmp = row["tmp_name"]
                tmp_st = self.dst.stat(tmp) if tmp else None
                if tmp_st is not None and tmp_st[0] == row["size"]:
                    keep_parts.add(tmp)
                    tasks.append(_Task(rel, row["id"], st, "resume", row))
                elif dst_files.get(rel, (-1, 0))[0] == row["size"]:
                    tasks.append(_Task(rel, row["id"], st, "adopt", row))
                else:
                    tasks.append(_Task(rel, row["id"], st, "copy", row))
            elif state == "failed" and not first_pass and (row["next_attempt_at"] or 0) > now:
                result.files_failed += 1
                result.failures[rel] = str(row["last_error"])
            else:  # discovered, copying (interrupted), failed, verifying of a changed source
                tasks.append(_Task(rel, row["id"], st, "copy", row))
        # Temporary copies of a killed process: delete all but those to be resumed.
        for part in self.dst.list_parts():
            if part not in keep_parts:
                self.dst.remove(part)
        # Rows of files that vanished from the source in mid-transfer.
        for rel, row in rows.items():
            if rel not in src_files and row["state"] in ("copying", "verifying", "discovered"):
                with self.cat.transaction():
                    self.cat.update(row["id"], state="failed", tmp_name=None,
                                    last_error="the source file vanished")
        return tasks

    # -- one file -----------------------------------------------------------------------
    def _info(self, task: _Task, tmp: Optional[str]) -> Dict[str, Optional[str]]:
        return {
            "relpath": task.rel,
            "src_path": self.src.local_path(task.rel),
            "tmp_path": self.dst.local_path(tmp) if tmp else None,
        }

    def _begin(self, task: _Task, action: str, **values: Any) -> int:
        now = time.time()
        task.attempts = int(task.row.get("attempts") or 0) + 1
        task.row["attempts"] = task.attempts
        with self.cat.transaction():
            self.cat.update(task.file_id, attempts=task.attempts, started_at=now, **values)
            return self.cat.insert(
                "attempts", file_id=task.file_id, attempt=task.attempts, action=action,
                outcome="running", started_at=now,
            )

    def _end_attempt(self, attempt_id: int, outcome: str, t0: float, nbytes: int, error: Optional[str] = None) -> None:
        now = time.time()
        self.cat.execute(
            "UPDATE attempts SET outcome = ?, error = ?, bytes = ?, ended_at = ?, seconds = ? WHERE id = ?",
            (outcome, error, nbytes, now, now - t0, attempt_id),
        )

    def _copy(self, task: _Task, attempt_id: int, tmp: str) -> Tuple[int, str, str, float]:
        """Copies the source to ``tmp`` (flushed and fsynced): returns (bytes, adler32,
        sha256, seconds). The checksums are those of the bytes read at the source."""
        t0 = time.perf_counter()
        before = self.src.stat(task.rel)
        if before is None:
            raise FileNotFoundError(f"{self.src.full(task.rel)}: the source file vanished")
        info = self._info(task, tmp)
        got = self._copy_kernel(task, tmp, info, before[0]) if self._kernel_copy else None
        if got is None:
            got = self._copy_stream(task, tmp, info)
        total, a, sha = got
        if self.fault:
            self.fault("copied", info)
        after = self.src.stat(task.rel)
        if total != before[0] or not _stat_equal(before, after):
            self._drop_predecode(task)
            self.dst.remove(tmp)
            raise SourceChanged(
                f"{self.src.full(task.rel)}: the source changed while being copied "
                f"(size {before[0]} -> {after[0] if after else 'gone'}, {total} bytes read; "
                f"mtime {before[1]:.3f} -> {after[1] if after else 0:.3f})"
            )
        task.stat = before
        return total, a, sha, time.perf_counter() - t0

    def _copy_kernel(
        self, task: _Task, tmp: str, info: Dict[str, Optional[str]], size: int
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
        hashed = self._hasher().submit(checksum_file, src_path, stop=stop, chunk_size=_HASH_CHUNK)
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
                                raise OSError(f"{self.dst.full(tmp)}: copy_file_range stopped working mid-file")
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
                        task.predecode = self._hasher().submit(_timed_inspect, dst_path, task.rel)
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
            self._drop_predecode(task)
            raise
        nbytes, a, sha = hashed.result()
        if nbytes != total:
            self._drop_predecode(task)
            self.dst.remove(tmp)
            raise SourceChanged(
                f"{self.src.full(task.rel)}: the source changed while being copied "
                f"({total} bytes copied, {nbytes} read to checksum)"
            )
        assert sha is not None
        return total, a, sha

    def _copy_stream(self, task: _Task, tmp: str, info: Dict[str, Optional[str]]) -> Tuple[int, str, str]:
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

    def _readback(self, rel: str, spool: Optional[Any]) -> Tuple[int, str, Optional[str]]:
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

    def _verify(self, task: _Task, rel: str, expect: Tuple[int, str, str]) -> Tuple[float, float, Dict[str, Any], List[Tuple[int, int, str, str]]]:
        """Reads ``rel`` back at the destination, compares with the source checksums and
        decodes it. Returns (verify seconds, validate seconds, metadata, problems)."""
        t0 = time.perf_counter()
        local = self.dst.local_path(rel)
        src_local = self.src.local_path(task.rel)
        spool = None
        if self.validate and local is None and src_local is None:
            spool = tempfile.NamedTemporaryFile(prefix="ams02-verify-", suffix=".dat")
        try:
            got = self._readback(rel, spool)
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
                        raise SourceChanged(f"{self.src.full(task.rel)}: the source changed after being copied")
                validate_s = time.perf_counter() - t1
            return t1 - t0, validate_s, meta, problems
        finally:
            if spool is not None:
                spool.close()

    def _attempt(self, task: _Task) -> Tuple[str, bool, int]:
        """One attempt at one file; returns ("copied" or "recovered", flagged, bytes
        copied), or raises."""
        t0 = time.time()
        row = task.row
        tmp: Optional[str] = None
        nbytes = 0
        copy_s = float(row.get("copy_seconds") or 0.0)
        if task.mode == "copy":
            tmp = part_name(task.rel)
            attempt_id = self._begin(task, "copy", state="copying", tmp_name=tmp,
                                     size=task.stat[0], src_mtime=task.stat[1])
            try:
                nbytes, adler, sha, copy_s = self._copy(task, attempt_id, tmp)
                with self.cat.transaction():
                    self.cat.update(task.file_id, state="verifying", size=nbytes, src_mtime=task.stat[1],
                                    adler32=adler, sha256=sha, copy_seconds=copy_s,
                                    copies=int(row.get("copies") or 0) + 1)
                row["copies"] = int(row.get("copies") or 0) + 1
                row.update(size=nbytes, adler32=adler, sha256=sha, tmp_name=tmp, copy_seconds=copy_s)
                target = tmp
            except BaseException as e:
                self._end_attempt(attempt_id, "failed", t0, nbytes, _msg(e))
                raise
        else:
            attempt_id = self._begin(task, task.mode)
            target = row["tmp_name"] if task.mode == "resume" else task.rel
            if task.mode == "resume":
                tmp = target
        try:
            expect = (int(row["size"]), str(row["adler32"]), str(row["sha256"]))
            if self.fault:
                self.fault("verify", self._info(task, tmp))
            try:
                verify_s, validate_s, meta, problems = self._verify(task, target, expect)
            except ChecksumMismatch as e:
                if task.mode == "copy":
                    raise
                # What a killed run left is not what it recorded: end this attempt and copy.
                self._end_attempt(attempt_id, "failed", t0, 0, _msg(e) + "; copying again")
                if tmp is not None:
                    self.dst.remove(tmp)
                task.mode = "copy"
                attempt_id = -1
            if attempt_id >= 0:
                if tmp is not None:
                    if self.fault:
                        self.fault("rename", self._info(task, tmp))
                    self.dst.replace(tmp, task.rel)
                    if self.fault:
                        self.fault("renamed", self._info(task, None))
                now = time.time()
                total_s = now - t0 + (copy_s if task.mode != "copy" else 0.0)
                with self.cat.transaction():
                    self.cat.update(
                        task.file_id, state="done", tmp_name=None, last_error=None, failures=0,
                        next_attempt_at=None, finished_at=now, verify_seconds=verify_s,
                        validate_seconds=validate_s, total_seconds=total_s,
                        bytes_per_second=expect[0] / total_s if total_s > 0 else None, **meta,
                    )
                    if self.fault:  # inside the transaction: a kill here must commit nothing
                        self.fault("commit", self._info(task, None))
                    if self.validate:
                        self.cat.execute("DELETE FROM problems WHERE file_id = ?", (task.file_id,))
                        for off, ev, kind, detail in problems:
                            self.cat.insert("problems", file_id=task.file_id, byte_offset=off,
                                            event_index=ev, kind=kind, detail=detail)
                    self._end_attempt(attempt_id, "done", t0, nbytes)
        except BaseException as e:
            self._drop_predecode(task)
            if tmp is not None:
                try:
                    self.dst.remove(tmp)
                except Exception:  # noqa: BLE001 - the destination may be gone
                    pass
            self._end_attempt(attempt_id, "failed", t0, nbytes, _msg(e))
            raise
        if attempt_id < 0:
            return self._attempt(task)
        return ("copied" if task.mode == "copy" else "recovered"), bool(meta.get("flagged")), nbytes

    def run_file(self, task: _Task, result: SyncResult) -> None:
        """The state machine of one file, with retries and backoff."""
        error = ""
        for k in range(self.retries):
            if self._stop.is_set():
                return
            try:
                outcome, flagged, nbytes = self._attempt(task)
            except (KeyboardInterrupt, SystemExit):
                raise
            except Exception as e:  # noqa: BLE001 - any failure is recorded and retried
                error = _msg(e)
                failures = int(task.row.get("failures") or 0) + 1
                task.row["failures"] = failures
                delay = self.backoff * 2 ** k
                with self.cat.transaction():
                    self.cat.update(task.file_id, state="failed", tmp_name=None, last_error=error,
                                    failures=failures,
                                    next_attempt_at=time.time() + min(3600.0, self.backoff * 2 ** min(failures, 12)))
                task.row["tmp_name"] = None
                task.mode = "copy"
                if isinstance(e, FileNotFoundError) and self.src.stat(task.rel) is None:
                    break  # the source vanished: nothing to retry
                if k + 1 < self.retries and self._stop.wait(delay):
                    return
                continue
            with self._result_lock:
                if outcome == "copied":
                    result.files_copied += 1
                else:
                    result.files_recovered += 1
                result.files_flagged += int(flagged)
                result.bytes_copied += nbytes
            if self.progress:
                self.progress(outcome, {"relpath": task.rel, "bytes": nbytes, "flagged": flagged})
            return
        with self._result_lock:
            result.files_failed += 1
            result.failures[task.rel] = error
        if self.progress:
            self.progress("failed", {"relpath": task.rel, "error": error})

    def run_pass(self, first_pass: bool) -> SyncResult:
        """One pass: plan, then run every task on the worker threads."""
        result = SyncResult(self.src.url, self.dst.url, self.cat.url, passes=1)
        t0 = time.perf_counter()
        sync_id = self.cat.insert(
            "syncs", src_root=self.src.url, dst_root=self.dst.url, host=socket.gethostname(),
            pid=os.getpid(), status="running", started_at=time.time(),
        )
        status = "failed"
        try:
            tasks = self.plan(first_pass, result)
            if self.workers <= 1 or len(tasks) <= 1:
                for t in tasks:
                    self.run_file(t, result)
            else:
                ex = _cf.ThreadPoolExecutor(self.workers, thread_name_prefix="ams02-sync")
                try:
                    for fut in [ex.submit(self.run_file, t, result) for t in tasks]:
                        fut.result()
                except BaseException:
                    # Interrupted (or a catalog error): start no new file, let the workers
                    # end their current attempt, and leave the rest to the next run.
                    self._stop.set()
                    ex.shutdown(wait=True, cancel_futures=True)
                    raise
                ex.shutdown(wait=True)
            status = "finished"
        except KeyboardInterrupt:
            status = "interrupted"
            raise
        finally:
            result.seconds = time.perf_counter() - t0
            try:
                self.cat.execute(
                    "UPDATE syncs SET status = ?, ended_at = ?, files_copied = ?, files_skipped = ?, "
                    "files_failed = ?, files_flagged = ?, bytes = ?, seconds = ? WHERE id = ?",
                    (status, time.time(), result.files_copied + result.files_recovered,
                     result.files_skipped, result.files_failed, result.files_flagged,
                     result.bytes_copied, result.seconds, sync_id),
                )
            except Exception:  # noqa: BLE001  # pragma: no cover - catalog gone
                pass
        return result


def _msg(e: BaseException) -> str:
    s = str(e) or type(e).__name__
    return s if isinstance(e, OSError) else f"{type(e).__name__}: {s}"


def open_sites(
    src: PathOrURL,
    dst: PathOrURL,
    src_options: Optional[Mapping[str, Any]] = None,
    dst_options: Optional[Mapping[str, Any]] = None,
    create_dst: bool = True,
) -> Tuple[FileSystem, FileSystem]:
    """Opens and checks both sites; raises :class:`TransferError` naming the one that fails."""
    try:
        s = open_fs(os.fspath(src), src_options)
        s.check(create=False)
    except TransferError as e:
        raise TransferError(f"source {e}") from e.__cause__
    try:
        d = open_fs(os.fspath(dst), dst_options)
        d.check(create=create_dst)
    except TransferError as e:
        raise TransferError(f"destination {e}") from e.__cause__
    if s.local and d.local:
        a, b = s.url.rstrip("/") + "/", d.url.rstrip("/") + "/"
        if a.startswith(b) or b.startswith(a):
            raise TransferError(f"source {s.url} and destination {d.url} must not contain each other")
    return s, d


def sync(
    src: PathOrURL,
    dst: PathOrURL,
    *,
    catalog: Optional[str] = None,
    workers: Optional[int] = None,
    max_rate: Union[int, float, str, None] = None,
    watch: Optional[float] = None,
    cycles: Optional[int] = None,
    retries: int = 3,
    backoff: float = 0.5,
    validate: bool = True,
    verify: str = "adler32",
    chunk_size: int = 1 << 20,
    src_options: Optional[Mapping[str, Any]] = None,
    dst_options: Optional[Mapping[str, Any]] = None,
    progress: Optional[Progress] = None,
    fault: Union[str, Hook, None] = None,
) -> SyncResult:
    """Copies every file of SRC that DST lacks (or whose source changed), verified, and
    records everything in the catalog.

    Parameters
    ----------
    src, dst:
        Directories, or fsspec URLs (``sftp://user@host:port/path``, ``s3://bucket/prefix``,
        ``root://host//path``; needs fsspec and the backend). DST is created if missing.
    catalog:
        A SQLite file path (``sqlite:///path`` too) or a ``postgresql://`` URL; default
        :func:`default_catalog` (``DST/.ams02-catalog.sqlite`` for a local DST).
    workers:
        Files copied in parallel (threads); default :func:`default_workers` (the cores
        this process may use). Each local copy also has a helper thread checksumming its
        source while the kernel copies.
    max_rate:
        Cap on the total bandwidth read from the source, shared by all workers (a token
        bucket): bytes/s, or a string such as ``"36Mb/s"`` or ``"100MB/s"``.
    watch:
        Seconds between passes: keep syncing new files until interrupted (or ``cycles``).
    cycles:
        With ``watch``, stop after this many passes.
    retries:
        Attempts per file per pass; between them the wait is ``backoff * 2**k`` seconds.
    validate:
        Decode each copy (lenient) to record runs, times and error rows.
    verify:
        What is compared after reading the copy back at the destination: ``"adler32"``
        (size and adler32; the sha256 recorded is computed once, from the bytes read at
        the source) or ``"sha256"`` (size, adler32 and sha256 recomputed at the
        destination: one more sha256 pass, about 1 s of CPU per GB).
    chunk_size:
        Bytes per read and write.
    src_options, dst_options:
        fsspec storage options (e.g. ``{"key_filename": ...}`` for sftp).
    progress:
        ``progress(outcome, info)`` after each file (outcome "copied", "recovered", "failed").
    fault:
        Fault injection for tests (see :mod:`ams02.transfer._faults`); default
        ``$AMS02_TRANSFER_FAULT``.

    Returns a :class:`SyncResult`; ``result.ok`` is False if files were left failed.

    Raises
    ------
    TransferError
        A site or the catalog cannot be reached, or another sync holds the lock.
    """
    if workers is None:
        workers = default_workers()
    if not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive int, not {workers!r}")
    if not isinstance(retries, int) or retries < 1:
        raise ValueError(f"retries must be a positive int, not {retries!r}")
    if watch is not None and watch < 0:
        raise ValueError(f"watch must be a non-negative number of seconds, not {watch!r}")
    if chunk_size < 4096:
        raise ValueError(f"chunk_size must be at least 4096, not {chunk_size}")
    if verify not in ("adler32", "sha256"):
        raise ValueError(f"verify must be 'adler32' or 'sha256', not {verify!r}")
    rate = parse_rate(max_rate)
    injector = Injector.from_env(fault)
    s, d = open_sites(src, dst, src_options, dst_options)
    cat_url = catalog or default_catalog(d.url)
    cat = Catalog.open(cat_url)
    syncer: Optional[_Syncer] = None
    try:
        cat.lock(d.url)
        syncer = _Syncer(
            s, d, cat, workers=workers, bucket=TokenBucket(rate) if rate else None,
            retries=retries, backoff=backoff, validate=validate, verify=verify, chunk_size=chunk_size,
            injector=injector, progress=progress,
        )
        total = SyncResult(s.url, d.url, cat.url)
        while True:
            r = syncer.run_pass(first_pass=total.passes == 0)
            total.passes += 1
            for k in ("files_copied", "files_recovered", "files_skipped", "files_flagged", "bytes_copied", "seconds"):
                setattr(total, k, getattr(total, k) + getattr(r, k))
            # failures: those of the last pass (a file that failed, then succeeded, is fine)
            total.files_failed, total.failures = r.files_failed, r.failures
            if watch is None or (cycles is not None and total.passes >= cycles):
                break
            try:
                time.sleep(watch)
            except KeyboardInterrupt:
                break
        return total
    finally:
        if syncer is not None:
            syncer.close()
        cat.close()
