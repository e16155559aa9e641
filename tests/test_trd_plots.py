"""ams02.trd analysis helpers: module counts, the detector geometry, plot_occupancy and the
amplitude spectrum (matplotlib and hist)."""

from __future__ import annotations

import numpy as np
import pytest

import ams02

mpl = pytest.importorskip("matplotlib")
mpl.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


@pytest.fixture(scope="module")
def hits(tmp_path_factory):
    p = tmp_path_factory.mktemp("plots") / "run.dat"
    ams02.simulate(p, 1500, seed=41)
    with ams02.open(p) as f:
        return f.trd_hits()


def test_geometry_has_the_82_modules_in_five_layers():
    g = ams02.trd.module_geometry()
    m = ams02.trd.modules()
    assert len(g["x"]) == 82 and list(g["label"]) == list(m["label"])
    assert np.bincount(g["layer"], minlength=6)[1:].tolist() == [14, 16, 16, 18, 18]
    for layer in range(1, 6):  # sides mirror each other, no two modules on one spot
        x = np.sort(g["x"][g["layer"] == layer])
        np.testing.assert_array_equal(x, -x[::-1])
        assert len(set(x.tolist())) == len(x)
    # the label says where: "5-7" is layer 5, side -, position 7
    i = list(m["label"]).index("5-7")
    assert (g["y"][i], g["x"][i]) == (5.0, -6.5)


def test_module_counts_from_any_library(hits):
    want = np.bincount(hits["module"][hits["module"] >= 0], minlength=82).astype(float)
    np.testing.assert_array_equal(ams02.trd.module_counts(hits), want)
    pd = pytest.importorskip("pandas")
    np.testing.assert_array_equal(ams02.trd.module_counts(pd.DataFrame(hits)), want)
    np.testing.assert_array_equal(ams02.trd.module_counts(hits["module"]), want)
    w = ams02.trd.module_counts(hits, weights="amplitude")
    ok = hits["module"] >= 0
    np.testing.assert_allclose(
        w, np.bincount(hits["module"][ok], weights=hits["amplitude"][ok].astype(float), minlength=82)
    )


def test_plot_occupancy_colours_each_module_by_its_hits(hits):
    ax = ams02.trd.plot_occupancy(hits)
    coll = ax.collections[0]
    assert len(coll.get_paths()) == 82
    np.testing.assert_array_equal(np.asarray(coll.get_array()), ams02.trd.module_counts(hits))
    assert len(ax.texts) == 82 and {t.get_text() for t in ax.texts} == set(ams02.trd.modules()["label"])
    plt.close(ax.figure)
    fig, ax2 = plt.subplots()
    assert ams02.trd.plot_occupancy(hits, ax=ax2, log=True, labels=False, colorbar=False) is ax2
    plt.close(fig)


def test_amplitude_spectrum_is_a_hist_and_plots(hits):
    hist = pytest.importorskip("hist")
    h = ams02.trd.amplitude_spectrum(hits, bins=50, range=(0, 4096), plot=False)
    assert isinstance(h, hist.Hist)
    adc = hits["amplitude"] / 8
    want, _ = np.histogram(adc, bins=50, range=(0, 4096))
    inside = adc < 4096
    np.testing.assert_array_equal(h.values(), want)
    assert h.values().sum() == inside.sum() > 1000
    by = ams02.trd.amplitude_spectrum(hits, bins=20, by="layer", plot=False)
    per_layer = by.values().sum(axis=0)
    assert per_layer.sum() == len(adc)  # the default range holds every hit
    np.testing.assert_array_equal(per_layer, np.bincount(hits["layer"])[sorted(set(hits["layer"].tolist()))])
    # a hist over modules goes to plot_occupancy too
    hm = hist.Hist(hist.axis.Integer(0, 82, name="module"))
    hm.fill(module=hits["module"][hits["module"] >= 0])
    ax = ams02.trd.plot_occupancy(hm)
    np.testing.assert_array_equal(np.asarray(ax.collections[0].get_array()), ams02.trd.module_counts(hits))
    plt.close("all")
    ax = ams02.trd.plot_spectrum(by)
    assert len(ax.patches) == len(by.axes[1]) and ax.get_yscale() == "log"
    plt.close("all")
