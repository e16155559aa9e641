"""ams02.transfer, issue 14: no password shown, one bad file or directory never aborts a
sync, damage at the destination found (``--check-destination``), catalog failures as one
line with exit status 2, read-only catalogs, the destination lock, symlinks, reserved
names, mode bits, interrupted attempts and nested sites.

Each test here failed before its fix. The PostgreSQL cases run when $AMS02_TEST_PG_URL
names a server (scripts/pg_test_server.sh).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Iterator

import pytest

import ams02
import ams02.transfer as tr
from ams02.transfer import cli as tcli
from ams02.transfer._catalog import Catalog, redact
from ams02.transfer._faults import flip_byte
from test_transfer import (  # noqa: F401
    SECRETS,
    _pg_database,
    assert_no_secret,
    attempts_of,
    backend,
    by_rel,
    data_files,
    make_runs,
    no_secret_in_output,
    parts,
    pg_base,
    pg_url,
    rows,
    run_cli,
)


def main_cli(capfd, *args: str) -> tuple:
    """Runs ``ams02 sync ARGS`` in this process: (exit status, stdout, stderr)."""
    code = tcli.main(["sync", *args])
    out, err = capfd.readouterr()
    assert_no_secret(out, err)
    return code, out, err


def one_line(err: str) -> str:
    assert err.strip() and err.strip().count("\n") == 0, err
    assert "Traceback" not in err
    return err.strip()


@pytest.fixture
def pg_db() -> Iterator[str]:
    """A fresh PostgreSQL database (URL with a password), dropped afterwards."""
    yield from _pg_database()


# -- 1. no password shown -------------------------------------------------------------------
@pytest.mark.parametrize(
    "url,secrets,kept",
    [
        ("postgresql://alice:hunter2@db.example:5432/ams", ["hunter2"], ["alice", "db.example:5432/ams"]),
        ("postgres://alice:p%40ss%3Aw@db/ams", ["p%40ss%3Aw", "p@ss:w"], ["alice", "@db/ams"]),
        (
            "postgresql://alice@db/ams?password=hunter2&sslmode=require",
            ["hunter2"],
            ["alice@db/ams", "sslmode=require"],
        ),
        (
            "postgresql://alice@db/ams?sslmode=require&sslpassword=k3y&PASSWORD=x9",
            ["k3y", "x9"],
            ["sslmode=require"],
        ),
        ("postgresql://db/ams?user=bob&password=hunter2#frag", ["hunter2"], ["user=bob"]),
        ("host=db user=alice password=hunter2 dbname=ams", ["hunter2"], ["host=db", "dbname=ams"]),
        ("host=db password = 'hun ter\\'2' dbname=ams", ["hun ter", "ter\\'2"], ["host=db", "dbname=ams"]),
        ("postgresql://alice:@db/ams", [], ["alice", "db/ams"]),
    ],
)
def test_redact_removes_every_form_of_password(url, secrets, kept):
    shown = redact(url)
    for s in secrets:
        assert s not in shown, shown
    for k in kept:
        assert k in shown, shown
    assert redact(shown) == shown  # idempotent


def test_unreachable_catalog_error_shows_no_password(sites_small, capfd):
    src, dst = sites_small
    SECRETS.extend(["Zq-first-secret", "Zq-second-secret"])
    url = "postgresql://nobody:Zq-first-secret@127.0.0.1:1/none?password=Zq-second-secret"
    # without psycopg the sync stops before connecting, naming the extra instead of the URL
    if importlib.util.find_spec("psycopg") is not None:
        in_error, named = "127.0.0.1:1/none", "catalog postgresql://nobody"
    else:
        in_error = named = "needs psycopg 3"
    with pytest.raises(tr.TransferError) as e:
        tr.sync(src, dst, catalog=url)
    assert in_error in str(e.value)
    assert_no_secret(str(e.value), repr(e.value), str(e.value.__cause__ or ""))
    code, out, err = main_cli(capfd, str(src), str(dst), "--catalog", url)
    assert code == 2 and named in one_line(err)
    code, out, err = main_cli(capfd, str(src), str(dst), "--catalog", url, "--report")
    assert code == 2 and named in one_line(err)


def test_no_output_holds_the_catalog_password(sites_small, pg_db, capfd):
    src, dst = sites_small
    # the same database, the password given as a parameter this time
    from urllib.parse import quote, urlsplit

    u = urlsplit(pg_db)
    assert u.password and u.password in SECRETS
    param = f"postgresql://{u.username}@{u.hostname}:{u.port}{u.path}?password={quote(u.password)}"
    for url in (pg_db, param):
        res = tr.sync(src, dst, catalog=url)
        assert res.ok
        assert_no_secret(res, res.catalog, res.as_dict(), json.dumps(res.as_dict()))
        rep = tr.report(src, dst, catalog=url)
        assert rep["aligned"] and "127.0.0.1" in rep["catalog"]
        assert_no_secret(rep, json.dumps(rep))
        assert_no_secret(tr.catalog(url, library="np"), tr.catalog(url, table="syncs"))
        with Catalog.open(url) as cat:
            assert_no_secret(cat, cat.url, str(cat.__dict__.get("url")))
        for args in ([], ["--json"], ["--verbose"], ["--report"], ["--report", "--json"]):
            code, out, err = main_cli(capfd, str(src), str(dst), "--catalog", url, *args)
            assert code == 0, err
            assert "127.0.0.1" in out
        r = run_cli(str(src), str(dst), "--catalog", url)  # and in a process of its own
        assert r.returncode == 0 and "catalog: postgresql://" in r.stdout


# -- 2. names that are not valid UTF-8 --------------------------------------------------------
@pytest.fixture
def sites_small(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    make_runs(src, n=2, events=40)
    return src, dst


def test_file_name_not_valid_utf8_is_copied_like_any_other(sites_small, backend, capfd):
    src, dst = sites_small
    bad = os.fsdecode(b"run-\xff\xfe.dat")
    shutil.copy(src / "run-000.dat", src / bad)
    (src / os.fsdecode(b"dir-\xe9")).mkdir()
    shutil.copy(src / "run-001.dat", src / os.fsdecode(b"dir-\xe9") / "x.dat")
    res = tr.sync(src, dst, catalog=backend)
    assert res.ok and res.files_copied == 4, res.failures
    assert data_files(dst) == data_files(src)
    assert os.path.exists(os.fsencode(dst) + b"/run-\xff\xfe.dat")
    files = by_rel(backend, dst)
    assert set(files) == set(data_files(src))  # stored losslessly
    row = files[bad]
    assert row["n_events"] == 40 and row["state"] == "done"
    with ams02.open(row["dst_path"]) as f:
        assert f.n_events == 40
    again = tr.sync(src, dst, catalog=backend)
    assert (again.files_copied, again.files_skipped) == (0, 4)
    assert tr.report(src, dst, catalog=backend)["aligned"]
    cat = ["--catalog", backend] if backend else []
    (dst / bad).unlink()
    code, out, err = main_cli(capfd, str(src), str(dst), "--verbose", *cat)
    assert code == 0, err
    assert "run-\\xff\\xfe.dat" in out  # shown escaped, never a UnicodeEncodeError
    code, out, err = main_cli(capfd, str(src), str(dst), "--report", *cat)
    assert code == 0 and "ALIGNED" in out


# -- 3. an unreadable subdirectory ------------------------------------------------------------
def _deny_scandir(monkeypatch, *denied: Path) -> None:
    real = os.scandir
    bad = {os.fspath(d) for d in denied}

    def scandir(path: Any = "."):
        if os.fspath(path) in bad:
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)


def test_unreadable_subdirectory_fails_alone(sites_small, backend, monkeypatch, capfd):
    src, dst = sites_small
    make_runs(src / "locked", n=1)
    make_runs(src / "open", n=1)
    _deny_scandir(monkeypatch, src / "locked")
    res = tr.sync(src, dst, catalog=backend)
    assert res.files_copied == 3 and not res.ok
    assert "Permission denied" in res.failures["locked/"] and str(src / "locked") in res.failures["locked/"]
    assert set(data_files(dst)) == {"run-000.dat", "run-001.dat", "open/run-000.dat"}
    rep = tr.report(src, dst, catalog=backend)
    assert not rep["aligned"]
    assert [(e["relpath"], "Permission denied" in e["error"]) for e in rep["unreadable"]] == [
        ("locked/", True)
    ]
    cat = ["--catalog", backend] if backend else []
    code, out, err = main_cli(capfd, str(src), str(dst), *cat)
    assert code == 1 and "locked/" in err and "Permission denied" in err
    code, out, err = main_cli(capfd, str(src), str(dst), "--report", *cat)
    assert code == 1 and "unreadable" in out and "locked/" in out
    monkeypatch.undo()
    assert tr.sync(src, dst, catalog=backend).ok
    assert tr.report(src, dst, catalog=backend)["aligned"]


# -- 4. damage at the destination ---------------------------------------------------------------
def test_check_destination_finds_and_repairs_damage(sites_small, backend, capfd):
    src, dst = sites_small
    make_runs(src / "more", n=2, events=40)
    assert tr.sync(src, dst, catalog=backend).ok
    flip_byte(str(dst / "run-001.dat"))
    st = (dst / "more/run-000.dat").stat()
    with open(dst / "more/run-000.dat", "r+b") as fh:  # same size and mtime, zeroed inside
        fh.seek(1000)
        fh.write(b"\0" * 64)
    os.utime(dst / "more/run-000.dat", ns=(st.st_atime_ns, st.st_mtime_ns))
    fast = tr.sync(src, dst, catalog=backend)  # the fast path cannot see it, by design
    assert (fast.files_copied, fast.files_skipped) == (0, 4)
    assert tr.report(src, dst, catalog=backend)["aligned"]
    rep = tr.report(src, dst, catalog=backend, check_destination=True)
    assert not rep["aligned"]
    assert sorted(e["relpath"] for e in rep["damaged"]) == ["more/run-000.dat", "run-001.dat"]
    assert all("adler32" in e["reason"] for e in rep["damaged"])
    assert data_files(dst) != data_files(src)  # the report changes nothing
    cat = ["--catalog", backend] if backend else []
    code, out, err = main_cli(capfd, str(src), str(dst), "--report", "--check-destination", *cat)
    assert code == 1 and "damaged" in out and "run-001.dat" in out
    res = tr.sync(src, dst, catalog=backend, check_destination=True)
    assert res.ok and res.files_damaged == 2 and res.files_copied == 2 and res.files_skipped == 2
    assert data_files(dst) == data_files(src)
    att = attempts_of(backend, dst, "run-001.dat")
    assert [a[:2] for a in att] == [("copy", "done"), ("check", "damaged"), ("copy", "done")]
    assert "adler32" in att[1][2]
    checked = by_rel(backend, dst)
    assert all(r["checked_at"] > 0 for r in checked.values())
    code, out, err = main_cli(capfd, str(src), str(dst), "--check-destination", "--json", *cat)
    assert code == 0 and json.loads(out)["files_damaged"] == 0
    assert tr.report(src, dst, catalog=backend, check_destination=True)["aligned"]


# -- 5. catalog failures: one line, exit status 2 -------------------------------------------------
class _FullDisk:
    """A sqlite3 connection whose writes fail with "database or disk is full" after ``ok``
    of them (as on a full disk)."""

    def __init__(self, conn: sqlite3.Connection, ok: int) -> None:
        self._conn, self._ok = conn, ok

    def execute(self, sql: str, params: Any = ()) -> Any:
        if sql.lstrip().upper().startswith(("UPDATE", "INSERT")):
            self._ok -= 1
            if self._ok < 0:
                raise sqlite3.OperationalError("database or disk is full")
        return self._conn.execute(sql, params)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


@pytest.mark.parametrize("ok", [0, 3, 12])
def test_full_disk_under_the_catalog_is_one_line_and_exit_2(sites_small, monkeypatch, capfd, ok):
    src, dst = sites_small
    real = sqlite3.connect
    monkeypatch.setattr(sqlite3, "connect", lambda *a, **k: _FullDisk(real(*a, **k), ok))
    code, out, err = main_cli(capfd, str(src), str(dst), "--workers", "2")
    line = one_line(err)
    assert code == 2 and "catalog " + str(dst / tr.DEFAULT_NAME) in line and "disk is full" in line
    with pytest.raises(tr.TransferError, match="disk is full"):
        tr.sync(src, dst)
    monkeypatch.undo()
    assert tr.sync(src, dst).ok and data_files(dst) == data_files(src)  # the data stay correct
    assert tr.report(src, dst)["aligned"]


def _terminate(base: str, dbname: str) -> int:
    import psycopg

    with psycopg.connect(base, autocommit=True) as c:
        return len(
            c.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                (dbname,),
            ).fetchall()
        )


def test_postgresql_gone_mid_sync_is_one_line_and_exit_2(sites_small, pg_db):
    src, dst = sites_small
    base, dbname = pg_base(), pg_db.rsplit("/", 1)[1]
    env = dict(os.environ, AMS02_TRANSFER_FAULT="verify:sleep=2*1")
    e = dict(env)
    p = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ams02.transfer",
            "sync",
            str(src),
            str(dst),
            "--catalog",
            pg_db,
            "--workers",
            "1",
        ],
        env=e,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not parts(dst):
            time.sleep(0.02)
        assert parts(dst), "the sync never started copying"
        assert _terminate(base, dbname) >= 1
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    assert_no_secret(out, err)
    assert p.returncode == 2, err
    line = one_line(err)
    assert line.startswith("ams02 sync: error: catalog postgresql://") and dbname in line
    assert not [
        q
        for q in dst.iterdir()
        if q.name.endswith(".dat") and (q.read_bytes() != (src / q.name).read_bytes())
    ]
    assert tr.sync(src, dst, catalog=pg_db).ok and data_files(dst) == data_files(src)


def _select_only_role(base: str, dbname: str) -> str:
    """A role that may only SELECT the catalog's tables; returns its URL (with a password)."""
    import psycopg
    from psycopg.conninfo import make_conninfo

    role = f"ams02_ro_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(base, autocommit=True) as c:
        c.execute(f"CREATE ROLE {role} LOGIN")
    with psycopg.connect(make_conninfo(base, dbname=dbname), autocommit=True) as c:
        c.execute(f"GRANT CONNECT ON DATABASE {dbname} TO {role}")
        c.execute(f"GRANT USAGE ON SCHEMA public TO {role}")
        c.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}")
    return pg_url(base, dbname, user=role)


def test_select_only_role_reads_the_catalog_and_cannot_sync(sites_small, pg_db, capfd):
    src, dst = sites_small
    assert tr.sync(src, dst, catalog=pg_db).ok
    ro = _select_only_role(pg_base(), pg_db.rsplit("/", 1)[1])
    try:
        _read_only_role_checks(src, dst, ro, capfd)
    finally:
        _drop_role(pg_base(), pg_db.rsplit("/", 1)[1], ro)


def _drop_role(base: str, dbname: str, url: str) -> None:
    import psycopg
    from psycopg.conninfo import make_conninfo
    from urllib.parse import urlsplit

    role = urlsplit(url).username
    with psycopg.connect(make_conninfo(base, dbname=dbname), autocommit=True) as c:
        c.execute(f"DROP OWNED BY {role}")
    with psycopg.connect(base, autocommit=True) as c:
        c.execute(f"DROP ROLE {role}")


def _read_only_role_checks(src: Path, dst: Path, ro: str, capfd) -> None:
    files = tr.catalog(ro, state="done")
    assert sorted(files["relpath"]) == ["run-000.dat", "run-001.dat"]
    assert len(tr.catalog(ro, table="attempts")["id"]) == 2
    rep = tr.report(src, dst, catalog=ro)
    assert rep["aligned"] and rep["done_files"] == 2
    code, out, err = main_cli(capfd, str(src), str(dst), "--report", "--catalog", ro)
    assert code == 0 and "ALIGNED" in out
    make_runs(src / "new", n=1)
    code, out, err = main_cli(capfd, str(src), str(dst), "--catalog", ro)
    line = one_line(err)
    assert code == 2 and "catalog postgresql://" in line and "permission denied" in line.lower()


# -- 6. read-only SQLite catalogs -------------------------------------------------------------------
def _journal_mode(path: Path) -> bytes:
    return path.read_bytes()[18:20]  # b"\x02\x02" in WAL mode, b"\x01\x01" otherwise


def test_reading_changes_no_byte_of_the_catalog(sites_small):
    src, dst = sites_small
    assert tr.sync(src, dst).ok
    path = dst / tr.DEFAULT_NAME
    c = sqlite3.connect(path)
    c.execute("PRAGMA journal_mode=DELETE")
    c.close()
    before = path.read_bytes()
    assert _journal_mode(path) == b"\x01\x01"
    assert len(tr.catalog(dst)["relpath"]) == 2
    assert tr.report(src, dst)["aligned"]
    assert path.read_bytes() == before  # no migration, no switch to WAL
    assert not [p.name for p in dst.iterdir() if p.name.endswith(("-wal", "-shm", "-journal"))]


def test_old_schema_is_a_clear_message_when_read(tmp_path):
    path = tmp_path / "old.sqlite"
    with Catalog.open(str(path), migrate=False) as cat:
        cat.migrate(to=1)
    before = path.read_bytes()
    with pytest.raises(tr.TransferError, match="schema version 1 is too old to read"):
        tr.catalog(path)
    assert path.read_bytes() == before
    empty = tmp_path / "empty.sqlite"
    sqlite3.connect(empty).close()
    with pytest.raises(tr.TransferError, match="not an ams02 catalog"):
        tr.catalog(empty)


_AS_NOBODY = """
import os, sys, json, argparse, sqlite3, hashlib, tempfile, concurrent.futures, urllib.parse
import ams02, ams02.transfer, ams02.transfer.cli as cli, ams02.transfer._report, ams02._convert
if os.geteuid() == 0:  # everything imported: now an unprivileged user
    os.setgroups([])
    os.setgid(65534)
    os.setuid(65534)
assert os.geteuid() != 0
if sys.argv[1] == "catalog":
    c = ams02.transfer.catalog(sys.argv[2])
    print(sorted(str(x) for x in c["relpath"]), [str(x) for x in c["state"]])
else:
    sys.exit(cli.main(sys.argv[2:]))
"""


def _as_nobody(*args: str) -> subprocess.CompletedProcess:
    """Runs the catalog query or ``ams02 sync ARGS`` as an unprivileged user (root drops
    its rights after the imports)."""
    env = dict(os.environ, HOME="/nonexistent")
    env.pop("AMS02_TRANSFER_FAULT", None)
    return subprocess.run(
        [sys.executable, "-c", _AS_NOBODY, *args], capture_output=True, text=True, timeout=60, env=env
    )


def test_read_only_sqlite_catalog_is_readable(tmp_path):
    top = Path(tempfile.mkdtemp(prefix="ams02-ro-"))  # readable by an unprivileged user
    try:
        os.chmod(top, 0o755)
        src, dst = top / "src", top / "dst"
        make_runs(src, n=2, events=40)
        assert tr.sync(src, dst).ok
        for p in [src, *src.iterdir()]:
            os.chmod(p, 0o755 if p.is_dir() else 0o444)
        os.chmod(dst / tr.DEFAULT_NAME, 0o444)
        for p in dst.iterdir():
            if p.name.endswith(".dat"):
                os.chmod(p, 0o444)
        os.chmod(dst, 0o555)
        before = (dst / tr.DEFAULT_NAME).read_bytes()
        r = _as_nobody("catalog", str(dst))
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip() == "['run-000.dat', 'run-001.dat'] ['done', 'done']"
        r = _as_nobody("cli", "sync", str(src), str(dst), "--report")
        assert r.returncode == 0, r.stderr
        assert "ALIGNED" in r.stdout
        r = _as_nobody("cli", "sync", str(src), str(dst))
        assert r.returncode == 2 and one_line(r.stderr).startswith("ams02 sync: error: ")
        assert (dst / tr.DEFAULT_NAME).read_bytes() == before
    finally:
        for p in [top, *top.rglob("*")]:
            if p.is_dir():
                os.chmod(p, 0o755)
        shutil.rmtree(top)


# -- 7. the lock belongs to the destination ------------------------------------------------------
def test_lock_is_on_the_destination_whatever_the_catalog_or_path(sites_small, tmp_path):
    src, dst = sites_small
    make_runs(src, n=3, events=200)
    link = tmp_path / "link-to-dst"
    env = dict(os.environ, AMS02_TRANSFER_FAULT="copy:sleep=20*1")
    p = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ams02.transfer",
            "sync",
            str(src),
            str(dst),
            "--catalog",
            str(tmp_path / "a.sqlite"),
            "--workers",
            "1",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not parts(dst):
            time.sleep(0.02)
        held = parts(dst)
        assert held
        link.symlink_to(dst, target_is_directory=True)
        with pytest.raises(tr.TransferError, match="another ams02 sync"):
            tr.sync(src, dst, catalog=str(tmp_path / "b.sqlite"))
        with pytest.raises(tr.TransferError, match="another ams02 sync"):
            tr.sync(src, link)
        assert parts(dst) == held  # its temporary copy is still there
    finally:
        p.kill()
        p.communicate(timeout=30)
    assert tr.sync(src, dst, catalog=str(tmp_path / "a.sqlite")).ok


# -- 8. symlinks --------------------------------------------------------------------------------
def test_symlinked_directory_in_dst_is_never_written_through(sites_small, tmp_path):
    src, dst = sites_small
    make_runs(src / "sub", n=1)
    outside = tmp_path / "outside"
    outside.mkdir()
    dst.mkdir()
    (dst / "sub").symlink_to(outside, target_is_directory=True)
    for _ in range(2):
        res = tr.sync(src, dst, backoff=0.01)
        assert not res.ok and list(res.failures) == ["sub/run-000.dat"]
        assert "symbolic link" in res.failures["sub/run-000.dat"]
        assert list(outside.iterdir()) == []
    assert (dst / "run-000.dat").read_bytes() == (src / "run-000.dat").read_bytes()
    assert by_rel(None, dst)["sub/run-000.dat"]["attempts"] <= 2  # not retried in vain


def test_symlinked_file_in_dst_is_replaced_not_written_through(sites_small, tmp_path):
    src, dst = sites_small
    victim = tmp_path / "victim.dat"
    victim.write_bytes(b"must stay as it is")
    dst.mkdir()
    (dst / "run-000.dat").symlink_to(victim)
    assert tr.sync(src, dst).ok
    assert victim.read_bytes() == b"must stay as it is"
    assert not (dst / "run-000.dat").is_symlink()
    assert data_files(dst) == data_files(src)


def test_symlinks_out_of_src_are_not_followed_unless_asked(sites_small, tmp_path, capfd):
    src, dst = sites_small
    outside = tmp_path / "outside"
    make_runs(outside, n=1, first_run=1400000000)
    (src / "escape.dat").symlink_to(outside / "run-000.dat")
    (src / "inside.dat").symlink_to(src / "run-000.dat")  # within SRC: copied, as before
    (src / "dirlink").symlink_to(outside, target_is_directory=True)
    (src / "dangling.dat").symlink_to(tmp_path / "nothing")
    res = tr.sync(src, dst)
    assert res.ok and set(data_files(dst)) == {"run-000.dat", "run-001.dat", "inside.dat"}
    assert sorted(res.not_copied) == ["dangling.dat", "dirlink", "escape.dat"]
    assert all("symbolic link" in v for v in res.not_copied.values())
    rep = tr.report(src, dst)
    assert not rep["aligned"] and sorted(e["relpath"] for e in rep["not_copied"]) == sorted(res.not_copied)
    code, out, err = main_cli(capfd, str(src), str(dst))
    assert code == 0 and "escape.dat" in err and "--follow-symlinks" in err
    code, out, err = main_cli(capfd, str(src), str(dst), "--follow-symlinks")
    assert code == 0, err
    assert (dst / "escape.dat").read_bytes() == (outside / "run-000.dat").read_bytes()
    assert (dst / "dirlink" / "run-000.dat").read_bytes() == (outside / "run-000.dat").read_bytes()
    rep = tr.report(src, dst, follow_symlinks=True)
    assert [e["relpath"] for e in rep["not_copied"]] == ["dangling.dat"]


# -- 9. reserved names, mode bits, interrupted attempts, nested sites ----------------------------------
def test_reserved_names_are_reported_not_silently_dropped(sites_small, capfd):
    src, dst = sites_small
    (src / "sub").mkdir()
    reserved = [".ams02notes", "x.dat.ams02-part-1234", "sub/.ams02-catalog.sqlite"]
    for name in reserved:
        (src / name).write_bytes(b"data")
    # SRC's own catalog, lock and temporary copies (SRC is the destination of another
    # sync, a chain of sites) are the transfer system's: neither copied nor reported
    for own in (
        tr.DEFAULT_NAME,
        tr.DEFAULT_NAME + ".lock",
        ".ams02-sync.lock",
        ".run-000.dat.ams02-part-0a1b2c3d",
    ):
        (src / own).write_bytes(b"own")
    res = tr.sync(src, dst)
    assert res.ok and sorted(res.not_copied) == sorted(reserved)
    assert all("reserved" in v for v in res.not_copied.values())
    assert set(data_files(dst)) == {"run-000.dat", "run-001.dat"}
    rep = tr.report(src, dst)
    assert not rep["aligned"] and sorted(e["relpath"] for e in rep["not_copied"]) == sorted(reserved)
    code, out, err = main_cli(capfd, str(src), str(dst), "--report")
    assert code == 1 and "not copied" in out and ".ams02notes" in out


def test_mode_bits_are_kept(sites_small):
    src, dst = sites_small
    os.chmod(src / "run-000.dat", 0o640)
    os.chmod(src / "run-001.dat", 0o755)
    assert tr.sync(src, dst).ok
    assert stat.S_IMODE((dst / "run-000.dat").stat().st_mode) == 0o640
    assert stat.S_IMODE((dst / "run-001.dat").stat().st_mode) == 0o755


def test_killed_run_leaves_no_running_attempt_or_sync(sites_small):
    src, dst = sites_small
    env = dict(os.environ, AMS02_TRANSFER_FAULT="verify:kill@run-001.dat")
    r = subprocess.run(
        [sys.executable, "-m", "ams02.transfer", "sync", str(src), str(dst), "--workers", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == -signal.SIGKILL
    assert "running" in list(rows(None, dst, "syncs")["status"])
    assert tr.sync(src, dst).ok
    assert "running" not in list(rows(None, dst, "attempts")["outcome"])
    assert list(rows(None, dst, "syncs")["status"]) == ["interrupted", "finished"]


def test_nested_sites_are_refused_before_anything_is_created(tmp_path):
    src = tmp_path / "s"
    make_runs(src, n=1)
    with pytest.raises(tr.TransferError, match="must not contain each other"):
        tr.sync(src, src / "sub")
    assert not (src / "sub").exists()
    (tmp_path / "alias").symlink_to(src, target_is_directory=True)
    with pytest.raises(tr.TransferError, match="must not contain each other"):
        tr.sync(src, tmp_path / "alias" / "deeper")
    assert not (src / "deeper").exists()
    with pytest.raises(tr.TransferError, match="must not contain each other"):
        tr.report(src, src / "sub")
