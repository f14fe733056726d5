#!/usr/bin/env bash
# Set up and run every check: lint, types, the test suite as this user (with the language
# server, Neovim and VS Code end-to-end tests), the VS Code extension's own tests and build,
# and, when run as root, the sandbox battery again as an unprivileged user.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh

# Root only: toolchains of the optional official plugins (so their own tests run too), the
# editors the editor tests drive, what code-server needs to install offline, dockerd and Podman
# (the docker tests start a private one of each; images are built from these same host packages).
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
  extra=()
  for pair in ruby:ruby lua:lua5.4 php:php-cli tsc:node-typescript go:golang-go nvim:neovim \
      chromium:chromium rg:ripgrep make:build-essential pkg-config:pkg-config \
      dockerd:docker.io podman:podman npm:npm; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || extra+=("${pair#*:}")
  done
  for dev in libkrb5-dev libx11-dev libxkbfile-dev libsecret-1-dev; do
    dpkg -s "$dev" >/dev/null 2>&1 || extra+=("$dev")
  done
  # Images are made from the host's Debian packages: a Rust toolchain in rustup's home
  # directory cannot go into one, so the docker tests need Debian's rustc (the native
  # backend keeps using whichever rustc is first on PATH).
  [ -x /usr/bin/rustc ] || extra+=(rustc)
  if [ "${#extra[@]}" -gt 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${extra[@]}" \
      >/dev/null
  fi
fi

# The VS Code extension's tools (vsce, code-server) need Node.js 20; Debian 12's is 18. Node 20
# then comes from the npm registry: the official binary, as the package node-linux-<arch>,
# with the npm that goes with it (Debian's npm lacks node-gyp, which code-server's native
# modules build with).
node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [ "$node_major" -lt 20 ]; then
  case "$(uname -m)" in
    x86_64) node_arch=x64 ;;
    aarch64) node_arch=arm64 ;;
    *) node_arch=$(uname -m) ;;
  esac
  tools=$PWD/.tools/node/node_modules
  [ -x "$tools/node-linux-$node_arch/bin/node" ] && [ -x "$tools/.bin/npm" ] \
    || npm install --prefix .tools/node --no-audit --no-fund --loglevel=error \
      "node-linux-$node_arch@20.20.2" npm@11.19.1
  export PATH="$tools/node-linux-$node_arch/bin:$tools/.bin:$PATH"
  export npm_config_nodedir="$tools/node-linux-$node_arch"  # node-gyp: the headers are here
fi

.venv/bin/ruff check forgeai_ls tests benchmarks
.venv/bin/mypy

# The VS Code extension: type check, unit tests, the offline .vsix build, and a real VS Code
# (code-server) for the end-to-end test.
(cd editors/vscode && npm ci --no-audit --no-fund --loglevel=error && npm run --silent typecheck \
  && npm test --silent && npm run --silent package)
if command -v rg >/dev/null && command -v chromium >/dev/null; then  # else that test is skipped
  bash editors/vscode/e2e/seed-ripgrep.sh
  (cd editors/vscode/e2e && npm_config_unsafe_perm=true npm_config_yes=true \
    npm ci --no-audit --no-fund --loglevel=error)
fi

if [ "$(id -u)" -eq 0 ]; then
  # As root, memory and process limits are cgroups of this machine's version (the limit tests
  # check that they are, not a fallback).
  if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
    export FORGEAI_EXPECT_LIMITS=cgroup-v2
  else
    export FORGEAI_EXPECT_LIMITS=cgroup-v1
  fi
  # As root the docker tests can start their own dockerd: not being able to is a failure.
  FORGEAI_REQUIRE_DOCKER=1 .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
  # The sandbox battery again, every run served by a warm pool slot.
  FORGEAI_TEST_POOLS=1 .venv/bin/python -m pytest -q -p no:cacheprovider tests/sandbox
  bash scripts/test-unprivileged.sh
  # cgroup v2 under systemd, as root and as normal users, in a Debian 12 virtual machine.
  if [ "$#" -eq 0 ]; then bash scripts/vm-test.sh; fi
else
  .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
fi
