#!/usr/bin/env bash
# Installs what the test suite needs and the machine lacks, idempotently:
#  - Debian packages: python3 (sd_notify listener), mount (tmpfs), iproute2
#    (network namespaces), avahi-utils + avahi-daemon + dbus (a real mDNS client);
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
if [ ${#need[@]} -gt 0 ]; then
  echo "ensure-test-deps: installing ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

scripts/debian-node18-root.sh .cache/node18-root
