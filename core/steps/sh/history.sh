# shellcheck shell=bash
# The history of one environment on a host (core/steps/history.ts says the format). Set before this library:
# history_file, releases_dir, current_link, supervisor_conf_blue, supervisor_conf_green, release_dir_pattern.
# history_add EVENT RELEASE OPERATION appends (call under the lock); history_init derives and writes the
# history of a host that has none; history_lines prints it (derived, not written, when absent: read-only
# views); release_reports reports every release directory as
# `release <id> <sha> <status> <live seq|-> <last event seq|->`. Needs ops_report.
history_now() { date -u +%Y-%m-%dT%H:%M:%SZ; }
history_last() { if [ -f "$history_file" ]; then awk -F'\t' '$1 ~ /^[0-9]+$/ { n = $1 } END { print n + 0 }' "$history_file"; else echo 0; fi; }
history_add() {
  [ -f "$history_file" ] || history_init >/dev/null # removed by hand since the state step: derive it again first
  printf '%s\t%s\t%s\t%s\t%s\n' "$(( $(history_last) + 1 ))" "$(history_now)" "$1" "$2" "${3:-}" >> "$history_file"; chmod 0644 "$history_file"
}
# release_ids: the release directories, sorted (a glob expands sorted, in the prelude's C.UTF-8 collation, as
# sort(1) would; bash itself: no process, it runs on every rollback and deploy).
release_ids() {
  local d r
  for d in "$releases_dir"/*/; do
    r=${d%/}; r=${r##*/}
    if [[ $r =~ $release_dir_pattern ]]; then printf '%s\n' "$r"; fi
  done
}
history_derive() {
  local cur n=0 r now
  cur=$(readlink "$current_link" 2>/dev/null || true); cur=${cur##*/}; now=$(history_now)
  for r in $(release_ids); do
    [ "$r" != "$cur" ] || continue
    n=$(( n + 1 ))
    if [ -e "$releases_dir/$r/.ops-failed" ]; then printf '%s\t%s\tfailed\t%s\tderived\n' "$n" "$now" "$r"; continue; fi
    printf '%s\t%s\tlive\t%s\tderived\n' "$n" "$now" "$r"
    if [ -e "$releases_dir/$r/.ops-abandoned" ]; then n=$(( n + 1 )); printf '%s\t%s\tabandoned\t%s\tderived\n' "$n" "$now" "$r"; fi
  done
  if [ -n "$cur" ] && [ -d "$releases_dir/$cur" ]; then printf '%s\t%s\tlive\t%s\tderived\n' "$(( n + 1 ))" "$now" "$cur"; fi
}
history_init() { if [ ! -f "$history_file" ]; then history_derive > "$history_file.new"; chmod 0644 "$history_file.new"; mv -f "$history_file.new" "$history_file"; ops_report history derived; fi; }
history_lines() { if [ -f "$history_file" ]; then cat "$history_file"; else history_derive; fi; }
release_reports() {
  local r d status sha
  declare -A live_seq last_seq
  local seq=0 n _t event id _rest
  # One pass over the history, by bash: each release's last going live and last event, and the last sequence number.
  while IFS=$'\t' read -r n _t event id _rest; do
    [[ $n =~ ^[0-9]+$ ]] || continue
    n=$(( 10#$n )); seq=$n
    [ -n "$id" ] || continue
    last_seq[$id]=$n
    if [ "$event" = live ]; then live_seq[$id]=$n; fi
  done < <(history_lines)
  for r in $(release_ids); do
    d=$releases_dir/$r
    status=ok; [ -e "$d/.ops-failed" ] && status=failed; [ -e "$d/.ops-abandoned" ] && status=abandoned
    sha=""; if [ -f "$d/REVISION" ]; then read -r sha < "$d/REVISION" || true; fi; sha=${sha//[^0-9a-f]/}
    ops_report release "$r ${sha:0:64} $status ${live_seq[$r]:--} ${last_seq[$r]:--}"
  done
  ops_report history_seq "$seq"
}
# slot_releases: the release each slot's supervisor file runs ("slot_release SLOT ID"), from its header.
slot_releases() {
  local s f line id header='^; Managed by ops-pipeline: slot [a-z]* of .*, release ([0-9A-Za-z-]*)\. '
  for s in blue green; do
    case $s in blue) f=$supervisor_conf_blue ;; green) f=$supervisor_conf_green ;; esac
    [ -f "$f" ] || continue
    # The release named in the file's header line (the first such line), read by bash.
    id=""
    while IFS= read -r line || [ -n "$line" ]; do
      if [[ $line =~ $header ]]; then id=${BASH_REMATCH[1]}; break; fi
    done < "$f"
    ops_report slot_release "$s $id"
  done
  true
}
