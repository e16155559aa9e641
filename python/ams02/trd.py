"""The TRD straw-tube map: UDR2 links (crate, slot, UFE) to the 82 modules (FORMAT.md 5.1).

The map is data, kept in one text file shipped inside the package's native module
(one line per link: ``crate slot ufe label ladder dir``, ``#`` comments; see
:func:`flight_map_text`). A corrected table in the same format can be loaded with
:func:`load_map` and passed to :func:`ams02.open` (``trd_map=``) or to the functions here.
"""

from __future__ import annotations

import os
from typing import Any, Dict, Optional, Union

import numpy as np

from . import _native
from ._convert import check_library, convert_table

TrdMap = _native.TrdMap

#: UDR2 slots of a U-crate in UDR index order.
SLOTS = (1, 3, 4, 6, 7, 9)


def flight_map() -> "_native.TrdMap":
    """The flight map shipped with the package (with the 2-4 correction of FORMAT.md 5.1)."""
    return _native.TrdMap.flight()


def flight_map_text() -> str:
    """The text of the shipped flight map."""
    return _native.flight_map_text()


def load_map(path: Union[str, "os.PathLike[str]"]) -> "_native.TrdMap":
    """Reads a map from a text file in the flight map's format; raises ValueError naming
    the offending line if it is malformed or does not list each of the 84 links once."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    return _native.TrdMap(text)


def modules(map: Optional["_native.TrdMap"] = None, *, library: str = "np") -> Any:
    """The connected modules, one row each: label, layer, side (+1/-1), position, crate,
    slot, udr, ufe, ams_ladder, direction. The row number is the ``module`` of hits."""
    check_library(library)
    m = (map or flight_map()).modules()
    label = np.asarray(m.pop("label"), dtype=str)
    table: Dict[str, np.ndarray] = {"label": label, **m}
    return convert_table(table, library)


def channel_map(map: Optional["_native.TrdMap"] = None, *, library: str = "np") -> Any:
    """Every connected channel (5248 in the flight map): crate, slot, udr, ufe, channel,
    module, ute, ams_layer, ams_ladder, ams_tube."""
    check_library(library)
    m = map or flight_map()
    return convert_table(m.channel_map(), library, m.modules()["label"])
