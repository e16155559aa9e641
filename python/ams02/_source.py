"""Inputs beyond local paths: one layer that turns anything :func:`ams02.open` accepts into
something the native file can open.

Accepted inputs (:data:`Input`):

* a local path: ``str`` or ``os.PathLike`` (memory-mapped by the Rust core);
* a URL that fsspec understands: ``file://``, ``https://``, ``s3://``, ``root://`` (with
  fsspec-xrootd), ``memory://``, chains such as ``simplecache::https://...``. ``file://``
  URLs and chains that end in a local cache (``simplecache::``, ``filecache::``) become a
  local path and are memory-mapped; other URLs are read in large ranges (``chunk_size``,
  16 MiB by default), never byte by byte;
* a bytes-like object (``bytes``, ``bytearray``, ``memoryview``, a NumPy ``uint8`` array);
* a binary file object (anything with ``read``), read from its start if it can seek.

Data that is not a local file is copied once into memory the core owns, in chunks, so
the peak is the data plus one chunk. ``cache=DIR`` reads a URL through fsspec's
``simplecache`` into ``DIR`` (kept there: a second open reads the local copy).

A URL whose fsspec implementation is missing raises one :class:`ImportError` line naming
the package to install.
"""

from __future__ import annotations

import io
import os
import re
from dataclasses import dataclass
from typing import Any, Dict, Iterator, List, Optional, Tuple, Union

#: What :func:`ams02.open` accepts.
Input = Union[str, "os.PathLike[str]", bytes, bytearray, memoryview, Any]

#: Bytes per read of remote files and file objects.
CHUNK_SIZE = 16 * 2**20

# fsspec protocols and the package that implements them (when it is not fsspec itself).
_PACKAGES = {
    "s3": "s3fs",
    "s3a": "s3fs",
    "gs": "gcsfs",
    "gcs": "gcsfs",
    "root": "fsspec-xrootd",
    "http": "aiohttp",
    "https": "aiohttp",
    "sftp": "paramiko",
    "ssh": "paramiko",
    "abfs": "adlfs",
    "az": "adlfs",
    "adl": "adlfs",
    "hdfs": "pyarrow",
    "webhdfs": "requests",
    "github": "requests",
    "smb": "smbprotocol",
    "dropbox": "dropboxdrivefs",
    "oci": "ocifs",
}
_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)(://|::)")
_LOCAL_CACHES = ("simplecache", "filecache", "blockcache")


def is_url(obj: Any) -> bool:
    """Whether ``obj`` is a string naming an fsspec URL or chain (``proto://`` or
    ``proto::``); ``C:\\data`` style Windows paths are not URLs."""
    if not isinstance(obj, str):
        return False
    m = _URL.match(obj)
    return m is not None and len(m.group(1)) > 1


def protocols(url: str) -> List[str]:
    """The protocols of a URL or chain, outermost first: ``["simplecache", "https"]``."""
    out = []
    for part in url.split("::"):
        m = _URL.match(part + ("" if "://" in part else "::"))
        out.append(m.group(1).lower() if m else "file")
    return out


def fsspec_module() -> Any:
    """The fsspec module, or an ImportError naming it."""
    try:
        import fsspec
    except ImportError:
        raise ImportError("reading URLs needs fsspec: pip install fsspec") from None
    return fsspec


def missing_package(url: str, error: BaseException) -> ImportError:
    """One line naming the package that implements ``url``'s protocol."""
    for proto in protocols(url):
        if proto in _LOCAL_CACHES or proto in ("file", "local", "memory"):
            continue
        package = _PACKAGES.get(proto)
        if package is None:
            try:
                from fsspec.registry import known_implementations

                err = known_implementations.get(proto, {}).get("err")
            except ImportError:  # pragma: no cover
                err = None
            if err:
                return ImportError(f"{proto}:// URLs: {err}")
            return ImportError(f"no fsspec implementation for {proto}:// URLs ({error})")
        return ImportError(f"{proto}:// URLs need {package}: pip install {package}")
    return ImportError(str(error))  # pragma: no cover


def url_to_fs(url: str, storage_options: Optional[Dict[str, Any]] = None) -> Tuple[Any, str]:
    """``(filesystem, path)`` for a URL, with a missing implementation as one ImportError."""
    fsspec = fsspec_module()
    try:
        return fsspec.core.url_to_fs(url, **(storage_options or {}))
    except ImportError as e:
        raise missing_package(url, e) from None
    except ValueError as e:
        if "not known" in str(e) or "Protocol" in str(e):
            raise missing_package(url, e) from None
        raise


def _with_cache(
    url: str, cache: Optional[Union[str, "os.PathLike[str]"]], so: Dict[str, Any]
) -> Tuple[str, Dict[str, Any]]:
    if cache is None:
        return url, so
    if protocols(url)[0] in _LOCAL_CACHES:
        return url, so
    so = dict(so)
    so["simplecache"] = {**so.get("simplecache", {}), "cache_storage": os.fspath(cache)}
    return f"simplecache::{url}", so


@dataclass
class Opened:
    """What the native file opens: ``path`` (a local file) or ``chunks`` (bytes)."""

    name: str
    path: Optional[str] = None
    chunks: Optional[Iterator[bytes]] = None
    size: Optional[int] = None
    closer: Any = None

    def close(self) -> None:
        if self.closer is not None:
            self.closer.close()
            self.closer = None


def _buffer_chunks(view: memoryview, chunk: int) -> Iterator[bytes]:
    for i in range(0, len(view), chunk):
        yield view[i : i + chunk].tobytes()


def _reader_chunks(f: Any, chunk: int) -> Iterator[bytes]:
    while True:
        b = f.read(chunk)
        if not b:
            return
        if not isinstance(b, bytes):
            if isinstance(b, str):
                raise TypeError("the file object is open in text mode: open it with 'rb'")
            b = bytes(b)
        yield b


def describe(obj: Any) -> str:
    """The name error messages give for an input."""
    if isinstance(obj, (str, os.PathLike)):
        return os.fsdecode(os.fspath(obj))
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return f"<{type(obj).__name__} of {memoryview(obj).nbytes} bytes>"
    name = getattr(obj, "name", None)
    if isinstance(name, str) and name:
        return name
    return f"<{type(obj).__name__}>"


def resolve(
    obj: Input,
    *,
    storage_options: Optional[Dict[str, Any]] = None,
    cache: Optional[Union[str, "os.PathLike[str]"]] = None,
    chunk_size: int = CHUNK_SIZE,
) -> Opened:
    """Turns an input into an :class:`Opened` (see the module's docstring)."""
    if chunk_size <= 0:
        raise ValueError(f"chunk_size must be positive, not {chunk_size}")
    so = dict(storage_options or {})
    if isinstance(obj, os.PathLike) or (isinstance(obj, str) and not is_url(obj)):
        p = os.fsdecode(os.fspath(obj))
        return Opened(name=p, path=p)
    if isinstance(obj, str):
        url, so = _with_cache(obj, cache, so)
        chain = protocols(url)
        if chain[0] in ("file", "local") and len(chain) == 1:
            fs, path = url_to_fs(url, so)
            return Opened(name=obj, path=path)
        if chain[0] in _LOCAL_CACHES:
            fsspec = fsspec_module()
            try:
                local = fsspec.open_local(url, **so)
            except ImportError as e:
                raise missing_package(url, e) from None
            except ValueError as e:
                if "not known" in str(e):
                    raise missing_package(url, e) from None
                raise
            return Opened(name=obj, path=local if isinstance(local, str) else local[0])
        fs, path = url_to_fs(url, so)
        try:
            size = fs.size(path)
        except (FileNotFoundError, IsADirectoryError):
            raise
        except Exception:  # some servers do not say
            size = None
        # Large reads of their own: no read-ahead cache that would copy every byte again.
        f = fs.open(path, "rb", block_size=chunk_size, cache_type="none")
        return Opened(name=obj, chunks=_reader_chunks(f, chunk_size), size=size, closer=f)
    if isinstance(obj, (bytes, bytearray, memoryview)) or _is_buffer(obj):
        view = memoryview(obj)
        if view.ndim != 1 or view.itemsize != 1:
            view = view.cast("B") if view.c_contiguous else memoryview(view.tobytes())
        if isinstance(obj, bytes):
            return Opened(name=describe(obj), chunks=iter([obj]), size=len(obj))
        return Opened(name=describe(obj), chunks=_buffer_chunks(view, chunk_size), size=view.nbytes)
    if hasattr(obj, "read"):
        if isinstance(obj, io.TextIOBase):
            raise TypeError("the file object is open in text mode: open it with 'rb'")
        size = None
        try:
            if obj.seekable():
                obj.seek(0, io.SEEK_END)
                size = obj.tell()
                obj.seek(0)
        except (AttributeError, OSError, ValueError):
            size = None
        return Opened(name=describe(obj), chunks=_reader_chunks(obj, chunk_size), size=size)
    raise TypeError(
        "expected a path, an fsspec URL, a bytes-like object or a binary file object, "
        f"not {type(obj).__name__}"
    )


def _is_buffer(obj: Any) -> bool:
    if isinstance(obj, (str, os.PathLike)) or hasattr(obj, "read"):
        return False
    try:
        memoryview(obj)
    except TypeError:
        return False
    return True


def open_native(
    obj: Input,
    *,
    byte_order: str = "auto",
    threads: Optional[int] = None,
    mmap: bool = True,
    trd_map: Any = None,
    strict: bool = False,
    dialect: str = "auto",
    storage_options: Optional[Dict[str, Any]] = None,
    cache: Optional[Union[str, "os.PathLike[str]"]] = None,
) -> Tuple[Any, str]:
    """The native file for an input and the name it goes by."""
    from . import _native

    src = resolve(obj, storage_options=storage_options, cache=cache)
    if src.path is not None:
        raw = _native.RawFile(
            src.path,
            byte_order=byte_order,
            threads=threads,
            mmap=mmap,
            trd_map=trd_map,
            strict=strict,
            dialect=dialect,
        )
        return raw, src.name
    assert src.chunks is not None
    try:
        raw = _native.open_chunks(
            src.chunks,
            src.name,
            size_hint=src.size,
            byte_order=byte_order,
            threads=threads,
            trd_map=trd_map,
            strict=strict,
            dialect=dialect,
        )
    finally:
        src.close()
    return raw, src.name


# -- many inputs and outputs ----------------------------------------------------------------
def _has_magic(s: str) -> bool:
    return any(c in s for c in "*?[")


def expand_url(url: str, storage_options: Optional[Dict[str, Any]] = None) -> List[str]:
    """A URL's files: a glob pattern's matches or a directory's files (sorted, dot-files
    left out), or the URL itself; each as a URL with its protocol (and chain)."""
    chain = protocols(url)
    if any(p in _LOCAL_CACHES for p in chain):
        prefix, _, inner = url.rpartition("::")
        found = expand_url(inner, storage_options)
        return [f"{prefix}::{u}" for u in found]
    fs, path = url_to_fs(url, storage_options)
    if _has_magic(path):
        found = sorted(p for p in fs.glob(path) if not fs.isdir(p))
        if not found:
            raise FileNotFoundError(f"no files match {url!r}")
    elif fs.isdir(path):
        found = sorted(
            e["name"]
            for e in fs.ls(path, detail=True)
            if e.get("type") == "file" and not os.path.basename(e["name"].rstrip("/")).startswith(".")
        )
        if not found:
            raise FileNotFoundError(f"no files in directory {url!r}")
    else:
        return [url]
    return [fs.unstrip_protocol(p) for p in found]


def output_fs(
    target: Union[str, "os.PathLike[str]"], storage_options: Optional[Dict[str, Any]] = None
) -> Tuple[Any, str, bool]:
    """``(filesystem or None, path, is_url)`` of an output directory: a local folder, or an
    fsspec URL written through its filesystem (``s3://bucket/out`` writes to S3, never to
    a local folder named ``s3:``)."""
    if isinstance(target, str) and is_url(target):
        fs, path = url_to_fs(target, storage_options)
        if (
            getattr(fs, "protocol", None) in ("file", ("file", "local"))
            or type(fs).__name__ == "LocalFileSystem"
        ):
            return None, path, False
        return fs, path, True
    return None, os.fspath(target), False
