#!/usr/bin/env bash
# Set up and run every check: lint, types, the test suite as this user and, when run as root,
# the sandbox battery again as an unprivileged user (the desktop-user code path).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh

# Toolchains of the optional official plugins, so their own tests run too, and the editors
# the editor tests drive (root only).
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
  extra=()
  for pair in ruby:ruby lua:lua5.4 php:php-cli tsc:node-typescript go:golang-go nvim:neovim; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || extra+=("${pair#*:}")
  done
  if [ "${#extra[@]}" -gt 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${extra[@]}" \
      >/dev/null
  fi
fi

.venv/bin/ruff check forgeai_ls tests benchmarks
.venv/bin/mypy
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"

# The VS Code extension: type check, unit tests, and the offline .vsix build.
(cd editors/vscode && npm ci --no-audit --no-fund --loglevel=error && npm run --silent typecheck \
  && npm test --silent && npm run --silent package)

if [ "$(id -u)" -eq 0 ]; then
  bash scripts/test-unprivileged.sh
fi
