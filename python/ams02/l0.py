"""The AMS-02 Layer-0 upgrade front-end (LEF): channel map and calibration (FORMAT.md 11.1).

Raw events come from :meth:`ams02.File.lef_raw` (``adc``, shape (n, 1024) uint16, in
channel order). :func:`calibrate` computes, as btdaq's ``DecodeData::ComputeCalibration``
does and in the Rust core, every quantity in float32 with btdaq's order of operations (so
the same inputs give the same bits):

1. per channel, its samples above 0 sorted ascending: ``pedestal`` = their float32 running
   sum / their count, ``raw_sigma`` = sqrt(running sum of (sample - pedestal)^2 / count);
2. the calibration is ``valid`` when the samples above 0 average at least 100 per channel
   (otherwise ``sigma`` is 0 and there is no common noise);
3. per event and VA, ``common_noise`` = the median of the VA's 64 values
   (sample - pedestal): the mean of the 32nd and 33rd sorted ascending;
4. per channel, ``sigma`` = sqrt(running sum over events of
   ((sample - pedestal) - common noise)^2 / number of events).

>>> with ams02.open("l0_541.dat") as f:               # doctest: +SKIP
...     raw = f.lef_raw()
>>> cal = ams02.l0.calibrate(raw["adc"])              # doctest: +SKIP
>>> signal = ams02.l0.subtract(raw["adc"], cal)       # doctest: +SKIP
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, Dict

import numpy as np

from . import _native, _schema
from ._convert import check_library, convert_table

__all__ = ["CHANNELS", "N_VA", "VA_CHANNELS", "Calibration", "calibrate", "channel_map", "subtract"]

#: Channels of a LEF.
CHANNELS = 1024
#: VA chips of a LEF.
N_VA = 16
#: Channels of a VA.
VA_CHANNELS = 64


@dataclass(frozen=True)
class Calibration:
    """A LEF calibration: float32 arrays.

    Attributes
    ----------
    pedestal, raw_sigma, sigma:
        Per channel, shape (1024,).
    common_noise:
        Per event and VA, shape (n_events, 16); (0, 16) when not ``valid``.
    valid:
        Whether the samples above 0 average at least 100 per channel.
    """

    pedestal: np.ndarray
    raw_sigma: np.ndarray
    sigma: np.ndarray
    common_noise: np.ndarray
    valid: bool

    def noise_per_va(self) -> np.ndarray:
        """The mean sigma of each VA, shape (16,)."""
        return np.asarray(self.sigma.reshape(N_VA, VA_CHANNELS).mean(axis=1))


def _adc(adc: Any) -> np.ndarray:
    a = np.ascontiguousarray(adc, dtype=np.uint16)
    if a.ndim != 2 or a.shape[1] != CHANNELS:
        raise ValueError(f"adc must have shape (n, {CHANNELS}), not {a.shape}")
    return a


def calibrate(adc: Any) -> Calibration:
    """Calibrates LEF raw events ``adc`` (shape (n, 1024), uint16, channel order): the
    pedestal, raw sigma and sigma of each channel and the common noise of each event and
    VA, as btdaq computes them (see the module documentation)."""
    d: Dict[str, Any] = _native.lef_calibrate(_adc(adc))
    return Calibration(
        pedestal=d["pedestal"],
        raw_sigma=d["raw_sigma"],
        sigma=d["sigma"],
        common_noise=d["common_noise"],
        valid=bool(d["valid"]),
    )


def subtract(adc: Any, calibration: Calibration) -> np.ndarray:
    """The pedestal- and common-noise-subtracted signals ``(adc - pedestal) - common
    noise``, float32, shape (n, 1024): the terms whose RMS over events is ``sigma``. The
    common noise is the calibration's own, so ``adc`` must be the calibrated events (or
    the calibration invalid: then only the pedestal is subtracted)."""
    a = _adc(adc)
    cn = np.ascontiguousarray(calibration.common_noise, dtype=np.float32)
    if cn.shape[0] not in (0, a.shape[0]):
        raise ValueError(f"the calibration has common noise for {cn.shape[0]} events, adc has {a.shape[0]}")
    ped = np.ascontiguousarray(calibration.pedestal, dtype=np.float32)
    return np.asarray(_native.lef_subtract(a, ped, cn.reshape(-1, N_VA)))


def channel_map(*, library: str = "np") -> Any:
    """The LEF channel map: for each channel ``c`` (0..1023), its ``va`` (``c // 64``),
    ``va_channel`` (``c % 64``), the ``raw_channel`` ``r = 128 adc + group`` that reads it
    (``c = (15 - r // 64) * 64 + r % 64``) and that ``adc`` (0..7), in ``library``'s
    table type."""
    return convert_table(dict(_native.lef_channel_map()), check_library(library))


_schema.document("ams02.l0", sys.modules[__name__])
