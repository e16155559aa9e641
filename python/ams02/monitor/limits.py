"""Limits of the 10 Critical Health Data words (a TOML file; defaults shipped).

The ICD (seed 001) defines where the CHD words sit in an H&S packet of subset 308, not
what they mean nor their limits: those belong to the operators. A limits file names each
word and gives two bands, both optional::

    # ams02 monitor limits
    [chd.1]
    name = "CHD 1"          # shown on the page
    caution = [700, 1300]   # outside [low, high]: caution (yellow)
    alarm = [400, 1600]     # outside [low, high]: alarm (red)

Words 1..10 may each have a ``[chd.N]`` table; a word without one is shown uncoloured.
Values are the raw 16-bit words (0..65535). ``caution`` must lie inside ``alarm``. The
shipped defaults (``default_limits.toml``) fit the simulator's nominal profile
(``ams02 ccsds simulate --chd nominal``): word ``j`` near ``1000 j`` counts.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple, Union

if sys.version_info >= (3, 11):
    import tomllib as _toml
else:  # pragma: no cover - Python < 3.11
    try:
        import tomli as _toml  # type: ignore[no-redef]
    except ImportError:  # pragma: no cover
        _toml = None  # type: ignore[assignment]

#: Words of critical health data.
CHD_WORDS = 10
#: The band names, from best to worst.
LEVELS = ("ok", "caution", "alarm")

PathLike = Union[str, "os.PathLike[str]"]


@dataclass(frozen=True)
class WordLimits:
    """The limits of one CHD word (1-based ``word``)."""

    word: int
    name: str
    caution: Optional[Tuple[int, int]] = None
    alarm: Optional[Tuple[int, int]] = None

    def level(self, value: int) -> int:
        """0 (ok), 1 (caution) or 2 (alarm) for ``value``."""
        if self.alarm is not None and not self.alarm[0] <= value <= self.alarm[1]:
            return 2
        if self.caution is not None and not self.caution[0] <= value <= self.caution[1]:
            return 1
        return 0

    def to_json(self) -> Dict[str, Any]:
        return {
            "word": self.word,
            "name": self.name,
            "caution": list(self.caution) if self.caution else None,
            "alarm": list(self.alarm) if self.alarm else None,
        }


def _band(v: Any, where: str) -> Optional[Tuple[int, int]]:
    if v is None:
        return None
    if not (
        isinstance(v, list) and len(v) == 2 and all(isinstance(x, int) and not isinstance(x, bool) for x in v)
    ):
        raise ValueError(f"{where} must be a list of two integers [low, high], not {v!r}")
    lo, hi = int(v[0]), int(v[1])
    if not (0 <= lo <= hi <= 0xFFFF):
        raise ValueError(f"{where} = [{lo}, {hi}] must have 0 <= low <= high <= 65535")
    return lo, hi


def parse_limits(doc: Dict[str, Any], source: str = "limits") -> List[WordLimits]:
    """The 10 words' limits from a parsed TOML document (checked)."""
    unknown = set(doc) - {"chd"}
    if unknown:
        raise ValueError(f"{source}: unknown table(s) {sorted(unknown)}; only [chd.N] tables are read")
    chd = doc.get("chd", {})
    if not isinstance(chd, dict):
        raise ValueError(f"{source}: chd must be a table of [chd.1] .. [chd.10]")
    out: List[WordLimits] = []
    for k in chd:
        if not (str(k).isdigit() and 1 <= int(k) <= CHD_WORDS):
            raise ValueError(f"{source}: [chd.{k}]: CHD words are numbered 1..10")
    for w in range(1, CHD_WORDS + 1):
        t = chd.get(str(w), {})
        if not isinstance(t, dict):
            raise ValueError(f"{source}: chd.{w} must be a table")
        extra = set(t) - {"name", "caution", "alarm"}
        if extra:
            raise ValueError(f"{source}: [chd.{w}]: unknown key(s) {sorted(extra)} (name, caution, alarm)")
        name = t.get("name", f"CHD {w}")
        if not isinstance(name, str):
            raise ValueError(f"{source}: chd.{w}.name must be a string")
        caution = _band(t.get("caution"), f"{source}: chd.{w}.caution")
        alarm = _band(t.get("alarm"), f"{source}: chd.{w}.alarm")
        if caution and alarm and not (alarm[0] <= caution[0] and caution[1] <= alarm[1]):
            raise ValueError(
                f"{source}: chd.{w}: the caution band {list(caution)} must lie inside the alarm band {list(alarm)}"
            )
        out.append(WordLimits(w, name, caution, alarm))
    return out


def default_limits_path() -> str:
    """The shipped defaults."""
    return os.path.join(os.path.dirname(__file__), "default_limits.toml")


def load_limits(path: Optional[PathLike] = None) -> List[WordLimits]:
    """The limits in ``path`` (the shipped defaults when None)."""
    p = os.fspath(path) if path is not None else default_limits_path()
    if _toml is None:  # pragma: no cover
        raise RuntimeError("reading a limits file needs Python 3.11 or the tomli package")
    with open(p, "rb") as f:
        try:
            doc = _toml.load(f)
        except Exception as e:  # tomllib.TOMLDecodeError
            raise ValueError(f"{p}: not a valid TOML file: {e}") from None
    return parse_limits(doc, p)
