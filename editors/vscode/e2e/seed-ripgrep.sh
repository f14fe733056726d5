#!/usr/bin/env bash
# code-server's VS Code depends on @vscode/ripgrep, whose postinstall downloads a ripgrep build
# from the internet. Offline, it takes the build from its download cache instead: put Debian's
# own rg there, named as the download would be. Versions are those of code-server 4.100.3.
set -euo pipefail
RIPGREP_PACKAGE_VERSION=1.15.11
RIPGREP_RELEASE=v13.0.0-10
rg=$(command -v rg) || { echo "seed-ripgrep: install Debian's ripgrep first" >&2; exit 1; }
cache="$(node -e 'console.log(require("os").tmpdir())')/vscode-ripgrep-cache-${RIPGREP_PACKAGE_VERSION}"
asset="$cache/ripgrep-${RIPGREP_RELEASE}-x86_64-unknown-linux-musl.tar.gz"
if [ ! -s "$asset" ]; then
  mkdir -p "$cache"
  staging=$(mktemp -d)
  cp "$rg" "$staging/rg"
  tar czf "$asset" -C "$staging" rg
  rm -rf "$staging"
fi
