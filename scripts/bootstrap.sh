#!/usr/bin/env bash
# Set up ForgeAI on a fresh Debian/Ubuntu machine: system packages (when run as root) and a
# virtual environment in .venv with ForgeAI and its development tools installed.
set -euo pipefail
cd "$(dirname "$0")/.."

need_packages=()
want() {  # want COMMAND PACKAGE: install PACKAGE when COMMAND is missing
  command -v "$1" >/dev/null 2>&1 || need_packages+=("$2")
}
python=${PYTHON:-python3}
want "$python" python3
"$python" -c 'import ensurepip, venv' >/dev/null 2>&1 || need_packages+=(python3-venv)
want git git
want bwrap bubblewrap
want gcc gcc
want g++ g++
want node nodejs
want javac default-jdk-headless
want pgrep procps
want runuser util-linux
[ -e /usr/lib/x86_64-linux-gnu/libseccomp.so.2 ] || [ -e /lib/x86_64-linux-gnu/libseccomp.so.2 ] \
  || need_packages+=(libseccomp2)

if [ "${#need_packages[@]}" -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need_packages[@]}" >/dev/null
  else
    echo "bootstrap: please install: ${need_packages[*]}" >&2
    exit 1
  fi
fi

[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e '.[dev]'
echo "bootstrap: ready (.venv/bin/forgeai)"
