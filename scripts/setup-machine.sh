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

# The lab's package index caches (test/hosts/caches.ts), pinned by test/hosts/caches/, installed outside the
# clone under the lab's cache dir, and reinstalled only when a pin changes (the stamp holds the pins' hash).
tools="${OPS_TESTHOSTS_CACHE:-/var/cache/ops-testhosts}/tools"
mkdir -p "$tools"
pins=test/hosts/caches
stamp() { cat "$@" | sha256sum | cut -c1-16; }
if [ "$(cat "$tools/devpi/.installed" 2>/dev/null)" != "$(stamp "$pins/devpi.txt")" ]; then
  echo "installing devpi-server (PyPI cache) into $tools/devpi"
  rm -rf "$tools/devpi"
  /usr/bin/python3 -m venv "$tools/devpi"
  timeout 600 "$tools/devpi/bin/pip" install -q --disable-pip-version-check --no-deps --require-hashes -r "$pins/devpi.txt"
  stamp "$pins/devpi.txt" > "$tools/devpi/.installed"
fi
if [ "$(cat "$tools/verdaccio/.installed" 2>/dev/null)" != "$(stamp "$pins/verdaccio/package.json" "$pins/verdaccio/package-lock.json")" ]; then
  echo "installing verdaccio (npm cache) into $tools/verdaccio"
  rm -rf "$tools/verdaccio"
  mkdir -p "$tools/verdaccio"
  cp "$pins/verdaccio/package.json" "$pins/verdaccio/package-lock.json" "$tools/verdaccio/"
  (cd "$tools/verdaccio" && timeout 900 npm ci --omit=dev --no-audit --no-fund --loglevel=error)
  stamp "$pins/verdaccio/package.json" "$pins/verdaccio/package-lock.json" > "$tools/verdaccio/.installed"
fi

# npm ci only when the lockfile changed since the last install (node_modules/.package-lock.json mirrors it).
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
echo "machine ready"
