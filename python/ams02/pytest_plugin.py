"""A pytest plugin that validates AMS data files: ``pytest --ams02-validate PATH...``.

Registered through the ``pytest11`` entry point ``ams02`` and off unless asked: without
``--ams02-validate`` it adds nothing. With it, every block or CCSDS file under the given
paths (a file, a directory's files without dot-files, a glob pattern) becomes one test
item that fails with the file's problem rows (kind, byte offset, event) in a readable
report. When no other test path is given on the command line, only the data are
collected (not the project's own tests)::

    pytest --ams02-validate /data/ams/2011/ --ams02-allow crc_mismatch --ams02-min-events 1000
    pytest -n 8 --ams02-validate "/data/ams/*.dat"          # in parallel with pytest-xdist

Options:

``--ams02-allow KIND``
    Accept problems of this kind (repeatable, or comma-separated).
``--ams02-min-events N``
    Require at least N science events per block file.
``--ams02-layout NAME``
    Require every event to be of this layout (``2007`` or ``flight``; needs an ams02 whose
    ``events`` table has a ``layout`` column).
``--ams02-max-rows N``
    Problem rows shown per failing file (default 20).

Files whose name ends in ``.ccsds``, ``.pkt`` or ``.ccsdspkt`` are opened as CCSDS
packet files (:func:`ams02.open_ccsds`), the others as AMS block files.
"""

from __future__ import annotations

from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import pytest

_CCSDS_SUFFIXES = (".ccsds", ".pkt", ".ccsdspkt")


def pytest_addoption(parser: Any) -> None:
    group = parser.getgroup("ams02", "validating AMS-02 data files with ams02")
    group.addoption(
        "--ams02-validate",
        action="extend",
        nargs="+",
        default=[],
        metavar="PATH",
        help="validate AMS data files: files, directories or glob patterns (one test per file)",
    )
    group.addoption(
        "--ams02-allow",
        action="append",
        default=[],
        metavar="KIND",
        help="accept problems of this kind (repeatable or comma-separated), e.g. crc_mismatch",
    )
    group.addoption(
        "--ams02-min-events", type=int, default=0, metavar="N", help="require at least N events per file"
    )
    group.addoption(
        "--ams02-layout", default=None, metavar="NAME", help="require every event to be of this layout"
    )
    group.addoption(
        "--ams02-max-rows", type=int, default=20, metavar="N", help="problem rows shown per failing file"
    )


def _enabled(config: Any) -> bool:
    return bool(config.getoption("ams02_validate", default=None))


def _user_gave_paths(config: Any) -> bool:
    source = getattr(config, "args_source", None)
    return source is not None and source == pytest.Config.ArgsSource.ARGS


def pytest_configure(config: Any) -> None:
    if _enabled(config):
        config.addinivalue_line("markers", "ams02_data: a data file validated by ams02")


def pytest_ignore_collect(collection_path: Any, config: Any) -> Optional[bool]:
    # `pytest --ams02-validate DATA` validates the data only, not the tests of the
    # directory it runs in; given test paths as well, both are collected.
    if _enabled(config) and not _user_gave_paths(config):
        return True
    return None


def _allowed(config: Any) -> List[str]:
    out: List[str] = []
    for a in config.getoption("ams02_allow"):
        out.extend(k.strip() for k in a.split(",") if k.strip())
    return out


def _expand(paths: Iterable[str]) -> List[str]:
    from ams02._multi import resolve_paths

    out: List[str] = []
    for p in paths:
        for f in resolve_paths(p):
            if f not in out:
                out.append(f)
    return out


def pytest_collection_modifyitems(session: Any, config: Any, items: List[Any]) -> None:
    if not _enabled(config):
        return
    try:
        files = _expand(config.getoption("ams02_validate"))
    except (OSError, TypeError, ValueError) as e:
        raise pytest.UsageError(f"--ams02-validate: {e}") from None
    parent = DataFiles.from_parent(session, name="ams02-validate")
    for path in files:
        items.append(DataFileItem.from_parent(parent, name=path, data_path=path))


class DataFiles(pytest.Collector):
    """The parent of the data items (they are added after collection)."""

    def collect(self) -> List[Any]:  # pragma: no cover - never collected on its own
        return []


class ValidationFailure(Exception):
    """What a data file failed: the messages and its problem rows."""

    def __init__(
        self, path: str, messages: List[str], rows: List[Tuple[int, int, str, str]], total: int
    ) -> None:
        super().__init__(path)
        self.path, self.messages, self.rows, self.total = path, messages, rows, total


def _check_block_file(
    path: str, allowed: Sequence[str], min_events: int, layout: Optional[str]
) -> Tuple[List[str], List[Tuple[int, int, str, str]], int]:
    import ams02

    messages: List[str] = []
    with ams02.open(path) as f:
        ev = f.tables(["events", "errors"])
        e = ev["errors"]
        rows = [
            (int(o), int(i), str(k), str(d))
            for o, i, k, d in zip(e["offset"], e["event_index"], e["kind"], e["detail"])
            if str(k) not in allowed
        ]
        n = f.n_events
        if n < min_events:
            messages.append(f"{n} events, fewer than the {min_events} required")
        if layout is not None:
            events = ev["events"]
            if "layout" not in events:
                messages.append(f"layout {layout!r} required, but this ams02 reports no event layout")
            else:
                names = tuple(getattr(ams02, "LAYOUTS", ()))
                found = [names[v] if v < len(names) else str(v) for v in events["layout"].tolist()]
                other = sorted({v for v in found if v != layout})
                if other:
                    bad = sum(1 for v in found if v != layout)
                    messages.append(f"{bad} events of layout {', '.join(other)}, not {layout}")
    return messages, rows, len(rows)


def _check_ccsds_file(
    path: str, allowed: Sequence[str]
) -> Tuple[List[str], List[Tuple[int, int, str, str]], int]:
    import ams02

    with ams02.open_ccsds(path) as f:
        e = f.errors()
        rows = [
            (int(o), -1, str(k), str(d))
            for o, k, d in zip(e["offset"], e["kind"], e["detail"])
            if str(k) not in allowed
        ]
    return [], rows, len(rows)


class DataFileItem(pytest.Item):
    """One data file: passes when it has no problem (other than the allowed kinds) and
    meets the requirements."""

    def __init__(self, *, data_path: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.data_path = data_path
        self.add_marker("ams02_data")

    def runtest(self) -> None:
        config = self.config
        allowed = _allowed(config)
        if self.data_path.lower().endswith(_CCSDS_SUFFIXES):
            messages, rows, total = _check_ccsds_file(self.data_path, allowed)
        else:
            messages, rows, total = _check_block_file(
                self.data_path,
                allowed,
                config.getoption("ams02_min_events"),
                config.getoption("ams02_layout"),
            )
        if rows:
            kinds: Dict[str, int] = {}
            for r in rows:
                kinds[r[2]] = kinds.get(r[2], 0) + 1
            listed = ", ".join(f"{k}: {n}" for k, n in sorted(kinds.items()))
            messages.insert(0, f"{total} problem(s) ({listed})")
        if messages:
            raise ValidationFailure(self.data_path, messages, rows, total)

    def repr_failure(self, excinfo: Any, style: Any = None) -> Any:
        if isinstance(excinfo.value, ValidationFailure):
            v = excinfo.value
            limit = max(0, int(self.config.getoption("ams02_max_rows")))
            lines = [f"{v.path}:"] + [f"  {m}" for m in v.messages]
            if v.rows:
                lines.append(f"  {'kind':<24} {'offset':>12} {'event':>8}  detail")
                for o, i, k, d in v.rows[:limit]:
                    lines.append(f"  {k:<24} {o:>12} {i if i >= 0 else '-':>8}  {d}")
                if len(v.rows) > limit:
                    lines.append(f"  ... {len(v.rows) - limit} more")
            return "\n".join(lines)
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self) -> Tuple[Any, Optional[int], str]:
        return self.data_path, None, f"ams02 validate {self.data_path}"
