#!/usr/bin/env bash
# Set up and run every check: lint, types, the test suite as this user and, when run as root,
# the sandbox battery again as an unprivileged user (the desktop-user code path).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh

.venv/bin/ruff check forgeai_ls tests benchmarks
.venv/bin/mypy
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"

if [ "$(id -u)" -eq 0 ]; then
  bash scripts/test-unprivileged.sh
fi
