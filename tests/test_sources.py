"""Inputs beyond local paths (ams02._source): every kind opens the same file and gives
identical tables; URLs are read in large ranges; missing fsspec backends are named; outputs
go to fsspec URLs. Remote reads run against a local HTTP server on 127.0.0.1 (with HTTP
range requests) and fsspec's memory filesystem."""

from __future__ import annotations

import http.server
import importlib.util
import io
import os
import threading
from pathlib import Path
from typing import Dict, List

import numpy as np
import pytest

import ams02
from ams02 import _source

fsspec = pytest.importorskip("fsspec")

TABLES = ("events", "trd_hits", "trd_raw", "fragments")


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("src")
    p = d / "run.dat"
    ams02.simulate(p, 700, seed=21, raw_fraction=0.05)
    # a damaged copy, so that errors() has rows to compare
    data = bytearray(p.read_bytes())
    for i in range(2000, len(data), 40_000):
        data[i] ^= 0x33
    (d / "bad.dat").write_bytes(bytes(data))
    return d / "bad.dat"


def _tables(f: ams02.File) -> Dict[str, Dict[str, np.ndarray]]:
    out = {n: f.tables([n])[n] for n in TABLES}
    out["blocks"] = f.blocks()
    out["errors"] = f.errors()
    return out


def _same(a, b) -> None:
    assert list(a) == list(b)
    for t in a:
        assert list(a[t]) == list(b[t]), t
        for c in a[t]:
            assert a[t][c].dtype == b[t][c].dtype, (t, c)
            np.testing.assert_array_equal(a[t][c], b[t][c], err_msg=f"{t}.{c}")


@pytest.fixture(scope="module")
def reference(run):
    with ams02.open(str(run)) as f:
        t = _tables(f)
    assert len(t["errors"]["kind"]) > 0 and len(t["trd_raw"]["adc"]) > 0
    return t


class _RangeHandler(http.server.BaseHTTPRequestHandler):
    """Serves files of one folder with HEAD, GET and single ``Range: bytes=a-b`` requests,
    counting GET requests per path."""

    root: Path
    gets: List[str]

    def log_message(self, *args):  # quiet
        pass

    def _file(self):
        p = self.root / self.path.lstrip("/").split("?")[0]
        return p if p.is_file() else None

    def do_HEAD(self):
        p = self._file()
        if p is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(p.stat().st_size))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()

    def do_GET(self):
        p = self._file()
        if p is None:
            self.send_error(404)
            return
        self.gets.append(self.path)
        data = p.read_bytes()
        rng = self.headers.get("Range")
        if rng and rng.startswith("bytes="):
            a, _, b = rng[6:].partition("-")
            start = int(a)
            stop = min(int(b) + 1 if b else len(data), len(data))
            body = data[start:stop]
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{stop - 1}/{len(data)}")
        else:
            body = data
            self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def http_root(run):
    pytest.importorskip("aiohttp")
    gets: List[str] = []
    handler = type("H", (_RangeHandler,), {"root": run.parent, "gets": gets})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", gets
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def memory_run(run):
    fs = fsspec.filesystem("memory")
    fs.pipe("/ams02-test/runs/bad.dat", run.read_bytes())
    fs.pipe("/ams02-test/runs/.catalog.sqlite", b"not AMS data")
    yield "memory://ams02-test/runs/bad.dat"
    fs.rm("/ams02-test", recursive=True)


def _inputs(run: Path):
    data = run.read_bytes()
    return {
        "str": lambda: str(run),
        "Path": lambda: run,
        "file URL": lambda: run.as_uri(),
        "bytes": lambda: data,
        "bytearray": lambda: bytearray(data),
        "memoryview": lambda: memoryview(data),
        "numpy uint8": lambda: np.frombuffer(data, dtype=np.uint8),
        "BytesIO": lambda: io.BytesIO(data),
        "open file": lambda: open(run, "rb"),
    }


@pytest.mark.parametrize(
    "kind",
    ["str", "Path", "file URL", "bytes", "bytearray", "memoryview", "numpy uint8", "BytesIO", "open file"],
)
def test_every_local_input_kind_gives_identical_tables(run, reference, kind):
    obj = _inputs(run)[kind]()
    try:
        with ams02.open(obj) as f:
            _same(_tables(f), reference)
            assert f.size == run.stat().st_size
    finally:
        if hasattr(obj, "close"):
            obj.close()


def test_file_object_is_read_from_its_start_and_names_in_errors(run, reference):
    with open(run, "rb") as fh:
        fh.seek(1234)
        with ams02.open(fh) as f:
            _same(_tables(f), reference)
            assert f.path == str(run)
    with pytest.raises(TypeError, match="text mode"):
        with open(run, encoding="latin-1") as text:
            ams02.open(text)
    with pytest.raises(ams02.FormatError, match="bytes of 64 bytes"):
        ams02.open(b"\x01" * 64, strict=True)
    with pytest.raises(TypeError, match="bytes-like"):
        ams02.open(12345)  # type: ignore[arg-type]


def test_strict_and_options_reach_buffers(run):
    data = run.read_bytes()
    with pytest.raises(ams02.FormatError) as by_path:
        ams02.open(run, strict=True).events()
    with pytest.raises(ams02.FormatError) as by_bytes:
        ams02.open(data, strict=True).events()
    assert str(by_bytes.value).replace("<bytes of %d bytes>" % len(data), str(run)) == str(by_path.value)
    with ams02.open(data, byte_order="little", threads=1) as f:
        assert f.threads == 1 and f.byte_order == "little"


def test_memory_filesystem(memory_run, reference):
    with ams02.open(memory_run) as f:
        _same(_tables(f), reference)
    # a directory URL: the dot-file is left out
    got = ams02.concatenate("memory://ams02-test/runs", "events", progress=False)
    np.testing.assert_array_equal(got["offset"], reference["events"]["offset"])
    assert set(got["file_index"].tolist()) == {0}
    got = ams02.concatenate("memory://ams02-test/runs/*.dat", "trd_hits", progress=False)
    np.testing.assert_array_equal(got["amplitude"], reference["trd_hits"]["amplitude"])


def test_http_reads_in_large_ranges(http_root, run, reference):
    base, gets = http_root
    del gets[:]
    url = f"{base}/{run.name}"
    with ams02.open(url) as f:
        _same(_tables(f), reference)
        assert f.path == url
    size = run.stat().st_size
    assert 1 <= len(gets) <= size // _source.CHUNK_SIZE + 2  # whole chunks, not byte by byte
    # small chunks: still one request per chunk
    del gets[:]
    src = _source.resolve(url, chunk_size=64 * 1024)
    raw = ams02._native.open_chunks(src.chunks, src.name, size_hint=src.size)
    src.close()
    assert raw.n_events == 700 and raw.name == url
    assert len(gets) == -(-size // (64 * 1024))


def test_http_through_a_local_cache(http_root, run, reference, tmp_path):
    base, gets = http_root
    url = f"{base}/{run.name}"
    del gets[:]
    with ams02.open(url, cache=tmp_path / "cache") as f:
        _same(_tables(f), reference)
    cached = [
        p for p in (tmp_path / "cache").rglob("*") if p.is_file() and p.stat().st_size == run.stat().st_size
    ]
    assert len(cached) == 1
    n = len(gets)
    assert n >= 1
    with ams02.open(url, cache=tmp_path / "cache") as f:  # the second open reads the copy
        _same(_tables(f), reference)
    assert len(gets) == n
    chain = f"simplecache::{url}"
    with ams02.open(chain, storage_options={"simplecache": {"cache_storage": str(tmp_path / "c2")}}) as f:
        _same(_tables(f), reference)


def test_http_in_iterate_and_dask_partitions(http_root, run, reference):
    base, _ = http_root
    url = f"{base}/{run.name}"
    batches = list(ams02.iterate([url, str(run)], step_size=300, tables=("events",), progress=False))
    assert [len(b["events"]["offset"]) for b in batches] == [300, 300, 100, 300, 300, 100]
    whole = ams02.concatenate([url, run.read_bytes()], "events", progress=False)
    np.testing.assert_array_equal(whole["file_index"], np.repeat([0, 1], 700))


@pytest.mark.parametrize(
    "url, package",
    [
        ("s3://ams02-bucket/run.dat", "s3fs"),
        ("root://eos.example//ams/run.dat", "fsspec-xrootd"),
        ("gs://b/run.dat", "gcsfs"),
    ],
)
def test_missing_fsspec_implementation_is_one_line(url, package):
    module = {"s3fs": "s3fs", "fsspec-xrootd": "fsspec_xrootd", "gcsfs": "gcsfs"}[package]
    if importlib.util.find_spec(module) is not None:
        pytest.skip(f"{module} is installed")
    with pytest.raises(ImportError) as e:
        ams02.open(url)
    msg = str(e.value)
    assert package in msg and "pip install" in msg and "\n" not in msg


def test_to_parquet_writes_to_a_url(run, tmp_path, monkeypatch):
    pq = pytest.importorskip("pyarrow.parquet")
    monkeypatch.chdir(tmp_path)
    fs = fsspec.filesystem("memory")
    try:
        out = ams02.to_parquet([run], "memory://ams02-out/pq", tables=("events", "trd_hits"), progress=False)
        assert list(out) == ["events", "trd_hits"]
        assert all(
            u.startswith("memory://") and u.endswith(f"/ams02-out/pq/{t}.parquet") for t, u in out.items()
        )
        assert not (tmp_path / "memory:").exists() and os.listdir(tmp_path) == []
        local = ams02.to_parquet([run], tmp_path / "local", tables=("events", "trd_hits"), progress=False)
        for t in ("events", "trd_hits"):
            with fsspec.open(out[t], "rb") as fh:
                remote = pq.read_table(fh)
            assert remote.equals(pq.read_table(local[t]))
            assert remote.num_rows > 0
    finally:
        if fs.exists("/ams02-out"):
            fs.rm("/ams02-out", recursive=True)


def test_protocols_and_urls():
    assert _source.is_url("https://x/y") and _source.is_url("simplecache::s3://b/k")
    assert not _source.is_url("C:\\data\\run.dat") and not _source.is_url("run.dat")
    assert _source.protocols("simplecache::https://h/f") == ["simplecache", "https"]
