"""The pytest plugin (``pytest --ams02-validate PATH...``), run with pytester."""

from __future__ import annotations

import importlib.util

import pytest

import ams02

pytest_plugins = ["pytester"]


@pytest.fixture
def data(pytester):
    d = pytester.path / "data"
    d.mkdir()
    ams02.simulate(d / "good.dat", 300, seed=51, layout="2007")
    raw = bytearray((d / "good.dat").read_bytes())
    with ams02.open(d / "good.dat") as f:
        frag = f.fragments()
    top = [i for i in range(len(frag["depth"])) if frag["depth"][i] == 0 and frag["event_index"][i] == 7][0]
    crc_at = int(frag["data_offset"][top] + 2 * frag["n_words"][top] + 2)
    raw[crc_at] ^= 0x10  # a flipped bit in event 7's group CRC
    (d / "bad.dat").write_bytes(bytes(raw))
    (d / ".catalog.sqlite").write_bytes(b"not data")
    with ams02.open(d / "bad.dat") as f:
        kinds = sorted(set(f.errors()["kind"].tolist()))
    assert kinds == ["crc_mismatch"]
    # the project's own tests must not be collected when only data are given
    pytester.makepyfile(test_unrelated="def test_x():\n    raise AssertionError('collected')\n")
    return d


def test_off_unless_asked(pytester, data):
    r = pytester.runpytest("-p", "no:cacheprovider")
    r.assert_outcomes(failed=1)  # only the unrelated test: no data items
    assert "ams02-validate" not in r.stdout.str() and "good.dat" not in r.stdout.str()


def test_fails_on_a_damaged_file_and_passes_on_a_clean_one(pytester, data):
    r = pytester.runpytest("-p", "no:cacheprovider", "-v", "--ams02-validate", str(data))
    r.assert_outcomes(passed=1, failed=1)
    out = r.stdout.str()
    r.stdout.fnmatch_lines(["*bad.dat FAILED*", "*good.dat PASSED*"])
    # the readable report: the file, the count by kind, a row with kind, offset and event
    assert "1 problem(s) (crc_mismatch: 1)" in out
    row = [line for line in out.splitlines() if line.strip().startswith("crc_mismatch")]
    assert row and row[0].split()[2] == "7"
    assert ".catalog" not in out and "test_unrelated" not in out


def test_allow_kinds_min_events_and_globs(pytester, data):
    r = pytester.runpytest(
        "-p",
        "no:cacheprovider",
        "--ams02-validate",
        str(data / "*.dat"),
        "--ams02-allow",
        "crc_mismatch,sync_lost",
    )
    r.assert_outcomes(passed=2)
    r = pytester.runpytest(
        "-p", "no:cacheprovider", "--ams02-validate", str(data / "good.dat"), "--ams02-min-events", "301"
    )
    r.assert_outcomes(failed=1)
    r.stdout.fnmatch_lines(["*300 events, fewer than the 301 required*"])
    r = pytester.runpytest(
        "-p", "no:cacheprovider", "--ams02-validate", str(data / "good.dat"), "--ams02-min-events", "300"
    )
    r.assert_outcomes(passed=1)


def test_layout_requirement(pytester, data):
    r = pytester.runpytest(
        "-p", "no:cacheprovider", "--ams02-validate", str(data / "good.dat"), "--ams02-layout", "flight"
    )
    with ams02.open(data / "good.dat") as f:
        has_layout = "layout" in f.events()
    if has_layout:
        r.assert_outcomes(failed=1)
        r.stdout.fnmatch_lines(["*300 events of layout*not flight*"])
    else:
        r.assert_outcomes(failed=1)
        r.stdout.fnmatch_lines(["*layout 'flight' required, but this ams02 reports no event layout*"])


def test_with_test_paths_both_are_collected(pytester, data):
    r = pytester.runpytest(
        "-p", "no:cacheprovider", "--ams02-validate", str(data / "good.dat"), "test_unrelated.py"
    )
    r.assert_outcomes(passed=1, failed=1)


def test_bad_path_is_a_usage_error(pytester, data):
    r = pytester.runpytest("-p", "no:cacheprovider", "--ams02-validate", str(data / "nothing-*.dat"))
    assert r.ret == pytest.ExitCode.USAGE_ERROR
    r.stderr.fnmatch_lines(["*--ams02-validate: no files match*"])


@pytest.mark.skipif(importlib.util.find_spec("xdist") is None, reason="needs pytest-xdist")
def test_runs_in_parallel_with_xdist(pytester, data):
    r = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-n", "2", "--ams02-validate", str(data))
    r.assert_outcomes(passed=1, failed=1)
    assert "crc_mismatch" in r.stdout.str()
