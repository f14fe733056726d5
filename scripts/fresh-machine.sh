#!/usr/bin/env bash
# Prove the README's two commands on a fresh machine: a Debian bookworm root filesystem made
# by debootstrap (minbase: none of this machine's own installs, no .venv, no caches, no
# toolchains), a clean clone of this repository's HEAD in it, then, inside it, the README's
# main-job command and its test command, each timed. Needs root (debootstrap, chroot, mounts).
#
#   bash scripts/fresh-machine.sh [ROOT]        # default ROOT: /var/tmp/forgeai-fresh
#
# The fresh system runs as a container made by bubblewrap as root: its own mount namespace and
# root (pivot_root, not chroot: a chrooted process may not create the user namespaces its
# sandboxes need; bound with devices allowed, as a real root filesystem is, so that the VM test
# can debootstrap inside it), this machine's kernel, processes (/proc as it is: a new proc with parts
# covered would forbid the sandboxes' own), devices, cgroups and network. Network plumbing only:
# when this machine reaches the package registries through a TLS-intercepting proxy
# (FRESH_EXTRA_CA, default: /etc/ssl/certs/sandboxing-egress-ca.pem if present), its CA is
# added to the chroot's trust store, and the usual *_CA_* / SSL_CERT_* variables are passed
# (they name the chroot's own bundle). Logs: ROOT.log.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
root=${1:-/var/tmp/forgeai-fresh}
log="$root.log"
extra_ca=${FRESH_EXTRA_CA:-/etc/ssl/certs/sandboxing-egress-ca.pem}

[ "$(id -u)" -eq 0 ] || { echo "fresh-machine: run as root" >&2; exit 1; }
if ! command -v debootstrap >/dev/null || ! command -v bwrap >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap \
    bubblewrap
fi

rm -rf "$root"
: >"$log"

seconds() { date +%s; }
started=$(seconds)
debootstrap --variant=minbase bookworm "$root" http://deb.debian.org/debian >>"$log" 2>&1
echo "fresh-machine: debootstrap $(($(seconds) - started)) s"

cp /etc/resolv.conf "$root/etc/resolv.conf"
inside() {  # inside COMMAND...: run in the fresh system, as its root, no standard input
  bwrap --dev-bind "$root" / --dev-bind /dev /dev --bind /proc /proc --bind /sys /sys \
    --tmpfs /run --unshare-ipc --unshare-uts --die-with-parent \
    /usr/bin/env -i "${passed[@]}" "$@" </dev/null
}
passed=(HOME=/root LANG=C.UTF-8 TERM=dumb
  PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin)
if [ -f "$extra_ca" ]; then
  inside apt-get install -y -qq --no-install-recommends ca-certificates >>"$log" 2>&1
  cp "$extra_ca" "$root/usr/local/share/ca-certificates/extra-egress-ca.crt"
  inside update-ca-certificates >>"$log" 2>&1
  for name in SSL_CERT_FILE SSL_CERT_DIR REQUESTS_CA_BUNDLE PIP_CERT CURL_CA_BUNDLE \
      NODE_EXTRA_CA_CERTS GIT_SSL_CAINFO; do
    [ -n "${!name:-}" ] && passed+=("$name=${!name}")
  done
fi

# A clean clone, as CI gets it (committed files only).
git clone -q --no-hardlinks "$repo" "$root/root/forgeai"

run_timed() {  # run_timed LABEL COMMAND: inside the fresh system
  local label=$1 command=$2 begin status
  begin=$(seconds)
  set +e
  inside /bin/bash -c "cd /root/forgeai && $command" >>"$log" 2>&1
  status=$?
  set -e
  echo "fresh-machine: $label: exit $status in $(($(seconds) - begin)) s"
  return "$status"
}

echo "--- main job" >>"$log"
run_timed "main job (bootstrap + forgeai run examples/hello.py)" \
  "bash scripts/bootstrap.sh && .venv/bin/forgeai run examples/hello.py"
echo "--- tests" >>"$log"
run_timed "tests (bash scripts/test.sh)" "bash scripts/test.sh"
