"""Shared pytest configuration: hypothesis profiles and temporary-file fixtures.

Profiles (select with HYPOTHESIS_PROFILE=<name>, default "ci"):
  ci        100 examples per property, no deadline (the default)
  dev       15 examples, for quick local iteration
  thorough  500 examples, for a long soak before a release
"""

from __future__ import annotations

import itertools
import os
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

sys.path.insert(0, str(Path(__file__).parent))  # make `import amsenc` work from anywhere

_common = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
# CI (CI=true) draws the same examples every run, so that a landing never depends on luck;
# a developer's runs draw new ones (and keep what they find in .hypothesis/).
settings.register_profile(
    "ci", max_examples=100, print_blob=True, derandomize=bool(os.environ.get("CI")), **_common
)
settings.register_profile("dev", max_examples=15, **_common)
settings.register_profile("thorough", max_examples=500, **_common)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(scope="session")
def scratch_dir(tmp_path_factory):
    """A session-wide directory for files written inside hypothesis tests
    (function-scoped fixtures are not reset between hypothesis examples)."""
    return tmp_path_factory.mktemp("amsruns")


_counter = itertools.count()


@pytest.fixture(scope="session")
def write_file(scratch_dir):
    """write_file(data: bytes, suffix=".dat") -> Path of a new file holding data."""

    def _write(data: bytes, suffix: str = ".dat") -> Path:
        p = scratch_dir / f"f{next(_counter):06d}{suffix}"
        p.write_bytes(data)
        return p

    return _write


@pytest.fixture
def run_file(tmp_path):
    """run_file(run) -> (Path, bytes): a run from tests/amsenc.py written to disk."""

    def _write(run, name: str = "run.dat"):
        p = tmp_path / name
        data = run.to_bytes()
        p.write_bytes(data)
        return p, data

    return _write
