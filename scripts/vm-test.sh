#!/usr/bin/env bash
# Prove ForgeAI's limits on a cgroup v2 machine under systemd: a Debian 12 virtual machine.
#
#   bash scripts/vm-test.sh [PYTEST ARGS...]
#
# The image (Debian bookworm with systemd, the cloud kernel, bubblewrap, Python and a virtual
# environment with ForgeAI's dependencies) is built once with debootstrap and cached by its
# inputs under $FORGEAI_VM_CACHE (default /var/cache/forgeai/vm). The checkout goes in as a
# second, read-only disk made from the committed files. The machine boots with
# systemd.unified_cgroup_hierarchy=1; its test unit (scripts/vm/inside.sh) runs the limit and
# containment tests as root, as a normal user with a systemd user manager (lingering), and as
# a normal user without one, writes their output to the second serial port and powers off.
# This script exits with the tests' status. Needs root (debootstrap, mkfs). KVM is used when
# it works here, else TCG. Output: $FORGEAI_VM_CACHE/last/{console,tests}.log.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
[ "$(id -u)" -eq 0 ] || { echo "vm-test: run as root" >&2; exit 1; }
cache=${FORGEAI_VM_CACHE:-/var/cache/forgeai/vm}
boot_timeout=${FORGEAI_VM_TIMEOUT:-840}
extra_ca=${FRESH_EXTRA_CA:-/etc/ssl/certs/sandboxing-egress-ca.pem}

need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v mkfs.ext4 >/dev/null || need+=(e2fsprogs)
if [ "${#need[@]}" -gt 0 ]; then
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" \
    >/dev/null 2>&1
fi

now() { date +%s%N; }
ms_since() { echo $(( ($(now) - $1) / 1000000 )); }

# --- the image, cached by everything that goes into it
key=$(cat scripts/vm/build-image.sh pyproject.toml | sha256sum | cut -c1-16)
image=$cache/$key
if [ ! -f "$image/ready" ]; then
  begin=$(now)
  rm -rf "$image"
  mkdir -p "$image"
  FRESH_EXTRA_CA=$extra_ca bash scripts/vm/build-image.sh "$image" "$repo" >"$image.log" 2>&1 \
    || { tail -30 "$image.log" >&2; rm -rf "$image"
         echo "vm-test: image build failed (log: $image.log)" >&2; exit 1; }
  touch "$image/ready"
  echo "vm-test: image built in $(ms_since "$begin") ms ($image)"
  # Older images of other inputs are not needed any more.
  find "$cache" -mindepth 1 -maxdepth 1 -type d -name '????????????????' ! -name "$key" \
    -exec rm -rf {} + 2>/dev/null || true
fi

# --- the checkout, as CI has it: the committed files only, in a read-only disk
work=$(mktemp -d /var/tmp/forgeai-vm.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir "$work/src"
git ls-files -z | xargs -0 cp --parents -t "$work/src"
if [ "$#" -gt 0 ]; then printf '%s\n' "$@" >"$work/src/.vm-pytest-args"; fi
truncate -s 256M "$work/src.img"
mkfs.ext4 -q -F -L forgeai-src -d "$work/src" "$work/src.img"

# --- KVM where it really works (nested KVM can fail at the first instruction it emulates)
accel=tcg,thread=multi
if [ -w /dev/kvm ] && [ "${FORGEAI_VM_ACCEL:-}" != tcg ]; then
  if (timeout 20 qemu-system-x86_64 -accel kvm -cpu host -m 256 -nographic -no-reboot \
      -kernel "$image/vmlinuz" -append "console=ttyS0 panic=-1 rdinit=/forgeai-kvm-probe" \
      -nic none -serial file:"$work/kvm-probe.log" -monitor none >/dev/null 2>&1; exit $?) 2>/dev/null \
      && grep -q "Kernel panic" "$work/kvm-probe.log"; then
    accel=kvm
  fi
fi
cpu=max
[ "$accel" = kvm ] && cpu=host

mkdir -p "$cache/last"
begin=$(now)
set +e
timeout "$boot_timeout" qemu-system-x86_64 -accel "$accel" -cpu "$cpu" -smp 2 -m 3072 \
  -nographic -no-reboot -monitor none -nic none \
  -kernel "$image/vmlinuz" -initrd "$image/initrd.img" \
  -append "root=/dev/vda rw console=ttyS0 systemd.unified_cgroup_hierarchy=1 panic=-1 quiet" \
  -drive file="$image/root.img",format=raw,if=virtio,snapshot=on \
  -drive file="$work/src.img",format=raw,if=virtio,readonly=on \
  -serial file:"$cache/last/console.log" -serial file:"$cache/last/tests.log" >/dev/null 2>&1
qemu_status=$?
set -e
total_ms=$(ms_since "$begin")
tr -d '\r' <"$cache/last/tests.log" >"$work/tests.log"  # a serial port ends lines with \r\n
cat "$work/tests.log"
status=$(sed -n 's/^forgeai-vm: status \([0-9]*\)$/\1/p' "$work/tests.log" | tail -1)
boot=$(sed -n 's/^forgeai-vm: booted in \(.*\)$/\1/p' "$work/tests.log" | tail -1)
echo "vm-test: $accel; machine up ${boot:-?}; whole run ${total_ms} ms (qemu exit $qemu_status)"
if [ -z "$status" ]; then
  echo "vm-test: the tests did not finish (timeout ${boot_timeout} s?); console:" >&2
  tail -40 "$cache/last/console.log" >&2
  exit 1
fi
exit "$status"
