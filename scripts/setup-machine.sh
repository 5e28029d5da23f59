#!/usr/bin/env bash
# Prepares this machine (Debian 12, as root) for the sandbox (npm start), the tests and the benchmarks:
# the Debian packages listed in test/hosts/debian-packages.txt, the pinned sops, then the npm dependencies.
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

# The real sops (the reference implementation of the secrets format; the interoperability tests run it both
# ways), built from the Go module proxy at a pinned version. GOPATH, the module and build caches and the binary
# live in /var/cache/ops-pipeline/go, outside the clone, so a second run (or another clone) builds nothing;
# /usr/local/bin/sops points at the pinned build. A lock keeps two setups at once from building it twice.
SOPS_VERSION=v3.13.3
GO_CACHE=/var/cache/ops-pipeline/go
sops_bin="$GO_CACHE/bin/sops-$SOPS_VERSION/sops"
if [ ! -x "$sops_bin" ]; then
  if ! command -v go >/dev/null; then
    echo "error: Go is needed to build sops $SOPS_VERSION (the machine image ships it in /usr/local/go): put go on PATH" >&2
    exit 1
  fi
  mkdir -p "$GO_CACHE"
  exec 9>"$GO_CACHE/.lock"
  flock 9
  if [ ! -x "$sops_bin" ]; then
    echo "building sops $SOPS_VERSION from the Go module proxy (once per machine; a few minutes)"
    GOPATH="$GO_CACHE" GOMODCACHE="$GO_CACHE/pkg/mod" GOCACHE="$GO_CACHE/build" GOFLAGS=-modcacherw \
      GOBIN="$(dirname "$sops_bin")" timeout 1800 go install "github.com/getsops/sops/v3/cmd/sops@$SOPS_VERSION"
  fi
  exec 9>&-
fi
[ "$(readlink /usr/local/bin/sops 2>/dev/null)" = "$sops_bin" ] || ln -sfn "$sops_bin" /usr/local/bin/sops
# supervisor's own configuration parser, at the versions Debian ships (4.2.x) and the latest release, for the
# unit tests of what deploys write into supervisor files (test/unit/supervisor.test.ts). Installed once.
for v in 4.2.5 4.3.0; do
  venv="${OPS_TESTHOSTS_CACHE:-/var/cache/ops-testhosts}/python/supervisor-$v"
  if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import supervisor.options' 2>/dev/null; then
    rm -rf "$venv" && python3 -m venv "$venv" && timeout 300 "$venv/bin/pip" install -q --disable-pip-version-check "supervisor==$v"
  fi
done
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

# npm ci only when node_modules does not hold what the lockfile pins, judged by content: npm ci empties
# node_modules first, through a symlink too, and a checkout sharing another's (a git worktree) has a lockfile
# newer than the install with the same content.
if ! node scripts/node-modules-current.js .; then
  npm ci --no-audit --no-fund
fi
# Real Python packages the tests run (not the app's: its own come from the lab's PyPI cache), each pinned in a venv
# of its own outside the clone, made once per machine (built aside, then renamed into place): PACKAGE VERSION.
py_cache=/var/cache/ops-pipeline/py
pinned_venv() {
  local venv="$py_cache/$1-$2"
  if ! "$venv/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version(sys.argv[1]) != sys.argv[2])" "$1" "$2" 2>/dev/null; then
    echo "installing $1 $2 into $venv"
    mkdir -p "$py_cache"
    rm -rf "$venv.new" "$venv"
    /usr/bin/python3 -m venv "$venv.new"
    timeout 600 "$venv.new/bin/pip" install -q --disable-pip-version-check "$1==$2"
    mv "$venv.new" "$venv"   # the tests use only bin/python, which finds its venv from where it is
  fi
}
# python-dotenv, the real parser the .env tests read back with (test/support/python-dotenv.txt: every version listed);
# Flask with Werkzeug, the framework the probe tests run real apps of (test/support/flask.txt); PyYAML, the YAML 1.1
# reader the initdata loader uses, that decrypted YAML is read back with (test/support/pyyaml.txt); django-environ,
# Django's .env reader, a parser of its own (test/support/django-environ.txt).
for v in $(grep -v '^\s*#' test/support/python-dotenv.txt | awk 'NF {print $1}'); do pinned_venv python-dotenv "$v"; done
pinned_venv flask "$(grep -v '^\s*#' test/support/flask.txt | awk 'NF {print $1; exit}')"
pinned_venv pyyaml "$(grep -v '^\s*#' test/support/pyyaml.txt | awk 'NF {print $1; exit}')"
pinned_venv django-environ "$(grep -v '^\s*#' test/support/django-environ.txt | awk 'NF {print $1; exit}')"
echo "machine ready"
