# shellcheck shell=bash
# The history of one environment on a host (core/steps/history.ts says the format). Set before this library:
# history_file, releases_dir, records_dir, current_link, supervisor_conf_blue, supervisor_conf_green, release_dir_pattern.
# history_add EVENT RELEASE OPERATION appends (call under the lock); history_init derives and writes the
# history of a host that has none; history_lines prints it (derived, not written, when absent: read-only
# views); release_reports reports every release directory as
# `release <id> <sha> <status> <live seq|-> <last event seq|->`; rollback_choice picks a rollback's release.
# Needs ops_report.
history_now() { TZ=UTC0 printf '%(%Y-%m-%dT%H:%M:%SZ)T\n' -1; }
# history_last: the highest sequence number so far (not the last line's: a line pasted or edited by hand below newer
# ones would have the next event numbered among them, going live "before" releases that went live earlier); a line
# ended by \r (edited on Windows) read as the line it is.
history_last() { if [ -f "$history_file" ]; then awk -F'\t' '{ sub(/\r$/, "") } $1 ~ /^[0-9]+$/ && $1 + 0 > n { n = $1 + 0 } END { print n + 0 }' "$history_file"; else echo 0; fi; }
history_add() {
  [ -f "$history_file" ] || history_init >/dev/null # removed by hand since the state step: derive it again first
  # On a line of its own: a torn last line (a crash mid-append left it without its newline) is ended first; glued
  # onto it, this event would be lost with it (a release that went live read as never live).
  if [ -s "$history_file" ] && [ -n "$(tail -c 1 "$history_file")" ]; then printf '\n' >> "$history_file"; fi
  printf '%s\t%s\t%s\t%s\t%s\n' "$(( $(history_last) + 1 ))" "$(history_now)" "$1" "$2" "${3:-}" >> "$history_file"; chmod 0644 "$history_file"
}
# release_record ID: where ops's records of release ID are, in release_record: its directory under records_dir
# (root's), or for a release made by an older ops, which has none, its own directory (the same names, as before).
release_record() { release_record=$records_dir/$1; [ -d "$release_record" ] || release_record=$releases_dir/$1; }
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
    release_record "$r"
    if [ -e "$release_record/.ops-failed" ]; then printf '%s\t%s\tfailed\t%s\tderived\n' "$n" "$now" "$r"; continue; fi
    printf '%s\t%s\tlive\t%s\tderived\n' "$n" "$now" "$r"
    if [ -e "$release_record/.ops-abandoned" ]; then n=$(( n + 1 )); printf '%s\t%s\tabandoned\t%s\tderived\n' "$n" "$now" "$r"; fi
  done
  if [ -n "$cur" ] && [ -d "$releases_dir/$cur" ]; then printf '%s\t%s\tlive\t%s\tderived\n' "$(( n + 1 ))" "$now" "$cur"; fi
}
history_init() { if [ ! -f "$history_file" ]; then history_derive > "$history_file.new"; chmod 0644 "$history_file.new"; mv -f "$history_file.new" "$history_file"; ops_report history derived; fi; }
history_lines() { if [ -f "$history_file" ]; then cat "$history_file"; else history_derive; fi; }
# history_read: one pass over the history, by awk (bash's own read loop took 5 s over 100k lines): the last going
# live (history_live_seq[ID]) and last event (history_last_seq[ID]) of each release here (release_ids: no other is
# ever looked up), and the highest sequence number (history_seq); bash then reads one line per release. A line cut
# short by a crash mid-append names no event unless its event and whole id are there (written by the switch: it was);
# one that is not an event (edited by hand: a comment, a blank) is skipped; a \r at a line's end (edited on Windows) is not read.
declare -gA history_live_seq history_last_seq
history_seq=0
history_read() {
  local id live last
  history_live_seq=(); history_last_seq=(); history_seq=0
  while read -r id live last; do
    if [ "$id" = - ]; then history_seq=$last; continue; fi
    [[ $id =~ $release_dir_pattern ]] || continue
    history_last_seq[$id]=$last
    if [ "$live" != - ]; then history_live_seq[$id]=$live; fi
  done < <(history_lines | awk -F'\t' -v ids="$(release_ids)" '
    BEGIN { k = split(ids, l, "\n"); for (i = 1; i <= k; i++) here[l[i]] = 1 }
    { sub(/\r$/, "") }
    $1 ~ /^[0-9]+$/ { n = $1 + 0; if (n > seq) seq = n
      if (NF >= 4 && ($4 in here) && ($3 == "live" || $3 == "failed" || $3 == "abandoned")) { if (n > last[$4]) last[$4] = n; if ($3 == "live" && n > live[$4]) live[$4] = n } }
    END { for (id in last) print id, (id in live ? live[id] : "-"), last[id]; print "-", "-", seq + 0 }')
}
# history_compact KEEP: bound the history (under the lock, after pruning): past 2 x KEEP lines, only the last KEEP
# lines and every line naming a release still here are kept (in their order; the last sequence number with them, so
# numbering goes on), written whole beside it and renamed over it: a crash leaves the old history or the new one.
# What is dropped names only releases pruned, which nothing reads any more.
history_compact() {
  local keep=$1 total
  [ -f "$history_file" ] || return 0
  total=$(wc -l < "$history_file")
  [ "$total" -gt $(( 2 * keep )) ] || return 0
  if ! { awk -F'\t' -v keep="$keep" -v total="$total" -v ids="$(release_ids)" '
    BEGIN { n = split(ids, l, "\n"); for (i = 1; i <= n; i++) here[l[i]] = 1 }
    FNR > total - keep || (NF >= 4 && ($4 in here))' "$history_file" > "$history_file.new" &&
    chmod 0644 "$history_file.new" && mv -fT "$history_file.new" "$history_file"; }; then
    rm -f "$history_file.new"; echo "could not shorten the history (the next prune will try again)" >&2
  fi
}
# release_went_live ID [CURRENT]: whether release ID ever served: it is CURRENT, or the history (history_read first)
# records it going live. The one test of "went live" (rollback --to, ops releases, ops status): a release whose
# deploy was interrupted or killed before its switch has no line there, whatever its directory holds.
release_went_live() { [ -n "$1" ] && { [ "$1" = "${2:-}" ] || [ -n "${history_live_seq[$1]:-}" ]; }; }
# release_status ID: ok, failed or abandoned, from the markers in its record (release_record; in release_state).
release_status() {
  release_state=ok
  release_record "$1"
  [ -e "$release_record/.ops-failed" ] && release_state=failed
  [ -e "$release_record/.ops-abandoned" ] && release_state=abandoned
  true
}
# release_sha ID: its commit, from its record's REVISION (release_record; hex digits only, '' when none), in release_sha.
release_sha() {
  release_sha=""; release_record "$1"
  if [ -f "$release_record/REVISION" ]; then read -r release_sha < "$release_record/REVISION" || true; fi
  release_sha=${release_sha//[^0-9a-f]/}; release_sha=${release_sha:0:64}
}
# release_reports reports each release with its status: release_status's, or `unfinished` for one unmarked that
# never went live (release_went_live: its deploy was interrupted, killed, or is under way).
release_reports() {
  local r cur
  history_read
  cur=$(readlink "$current_link" 2>/dev/null || true); cur=${cur##*/}
  for r in $(release_ids); do
    release_status "$r"
    if [ "$release_state" = ok ] && ! release_went_live "$r" "$cur"; then release_state=unfinished; fi
    release_sha "$r"
    ops_report release "$r $release_sha $release_state ${history_live_seq[$r]:--} ${history_last_seq[$r]:--}"
  done
  ops_report history_seq "$history_seq"
}
# rollback_choice CURRENT [TO]: the release a rollback from CURRENT goes to, in release_id, and the verdict in
# rollback_verdict: `ok`; `noop` (it is CURRENT); `none` (no earlier release to go back to); `not_kept` (TO is not
# a release directory here); `never_live` (TO never went live: its deploy failed or did not finish, so nothing
# says it can serve; a rolled-back-from one went live, and may again). Without TO: the release that went live most recently before CURRENT, in the order
# of the history (whatever the ids say), skipping failed and abandoned (rolled back from) ones.
# shellcheck disable=SC2034 # release_id and rollback_verdict are read by the rollback step
rollback_choice() {
  local cur=$1 to=${2:-} r seq since best=-1
  release_id=""
  if [ -n "$to" ]; then
    if [[ $to =~ $release_dir_pattern ]] && [ -d "$releases_dir/$to" ]; then release_id=$to; else rollback_verdict=not_kept; return 0; fi
    history_read
    if ! release_went_live "$to" "$cur"; then rollback_verdict=never_live; return 0; fi
  else
    history_read
    since=${history_live_seq[$cur]:-}
    for r in $(release_ids); do
      seq=${history_live_seq[$r]:-}
      if [ "$r" = "$cur" ] || [ -z "$seq" ]; then continue; fi
      if [ -n "$since" ] && [ "$seq" -ge "$since" ]; then continue; fi
      release_status "$r"
      if [ "$release_state" = ok ] && [ "$seq" -gt "$best" ]; then best=$seq; release_id=$r; fi
    done
    if [ -z "$release_id" ]; then rollback_verdict=none; return 0; fi
  fi
  if [ "$release_id" = "$cur" ]; then rollback_verdict=noop; else rollback_verdict=ok; fi
}
# rollback_previous CURRENT: what a rollback without --to would go back to from CURRENT on this host, by rollback_choice
# (read-only, in a subshell: nothing of it is left set), printed as "VERDICT ID" (`ok ID`, `none `): the host's part of
# the environment's one choice (core/ops/rollback.ts environmentRollback; ops status shows the same).
rollback_previous() { ( rollback_choice "$1" '' && printf '%s %s\n' "$rollback_verdict" "$release_id" ); }
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
