"""The transfer catalog: what has been moved and whether it succeeded, in a real database.

An embedded SQLite file by default, PostgreSQL for a ``postgresql://`` URL (through psycopg
3, an optional extra). The same SQL runs on both: portable types (TEXT, BIGINT, INTEGER,
DOUBLE PRECISION), ``?`` placeholders (turned into ``%s`` for psycopg) and one dialect
difference, the auto-numbered primary key. Every change of state is one transaction.

The schema is versioned: ``schema_version`` holds one row per migration applied, and
:data:`MIGRATIONS` are ordered SQL steps, each applied in its own transaction.

This module holds every SQL statement of the transfer system: the schema and its
migrations, the writes of the state machine (:class:`Catalog` methods named after what
they record), the queries of the report and of :func:`ams02.transfer.catalog`, read-only
opening (``Catalog.open(url, readonly=True)``: no migration, no switch to WAL, a SQLite
file that cannot be written or a SELECT-only PostgreSQL role) and the redaction of
passwords: a catalog is only ever shown by :attr:`Catalog.url`, its URL without
password (:func:`redact`), and every database error is raised as a :class:`CatalogError`
naming it that way, with any password removed from the message.

File names are stored losslessly: a relative path that is not valid UTF-8 (a name of
undecodable bytes, kept by Python as surrogate escapes) is stored as ``//`` followed by
its bytes percent-encoded (no real relative path starts with ``/``); other text that is
not valid UTF-8 (an error message quoting such a name) is stored with the bytes shown as
``\\xNN``.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import sqlite3
import threading
import time
import zlib
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Type
from urllib.parse import quote, quote_from_bytes, unquote, unquote_to_bytes

from ._fs import DEFAULT_NAME, TransferError, lock_file, unlock_file

__all__ = ["DEFAULT_NAME", "Catalog", "CatalogError", "MIGRATIONS", "SCHEMA_VERSION", "STATES", "redact"]

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
    ("checked_at", "float"),
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
    (
        3,
        "when the destination copy was last re-read and found intact (--check-destination)",
        ["ALTER TABLE files ADD COLUMN checked_at DOUBLE PRECISION"],
    ),
]

#: The schema version this code writes.
SCHEMA_VERSION = MIGRATIONS[-1][0]

#: The oldest schema that can be read without migrating it (read-only opening); the
#: columns of later versions read as missing values.
READABLE_VERSION = 2

_PK = {
    "sqlite": "INTEGER PRIMARY KEY AUTOINCREMENT",
    "postgresql": "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
}

#: Error rows kept per file (``n_errors`` always has the full count).
MAX_PROBLEMS = 1000


# -- names, URLs and passwords ------------------------------------------------------------------
def is_postgres(url: str) -> bool:
    """Whether a catalog URL names a PostgreSQL database (a URL, or a libpq
    ``key=value`` connection string)."""
    return url.startswith(("postgresql://", "postgres://")) or bool(_CONNINFO_RE.match(url))


def sqlite_path(url: str) -> str:
    """The file of a SQLite catalog URL (a path, or ``sqlite:///path``)."""
    if url.startswith("sqlite:///"):
        return "/" + url[len("sqlite:///") :].lstrip("/")
    if url.startswith("sqlite://"):
        return url[len("sqlite://") :]
    return os.path.abspath(os.path.expanduser(url))


#: libpq parameters that hold a secret.
SECRET_KEYS = ("password", "sslpassword")
_CONNINFO_RE = re.compile(r"^\s*(host|hostaddr|port|dbname|user|password|service|sslmode)\s*=")
_KV_SECRET_RE = re.compile(r"(?i)\b((?:ssl)?password)(\s*=\s*)('(?:[^'\\]|\\.)*'?|\S*)")
_QUERY_SECRET_RE = re.compile(r"(?i)([?&](?:ssl)?password=)([^&#]*)")


def _split_url(url: str) -> Tuple[str, str, str]:
    """(scheme://, netloc, the rest: path, query and fragment)."""
    scheme, rest = url.split("://", 1)
    end = min([i for i in (rest.find("/"), rest.find("?"), rest.find("#")) if i >= 0] or [len(rest)])
    return scheme + "://", rest[:end], rest[end:]


def redact(url: str) -> str:
    """A catalog URL (or libpq ``key=value`` string) without its passwords, for messages:
    the password of ``user:password@``, and the value of any ``password`` or
    ``sslpassword`` parameter, become ``***``."""
    if "://" in url:
        scheme, netloc, rest = _split_url(url)
        if "@" in netloc:
            cred, host = netloc.rsplit("@", 1)
            if ":" in cred:
                cred = cred.split(":", 1)[0] + ":***"
            netloc = f"{cred}@{host}"
        return scheme + netloc + _QUERY_SECRET_RE.sub(r"\1***", rest)
    return _KV_SECRET_RE.sub(lambda m: m.group(1) + m.group(2) + "***", url)


def secrets_of(url: str) -> List[str]:
    """The passwords a catalog URL holds, in every form a message might quote them (as
    written and decoded), longest first."""
    found: List[str] = []
    if "://" in url:
        _, netloc, rest = _split_url(url)
        if "@" in netloc and ":" in netloc.rsplit("@", 1)[0]:
            found.append(netloc.rsplit("@", 1)[0].split(":", 1)[1])
        found += [m.group(2) for m in _QUERY_SECRET_RE.finditer(rest)]
    else:
        for m in _KV_SECRET_RE.finditer(url):
            v = m.group(3)
            found.append(v)
            if v.startswith("'"):
                found.append(v.strip("'").replace("\\'", "'").replace("\\\\", "\\"))
    out = set()
    for f in found:
        for v in (f, unquote(f), unquote(f.replace("+", " "))):
            if v and v != "***":
                out.add(v)
    return sorted(out, key=len, reverse=True)


def scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` with each secret (of 3 characters or more: shorter ones are only removed
    from URLs) replaced by ``***``, and every PostgreSQL URL in it redacted."""
    for s in secrets:
        if len(s) >= 3:
            text = text.replace(s, "***")
    text = re.sub(r"postgres(?:ql)?://\S+", lambda m: redact(m.group(0)), text)
    return _KV_SECRET_RE.sub(lambda m: m.group(1) + m.group(2) + "***", text)


def db_name(rel: str) -> str:
    """How a relative path is stored: itself, or (not valid UTF-8) ``//`` + its bytes
    percent-encoded."""
    try:
        rel.encode("utf-8")
        return rel
    except UnicodeEncodeError:
        return "//" + quote_from_bytes(os.fsencode(rel), safe="/")


def fs_name(stored: str) -> str:
    """The relative path of a stored name (:func:`db_name` reversed)."""
    if stored.startswith("//"):
        return os.fsdecode(unquote_to_bytes(stored[2:]))
    return stored


def _param(v: Any) -> Any:
    """A parameter as the database can store it: text that is not valid UTF-8 with its
    bytes shown as ``\\xNN``."""
    if isinstance(v, str):
        try:
            v.encode("utf-8")
        except UnicodeEncodeError:
            return v.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return v


class CatalogError(TransferError):
    """The catalog failed (disk full, server gone, permission denied, schema too old): the
    message names the catalog, without its password."""


# -- the catalog --------------------------------------------------------------------------------
class Catalog:
    """A connection to a transfer catalog (thread-safe: one connection behind a lock).

    Open it with :meth:`Catalog.open`; it migrates the schema to :data:`SCHEMA_VERSION`
    (unless ``readonly``). :attr:`url` is the catalog without password: the raw URL is
    not kept.
    """

    def __init__(self, url: str, conn: Any, kind: str, *, secrets: Sequence[str] = (),
                 readonly: bool = False, path: Optional[str] = None) -> None:
        self.url = redact(url)
        self.kind = kind
        self.readonly = readonly
        self._path = path
        self._secrets = tuple(secrets)
        self._conn = conn
        self._lock = threading.RLock()
        self._lock_fd: Optional[int] = None
        self._pg_locked: Optional[int] = None
        self._columns: Dict[str, List[str]] = {}
        #: opened read-only, the database has no tables at all (no sync wrote there yet)
        self.empty = False
        if kind == "postgresql":
            import psycopg

            self._db_errors: Tuple[Type[BaseException], ...] = (psycopg.Error,)
        else:
            self._db_errors = (sqlite3.Error,)

    def __repr__(self) -> str:
        return f"Catalog({self.url!r}, kind={self.kind!r}{', readonly' if self.readonly else ''})"

    # -- opening ------------------------------------------------------------------------
    @classmethod
    def open(cls, url: str, *, migrate: bool = True, readonly: bool = False) -> "Catalog":
        """Connects to the catalog at ``url`` (a SQLite file path, ``sqlite:///path`` or a
        ``postgresql://`` URL) and brings its schema up to date (``migrate``).

        ``readonly``: for reading only (the report, :func:`ams02.transfer.catalog`): no
        migration, nothing written, no journal-mode switch; works with a SQLite file the
        process cannot write (in a directory it cannot write, too) and with a PostgreSQL
        role that may only SELECT. Raises :class:`CatalogError` if the schema is older
        than :data:`READABLE_VERSION` (a sync migrates it) or newer than this ams02."""
        secrets = secrets_of(url)
        if is_postgres(url):
            try:
                import psycopg
            except ImportError as e:
                raise TransferError(
                    "a postgresql:// catalog needs psycopg 3: pip install 'ams02[transfer]'"
                ) from e
            try:
                conn: Any = psycopg.connect(url, autocommit=True, connect_timeout=10)
                if readonly:
                    conn.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
            except Exception as e:  # noqa: BLE001 - psycopg.OperationalError and friends
                msg = scrub(" ".join(str(e).split()), secrets)
                raise CatalogError(f"catalog {redact(url)}: not reachable: {msg}".strip()) from None
            cat = cls(url, conn, "postgresql", secrets=secrets, readonly=readonly)
        else:
            path = sqlite_path(url)
            cat = cls(path, cls._open_sqlite(path, readonly), "sqlite", readonly=readonly, path=path)
        try:
            if readonly:
                cat._check_readable()
            elif migrate:
                cat.migrate()
        except BaseException:
            cat.close()
            raise
        return cat

    @staticmethod
    def _open_sqlite(path: str, readonly: bool, immutable: bool = False) -> sqlite3.Connection:
        try:
            if readonly:
                if not os.path.isfile(path):
                    raise CatalogError(f"catalog {path}: no such file")
                uri = "file:" + quote(path) + "?mode=ro" + ("&immutable=1" if immutable else "")
                conn = sqlite3.connect(uri, uri=True, timeout=60, isolation_level=None, check_same_thread=False)
                conn.execute("PRAGMA query_only=ON")
                return conn
            os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
            conn = sqlite3.connect(path, timeout=60, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            # NORMAL: a commit survives the process being killed; after a power cut the
            # last commits may be lost, which a rerun's recovery handles like a kill.
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            return conn
        except (OSError, sqlite3.Error) as e:
            if isinstance(e, CatalogError):
                raise
            raise CatalogError(f"catalog {path}: cannot be opened: {e}") from None

    def _check_readable(self) -> None:
        try:
            has = self._has_table("schema_version")
        except CatalogError:
            if self.kind != "sqlite" or self._path is None:
                raise
            # A WAL file whose shared-memory index this process may not create (a
            # read-only directory): read the file as it is on disk (a sync running at the
            # same moment may then be seen half-way; the report is a snapshot anyway).
            self._conn.close()
            self._conn = self._open_sqlite(self._path, True, immutable=True)
            has = self._has_table("schema_version")
        if not has:
            if not self._has_table("files"):  # nothing at all: no sync has written here yet
                self.empty = True
                return
            raise CatalogError(f"catalog {self.url}: not an ams02 catalog (no schema_version table)")
        v = int(self.query("SELECT MAX(version) FROM schema_version")[0][0] or 0)
        if v > SCHEMA_VERSION:
            raise CatalogError(
                f"catalog {self.url}: schema version {v} is newer than this ams02 understands "
                f"({SCHEMA_VERSION}); upgrade ams02"
            )
        if v < READABLE_VERSION:
            raise CatalogError(
                f"catalog {self.url}: schema version {v} is too old to read without migrating it "
                f"(this ams02 reads {READABLE_VERSION} to {SCHEMA_VERSION}); run ams02 sync with "
                "this catalog once, with write access, to migrate it"
            )

    def _has_table(self, name: str) -> bool:
        if self.kind == "sqlite":
            return bool(self.query("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)))
        return self.query("SELECT to_regclass(?)", (name,))[0][0] is not None

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

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        """Database errors as one :class:`CatalogError` naming the catalog (no password)."""
        try:
            yield
        except TransferError:
            raise
        except self._db_errors as e:
            msg = scrub(" ".join(str(e).split()) or type(e).__name__, self._secrets)
            raise CatalogError(f"catalog {self.url}: {msg}") from None

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """Runs one statement (``?`` placeholders) and returns the cursor."""
        with self._lock, self._errors():
            return self._conn.execute(self._sql(sql), tuple(_param(p) for p in params))

    def query(self, sql: str, params: Sequence[Any] = ()) -> List[Tuple[Any, ...]]:
        """Runs a query and returns all its rows."""
        with self._lock, self._errors():
            cur = self._conn.execute(self._sql(sql), tuple(_param(p) for p in params))
            return list(cur.fetchall())

    @contextlib.contextmanager
    def transaction(self) -> Iterator["Catalog"]:
        """One transaction: committed if the block ends normally, rolled back otherwise."""
        with self._lock:
            with self._errors():
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
                with self._errors():
                    self._conn.execute("COMMIT")

    # -- schema -------------------------------------------------------------------------
    def version(self) -> int:
        """The schema version of the database (0 for an empty one)."""
        if self.readonly:
            if not self._has_table("schema_version"):
                return 0
        else:
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
            raise CatalogError(
                f"catalog {self.url}: schema version {current} is newer than this "
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
        self._columns.clear()
        return self.version()

    # -- the sync lock ------------------------------------------------------------------
    def lock(self, dst_root: str) -> None:
        """Takes the lock that lets one sync at a time write into ``dst_root`` through
        this catalog (a remote destination cannot be locked itself; a local one is, by
        :meth:`FileSystem.lock`); released by :meth:`unlock`, or by the system if the
        process dies. Raises :class:`TransferError` if another process holds it."""
        if self.kind == "sqlite":
            path = (self._path or self.url) + ".lock"
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as e:
                raise CatalogError(f"catalog {self.url}: cannot create its lock {path}: {e.strerror or e}") from None
            self._lock_fd = lock_file(fd, f"another ams02 sync is writing through catalog {self.url}")
        else:
            key = zlib.crc32(dst_root.encode("utf-8", "surrogateescape")) - 2**31
            got = self.query("SELECT pg_try_advisory_lock(?)", (key,))[0][0]
            if not got:
                raise TransferError(
                    f"another ams02 sync is writing into {dst_root} through catalog {self.url}"
                )
            self._pg_locked = key

    def unlock(self) -> None:
        """Releases the lock taken by :meth:`lock`."""
        if self._lock_fd is not None:
            fd, self._lock_fd = self._lock_fd, None
            unlock_file(fd)
        if self._pg_locked is not None:
            try:
                self.query("SELECT pg_advisory_unlock(?)", (self._pg_locked,))
            except Exception:  # noqa: BLE001  # pragma: no cover - connection gone
                pass
            self._pg_locked = None

    # -- rows ---------------------------------------------------------------------------
    def _present(self, table: str) -> List[str]:
        """The columns of ``table`` in this database (an older schema may lack some)."""
        if table not in self._columns:
            with self._lock, self._errors():
                cur = self._conn.execute(f"SELECT * FROM {table} WHERE 1 = 0")
                self._columns[table] = [d[0] for d in cur.description]
        return self._columns[table]

    def rows(
        self, table: str = "files", where: str = "", params: Sequence[Any] = ()
    ) -> List[Dict[str, Any]]:
        """Rows of one table as dicts (``where`` is an SQL condition with ``?``); a
        column the database lacks (older schema, read-only) is None; relative paths are
        decoded (:func:`fs_name`)."""
        if self.empty:
            return []
        cols = [c for c, _ in TABLES[table]]
        have = set(self._present(table))
        sel = [c if c in have else "NULL" for c in cols]
        sql = f"SELECT {', '.join(sel)} FROM {table}" + (f" WHERE {where}" if where else "")
        out = [dict(zip(cols, r)) for r in self.query(sql + " ORDER BY id", params)]
        if table == "files":
            for r in out:
                r["relpath"] = fs_name(r["relpath"])
        return out

    def files(self, src_root: str, dst_root: str) -> Dict[str, Dict[str, Any]]:
        """The files rows of one (source, destination) pair, by relative path."""
        return {
            r["relpath"]: r
            for r in self.rows("files", "src_root = ? AND dst_root = ?", (src_root, dst_root))
        }

    def select(
        self,
        table: str,
        *,
        state: Optional[str] = None,
        dst: Optional[str] = None,
        run: Optional[Tuple[int, int]] = None,
        time_range: Optional[Tuple[float, float]] = None,
    ) -> List[Dict[str, Any]]:
        """Rows of ``table``; for files, of one ``state``, destination root ``dst``, with
        runs overlapping ``run=(first, last)`` or events overlapping ``time_range``."""
        where: List[str] = []
        params: List[Any] = []
        if state is not None:
            where.append("state = ?")
            params.append(state)
        if dst is not None:
            where.append("dst_root = ?")
            params.append(dst)
        if run is not None:
            where.append("run_max >= ? AND run_min <= ?")
            params += [int(run[0]), int(run[1])]
        if time_range is not None:
            where.append("time_max >= ? AND time_min <= ?")
            params += [float(time_range[0]), float(time_range[1])]
        return self.rows(table, " AND ".join(where), params)

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
        with self._lock, self._errors():
            cur = self._conn.execute(sql, tuple(_param(v) for v in values.values()))
            return int(cur.lastrowid)

    # -- what the state machine records ----------------------------------------------------
    def discover(self, src_root: str, dst_root: str, relpath: str, size: int, mtime: float) -> int:
        """Adds a file in state ``discovered`` (or returns the id of its existing row)."""
        now = time.time()
        name = db_name(relpath)
        self.execute(
            "INSERT INTO files (src_root, dst_root, relpath, state, size, src_mtime, "
            "discovered_at, updated_at) VALUES (?, ?, ?, 'discovered', ?, ?, ?, ?) "
            "ON CONFLICT (src_root, dst_root, relpath) DO NOTHING",
            (src_root, dst_root, name, size, mtime, now, now),
        )
        rows = self.query(
            "SELECT id FROM files WHERE src_root = ? AND dst_root = ? AND relpath = ?",
            (src_root, dst_root, name),
        )
        return int(rows[0][0])

    def discover_all(self, src_root: str, dst_root: str, files: Dict[str, Tuple[int, float]]) -> Dict[str, int]:
        """:meth:`discover` for many files in one transaction; returns their ids."""
        if not files:
            return {}
        with self.transaction():
            return {rel: self.discover(src_root, dst_root, rel, *st) for rel, st in files.items()}

    def recover(self, dst_root: str) -> None:
        """Marks what a killed sync into ``dst_root`` left ``running`` (its attempts, its
        pass) as ``interrupted``. Called with the destination's lock held, so nothing
        running there is alive."""
        now = time.time()
        with self.transaction():
            self.execute(
                "UPDATE attempts SET outcome = 'interrupted', ended_at = ? WHERE outcome = 'running' "
                "AND file_id IN (SELECT id FROM files WHERE dst_root = ?)",
                (now, dst_root),
            )
            self.execute(
                "UPDATE syncs SET status = 'interrupted', ended_at = ? WHERE status = 'running' AND dst_root = ?",
                (now, dst_root),
            )

    def begin_attempt(self, file_id: int, attempt: int, action: str, **values: Any) -> int:
        """Starts attempt number ``attempt`` (``action``: copy, resume, adopt, check) of a
        file, setting ``values`` on its row; returns the attempt's id."""
        now = time.time()
        with self.transaction():
            self.update(file_id, attempts=attempt, started_at=now, **values)
            return self.insert("attempts", file_id=file_id, attempt=attempt, action=action,
                               outcome="running", started_at=now)

    def end_attempt(self, attempt_id: int, outcome: str, t0: float, nbytes: int, error: Optional[str] = None) -> None:
        """Ends an attempt (``outcome``: done, failed, damaged) begun at ``t0``."""
        if attempt_id < 0:
            return
        now = time.time()
        self.execute(
            "UPDATE attempts SET outcome = ?, error = ?, bytes = ?, ended_at = ?, seconds = ? WHERE id = ?",
            (outcome, error, nbytes, now, now - t0, attempt_id),
        )

    def set_state(self, file_id: int, **values: Any) -> None:
        """Changes one file's row in a transaction of its own."""
        with self.transaction():
            self.update(file_id, **values)

    def record_done(
        self,
        file_id: int,
        values: Dict[str, Any],
        problems: Optional[Sequence[Tuple[int, int, str, str]]],
        attempt: Tuple[int, float, int],
        inside: Optional[Any] = None,
    ) -> None:
        """One transaction: the file ``done`` with ``values``, its error rows replaced by
        ``problems`` (unless None), its attempt ``(id, t0, bytes)`` ended; ``inside()`` is
        called within it (fault injection: a kill there must commit nothing)."""
        with self.transaction():
            self.update(file_id, state="done", **values)
            if inside is not None:
                inside()
            if problems is not None:
                self.execute("DELETE FROM problems WHERE file_id = ?", (file_id,))
                for off, ev, kind, detail in problems:
                    self.insert("problems", file_id=file_id, byte_offset=off, event_index=ev,
                                kind=kind, detail=detail)
            self.end_attempt(attempt[0], "done", attempt[1], attempt[2])

    def record_damage(self, file_id: int, attempt: int, error: str, t0: float) -> None:
        """A check found the destination copy damaged: one ``check`` attempt, ``damaged``."""
        aid = self.begin_attempt(file_id, attempt, "check")
        self.end_attempt(aid, "damaged", t0, 0, error)

    def mark_checked(self, file_ids: Sequence[int], when: float) -> None:
        """The destination copies of these files were re-read and found intact."""
        with self.transaction():
            for fid in file_ids:
                self.execute("UPDATE files SET checked_at = ? WHERE id = ?", (when, fid))

    def vanished(self, file_ids: Sequence[int]) -> None:
        """Files that left the source in mid-transfer: failed."""
        for fid in file_ids:
            self.set_state(fid, state="failed", tmp_name=None, last_error="the source file vanished")

    def start_sync(self, src_root: str, dst_root: str) -> int:
        """Records the start of one pass; returns its id."""
        return self.insert("syncs", src_root=src_root, dst_root=dst_root, host=socket.gethostname(),
                           pid=os.getpid(), status="running", started_at=time.time())

    def end_sync(self, sync_id: int, status: str, copied: int, skipped: int, failed: int, flagged: int,
                 nbytes: int, seconds: float) -> None:
        """Records the end of one pass."""
        self.execute(
            "UPDATE syncs SET status = ?, ended_at = ?, files_copied = ?, files_skipped = ?, "
            "files_failed = ?, files_flagged = ?, bytes = ?, seconds = ? WHERE id = ?",
            (status, time.time(), copied, skipped, failed, flagged, nbytes, seconds, sync_id),
        )
