#!/usr/bin/env bash
# Installs what the tests need and runs every test: Rust (fmt, clippy, cargo test) and
# Python (pytest, notebooks). Used by .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -m pip install --upgrade pip >/dev/null
# One release build: the abi3 wheel (no debug info), installed here for the tests and into a
# fresh virtual environment without Rust below (no second compile).
python3 -m pip install "maturin>=1.9.4,<2" >/dev/null
rm -rf dist
python3 -m maturin build --release --out dist
WHEEL="$(ls dist/ams02-*.whl | head -n 1)"
python3 -m pip install "${WHEEL}[test,docs]"
python3 -m pip install --no-deps --force-reinstall "$WHEEL" >/dev/null
if command -v readelf >/dev/null; then  # no debug info in the wheel's extension
  so_dir="$(mktemp -d)"; python3 -m zipfile -e "$WHEEL" "$so_dir"
  so="$(find "$so_dir" -name '_native*.so' | head -n 1)"
  if [ -n "$so" ] && readelf -S "$so" | grep -q '\.debug_info'; then
    echo "the wheel's $so carries debug info"; exit 1
  fi
  rm -rf "$so_dir"
fi

# Python lint and format (formatting is adopted file by file: pyproject's [tool.ruff.format]).
python3 -m ruff check python tests scripts/docs_hooks.py benchmarks
python3 -m ruff format --check python tests scripts/docs_hooks.py

rustup component add rustfmt clippy >/dev/null 2>&1 || true
cargo fmt --all -- --check
cargo clippy --all-targets --features python -- -D warnings
# In CI the property tests draw the same cases every run (as hypothesis's "ci" profile):
# a red run is then a change, not a draw. Outside CI they draw new cases each time.
if [ -n "${CI:-}" ]; then export PROPTEST_RNG_SEED="${PROPTEST_RNG_SEED:-20261201}"; fi
cargo test --release

# A throwaway PostgreSQL server on 127.0.0.1 for the transfer catalog tests.
export AMS02_TEST_PG_URL="$(bash scripts/pg_test_server.sh)"
trap 'bash scripts/pg_test_server.sh stop >/dev/null 2>&1 || true' EXIT

# Headless Chromium and its driver from Debian for the monitor's browser tests
# (tests/test_monitor_browser.py skips them, saying why, where they cannot be installed).
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 \
      && (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver) >/dev/null 2>&1; then
    echo "installed chromium $(chromium --version 2>/dev/null | head -1)"
  else
    echo "chromium could not be installed from Debian: the monitor's browser tests will be skipped"
  fi
fi

python3 -m pytest -q -p no:cacheprovider tests
# A bounded fault soak of ams02 sync (random SIGKILLs, SQLite and PostgreSQL; ~2-3 min).
python3 scripts/transfer_soak.py

# The wheel in a fresh virtual environment with no Rust on PATH (its dependencies come
# from this Python's packages): smoke tests and the notebooks, which must remove what
# they write (they write under TMPDIR).
venv="$(mktemp -d)/venv"
python3 -m venv --system-site-packages "$venv"
"$venv/bin/python" -m pip install --no-deps --force-reinstall --quiet "$WHEEL"
nb_tmp="$(mktemp -d)"
env PATH="$venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" TMPDIR="$nb_tmp" \
  VENV="$venv" bash -euo pipefail -c '
  if command -v cargo || command -v rustc; then echo "Rust is on PATH"; exit 1; fi
  python -c "import ams02, os; assert ams02.__file__.startswith(os.environ[\"VENV\"]), ams02.__file__; print(\"ams02\", ams02.__version__, \"from\", os.path.dirname(ams02.__file__))"
  ams02 --version
  ams02 demo --events 2000 >/dev/null
  python -m pytest -q -p no:cacheprovider tests/test_sources.py -k "local_input_kind or memory_filesystem"
  if compgen -G "notebooks/*.ipynb" >/dev/null; then
    python -m pytest -q -p no:cacheprovider --nbmake notebooks
  fi'
left="$(find "$nb_tmp" -maxdepth 1 -name 'ams02-*' | head -n 5)"
if [ -n "$left" ]; then echo "the notebooks left behind: $left"; exit 1; fi
rm -rf "$nb_tmp" "$(dirname "$venv")"

# The documentation site, warnings as errors (notebooks rendered with their stored outputs).
site="$(mktemp -d)"
NO_MKDOCS_2_WARNING=1 python3 -m mkdocs build --strict --quiet --site-dir "$site"
rm -rf "$site"
