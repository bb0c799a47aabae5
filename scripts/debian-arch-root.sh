#!/usr/bin/env bash
# Builds a sysroot of Debian packages for a foreign architecture (no
# maintainer scripts run): `apt-get download PKG:ARCH` + `dpkg-deb -x`.
#   debian-arch-root.sh DEST ARCH PKG...
# (PKG as NAME, NAME=VERSION, or NAME:all for an architecture-independent one)
# Downloaded .debs are kept in .cache/debs/ARCH/ so reruns need no network.
# Libraries of lib/<triplet>/ are also copied into usr/lib/<triplet>/ (the
# packages are not usr-merged) and absolute symlinks are made relative, so
# `qemu-*-static -L DEST` and the dynamic loader of DEST find everything.
# Idempotent: does nothing when DEST/.complete lists the same packages.
set -euo pipefail
dest=${1:?usage: debian-arch-root.sh DEST ARCH PKG...}
arch=${2:?usage: debian-arch-root.sh DEST ARCH PKG...}
shift 2
[ $# -gt 0 ] || { echo "debian-arch-root: no packages given" >&2; exit 2; }
want="$arch $*"
if [ -f "$dest/.complete" ] && [ "$(cat "$dest/.complete")" = "$want" ]; then exit 0; fi
command -v apt-get >/dev/null || { echo "debian-arch-root: needs apt-get (Debian)" >&2; exit 1; }
here=$(cd "$(dirname "$0")/.." && pwd)
debs="$here/.cache/debs/$arch"
mkdir -p "$debs"
chmod 755 "$debs"

foreign=" $(dpkg --print-foreign-architectures | tr '\n' ' ') $(dpkg --print-architecture) "
if [ "${foreign#* "$arch" }" = "$foreign" ]; then
  echo "debian-arch-root: adding architecture $arch"
  dpkg --add-architecture "$arch"
  apt-get update -qq || true
fi

missing=()
for p in "$@"; do
  name=${p%%[=:]*}
  case "$p" in
    *:all) spec=$name ;;
    *) spec="$name:$arch${p#"$name"}" ;;
  esac
  compgen -G "$debs/${name}_*.deb" >/dev/null || missing+=("$spec")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "debian-arch-root: fetching ${missing[*]}"
  # apt-get download runs as _apt: the directory must be writable by it.
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  chmod 777 "$tmp"
  for attempt in 1 2 3 4; do
    if (cd "$tmp" && apt-get download -qq "${missing[@]}"); then break; fi
    [ $attempt = 4 ] && { echo "debian-arch-root: apt-get download failed for $arch" >&2; exit 1; }
    echo "debian-arch-root: download failed (mirror index inconsistent?), updating and retrying" >&2
    apt-get update -qq || true
    sleep $((attempt * 2))
  done
  mv "$tmp"/*.deb "$debs"/
fi

rm -rf "$dest.tmp"
mkdir -p "$dest.tmp"
for p in "$@"; do
  name=${p%%[=:]*}
  # Newest cached .deb of that package (several versions may have piled up).
  f=$(ls -1 "$debs/${name}"_*.deb | sort -V | tail -n 1)
  dpkg-deb -x "$f" "$dest.tmp"
done
# Not usr-merged: make usr/lib/<triplet> hold everything of lib/<triplet>.
for d in "$dest.tmp"/lib/*-linux-gnu*; do
  [ -d "$d" ] || continue
  t="$dest.tmp/usr/lib/$(basename "$d")"
  mkdir -p "$t"
  cp -a "$d"/. "$t"/
done
# Absolute symlinks would point into the host: make them relative.
find "$dest.tmp" -type l | while read -r l; do
  target=$(readlink "$l")
  case "$target" in
    /*) ln -sfn "$(realpath -m --relative-to="$(dirname "$l")" "$dest.tmp$target")" "$l" ;;
  esac
done
echo "$want" >"$dest.tmp/.complete"
rm -rf "$dest"
mv "$dest.tmp" "$dest"
echo "debian-arch-root: $arch root in $dest"
