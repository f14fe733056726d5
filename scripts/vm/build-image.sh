#!/usr/bin/env bash
# Build the virtual machine of scripts/vm-test.sh into DIR: root.img (ext4, made from a
# debootstrap tree), vmlinuz and initrd.img (Debian's cloud kernel). Called by vm-test.sh.
#
#   bash scripts/vm/build-image.sh DIR REPO
#
# The image: Debian bookworm (minbase) with systemd as init, D-Bus (system and user buses),
# logind, bubblewrap, Python and a C compiler; two users: tester (uid 1000; the tests enable
# lingering, so that its systemd user manager runs) and nobus (uid 1001, no user manager); a
# virtual environment in /opt/forgeai-venv with ForgeAI installed editable from /mnt/forgeai,
# where the VM mounts the checkout's disk; a unit that runs scripts/vm/inside.sh once the
# machine is up.
set -euo pipefail
out=$1
repo=$2
extra_ca=${FRESH_EXTRA_CA:-/etc/ssl/certs/sandboxing-egress-ca.pem}
root=$out/tree
packages=systemd,systemd-sysv,dbus,dbus-user-session,libpam-systemd,bubblewrap,python3,\
python3-venv,gcc,libc6-dev,ca-certificates,procps,linux-image-cloud-amd64,initramfs-tools

debootstrap --variant=minbase --include="$packages" bookworm "$root" \
  http://deb.debian.org/debian

in_root() { chroot "$root" /usr/bin/env -i HOME=/root LANG=C.UTF-8 \
  PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$@"; }

# Network plumbing for the build only (pip): this machine's resolver and the certificates
# its own pip trusts (PIP_CERT / SSL_CERT_FILE: behind a TLS-intercepting proxy, a bundle with
# the proxy's CA), else the proxy's CA file itself.
cp /etc/resolv.conf "$root/etc/resolv.conf"
pip_env=()
bundle=${PIP_CERT:-${SSL_CERT_FILE:-}}
if [ -n "$bundle" ] && [ -f "$bundle" ]; then
  cp "$bundle" "$root/etc/forgeai-build-ca.pem"
  pip_env=(PIP_CERT=/etc/forgeai-build-ca.pem)
elif [ -f "$extra_ca" ]; then
  cp "$extra_ca" "$root/usr/local/share/ca-certificates/extra-egress-ca.crt"
  in_root update-ca-certificates >/dev/null
  pip_env=(PIP_CERT=/etc/ssl/certs/ca-certificates.crt)
fi

echo forgeai-vm >"$root/etc/hostname"
printf '127.0.0.1 localhost\n127.0.1.1 forgeai-vm\n' >"$root/etc/hosts"
cat >"$root/etc/fstab" <<'FSTAB'
/dev/vda / ext4 rw,noatime 0 1
LABEL=forgeai-src /mnt/forgeai ext4 ro,noatime,nofail 0 0
FSTAB
in_root passwd -d root >/dev/null
in_root useradd --create-home --uid 1000 --shell /bin/bash tester
in_root useradd --create-home --uid 1001 --shell /bin/bash nobus
# Nothing the tests do not need at boot.
for unit in apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer \
    systemd-timesyncd.service; do
  ln -sf /dev/null "$root/etc/systemd/system/$unit"
done

# ForgeAI, editable from where the checkout's disk is mounted, with what its tests import.
mkdir -p "$root/mnt/forgeai"
(cd "$repo" && git ls-files -z | xargs -0 cp --parents -t "$root/mnt/forgeai")
in_root python3 -m venv /opt/forgeai-venv
in_root "${pip_env[@]}" /opt/forgeai-venv/bin/pip install -q --no-cache-dir \
  -e /mnt/forgeai pytest pytest-asyncio psutil
find "$root/mnt/forgeai" -mindepth 1 -delete  # the disk is mounted here at boot

cat >"$root/etc/systemd/system/forgeai-vm-test.service" <<'UNIT'
[Unit]
Description=ForgeAI tests on cgroup v2 (scripts/vm/inside.sh)
After=multi-user.target mnt-forgeai.mount
Requires=mnt-forgeai.mount

[Service]
Type=oneshot
ExecStart=/bin/bash /mnt/forgeai/scripts/vm/inside.sh
StandardOutput=file:/dev/ttyS1
StandardError=inherit
TimeoutStartSec=infinity

[Install]
WantedBy=multi-user.target
UNIT
ln -sf /etc/systemd/system/forgeai-vm-test.service \
  "$root/etc/systemd/system/multi-user.target.wants/forgeai-vm-test.service"

rm -f "$root/etc/resolv.conf" "$root/etc/forgeai-build-ca.pem"
cp "$root"/boot/vmlinuz-* "$out/vmlinuz"
cp "$root"/boot/initrd.img-* "$out/initrd.img"
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
size_mb=$(( $(du -sm "$root" | cut -f1) + 1024 ))  # room for what the tests write
mkfs.ext4 -q -F -L forgeai-root -d "$root" "$out/root.img" "${size_mb}M"
rm -rf "$root"
