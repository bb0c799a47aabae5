#!/usr/bin/env bash
# Builds a minimal root file system holding Debian's nodejs 18 and its
# libraries (for chroot), from Debian's packages for the host architecture.
# Debian's node loads some builtins from /usr/share/nodejs, so it needs a root,
# not just LD_LIBRARY_PATH. Idempotent: does nothing when the root exists.
set -euo pipefail
dest=${1:?usage: debian-node18-root.sh DEST}
if [ -x "$dest/usr/bin/node" ] && [ -f "$dest/.complete" ]; then exit 0; fi
command -v apt-get >/dev/null || { echo "debian-node18-root: needs apt-get (Debian)" >&2; exit 1; }

version() { apt-cache madison "$1" 2>/dev/null | awk -v want="$2" '$3 ~ want { print $3; exit }'; }
node_version=$(version nodejs '^18\.')
if [ -z "$node_version" ]; then
  apt-get update -qq
  node_version=$(version nodejs '^18\.')
fi
[ -n "$node_version" ] || { echo "debian-node18-root: no nodejs 18 in the configured Debian sources" >&2; exit 1; }

debs=$(mktemp -d)
trap 'rm -rf "$debs"' EXIT
chmod 777 "$debs"
pkgs=("nodejs=$node_version" "libnode108=$node_version" libuv1 libc-ares2 libbrotli1 libnghttp2-14 libicu72
  libc6 libstdc++6 libgcc-s1 libssl3 zlib1g node-acorn node-cjs-module-lexer node-undici)
echo "debian-node18-root: fetching nodejs $node_version and its libraries"
for attempt in 1 2 3; do
  if (cd "$debs" && apt-get download -qq "${pkgs[@]}" 2>/dev/null); then break; fi
  [ $attempt = 3 ] && { echo "debian-node18-root: apt-get download failed" >&2; exit 1; }
  apt-get update -qq; sleep 2
done
rm -rf "$dest.tmp"
mkdir -p "$dest.tmp"
for f in "$debs"/*.deb; do dpkg-deb -x "$f" "$dest.tmp"; done
mkdir -p "$dest.tmp"/{tmp,app,data,proc,dev}
chmod 1777 "$dest.tmp/tmp"
touch "$dest.tmp/.complete"
rm -rf "$dest"
mv "$dest.tmp" "$dest"
echo "debian-node18-root: $(chroot "$dest" /usr/bin/node --version) in $dest"
