"""``ams02.transfer``: the AMS-02 data transfer system between the Science Operation
Center and regional sites.

It moves raw data files from SRC to DST without disturbing the source (an optional
bandwidth cap, under which each byte is read exactly once; without one, local files are
copied by the kernel while a second, concurrent read, normally served by the page cache,
checksums the source), verifies every copy (adler32 and sha256 on both sides, a lenient
decode), and keeps track in a database of what has been moved and whether it
succeeded (SQLite by default, PostgreSQL through psycopg). It runs as a multi-threaded
finite-state machine (``discovered -> copying -> verifying -> done | failed``) that a
rerun after any interruption resumes where it stopped.

>>> import ams02.transfer as t
>>> result = t.sync("/data/soc", "/data/igsds", workers=4, max_rate="200MB/s")  # doctest: +SKIP
>>> t.report("/data/soc", "/data/igsds")["aligned"]                              # doctest: +SKIP
>>> files = t.catalog("/data/igsds", state="done", run=1300000000)               # doctest: +SKIP

Local directories need nothing beyond ams02; ``sftp://``, ``s3://``, ``root://`` URLs need
fsspec and its backend, a ``postgresql://`` catalog needs psycopg 3
(``pip install 'ams02[transfer]'``).
"""

from __future__ import annotations

from ._catalog import DEFAULT_NAME, MIGRATIONS, SCHEMA_VERSION, STATES, Catalog, CatalogError
from ._fs import TransferError
from ._report import catalog, report
from ._sync import (
    NOMINAL_MBIT_S,
    REQUIRED_MBIT_S,
    SyncResult,
    TokenBucket,
    checksum_file,
    default_catalog,
    default_workers,
    inspect_file,
    parse_rate,
    sync,
)

__all__ = [
    "Catalog",
    "CatalogError",
    "DEFAULT_NAME",
    "MIGRATIONS",
    "NOMINAL_MBIT_S",
    "REQUIRED_MBIT_S",
    "SCHEMA_VERSION",
    "STATES",
    "SyncResult",
    "TokenBucket",
    "TransferError",
    "catalog",
    "checksum_file",
    "default_catalog",
    "default_workers",
    "inspect_file",
    "parse_rate",
    "report",
    "sync",
]
