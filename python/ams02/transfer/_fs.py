"""Where files are: a local directory (plain ``os`` calls, no extra install) or an fsspec URL
(``sftp://``, ``s3://``, ``root://``, ... when fsspec and the backend are installed).

Paths inside a tree are *relative paths* with ``/`` separators. A listing
(:class:`Listing`) sorts what it finds: data files, the transfer system's own files (the
default catalog and its journals, the locks, temporary copies
``.NAME.ams02-part-TOKEN``: never listed as data), names reserved by the transfer system
that are not its own (any other ``.ams02*`` or ``*.ams02-part-*``: listed as not copied,
with the reason), symbolic links that are not followed (out of the tree, to a directory,
dangling: not copied, with the reason, unless ``follow_symlinks``) and directories that
cannot be listed (their subtree fails alone).
"""

from __future__ import annotations

import datetime as _dt
import errno
import os
import posixpath
import re
import secrets
import socket
import stat as _stat
import sys
import threading
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Dict, Mapping, Optional, Tuple

#: Marker in the names of temporary copies: ``DIR/.NAME.ams02-part-TOKEN``.
PART_MARK = ".ams02-part-"

#: File name of the default SQLite catalog, inside the destination directory.
DEFAULT_NAME = ".ams02-catalog.sqlite"

#: The lock a sync holds on a local destination (in its root, resolved through symlinks).
LOCK_NAME = ".ams02-sync.lock"

#: The transfer system's own files in a tree's root: never data, never reported.
OWN_NAMES = frozenset(
    [DEFAULT_NAME, LOCK_NAME] + [DEFAULT_NAME + x for x in ("-wal", "-shm", "-journal", ".lock")]
)

_PART_RE = re.compile(r"^\..+" + re.escape(PART_MARK) + r"[0-9a-f]{8}$", re.S)

Stat = Tuple[int, float]  # (size in bytes, mtime in Unix seconds)


class TransferError(OSError):
    """A transfer could not be set up or carried out (unreachable site, bad URL, missing
    optional dependency, another sync holding the lock). The message says what and where."""


class Refused(OSError):
    """A file the transfer will not write (a symbolic link on its way at the destination):
    it fails at once, without retries."""


def lock_file(fd: int, busy: str) -> int:
    """Takes an exclusive ``flock`` on the open lock file ``fd`` and writes who holds it;
    if another process holds it, closes ``fd`` and raises :class:`TransferError` with
    ``busy`` and the holder. (The one lock mechanism of the destination and the catalog.)"""
    import fcntl  # POSIX only: imported where needed, so ams02 imports on Windows

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        try:
            other = os.pread(fd, 100, 0).decode(errors="replace").strip()
        except OSError:  # pragma: no cover
            other = ""
        os.close(fd)
        raise TransferError(busy + (f" ({other})" if other else "")) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}".encode(), 0)
    return fd


def unlock_file(fd: Optional[int]) -> None:
    """Releases and closes a lock taken by :func:`lock_file` (nothing for None)."""
    if fd is None:
        return
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def display(name: str) -> str:
    """A name as it can be printed: bytes that are not UTF-8 (kept by Python as surrogate
    escapes) shown as ``\\xNN``."""
    try:
        name.encode("utf-8")
        return name
    except UnicodeEncodeError:
        return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def is_url(path: str) -> bool:
    """Whether ``path`` is a URL with a protocol (``sftp://...``) rather than a local path."""
    return "://" in path and not path.startswith("file://")


def is_internal(name: str) -> bool:
    """Whether a file name is reserved by the transfer system (``.ams02*``, ``*.ams02-part-*``)."""
    return name.startswith(".ams02") or PART_MARK in name


def classify(name: str, root: bool) -> str:
    """What a file name is: "part" (a temporary copy), "own" (the catalog, its journals, a
    lock: only in a tree's root), "reserved" (another ``.ams02*`` or ``*.ams02-part-*``
    name: never copied, reported) or "data"."""
    if _PART_RE.match(name):
        return "part"
    if root and name in OWN_NAMES:
        return "own"
    return "reserved" if is_internal(name) else "data"


RESERVED = "the name is reserved by ams02 sync (.ams02*, *.ams02-part-*): not copied"


@dataclass
class Listing:
    """What a walk of a tree found (relative paths)."""

    files: Dict[str, "Stat"] = field(default_factory=dict)  #: data files: (size, mtime)
    parts: Dict[str, "Stat"] = field(default_factory=dict)  #: temporary copies
    not_copied: Dict[str, str] = field(default_factory=dict)  #: name -> why it is not copied
    unreadable: Dict[str, str] = field(default_factory=dict)  #: "DIR/" -> the error listing it

    def add(self, rel: str, name: str, st: "Stat", root: bool) -> None:
        """Sorts one regular file by its name."""
        kind = classify(name, root)
        if kind == "data":
            self.files[rel] = st
        elif kind == "part":
            self.parts[rel] = st
        elif kind == "reserved":
            self.not_copied[rel] = RESERVED


def part_name(rel: str) -> str:
    """A new temporary name beside ``rel``: ``DIR/.NAME.ams02-part-TOKEN``."""
    head, tail = posixpath.split(rel)
    return posixpath.join(head, f".{tail}{PART_MARK}{secrets.token_hex(4)}")


def _mtime(info: Mapping[str, Any]) -> float:
    """Modification time from an fsspec info dict (backends name and type it differently)."""
    for key in ("mtime", "LastModified", "last_modified", "modified", "created", "time"):
        v = info.get(key)
        if v is None:
            continue
        if isinstance(v, _dt.datetime):
            if v.tzinfo is None:
                v = v.replace(tzinfo=_dt.timezone.utc)
            return v.timestamp()
        if isinstance(v, str):
            try:
                return _dt.datetime.fromisoformat(v.replace("Z", "+00:00")).timestamp()
            except ValueError:
                continue
        try:
            return float(v)
        except (TypeError, ValueError):
            continue
    return 0.0


class FileSystem:
    """The operations the transfer needs on one tree (a directory or a URL)."""

    url: str  #: the root, normalised (an absolute local path or a URL without trailing /)
    local: bool  #: whether the tree is a local directory

    def check(self, create: bool) -> None:
        """Raises :class:`TransferError` if the root cannot be reached (created if ``create``)."""
        raise NotImplementedError

    def listing(self, follow_symlinks: bool = False) -> Listing:
        """Every file under the root, sorted (see :class:`Listing`)."""
        raise NotImplementedError

    def walk(self) -> Dict[str, Stat]:
        """Every data file under the root: relative path -> (size, mtime)."""
        return self.listing().files

    def list_parts(self) -> Dict[str, Stat]:
        """Temporary copies left under the root (by a process that was killed)."""
        return self.listing().parts

    def mode(self, rel: str) -> Optional[int]:
        """The permission bits (0o777) of a file, where the tree has them."""
        return None

    def chmod(self, rel: str, mode: int) -> None:
        """Sets the permission bits of a file, where the tree has them."""

    def lock(self) -> Optional[int]:
        """Takes the lock that lets one sync at a time write into this tree (local trees:
        a ``flock`` on ``ROOT/.ams02-sync.lock``, ROOT resolved through symbolic links);
        returns a handle for :meth:`unlock` (None where the tree cannot be locked).
        Raises :class:`TransferError` if another process holds it."""
        return None

    def unlock(self, handle: Optional[int]) -> None:
        """Releases a lock taken by :meth:`lock`."""

    def real(self) -> str:
        """The root resolved through symbolic links (its URL for remote trees)."""
        return self.url

    def stat(self, rel: str) -> Optional[Stat]:
        """(size, mtime) of a file, or None if there is none."""
        raise NotImplementedError

    def open_read(self, rel: str) -> BinaryIO:
        """Opens a file for reading (binary)."""
        raise NotImplementedError

    def open_new(self, rel: str) -> BinaryIO:
        """Creates a file for writing (binary), with its parent directories."""
        raise NotImplementedError

    def finish(self, f: BinaryIO) -> None:
        """Flushes a file opened by :meth:`open_new` to stable storage and closes it."""
        raise NotImplementedError

    def replace(self, rel_from: str, rel_to: str) -> None:
        """Renames ``rel_from`` to ``rel_to``, replacing it, atomically where the backend can."""
        raise NotImplementedError

    def remove(self, rel: str) -> None:
        """Deletes a file; a missing file is not an error."""
        raise NotImplementedError

    def local_path(self, rel: str) -> Optional[str]:
        """The local path of a file, or None for remote trees."""
        return None

    def full(self, rel: str) -> str:
        """The path or URL of a file, for messages and the catalog."""
        return self.url.rstrip("/") + "/" + rel



def _load_sync_file_range() -> Any:
    """Linux ``sync_file_range(2)`` through ctypes (None elsewhere): starts the writeback
    of a written range without waiting, so the disk works while the copy goes on and the
    final fsync has little left to do."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes
        import ctypes.util

        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        fn = libc.sync_file_range
        fn.argtypes = (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)
        fn.restype = ctypes.c_int
        return fn
    except (OSError, AttributeError):  # pragma: no cover
        return None


_sync_file_range = _load_sync_file_range()
_SYNC_FILE_RANGE_WRITE = 2


def start_writeback(f: Any, offset: int, nbytes: int) -> None:
    """Asks the kernel to start writing ``nbytes`` at ``offset`` of a local file to disk
    (no wait; a no-op where unsupported)."""
    if _sync_file_range is not None:
        _sync_file_range(f.fileno(), offset, nbytes, _SYNC_FILE_RANGE_WRITE)


#: ``copy_file_range(2)`` errors meaning "not supported here" (old kernel, another file
#: system, a special file): the caller copies through a buffer instead.
_CFR_UNSUPPORTED = frozenset(
    e for e in (
        getattr(errno, name, None)
        for name in ("EXDEV", "ENOSYS", "EOPNOTSUPP", "ENOTSUP", "EINVAL", "EPERM", "ETXTBSY", "EBADF")
    ) if e is not None
)


def copy_range(fin: int, fout: int, nbytes: int) -> Optional[int]:
    """Copies up to ``nbytes`` from file descriptor ``fin`` to ``fout`` at their current
    offsets inside the kernel (``os.copy_file_range``, no user-space buffer); returns the
    bytes copied (0 at the end of ``fin``), or None when the system cannot do it for these
    files (no ``copy_file_range``, or an error meaning "unsupported"), so that the caller
    falls back to reading and writing. Other errors (ENOSPC, EIO, ...) are raised."""
    cfr = getattr(os, "copy_file_range", None)
    if cfr is None:
        return None
    try:
        return int(cfr(fin, fout, nbytes))
    except OSError as e:
        if e.errno in _CFR_UNSUPPORTED:
            return None
        raise


class LocalFS(FileSystem):
    """A local directory, through ``os`` (fsync, atomic ``rename``, directory fsync)."""

    def __init__(self, path: str) -> None:
        if path.startswith("file://"):
            path = path[len("file://") :]
        self.url = os.path.abspath(os.path.expanduser(path))
        self.local = True

    def _p(self, rel: str) -> str:
        return os.path.join(self.url, *rel.split("/"))

    def check(self, create: bool) -> None:
        if os.path.isdir(self.url):
            if create and not os.access(self.url, os.W_OK | os.X_OK):
                raise TransferError(f"{self.url}: not reachable: the directory is not writable")
            return
        if not create:
            if os.path.exists(self.url):
                raise TransferError(f"{self.url}: not reachable: not a directory")
            raise TransferError(f"{self.url}: not reachable: no such directory")
        try:
            os.makedirs(self.url, exist_ok=True)
        except OSError as e:
            raise TransferError(f"{self.url}: not reachable: {e.strerror or e}") from e

    def real(self) -> str:
        return os.path.realpath(self.url)

    def listing(self, follow_symlinks: bool = False) -> Listing:
        out = Listing()
        root_real = self.real()
        seen = {root_real}  # directories listed (resolved): a followed link loops no more
        stack = [""]
        while stack:
            rel_dir = stack.pop()
            path = self._p(rel_dir) if rel_dir else self.url
            try:
                it = os.scandir(path)
            except FileNotFoundError:
                continue
            except OSError as err:  # the subtree fails alone
                if not rel_dir:
                    raise TransferError(f"{self.url}: not reachable: {err.strerror or err}") from err
                out.unreadable[rel_dir + "/"] = f"{path}: cannot be listed: {err.strerror or err}"
                continue
            with it:
                for e in it:
                    rel = f"{rel_dir}/{e.name}" if rel_dir else e.name
                    try:
                        if e.is_symlink():
                            st = self._link(e.path, rel, root_real, follow_symlinks, seen, stack, out)
                            if st is None:
                                continue
                        elif e.is_dir(follow_symlinks=False):
                            if follow_symlinks:
                                real = os.path.realpath(e.path)
                                if real in seen:
                                    continue
                                seen.add(real)
                            stack.append(rel)
                            continue
                        elif e.is_file(follow_symlinks=False):
                            st = e.stat(follow_symlinks=False)
                        else:
                            continue
                    except FileNotFoundError:
                        continue
                    except OSError as err:
                        out.unreadable[rel] = f"{e.path}: cannot be read: {err.strerror or err}"
                        continue
                    out.add(rel, e.name, (st.st_size, st.st_mtime_ns / 1e9), root=not rel_dir)
        return out

    @staticmethod
    def _link(
        path: str, rel: str, root_real: str, follow: bool, seen: set, stack: list, out: Listing
    ) -> Optional[os.stat_result]:
        """A symbolic link met by the walk: the stat of the file it names if it is to be
        copied as that file, else None (queued if a directory to follow, or reported)."""
        target = os.path.realpath(path)
        inside = target == root_real or target.startswith(root_real.rstrip(os.sep) + os.sep)
        hint = " (not followed; --follow-symlinks follows it)"
        try:
            st = os.stat(path)
        except OSError:
            out.not_copied[rel] = f"a symbolic link to nothing ({os.readlink(path)})"
            return None
        if _stat.S_ISDIR(st.st_mode):
            if follow and target not in seen:
                seen.add(target)
                stack.append(rel)
            elif not follow and not inside:
                out.not_copied[rel] = f"a symbolic link to a directory out of the source, {target}" + hint
            # a link to a directory inside the tree: its files are listed under their own name
            return None
        if not _stat.S_ISREG(st.st_mode):
            return None
        if not follow and not inside:
            out.not_copied[rel] = f"a symbolic link out of the source, to {target}" + hint
            return None
        return st

    def stat(self, rel: str) -> Optional[Stat]:
        try:
            st = os.stat(self._p(rel))
        except (FileNotFoundError, NotADirectoryError):
            return None
        return (st.st_size, st.st_mtime_ns / 1e9)

    def open_read(self, rel: str) -> BinaryIO:
        f = open(self._p(rel), "rb", buffering=0)
        try:
            os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_SEQUENTIAL)
        except (AttributeError, OSError):  # pragma: no cover - not on every OS
            pass
        return f

    def _no_link_on_the_way(self, rel: str) -> None:
        """Raises :class:`Refused` if a directory on the way to ``rel`` (under the root) is
        a symbolic link: writing through it would write outside the destination."""
        cur = self.url
        for comp in rel.split("/")[:-1]:
            cur = os.path.join(cur, comp)
            if os.path.islink(cur):
                raise Refused(
                    errno.ELOOP,
                    f"{cur} is a symbolic link at the destination: not written through "
                    f"(it would write outside {self.url}); replace it by a directory",
                )

    def open_new(self, rel: str) -> BinaryIO:
        self._no_link_on_the_way(rel)
        p = self._p(rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        self._no_link_on_the_way(rel)  # made by someone else meanwhile?
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
        return open(fd, "wb", buffering=0)

    def mode(self, rel: str) -> Optional[int]:
        try:
            return _stat.S_IMODE(os.stat(self._p(rel)).st_mode) & 0o777
        except OSError:
            return None

    def chmod(self, rel: str, mode: int) -> None:
        os.chmod(self._p(rel), mode)

    def lock(self) -> Optional[int]:
        path = os.path.join(self.real(), LOCK_NAME)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
        return lock_file(fd, f"another ams02 sync is writing into {self.real()}")

    def unlock(self, handle: Optional[int]) -> None:
        unlock_file(handle)

    def finish(self, f: BinaryIO) -> None:
        try:
            f.flush()
            os.fsync(f.fileno())
        finally:
            f.close()

    def replace(self, rel_from: str, rel_to: str) -> None:
        dst = self._p(rel_to)
        os.replace(self._p(rel_from), dst)
        _fsync_dir(os.path.dirname(dst))

    def remove(self, rel: str) -> None:
        try:
            os.unlink(self._p(rel))
        except FileNotFoundError:
            pass

    def local_path(self, rel: str) -> Optional[str]:
        return self._p(rel)

    def full(self, rel: str) -> str:
        return self._p(rel)


def _fsync_dir(path: str) -> None:
    """Makes a rename durable: fsync the directory that holds the new name."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:  # pragma: no cover - e.g. a platform without directory fds
        return
    try:
        os.fsync(fd)
    except OSError as e:  # pragma: no cover
        if e.errno not in (errno.EINVAL, errno.EBADF):
            raise
    finally:
        os.close(fd)


class FsspecFS(FileSystem):
    """A tree behind an fsspec URL (sftp://, s3://, root://, ...).

    ``finish`` flushes (and fsyncs where the backend's file has ``fsync``) and closes;
    ``replace`` is the backend's ``mv``: a POSIX rename on sftp (atomic), copy-and-delete
    on object stores (where the final object still appears whole, never partly written).
    """

    def __init__(self, url: str, options: Optional[Mapping[str, Any]] = None) -> None:
        self.url = url.rstrip("/")
        self.local = False
        self._options = dict(options or {})
        self._threads = threading.local()
        try:
            import fsspec  # noqa: F401
        except ImportError as e:
            raise TransferError(
                f"{url}: URLs need fsspec (and its backend for this protocol): "
                "pip install 'ams02[transfer]'"
            ) from e
        self.root = self._connect()[1].rstrip("/") or "/"

    def _connect(self) -> Tuple[Any, str]:
        # One file system object (so one connection) per thread: clients such as
        # paramiko's SFTP client deadlock when threads share one with pipelined requests.
        from fsspec.core import url_to_fs

        try:
            fs, root = url_to_fs(self.url, skip_instance_cache=True, **self._options)
        except ImportError as e:
            raise TransferError(f"{self.url}: the fsspec backend is not installed: {e}") from e
        except Exception as e:  # noqa: BLE001 - any backend's connection error
            raise TransferError(f"{self.url}: not reachable: {_describe(e)}") from e
        self._threads.fs = fs
        return fs, root

    @property
    def fs(self) -> Any:
        """This thread's fsspec file system."""
        fs = getattr(self._threads, "fs", None)
        return fs if fs is not None else self._connect()[0]

    def _p(self, rel: str) -> str:
        return posixpath.join(self.root, rel) if rel else self.root

    def check(self, create: bool) -> None:
        try:
            if self.fs.isdir(self.root):
                return
            if not create:
                raise TransferError(f"{self.url}: not reachable: no such directory")
            self.fs.makedirs(self.root, exist_ok=True)
        except TransferError:
            raise
        except Exception as e:  # noqa: BLE001
            raise TransferError(f"{self.url}: not reachable: {_describe(e)}") from e

    def listing(self, follow_symlinks: bool = False) -> Listing:
        out = Listing()
        try:
            found = self.fs.find(self.root, detail=True)
        except FileNotFoundError:
            return out
        except Exception as e:  # noqa: BLE001 - any backend's error
            raise TransferError(f"{self.url}: not reachable: {_describe(e)}") from e
        prefix = self.root.rstrip("/") + "/"
        for path, info in found.items():
            if info.get("type", "file") != "file":
                continue
            path = self.fs._strip_protocol(path)
            rel = path[len(prefix) :] if path.startswith(prefix) else path.lstrip("/")
            out.add(rel, posixpath.basename(rel), (int(info.get("size") or 0), _mtime(info)), root="/" not in rel)
        return out

    def stat(self, rel: str) -> Optional[Stat]:
        try:
            info = self.fs.info(self._p(rel))
        except FileNotFoundError:
            return None
        except OSError as e:
            if e.errno == errno.ENOENT:
                return None
            raise
        if info.get("type", "file") != "file":
            return None
        return (int(info.get("size") or 0), _mtime(info))

    def open_read(self, rel: str) -> BinaryIO:
        f = self.fs.open(self._p(rel), "rb")
        prefetch = getattr(f, "prefetch", None)  # paramiko (sftp): pipeline the reads
        if callable(prefetch):
            try:
                prefetch(max_concurrent_requests=64)
            except TypeError:  # pragma: no cover - older paramiko
                prefetch()
        return f  # type: ignore[no-any-return]

    def open_new(self, rel: str) -> BinaryIO:
        parent = posixpath.dirname(self._p(rel))
        try:
            self.fs.makedirs(parent, exist_ok=True)
        except Exception:  # noqa: BLE001 - object stores have no directories
            pass
        f = self.fs.open(self._p(rel), "wb")
        pipelined = getattr(f, "set_pipelined", None)  # paramiko (sftp): do not wait per write
        if callable(pipelined):
            pipelined(True)
        return f  # type: ignore[no-any-return]

    def finish(self, f: BinaryIO) -> None:
        try:
            f.flush()
            fs = getattr(f, "fsync", None)
            if callable(fs):
                try:
                    fs()
                except (OSError, NotImplementedError, IOError):  # pragma: no cover
                    pass
        finally:
            f.close()

    def replace(self, rel_from: str, rel_to: str) -> None:
        self.fs.mv(self._p(rel_from), self._p(rel_to))

    def remove(self, rel: str) -> None:
        try:
            self.fs.rm_file(self._p(rel))
        except FileNotFoundError:
            pass
        except OSError as e:
            if e.errno != errno.ENOENT:
                raise

    def local_path(self, rel: str) -> Optional[str]:
        proto = self.fs.protocol
        protos = (proto,) if isinstance(proto, str) else tuple(proto)
        return self._p(rel) if "file" in protos or "local" in protos else None


def _describe(e: BaseException) -> str:
    s = str(e) or type(e).__name__
    if isinstance(e, OSError) and e.strerror and e.strerror not in s:
        s = f"{e.strerror}: {s}"
    return s


def open_fs(url: str, options: Optional[Mapping[str, Any]] = None) -> FileSystem:
    """The file system of a local path (no extra install) or an fsspec URL."""
    if not isinstance(url, str):
        url = os.fspath(url)
    if not url:
        raise TransferError("an empty path is not a directory")
    if is_url(url):
        return FsspecFS(url, options)
    return LocalFS(url)
