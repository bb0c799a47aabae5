#!/usr/bin/env bash
# Installs what the test suite needs and the machine lacks, idempotently:
#  - Debian packages: python3 (sd_notify listener), mount (tmpfs), iproute2
#    (network namespaces), avahi-utils + avahi-daemon + dbus (a real mDNS client),
#    prometheus (a real server scrapes a cluster's /metrics), chromium (the
#    dashboard is tested in a real browser, with playwright-core), libfaketime
#    (the nemesis jumps one board's wall clock);
#  - a minimal Debian root file system with Debian's own Node 18 (the runtime of
#    ARMv6 and x86 boards), to prove the bundle runs on Node 18.20.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v python3 >/dev/null || need+=(python3-minimal)
command -v mount >/dev/null || need+=(mount)
command -v dpkg-deb >/dev/null || need+=(dpkg)
command -v ip >/dev/null || need+=(iproute2)
command -v avahi-browse >/dev/null || need+=(avahi-utils)
command -v avahi-daemon >/dev/null || need+=(avahi-daemon)
command -v dbus-daemon >/dev/null || need+=(dbus)
command -v prometheus >/dev/null || need+=(prometheus)
command -v chromium >/dev/null || need+=(chromium)
ls /usr/lib/*/faketime/libfaketime.so.1 >/dev/null 2>&1 || need+=(libfaketime)
if [ ${#need[@]} -gt 0 ]; then
  echo "ensure-test-deps: installing ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

scripts/debian-node18-root.sh .cache/node18-root

# Cross-architecture single executables (scripts/package.mjs, test/system/cross-arch.test.ts):
# qemu-user to run ARM and x86 binaries, binutils to strip the official Node
# binaries of every architecture, and Debian's foreign architectures
# whose packages make the sysroots and the ARMv6 / x86 runtimes.
need=()
command -v qemu-arm-static >/dev/null || need+=(qemu-user-static)
command -v update-binfmts >/dev/null || need+=(binfmt-support)
command -v strip >/dev/null || need+=(binutils)
command -v aarch64-linux-gnu-strip >/dev/null || need+=(binutils-aarch64-linux-gnu)
command -v arm-linux-gnueabihf-strip >/dev/null || need+=(binutils-arm-linux-gnueabihf)
# SD-card images: build (mmdebstrap, arch-test, genimage, mtools, dosfstools, e2fsprogs, fdisk) and boot (qemu-system-arm)
command -v mmdebstrap >/dev/null || need+=(mmdebstrap)
command -v arch-test >/dev/null || need+=(arch-test)
command -v genimage >/dev/null || need+=(genimage)
command -v mcopy >/dev/null || need+=(mtools)
command -v mkfs.vfat >/dev/null || need+=(dosfstools)
command -v mke2fs >/dev/null || need+=(e2fsprogs)
command -v sfdisk >/dev/null || need+=(fdisk)
command -v xz >/dev/null || need+=(xz-utils)
command -v qemu-system-aarch64 >/dev/null || need+=(qemu-system-arm)
if [ ${#need[@]} -gt 0 ]; then
  echo "ensure-test-deps: installing ${need[*]}"
  apt-get update -qq || true
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
added=0
foreign=" $(dpkg --print-foreign-architectures | tr '\n' ' ') "
for arch in armel armhf i386 arm64; do
  if [ "${foreign#* "$arch" }" = "$foreign" ]; then dpkg --add-architecture "$arch"; added=1; fi
done
# A foreign-architecture index can be briefly inconsistent during a mirror sync:
# apt-get update then reports an error for it; scripts/debian-arch-root.sh retries.
[ $added = 0 ] || apt-get update -qq || true
# mmdebstrap runs the image's maintainer scripts through binfmt (qemu-user-static registers it).
[ -e /proc/sys/fs/binfmt_misc/register ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc || true
update-binfmts --enable >/dev/null 2>&1 || true
