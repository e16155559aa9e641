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
    read-back matched); given the source's permission bits; then renamed atomically
    into place.
done
    metadata, error rows and timings are committed.

A failed attempt is retried with exponential backoff up to ``retries`` attempts; the
error stays in ``files.last_error`` and the ``attempts`` history. A run that was killed is
picked up exactly where it stopped: its attempts and pass left ``running`` are marked
``interrupted``, an interrupted copy is deleted and started again, a complete temporary
copy (``verifying``) is verified and renamed without copying it again, and a file already
renamed into place is checked against the recorded checksums and marked done.

A ``done`` file whose source is unchanged and whose copy has the recorded size is not read
again (the fast path), unless ``check_destination``: then the copy is re-read and its size,
adler32 and sha256 compared with the catalog's; a damaged copy gets a ``check`` attempt
(outcome ``damaged``) and goes through ``copying`` again.

What fails alone, never the whole sync: a file (after its retries), a file that would be
written through a symbolic link at the destination (at once, no retries), a directory of
the source that cannot be listed (keyed ``DIR/`` in ``result.failures``). What ends the
sync with a :class:`~ams02.transfer.TransferError`: a site that cannot be reached, another
sync holding the destination's lock, and any failure of the catalog
(:class:`~ams02.transfer.CatalogError`); the data stay correct (a rerun resumes).

This module is the state machine only: the SQL is in :mod:`ams02.transfer._catalog`, the
copies, checksums and read-backs in :mod:`ams02.transfer._copy`, the trees (listings,
symbolic links, locks) in :mod:`ams02.transfer._fs`.
"""

from __future__ import annotations

import concurrent.futures as _cf
import hashlib
import os
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple, Union

from ._catalog import DEFAULT_NAME, Catalog, CatalogError
from ._copy import (  # noqa: F401 - checksum_file, inspect_file, parse_rate: public here too
    ChecksumMismatch,
    Copier,
    CopyJob,
    TokenBucket,
    _stat_equal,
    checksum_file,
    inspect_file,
    parse_rate,
)
from ._faults import Hook, Injector
from ._fs import FileSystem, Refused, TransferError, is_url, open_fs, part_name

#: The required sustained throughput of the transfer system, in Mb/s (three times the
#: nominal data rate, so that a lagging copy catches up).
REQUIRED_MBIT_S = 36.0
#: The nominal AMS-02 data rate in Mb/s.
NOMINAL_MBIT_S = 12.0

PathOrURL = Union[str, "os.PathLike[str]"]
Progress = Callable[[str, Dict[str, Any]], None]


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
    files_damaged: int = 0
    bytes_copied: int = 0
    seconds: float = 0.0
    #: relative path -> last error of each file left failed; a directory of the source
    #: that could not be listed is one failure, keyed "DIR/"
    failures: Dict[str, str] = field(default_factory=dict)
    #: relative path -> what ``check_destination`` found wrong with the copy (recopied)
    damaged: Dict[str, str] = field(default_factory=dict)
    #: relative path -> why this source entry is not copied (a reserved name, a symbolic
    #: link not followed)
    not_copied: Dict[str, str] = field(default_factory=dict)

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


@dataclass
class _Task(CopyJob):
    file_id: int = -1
    #: "copy", "resume" (verify the complete temporary copy), "adopt" (verify the final
    #: file) or "check" (re-read the final file, recopy it if damaged)
    mode: str = "copy"
    row: Dict[str, Any] = field(default_factory=dict)
    attempts: int = 0


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
        check_destination: bool = False,
        follow_symlinks: bool = False,
    ) -> None:
        self.src, self.dst, self.cat = src, dst, cat
        self.workers = workers
        self.retries = retries
        self.backoff = backoff
        self.validate = validate
        self.fault = injector
        self.progress = progress
        self.check_destination = check_destination
        self.follow_symlinks = follow_symlinks
        self.copier = Copier(src, dst, workers=workers, bucket=bucket, validate=validate, verify=verify,
                             chunk_size=chunk_size, fault=injector)
        self._result_lock = threading.Lock()
        self._stop = threading.Event()

    def close(self) -> None:
        """Stops the helper threads."""
        self.copier.close()

    # -- planning -----------------------------------------------------------------------
    def plan(self, first_pass: bool, result: SyncResult) -> List[_Task]:
        """Lists both sides, recovers interrupted rows and returns the tasks of this pass."""
        src_root, dst_root = self.src.url, self.dst.url
        src_list = self.src.listing(self.follow_symlinks)
        dst_list = self.dst.listing()
        src_files, dst_files = src_list.files, dst_list.files
        result.not_copied.update(src_list.not_copied)
        for rel, why in sorted(src_list.not_copied.items()):
            if self.progress and first_pass:  # once, not at every pass of --watch
                self.progress("not_copied", {"relpath": rel, "reason": why})
        for rel, err in sorted(src_list.unreadable.items()):
            result.files_failed += 1
            result.failures[rel] = err
            if self.progress:
                self.progress("failed", {"relpath": rel, "error": err})
        rows = self.cat.files(src_root, dst_root)
        now = time.time()
        keep_parts = set()
        tasks: List[_Task] = []
        order = sorted(src_files, key=lambda r: (src_files[r][1], r))
        ids = self.cat.discover_all(src_root, dst_root, {rel: src_files[rel] for rel in order if rel not in rows})
        for rel in order:
            st = src_files[rel]
            row = rows.get(rel)
            if row is None:
                tasks.append(_Task(rel, st, file_id=ids[rel], mode="copy", row={"attempts": 0}))
                continue
            state = row["state"]
            recorded = (row["size"], row["src_mtime"]) if row["size"] is not None else None
            unchanged = _stat_equal(st, recorded)
            task = _Task(rel, st, file_id=row["id"], mode="copy", row=row)
            if state == "done":
                d = dst_files.get(rel)
                if unchanged and d is not None and d[0] == row["size"]:
                    if self.check_destination and row["sha256"]:
                        task.mode = "check"
                        tasks.append(task)
                    else:
                        result.files_skipped += 1
                    continue
                tasks.append(task)
            elif state == "verifying" and unchanged and row["adler32"]:
                tmp = row["tmp_name"]
                tmp_st = self.dst.stat(tmp) if tmp else None
                if tmp_st is not None and tmp_st[0] == row["size"]:
                    keep_parts.add(tmp)
                    task.mode = "resume"
                elif dst_files.get(rel, (-1, 0))[0] == row["size"]:
                    task.mode = "adopt"
                tasks.append(task)
            elif state == "failed" and not first_pass and (row["next_attempt_at"] or 0) > now:
                result.files_failed += 1
                result.failures[rel] = str(row["last_error"])
            else:  # discovered, copying (interrupted), failed, verifying of a changed source
                tasks.append(task)
        # Temporary copies of a killed process: delete all but those to be resumed.
        for part in dst_list.parts:
            if part not in keep_parts:
                self.dst.remove(part)
        # Rows of files that vanished from the source in mid-transfer (not those of a
        # subtree that could not be listed: they are still there).
        hidden = tuple(src_list.unreadable)
        self.cat.vanished([
            row["id"] for rel, row in rows.items()
            if rel not in src_files and not rel.startswith(hidden)
            and row["state"] in ("copying", "verifying", "discovered")
        ])
        return tasks

    # -- one file -----------------------------------------------------------------------
    def _info(self, task: _Task, tmp: Optional[str]) -> Dict[str, Optional[str]]:
        return {
            "relpath": task.rel,
            "src_path": self.src.local_path(task.rel),
            "tmp_path": self.dst.local_path(tmp) if tmp else None,
        }

    def _begin(self, task: _Task, action: str, **values: Any) -> int:
        task.attempts = int(task.row.get("attempts") or 0) + 1
        task.row["attempts"] = task.attempts
        return self.cat.begin_attempt(task.file_id, task.attempts, action, **values)

    def _keep_mode(self, task: _Task, rel: str) -> None:
        """Gives the copy the source's permission bits (where both sides have them), and
        its owner always the right to read it (or checks could not re-read it)."""
        mode = self.src.mode(task.rel)
        if mode is not None:
            self.dst.chmod(rel, mode | 0o400)

    def _check(self, task: _Task) -> Optional[str]:
        """``--check-destination``: re-reads a done file at the destination; None if it
        is intact (recorded), else the damage (recorded: the file is then copied again)."""
        t0 = time.time()
        row = task.row
        damage = self.copier.check(task.rel, (int(row["size"]), str(row["adler32"]), str(row["sha256"])))
        if damage is None:
            self.cat.mark_checked([task.file_id], time.time())
            return None
        task.attempts = int(row.get("attempts") or 0) + 1
        row["attempts"] = task.attempts
        self.cat.record_damage(task.file_id, task.attempts, damage, t0)
        return damage

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
                nbytes, adler, sha, copy_s = self.copier.copy(task, tmp, self._info(task, tmp))
                copies = int(row.get("copies") or 0) + 1
                self.cat.set_state(task.file_id, state="verifying", size=nbytes, src_mtime=task.stat[1],
                                   adler32=adler, sha256=sha, copy_seconds=copy_s, copies=copies)
                row.update(copies=copies, size=nbytes, adler32=adler, sha256=sha, tmp_name=tmp, copy_seconds=copy_s)
                target = tmp
            except BaseException as e:
                if not isinstance(e, CatalogError):
                    self.cat.end_attempt(attempt_id, "failed", t0, nbytes, _msg(e))
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
                verify_s, validate_s, meta, problems = self.copier.verify(task, target, expect)
            except ChecksumMismatch as e:
                if task.mode == "copy":
                    raise
                # What a killed run left is not what it recorded: end this attempt and copy.
                self.cat.end_attempt(attempt_id, "failed", t0, 0, _msg(e) + "; copying again")
                if tmp is not None:
                    self.dst.remove(tmp)
                task.mode = "copy"
                attempt_id = -1
            if attempt_id >= 0:
                self._keep_mode(task, target)
                if tmp is not None:
                    if self.fault:
                        self.fault("rename", self._info(task, tmp))
                    self.dst.replace(tmp, task.rel)
                    if self.fault:
                        self.fault("renamed", self._info(task, None))
                now = time.time()
                total_s = now - t0 + (copy_s if task.mode != "copy" else 0.0)
                values = dict(
                    tmp_name=None, last_error=None, failures=0, next_attempt_at=None, finished_at=now,
                    verify_seconds=verify_s, validate_seconds=validate_s, total_seconds=total_s,
                    bytes_per_second=expect[0] / total_s if total_s > 0 else None, checked_at=now, **meta,
                )
                inside = (lambda: self.fault("commit", self._info(task, None))) if self.fault else None
                self.cat.record_done(task.file_id, values, problems if self.validate else None,
                                     (attempt_id, t0, nbytes), inside=inside)
        except BaseException as e:
            self.copier.drop_predecode(task)
            if tmp is not None:
                try:
                    self.dst.remove(tmp)
                except Exception:  # noqa: BLE001 - the destination may be gone
                    pass
            if not isinstance(e, CatalogError):
                self.cat.end_attempt(attempt_id, "failed", t0, nbytes, _msg(e))
            raise
        if attempt_id < 0:
            return self._attempt(task)
        return ("copied" if task.mode == "copy" else "recovered"), bool(meta.get("flagged")), nbytes

    def run_file(self, task: _Task, result: SyncResult) -> None:
        """The state machine of one file, with retries and backoff."""
        if task.mode == "check":
            if self._stop.is_set():
                return
            damage = self._check(task)
            if damage is None:
                with self._result_lock:
                    result.files_skipped += 1
                return
            with self._result_lock:
                result.files_damaged += 1
                result.damaged[task.rel] = damage
            if self.progress:
                self.progress("damaged", {"relpath": task.rel, "error": damage})
            task.mode = "copy"
        error = ""
        for k in range(self.retries):
            if self._stop.is_set():
                return
            try:
                outcome, flagged, nbytes = self._attempt(task)
            except (KeyboardInterrupt, SystemExit, CatalogError):
                raise
            except Exception as e:  # noqa: BLE001 - any failure is recorded and retried
                error = _msg(e)
                failures = int(task.row.get("failures") or 0) + 1
                task.row["failures"] = failures
                delay = self.backoff * 2 ** k
                self.cat.set_state(task.file_id, state="failed", tmp_name=None, last_error=error,
                                   failures=failures,
                                   next_attempt_at=time.time() + min(3600.0, self.backoff * 2 ** min(failures, 12)))
                task.row["tmp_name"] = None
                task.mode = "copy"
                if isinstance(e, Refused):
                    break  # not written, whatever the number of tries: the user must act
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
        sync_id = self.cat.start_sync(self.src.url, self.dst.url)
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
                self.cat.end_sync(sync_id, status, result.files_copied + result.files_recovered,
                                  result.files_skipped, result.files_failed, result.files_flagged,
                                  result.bytes_copied, result.seconds)
            except Exception:  # noqa: BLE001  # pragma: no cover - catalog gone
                pass
        return result


def _msg(e: BaseException) -> str:
    s = str(e) or type(e).__name__
    return s if isinstance(e, OSError) else f"{type(e).__name__}: {s}"


def _contains(a: str, b: str) -> bool:
    a, b = a.rstrip("/") + "/", b.rstrip("/") + "/"
    return a.startswith(b) or b.startswith(a)


def open_sites(
    src: PathOrURL,
    dst: PathOrURL,
    src_options: Optional[Mapping[str, Any]] = None,
    dst_options: Optional[Mapping[str, Any]] = None,
    create_dst: bool = True,
) -> Tuple[FileSystem, FileSystem]:
    """Opens and checks both sites; raises :class:`TransferError` naming the one that
    fails, or if one contains the other (resolved through symbolic links; checked before
    the destination is created)."""
    try:
        s = open_fs(os.fspath(src), src_options)
        s.check(create=False)
    except TransferError as e:
        raise TransferError(f"source {e}") from e.__cause__
    try:
        d = open_fs(os.fspath(dst), dst_options)
    except TransferError as e:
        raise TransferError(f"destination {e}") from e.__cause__
    if s.local and d.local and (_contains(s.url, d.url) or _contains(s.real(), d.real())):
        raise TransferError(f"source {s.url} and destination {d.url} must not contain each other")
    try:
        d.check(create=create_dst)
    except TransferError as e:
        raise TransferError(f"destination {e}") from e.__cause__
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
    check_destination: bool = False,
    follow_symlinks: bool = False,
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
        ``progress(outcome, info)`` after each file (outcome "copied", "recovered",
        "failed"; "damaged" when a check found a copy damaged, before it is recopied;
        "not_copied" for each source entry skipped, with its ``reason``).
    fault:
        Fault injection for tests (see :mod:`ams02.transfer._faults`); default
        ``$AMS02_TRANSFER_FAULT``.
    check_destination:
        Re-read every file already copied at the destination and compare its size,
        adler32 and sha256 with the catalog's; a damaged copy is recorded (an attempt
        ``check``/``damaged``, ``result.damaged``) and copied again. Without it, a file
        whose source is unchanged and whose copy has the recorded size is not read
        (the fast path). Costs one read of the destination.
    follow_symlinks:
        Follow symbolic links of the source that lead out of it, and links to
        directories (loops are listed once). Without it such links are not copied and
        are listed in ``result.not_copied`` (links to files inside the source are
        copied as files). Symbolic links at the destination are never written through.

    Returns a :class:`SyncResult`; ``result.ok`` is False if files were left failed.

    Raises
    ------
    TransferError
        A site or the catalog cannot be reached, the catalog fails during the sync
        (:class:`CatalogError`: disk full, server gone, no write permission), or another
        sync holds the destination's lock.
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
    dst_lock = d.lock()
    syncer: Optional[_Syncer] = None
    cat: Optional[Catalog] = None
    try:
        cat = Catalog.open(cat_url)
        cat.lock(d.url)
        cat.recover(d.url)
        syncer = _Syncer(
            s, d, cat, workers=workers, bucket=TokenBucket(rate) if rate else None,
            retries=retries, backoff=backoff, validate=validate, verify=verify, chunk_size=chunk_size,
            injector=injector, progress=progress, check_destination=check_destination,
            follow_symlinks=follow_symlinks,
        )
        total = SyncResult(s.url, d.url, cat.url)
        while True:
            r = syncer.run_pass(first_pass=total.passes == 0)
            total.passes += 1
            for k in ("files_copied", "files_recovered", "files_skipped", "files_flagged", "files_damaged",
                      "bytes_copied", "seconds"):
                setattr(total, k, getattr(total, k) + getattr(r, k))
            total.damaged.update(r.damaged)
            # failures and what is not copied: those of the last pass (a file that
            # failed, then succeeded, is fine)
            total.files_failed, total.failures, total.not_copied = r.files_failed, r.failures, r.not_copied
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
        if cat is not None:
            cat.close()
        d.unlock(dst_lock)
