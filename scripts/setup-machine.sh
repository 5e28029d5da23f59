#!/usr/bin/env bash
# Prepares this machine (Debian 12, as root) for the sandbox (npm start), the tests and the benchmarks:
# the Debian packages listed in test/hosts/debian-packages.txt, then the npm dependencies.
# Idempotent: a second run installs nothing and takes a few seconds.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
  echo "error: run as root (the local test hosts need network namespaces and chroots): sudo $0" >&2
  exit 1
fi

mapfile -t wanted < <(grep -v '^\s*#' test/hosts/debian-packages.txt | awk 'NF {print $1}')
missing=()
for p in "${wanted[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing Debian packages: ${missing[*]}"
  # Refresh the package lists only when they are older than a day (or absent).
  if [ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*_Packages*' -mtime -1 2>/dev/null | head -n1)" ]; then
    timeout 600 apt-get update -qq
  fi
  DEBIAN_FRONTEND=noninteractive timeout 1200 apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# On a machine booted with systemd, Debian's apt-cacher-ng starts its own service on :3142 (with a config that
# remaps Debian to an unreachable mirror): the lab runs its own instance, so keep the packaged one off.
if [ -d /run/systemd/system ] && systemctl list-unit-files apt-cacher-ng.service >/dev/null 2>&1; then
  systemctl disable --now apt-cacher-ng.service >/dev/null 2>&1 || true
fi

# supervisor's own configuration parser, at the versions Debian ships (4.2.x) and the latest release, for the
# unit tests of what deploys write into supervisor files (test/unit/supervisor.test.ts). Installed once.
for v in 4.2.5 4.3.0; do
  venv="${OPS_TESTHOSTS_CACHE:-/var/cache/ops-testhosts}/python/supervisor-$v"
  if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import supervisor.options' 2>/dev/null; then
    rm -rf "$venv" && python3 -m venv "$venv" && timeout 300 "$venv/bin/pip" install -q --disable-pip-version-check "supervisor==$v"
  fi
done

# npm ci only when the lockfile changed since the last install (node_modules/.package-lock.json mirrors it).
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
echo "machine ready"
