"""The transfer catalog: what has been moved and whether it succeeded, in a real database.

An embedded SQLite file by default, PostgreSQL for a ``postgresql://`` URL (through psycopg
3, an optional extra). The same SQL runs on both: portable types (TEXT, BIGINT, INTEGER,
DOUBLE PRECISION), ``?`` placeholders (turned into ``%s`` for psycopg) and one dialect
difference, the auto-numbered primary key. Every change of state is one transaction.

The schema is versioned: ``schema_version`` holds one row per migration applied, and
:data:`MIGRATIONS` are ordered SQL steps, each applied in its own transaction.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sqlite3
import threading
import time
import zlib
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

from ._fs import TransferError

#: File name of the default SQLite catalog, inside the destination directory.
DEFAULT_NAME = ".ams02-catalog.sqlite"

#: The states of a file (section "The state machine" of the transfer docs).
STATES = ("discovered", "copying", "verifying", "done", "failed")

# (column, kind) for the files table; kind is "int", "float" or "text". The order is the
# order of catalog() columns.
FILE_COLUMNS: List[Tuple[str, str]] = [
    ("id", "int"),
    ("src_root", "text"),
    ("dst_root", "text"),
    ("relpath", "text"),
    ("state", "text"),
    ("attempts", "int"),
    ("failures", "int"),
    ("copies", "int"),
    ("size", "int"),
    ("src_mtime", "float"),
    ("adler32", "text"),
    ("sha256", "text"),
    ("byte_order", "text"),
    ("n_blocks", "int"),
    ("n_events", "int"),
    ("run_min", "int"),
    ("run_max", "int"),
    ("runs", "text"),
    ("time_min", "float"),
    ("time_max", "float"),
    ("n_errors", "int"),
    ("flagged", "int"),
    ("validation", "text"),
    ("tmp_name", "text"),
    ("last_error", "text"),
    ("next_attempt_at", "float"),
    ("discovered_at", "float"),
    ("started_at", "float"),
    ("finished_at", "float"),
    ("copy_seconds", "float"),
    ("verify_seconds", "float"),
    ("validate_seconds", "float"),
    ("total_seconds", "float"),
    ("bytes_per_second", "float"),
    ("updated_at", "float"),
]

PROBLEM_COLUMNS: List[Tuple[str, str]] = [
    ("id", "int"),
    ("file_id", "int"),
    ("byte_offset", "int"),
    ("event_index", "int"),
    ("kind", "text"),
    ("detail", "text"),
]

ATTEMPT_COLUMNS: List[Tuple[str, str]] = [
    ("id", "int"),
    ("file_id", "int"),
    ("attempt", "int"),
    ("action", "text"),
    ("outcome", "text"),
    ("error", "text"),
    ("bytes", "int"),
    ("started_at", "float"),
    ("ended_at", "float"),
    ("seconds", "float"),
]

SYNC_COLUMNS: List[Tuple[str, str]] = [
    ("id", "int"),
    ("src_root", "text"),
    ("dst_root", "text"),
    ("host", "text"),
    ("pid", "int"),
    ("status", "text"),
    ("started_at", "float"),
    ("ended_at", "float"),
    ("files_copied", "int"),
    ("files_skipped", "int"),
    ("files_failed", "int"),
    ("files_flagged", "int"),
    ("bytes", "int"),
    ("seconds", "float"),
]

TABLES: Dict[str, List[Tuple[str, str]]] = {
    "files": FILE_COLUMNS,
    "problems": PROBLEM_COLUMNS,
    "attempts": ATTEMPT_COLUMNS,
    "syncs": SYNC_COLUMNS,
}

# Migrations: (version, description, statements). ``{pk}`` is the dialect's auto-numbered
# primary key. Never edit a released step: add a new one.
MIGRATIONS: List[Tuple[int, str, List[str]]] = [
    (
        1,
        "files, problems and sync runs",
        [
            """CREATE TABLE files (
                id {pk},
                src_root TEXT NOT NULL,
                dst_root TEXT NOT NULL,
                relpath TEXT NOT NULL,
                state TEXT NOT NULL,
                attempts INTEGER NOT NULL DEFAULT 0,
                copies INTEGER NOT NULL DEFAULT 0,
                size BIGINT,
                src_mtime DOUBLE PRECISION,
                adler32 TEXT,
                sha256 TEXT,
                byte_order TEXT,
                n_blocks BIGINT,
                n_events BIGINT,
                run_min BIGINT,
                run_max BIGINT,
                runs TEXT,
                time_min DOUBLE PRECISION,
                time_max DOUBLE PRECISION,
                n_errors BIGINT,
                flagged INTEGER,
                validation TEXT,
                tmp_name TEXT,
                last_error TEXT,
                discovered_at DOUBLE PRECISION,
                started_at DOUBLE PRECISION,
                finished_at DOUBLE PRECISION,
                copy_seconds DOUBLE PRECISION,
                verify_seconds DOUBLE PRECISION,
                validate_seconds DOUBLE PRECISION,
                total_seconds DOUBLE PRECISION,
                bytes_per_second DOUBLE PRECISION,
                updated_at DOUBLE PRECISION,
                UNIQUE (src_root, dst_root, relpath),
                CHECK (state IN ('discovered', 'copying', 'verifying', 'done', 'failed'))
            )""",
            """CREATE TABLE problems (
                id {pk},
                file_id BIGINT NOT NULL REFERENCES files (id) ON DELETE CASCADE,
                byte_offset BIGINT NOT NULL,
                event_index BIGINT NOT NULL,
                kind TEXT NOT NULL,
                detail TEXT NOT NULL
            )""",
            """CREATE TABLE syncs (
                id {pk},
                src_root TEXT NOT NULL,
                dst_root TEXT NOT NULL,
                host TEXT NOT NULL,
                pid BIGINT NOT NULL,
                status TEXT NOT NULL,
                started_at DOUBLE PRECISION NOT NULL,
                ended_at DOUBLE PRECISION,
                files_copied BIGINT NOT NULL DEFAULT 0,
                files_skipped BIGINT NOT NULL DEFAULT 0,
                files_failed BIGINT NOT NULL DEFAULT 0,
                files_flagged BIGINT NOT NULL DEFAULT 0,
                bytes BIGINT NOT NULL DEFAULT 0,
                seconds DOUBLE PRECISION
            )""",
            "CREATE INDEX files_state ON files (state)",
            "CREATE INDEX problems_file ON problems (file_id)",
        ],
    ),
    (
        2,
        "attempt history, retry schedule, run and time indexes",
        [
            """CREATE TABLE attempts (
                id {pk},
                file_id BIGINT NOT NULL REFERENCES files (id) ON DELETE CASCADE,
                attempt INTEGER NOT NULL,
                action TEXT NOT NULL,
                outcome TEXT NOT NULL,
                error TEXT,
                bytes BIGINT,
                started_at DOUBLE PRECISION NOT NULL,
                ended_at DOUBLE PRECISION,
                seconds DOUBLE PRECISION
            )""",
            "ALTER TABLE files ADD COLUMN failures INTEGER NOT NULL DEFAULT 0",
            "ALTER TABLE files ADD COLUMN next_attempt_at DOUBLE PRECISION",
            "CREATE INDEX attempts_file ON attempts (file_id)",
            "CREATE INDEX files_runs ON files (run_min, run_max)",
            "CREATE INDEX files_times ON files (time_min, time_max)",
        ],
    ),
]

#: The schema version this code writes.
SCHEMA_VERSION = MIGRATIONS[-1][0]

_PK = {
    "sqlite": "INTEGER PRIMARY KEY AUTOINCREMENT",
    "postgresql": "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
}

#: Error rows kept per file (``n_errors`` always has the full count).
MAX_PROBLEMS = 1000


def is_postgres(url: str) -> bool:
    """Whether a catalog URL names a PostgreSQL database."""
    return url.startswith(("postgresql://", "postgres://"))


def sqlite_path(url: str) -> str:
    """The file of a SQLite catalog URL (a path, or ``sqlite:///path``)."""
    if url.startswith("sqlite:///"):
        return "/" + url[len("sqlite:///") :].lstrip("/")
    if url.startswith("sqlite://"):
        return url[len("sqlite://") :]
    return os.path.abspath(os.path.expanduser(url))


def redact(url: str) -> str:
    """A catalog URL without its password, for messages."""
    if "://" in url and "@" in url.split("://", 1)[1]:
        scheme, rest = url.split("://", 1)
        cred, host = rest.rsplit("@", 1)
        user = cred.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}" if ":" in cred else url
    return url


class Catalog:
    """A connection to a transfer catalog (thread-safe: one connection behind a lock).

    Open it with :meth:`Catalog.open`; it migrates the schema to :data:`SCHEMA_VERSION`.
    """

    def __init__(self, url: str, conn: Any, kind: str) -> None:
        self.url = url
        self.kind = kind
        self._conn = conn
        self._lock = threading.RLock()
        self._lock_fd: Optional[int] = None
        self._pg_locked: Optional[int] = None

    # -- opening ------------------------------------------------------------------------
    @classmethod
    def open(cls, url: str, *, migrate: bool = True) -> "Catalog":
        """Connects to the catalog at ``url`` (a SQLite file path, ``sqlite:///path`` or a
        ``postgresql://`` URL) and brings its schema up to date."""
        if is_postgres(url):
            try:
                import psycopg
            except ImportError as e:
                raise TransferError(
                    "a postgresql:// catalog needs psycopg 3: pip install 'ams02[transfer]'"
                ) from e
            try:
                conn: Any = psycopg.connect(url, autocommit=True, connect_timeout=10)
            except Exception as e:  # noqa: BLE001 - psycopg.OperationalError and friends
                raise TransferError(f"catalog {redact(url)}: not reachable: {e}".strip()) from e
            cat = cls(url, conn, "postgresql")
        else:
            path = sqlite_path(url)
            try:
                os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
                conn = sqlite3.connect(
                    path, timeout=60, isolation_level=None, check_same_thread=False
                )
                conn.execute("PRAGMA journal_mode=WAL")
                # NORMAL: a commit survives the process being killed; after a power cut the
                # last commits may be lost, which a rerun's recovery handles like a kill.
                conn.execute("PRAGMA synchronous=NORMAL")
                conn.execute("PRAGMA foreign_keys=ON")
            except (OSError, sqlite3.Error) as e:
                raise TransferError(f"catalog {path}: cannot be opened: {e}") from e
            cat = cls(path, conn, "sqlite")
        if migrate:
            cat.migrate()
        return cat

    def close(self) -> None:
        """Releases the sync lock (if held) and closes the connection."""
        self.unlock()
        with self._lock:
            try:
                self._conn.close()
            except Exception:  # noqa: BLE001  # pragma: no cover
                pass

    def __enter__(self) -> "Catalog":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- SQL ----------------------------------------------------------------------------
    def _sql(self, sql: str) -> str:
        sql = sql.replace("{pk}", _PK[self.kind])
        return sql.replace("?", "%s") if self.kind == "postgresql" else sql

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """Runs one statement (``?`` placeholders) and returns the cursor."""
        with self._lock:
            return self._conn.execute(self._sql(sql), tuple(params))

    def query(self, sql: str, params: Sequence[Any] = ()) -> List[Tuple[Any, ...]]:
        """Runs a query and returns all its rows."""
        with self._lock:
            cur = self._conn.execute(self._sql(sql), tuple(params))
            return list(cur.fetchall())

    @contextlib.contextmanager
    def transaction(self) -> Iterator["Catalog"]:
        """One transaction: committed if the block ends normally, rolled back otherwise."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE" if self.kind == "sqlite" else "BEGIN")
            try:
                yield self
            except BaseException:
                try:
                    self._conn.execute("ROLLBACK")
                except Exception:  # noqa: BLE001  # pragma: no cover
                    pass
                raise
            else:
                self._conn.execute("COMMIT")

    # -- schema -------------------------------------------------------------------------
    def version(self) -> int:
        """The schema version of the database (0 for an empty one)."""
        self.execute(
            "CREATE TABLE IF NOT EXISTS schema_version ("
            "version INTEGER NOT NULL PRIMARY KEY, description TEXT NOT NULL, "
            "applied_at DOUBLE PRECISION NOT NULL)"
        )
        rows = self.query("SELECT MAX(version) FROM schema_version")
        return int(rows[0][0] or 0)

    def migrate(self, to: Optional[int] = None) -> int:
        """Applies the migrations after the database's version, in order, each in its own
        transaction, up to ``to`` (default: :data:`SCHEMA_VERSION`). Returns the version."""
        target = SCHEMA_VERSION if to is None else to
        current = self.version()
        if current > SCHEMA_VERSION:
            raise TransferError(
                f"catalog {redact(self.url)}: schema version {current} is newer than this "
                f"ams02 understands ({SCHEMA_VERSION}); upgrade ams02"
            )
        for version, description, statements in MIGRATIONS:
            if version <= current or version > target:
                continue
            with self.transaction():
                if self.kind == "postgresql":  # serialise concurrent migrators
                    self.execute("SELECT pg_advisory_xact_lock(?)", (0x414D5330,))
                done = self.query("SELECT 1 FROM schema_version WHERE version = ?", (version,))
                if done:
                    continue
                for st in statements:
                    self.execute(st)
                self.execute(
                    "INSERT INTO schema_version (version, description, applied_at) VALUES (?, ?, ?)",
                    (version, description, time.time()),
                )
        return self.version()

    # -- the sync lock ------------------------------------------------------------------
    def lock(self, dst_root: str) -> None:
        """Takes the lock that lets one sync at a time write into ``dst_root`` through
        this catalog; released by :meth:`unlock`, or by the system if the process dies.
        Raises :class:`TransferError` if another process holds it."""
        if self.kind == "sqlite":
            import fcntl  # POSIX only: imported where needed, so ams02 imports on Windows

            path = self.url + ".lock"
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                try:
                    other = os.pread(fd, 100, 0).decode(errors="replace").strip()
                except OSError:  # pragma: no cover
                    other = ""
                os.close(fd)
                raise TransferError(
                    f"another ams02 sync is writing through catalog {self.url}"
                    + (f" ({other})" if other else "")
                ) from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}".encode(), 0)
            self._lock_fd = fd
        else:
            key = zlib.crc32(dst_root.encode()) - 2**31
            got = self.query("SELECT pg_try_advisory_lock(?)", (key,))[0][0]
            if not got:
                raise TransferError(
                    f"another ams02 sync is writing into {dst_root} through catalog {redact(self.url)}"
                )
            self._pg_locked = key

    def unlock(self) -> None:
        """Releases the lock taken by :meth:`lock`."""
        if self._lock_fd is not None:
            import fcntl

            try:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            finally:
                os.close(self._lock_fd)
                self._lock_fd = None
        if self._pg_locked is not None:
            try:
                self.query("SELECT pg_advisory_unlock(?)", (self._pg_locked,))
            except Exception:  # noqa: BLE001  # pragma: no cover - connection gone
                pass
            self._pg_locked = None

    # -- rows ---------------------------------------------------------------------------
    def rows(
        self, table: str = "files", where: str = "", params: Sequence[Any] = ()
    ) -> List[Dict[str, Any]]:
        """Rows of one table as dicts (``where`` is an SQL condition with ``?``)."""
        cols = [c for c, _ in TABLES[table]]
        sql = f"SELECT {', '.join(cols)} FROM {table}" + (f" WHERE {where}" if where else "")
        return [dict(zip(cols, r)) for r in self.query(sql + " ORDER BY id", params)]

    def files(self, src_root: str, dst_root: str) -> Dict[str, Dict[str, Any]]:
        """The files rows of one (source, destination) pair, by relative path."""
        return {
            r["relpath"]: r
            for r in self.rows("files", "src_root = ? AND dst_root = ?", (src_root, dst_root))
        }

    def update(self, file_id: int, **values: Any) -> None:
        """Sets columns of one files row (in the caller's transaction, or its own)."""
        values["updated_at"] = time.time()
        cols = ", ".join(f"{k} = ?" for k in values)
        self.execute(f"UPDATE files SET {cols} WHERE id = ?", (*values.values(), file_id))

    def insert(self, table: str, **values: Any) -> int:
        """Inserts a row and returns its id."""
        cols = ", ".join(values)
        marks = ", ".join("?" for _ in values)
        sql = f"INSERT INTO {table} ({cols}) VALUES ({marks})"
        if self.kind == "postgresql":
            return int(self.query(sql + " RETURNING id", tuple(values.values()))[0][0])
        with self._lock:
            cur = self._conn.execute(sql, tuple(values.values()))
            return int(cur.lastrowid)

    def discover(self, src_root: str, dst_root: str, relpath: str, size: int, mtime: float) -> int:
        """Adds a file in state ``discovered`` (or returns the id of its existing row)."""
        now = time.time()
        self.execute(
            "INSERT INTO files (src_root, dst_root, relpath, state, size, src_mtime, "
            "discovered_at, updated_at) VALUES (?, ?, ?, 'discovered', ?, ?, ?, ?) "
            "ON CONFLICT (src_root, dst_root, relpath) DO NOTHING",
            (src_root, dst_root, relpath, size, mtime, now, now),
        )
        rows = self.query(
            "SELECT id FROM files WHERE src_root = ? AND dst_root = ? AND relpath = ?",
            (src_root, dst_root, relpath),
        )
        return int(rows[0][0])
