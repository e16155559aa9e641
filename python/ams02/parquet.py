"""Writing many block files to Parquet, streaming so that memory stays bounded."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

from ._convert import convert_table, require
from ._multi import Paths, StepSize, _empty, iterate, resolve_paths
from ._source import describe, output_fs


def to_parquet(
    paths: Paths,
    out_dir: Union[str, "os.PathLike[str]"],
    *,
    tables: Sequence[str] = ("events", "trd_hits"),
    step_size: StepSize = "100 MB",
    progress: Optional[bool] = None,
    on_error: str = "raise",
    threads: Optional[int] = None,
    compression: str = "zstd",
    storage_options: Optional[Dict[str, Any]] = None,
    mmap: bool = True,
) -> Dict[str, str]:
    """Decodes ``paths`` and writes one Parquet file per table into ``out_dir``
    (``out_dir/<table>.parquet``), one row group per batch of :func:`ams02.iterate`, so
    memory stays bounded whatever the input size.

    ``paths`` takes what :func:`ams02.concatenate` takes (local files, URLs, bytes-like
    and file objects). ``out_dir`` is a local folder or an fsspec URL
    (``"s3://bucket/out"``, ``"memory://out"``), written through that filesystem;
    ``storage_options`` go to the filesystems of both. ``step_size`` is as in
    :func:`ams02.iterate` (an int counts events, a string with a unit bytes).

    Every table has ``file_index``; the file's metadata (``ams02.sources``, a JSON list)
    names the source files in ``file_index`` order. ``event_index`` in ``trd_hits``,
    ``trd_raw`` and ``fragments`` refers to rows of the written ``events`` table, and
    ``fragments.parent`` to rows of the written fragments. Returns ``{table: path}``
    (URLs for a URL ``out_dir``).
    """
    require("pa")  # an ImportError naming the extra, before any work
    pq = __import__("pyarrow.parquet", fromlist=["_"])
    files = resolve_paths(paths, storage_options)
    fs, root, remote = output_fs(out_dir, storage_options)
    import ams02

    meta = {
        b"ams02.sources": json.dumps([describe(f) for f in files]).encode(),
        b"ams02.version": ams02.__version__.encode(),
    }
    writers: Dict[str, Any] = {}
    handles: List[Any] = []
    if remote:
        fs.makedirs(root, exist_ok=True)
        paths_out = {t: f"{root.rstrip('/')}/{t}.parquet" for t in tables}
        targets = {t: fs.unstrip_protocol(p) for t, p in paths_out.items()}
    else:
        out = Path(root)
        out.mkdir(parents=True, exist_ok=True)
        paths_out = {t: str(out / f"{t}.parquet") for t in tables}
        targets = dict(paths_out)

    def sink(name: str) -> Any:
        if not remote:
            return paths_out[name]
        h = fs.open(paths_out[name], "wb")
        handles.append(h)
        return h

    fetch = list(tables) if "events" in tables else ["events", *tables]
    events_before = 0  # rows of events written before the current batch
    fragments_before = 0
    try:
        for batch in iterate(
            files, step_size=step_size, tables=fetch, library="np",
            progress=progress, on_error=on_error, threads=threads,
            storage_options=storage_options, mmap=mmap,
        ):
            for name in tables:
                t = dict(batch[name])
                if "event_index" in t and name != "events":
                    ei = t["event_index"].copy()
                    ei[ei >= 0] += events_before
                    t["event_index"] = ei
                if name == "fragments":
                    parent = t["parent"].copy()
                    parent[parent >= 0] += fragments_before
                    t["parent"] = parent
                table = convert_table(t, "pa")
                if name not in writers:
                    schema = table.schema.with_metadata({**meta, b"ams02.table": name.encode()})
                    writers[name] = pq.ParquetWriter(sink(name), schema, compression=compression)
                writers[name].write_table(table.replace_schema_metadata(writers[name].schema.metadata))
            events_before += len(batch["events"]["offset"])
            if "fragments" in batch:
                fragments_before += len(batch["fragments"]["parent"])
        for name in tables:  # no batch at all (no input): an empty file with the schema
            if name not in writers:
                empty = convert_table(_empty(name), "pa")
                schema = empty.schema.with_metadata({**meta, b"ams02.table": name.encode()})
                pq.write_table(empty.replace_schema_metadata(schema.metadata), sink(name))
    finally:
        for w in writers.values():
            w.close()
        for h in handles:
            h.close()
    return targets
