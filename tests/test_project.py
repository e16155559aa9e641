"""Project basics: one version source, license, citation, release workflow, wheel profile."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

import ams02

ROOT = Path(__file__).resolve().parents[1]

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    tomllib = pytest.importorskip("tomli")


def _toml(name: str):
    return tomllib.loads((ROOT / name).read_text())


def test_one_version_source():
    cargo = _toml("Cargo.toml")
    py = _toml("pyproject.toml")
    assert "version" not in py["project"] and "version" in py["project"]["dynamic"]
    assert ams02.__version__ == cargo["package"]["version"]
    cff = (ROOT / "CITATION.cff").read_text()
    assert re.search(r"^version: (\S+)$", cff, re.M).group(1) == cargo["package"]["version"]


def test_license_matches_the_declared_one():
    assert _toml("Cargo.toml")["package"]["license"] == "MIT"
    assert _toml("pyproject.toml")["project"]["license"] == {"text": "MIT"}
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")
    assert "License :: OSI Approved :: MIT License" in _toml("pyproject.toml")["project"]["classifiers"]


def test_no_invented_urls():
    """The project has no public repository or documentation site: no metadata, citation
    or docs configuration points at one (URLs are added once they exist)."""
    assert "urls" not in _toml("pyproject.toml")["project"]
    for name in ("pyproject.toml", "CITATION.cff", "mkdocs.yml", "Cargo.toml"):
        text = (ROOT / name).read_text()
        assert not re.search(r"https?://(?!127\.0\.0\.1|localhost)", text), name
    assert "repository" not in _toml("Cargo.toml")["package"]
    assert "repo_url" not in (ROOT / "mkdocs.yml").read_text()


def test_metadata_extras_and_plugin_entry_point():
    p = _toml("pyproject.toml")["project"]
    extras = p["optional-dependencies"]
    assert {"remote", "plot", "jupyter", "docs"} <= set(extras)
    assert any(d.startswith("ipywidgets") for d in extras["jupyter"]) and any(
        d.startswith("matplotlib") for d in extras["jupyter"]
    )
    assert p["entry-points"]["pytest11"] == {"ams02": "ams02.pytest_plugin"}
    assert (
        "Unreleased" in (ROOT / "CHANGELOG.md").read_text()
        and "step_size" in (ROOT / "CHANGELOG.md").read_text()
    )


def test_wheels_are_abi3_without_debug_info_and_released_for_every_platform():
    cargo = _toml("Cargo.toml")
    assert cargo["features"]["abi3"] == ["pyo3/abi3-py39"]
    assert "abi3" in _toml("pyproject.toml")["tool"]["maturin"]["features"]
    assert cargo["profile"]["release"]["debug"] is False
    assert cargo["profile"]["profiling"]["debug"] == 1  # line tables for local profiling
    wf = (ROOT / ".github" / "workflows" / "release.yml").read_text()
    for want in ("PyO3/maturin-action", "x86_64", "aarch64", "macos", "windows", "sdist", "manylinux"):
        assert want in wf, want
