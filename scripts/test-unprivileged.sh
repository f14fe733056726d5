#!/usr/bin/env bash
# Run the sandbox battery as an unprivileged user with no systemd user manager: no cgroups,
# rlimits only (the limit tests check that and the notice saying so), user namespaces. What
# differs for a normal user lives in the sandbox layer and the CLI (no staging, no leased uid,
# rlimits, the notice): their tests, the editors' and the code plugins', and the server's
# start-up (its warning). The server's other tests drive the same backend and run as root.
# Needs root (creates the user). The checkout is copied to a world-readable place and given a
# virtual environment built from the system Python, which that user can execute.
set -euo pipefail
cd "$(dirname "$0")/.."
user=forgeai-ci
id "$user" >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin "$user"
need=()
[ -x /usr/bin/python3 ] && /usr/bin/python3 -c 'import ensurepip' 2>/dev/null || need+=(python3-venv)
command -v /usr/bin/rustc >/dev/null || need+=(rustc)  # a Rust toolchain outside /root
if [ "${#need[@]}" -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
copy=$(mktemp -d /tmp/forgeai-unprivileged.XXXXXX)
trap 'rm -rf "$copy"' EXIT
git ls-files -z | xargs -0 cp --parents -t "$copy"
/usr/bin/python3 -m venv "$copy/.venv"
"$copy/.venv/bin/python" -m pip install -q -e "$copy[dev]" 2>&1 | grep -v '^WARNING' || true
chmod -R a+rX "$copy"
chmod 755 "$copy"
cd "$copy"
runuser -u "$user" -- env -i PATH=/usr/local/bin:/usr/bin:/bin HOME=/tmp LANG=C.UTF-8 \
  PYTHONDONTWRITEBYTECODE=1 FORGEAI_EXPECT_LIMITS=rlimits .venv/bin/python -m pytest -q -p no:cacheprovider -m sandbox -rs \
  tests/sandbox tests/cli tests/plugins tests/editors tests/server/test_startup.py
