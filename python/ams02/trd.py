"""The TRD straw-tube map: UDR2 links (crate, slot, UFE) to the 82 modules (FORMAT.md 5.1).

The map is data, kept in one text file shipped inside the package's native module
(one line per link: ``crate slot ufe label ladder dir``, ``#`` comments; see
:func:`flight_map_text`). A corrected table in the same format can be loaded with
:func:`load_map` and passed to :func:`ams02.open` (``trd_map=``) or to the functions here.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Dict, Optional, Union

import numpy as np

from . import _native, _schema
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


# -- analysis comforts: occupancy in the detector geometry, amplitude spectra -----------
#: ADC counts per unit of ``amplitude`` (FORMAT.md 5: ADC counts = amplitude / 8).
ADC_PER_AMPLITUDE = 1 / 8


def _column(hits: Any, name: str) -> np.ndarray:
    """A column of a hit table given as a dict of arrays, a DataFrame, a pyarrow Table or
    an awkward array."""
    try:
        col = hits[name]
    except (KeyError, IndexError, ValueError, TypeError) as e:
        raise KeyError(f"the hits have no {name!r} column") from e
    if hasattr(col, "to_numpy"):
        try:
            return np.asarray(col.to_numpy())
        except TypeError:  # awkward's to_numpy is a function of the module
            pass
    return np.asarray(col)


def module_counts(
    hits: Any,
    map: Optional["_native.TrdMap"] = None,
    *,
    weights: Optional[Union[str, np.ndarray]] = None,
) -> np.ndarray:
    """Hits (or the sum of ``weights``, a column name such as ``"amplitude"`` or an
    array) per module: an array of one value per row of :func:`modules`. ``hits`` is a
    hit table (any library), an array of module numbers, or already one value per module
    (a length-82 array or a ``hist.Hist`` over modules)."""
    n = len((map or flight_map()).modules()["label"])
    if hasattr(hits, "values") and hasattr(hits, "axes") and callable(hits.values):  # hist.Hist
        v = np.asarray(hits.values(), dtype=np.float64).reshape(-1)
        if len(v) != n:
            raise ValueError(f"the histogram has {len(v)} bins, not one per module ({n})")
        return v
    if isinstance(hits, np.ndarray) and hits.dtype.kind == "f" and len(hits) == n:
        return hits.astype(np.float64)
    module = np.asarray(hits) if isinstance(hits, np.ndarray) else _column(hits, "module")
    w = _column(hits, weights) if isinstance(weights, str) else weights
    ok = module >= 0  # -1: a channel on no module
    return np.bincount(
        module[ok].astype(np.int64),
        weights=None if w is None else np.asarray(w, dtype=np.float64)[ok],
        minlength=n,
    ).astype(np.float64)


def module_geometry(map: Optional["_native.TrdMap"] = None, *, library: str = "np") -> Any:
    """Where each module sits in a schematic front view of the TRD: ``x`` (centre; side
    ``-`` left of 0, ``+`` right, ``position`` counting outwards, one unit a module) and
    ``y`` (the module layer 1..5, bottom to top), with ``label``. Row = module number."""
    m = modules(map)
    x = m["side"].astype(np.float64) * (m["position"].astype(np.float64) - 0.5)
    table = {"label": m["label"], "x": x, "y": m["layer"].astype(np.float64), "layer": m["layer"]}
    return convert_table(table, library)


def plot_occupancy(
    hits: Any,
    *,
    ax: Any = None,
    map: Optional["_native.TrdMap"] = None,
    weights: Optional[Union[str, np.ndarray]] = None,
    cmap: str = "viridis",
    log: bool = False,
    labels: bool = True,
    colorbar: bool = True,
    title: Optional[str] = "TRD occupancy",
) -> Any:
    """Draws the 82 TRD modules in the detector geometry (:func:`module_geometry`: five
    layers, sides ``-``/``+``, positions outwards), each coloured by its number of hits
    (or the sum of ``weights``, see :func:`module_counts`). ``hits`` is a hit table of any
    library, an array of module numbers, a length-82 array or a ``hist.Hist`` over
    modules. Returns the matplotlib Axes (``ax`` or a new figure's)."""
    try:
        import matplotlib.pyplot as plt
        from matplotlib.collections import PatchCollection
        from matplotlib.colors import LogNorm, Normalize
        from matplotlib.patches import Rectangle
    except ImportError:
        raise ImportError("plot_occupancy needs matplotlib: pip install 'ams02[plot]'") from None
    counts = module_counts(hits, map, weights=weights)
    g = module_geometry(map)
    if ax is None:
        _, ax = plt.subplots(figsize=(9, 3.6))
    patches = [Rectangle((x - 0.45, y - 0.4), 0.9, 0.8) for x, y in zip(g["x"], g["y"])]
    positive = counts[counts > 0]
    if log and len(positive):
        norm: Any = LogNorm(vmin=max(positive.min(), 1e-12), vmax=positive.max())
        shown = np.where(counts > 0, counts, np.nan)
    else:
        norm = Normalize(vmin=0, vmax=max(float(counts.max()), 1.0) if len(counts) else 1.0)
        shown = counts
    coll = PatchCollection(patches, cmap=cmap, norm=norm, edgecolor="black", linewidth=0.5)
    coll.set_array(np.ma.masked_invalid(shown))
    ax.add_collection(coll)
    if labels:
        for lab, x, y in zip(g["label"], g["x"], g["y"]):
            ax.text(x, y, lab, ha="center", va="center", fontsize=6, color="white")
    ax.set_xlim(g["x"].min() - 1, g["x"].max() + 1)
    ax.set_ylim(0.4, 5.6)
    ax.set_yticks([1, 2, 3, 4, 5])
    ax.set_ylabel("module layer")
    ax.set_xlabel("side - / + and position")
    ax.axvline(0, color="grey", linewidth=0.5)
    ax.set_aspect("equal")
    if title:
        ax.set_title(title)
    if colorbar:
        ax.figure.colorbar(coll, ax=ax, label="hits" if weights is None else str(weights))
    return ax


def amplitude_spectrum(
    hits: Any,
    *,
    bins: int = 100,
    range: Optional[tuple] = None,
    by: Optional[str] = None,
    adc: bool = True,
    plot: bool = True,
    ax: Any = None,
) -> Any:
    """The amplitude spectrum of TRD hits as a ``hist.Hist`` (an ``amplitude`` axis in ADC
    counts from 0 to the largest value unless ``range`` says otherwise, or raw amplitude
    units with ``adc=False``, and with ``by="layer"`` or another
    integer column, a category axis of it), drawn with matplotlib as steps (one line per
    category) unless ``plot=False``. Returns the histogram (draw it again, or on given
    Axes, with :func:`plot_spectrum`)."""
    try:
        import hist
    except ImportError:
        raise ImportError("amplitude_spectrum needs hist: pip install 'ams02[plot]'") from None
    amp = _column(hits, "amplitude").astype(np.float64)
    if adc:
        amp = amp * ADC_PER_AMPLITUDE
    if range is None:
        hi = float(amp.max()) if len(amp) else 1.0
        # the upper edge is exclusive: just above the largest value holds every hit
        range = (0.0, float(np.nextafter(hi, np.inf)) if hi > 0 else 1.0)
    axis = hist.axis.Regular(
        bins, range[0], range[1], name="amplitude", label="ADC counts" if adc else "amplitude"
    )
    if by is None:
        h = hist.Hist(axis, storage=hist.storage.Int64())
        h.fill(amplitude=amp)
    else:
        cat = _column(hits, by).astype(np.int64)
        h = hist.Hist(
            axis,
            hist.axis.IntCategory(sorted(set(cat.tolist())), name=by, label=by),
            storage=hist.storage.Int64(),
        )
        h.fill(amp, cat)  # positional: the amplitude axis, then the category
    if plot:
        plot_spectrum(h, ax=ax)
    return h


def plot_spectrum(h: Any, *, ax: Any = None, log: bool = True) -> Any:
    """Draws a spectrum from :func:`amplitude_spectrum` (steps; one line per category of a
    second axis) with matplotlib; returns the Axes."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.6))
    edges = h.axes[0].edges
    if len(h.axes) == 1:
        ax.stairs(h.values(), edges, label="all")
    else:
        cats = h.axes[1]
        for i, c in enumerate(cats):
            ax.stairs(h.values()[:, i], edges, label=f"{cats.name} {c}")
        ax.legend(fontsize=7)
    ax.set_xlabel(h.axes[0].label)
    ax.set_ylabel("hits")
    if log:
        ax.set_yscale("log")
    return ax


_schema.document("ams02.trd", sys.modules[__name__])
