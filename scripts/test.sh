#!/usr/bin/env bash
# Installs what the tests need and runs every test: Rust (fmt, clippy, cargo test) and
# Python (pytest, notebooks). Used by .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -m pip install --upgrade pip >/dev/null
python3 -m pip install -e ".[test]"

rustup component add rustfmt clippy >/dev/null 2>&1 || true
cargo fmt --all -- --check
cargo clippy --all-targets --features python -- -D warnings
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
if compgen -G "notebooks/*.ipynb" >/dev/null; then
  python3 -m pytest -q -p no:cacheprovider --nbmake notebooks
fi
