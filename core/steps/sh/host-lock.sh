# shellcheck shell=bash
# Apps sharing a host share its nginx configuration and certbot: host_lock NAME serializes the changes to
# them across apps (each app's own lock, in its base directory, only serializes that app's runs). flock(1)
# on /run/lock/ops-pipeline-NAME.lock, held until host_unlock NAME or the end of the script (the kernel
# drops it with the process: a killed run leaves nothing behind). Waits at most WAIT seconds (default 45).
host_lock() { # NAME [WAIT]
  local fd
  mkdir -p /run/lock
  exec {fd}>>"/run/lock/ops-pipeline-$1.lock"
  if ! flock -w "${2:-45}" "$fd"; then
    echo "another app's run on this host has held /run/lock/ops-pipeline-$1.lock for ${2:-45}s (its $1 change); try again when it is done" >&2
    exit 1
  fi
  printf -v "HOST_LOCK_$1" %s "$fd"
}
host_unlock() { local v="HOST_LOCK_$1"; [ -z "${!v:-}" ] || flock -u "${!v}"; }
