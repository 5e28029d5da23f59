// Logs: what `ops logs` runs on a host: the last lines of the live (or previous) release's program logs and
// the site's nginx logs, each line labelled with its log; with follow, every new line until the connection ends.
import type { Target } from '../target.ts';
import type { Step } from '../remote/types.ts';
import { quote } from '../shell.ts';
import { CONNECTION_FUNCTIONS, MASK_FUNCTIONS } from './libraries.ts';
import { maskText } from './masks.ts';
import { readProvisioned, unprovisionedNote } from './system.ts';

/** The most lines `ops logs --lines` reads per log file. */
export const MAX_LOG_LINES = 10_000;

/** Which slots' logs: the live release's, the one kept warm for rollback, or both. */
export const LOG_SLOTS = ['live', 'previous', 'both'] as const;
export type LogSlots = (typeof LOG_SLOTS)[number];

export interface LogsRequest {
  /** Programs whose supervisor logs (stdout and stderr) to show. */
  programs: string[];
  /**
   * Every program of each slot shown: those its supervisor file names (what the release there runs: a program renamed
   * or removed since in the settings is still the previous release's), `programs` only for a slot without that file.
   */
  allPrograms?: boolean;
  /** The site's nginx logs to show (/var/log/nginx/<app>.<name>.log; the host-wide <name>.log if the site has none). */
  nginx: ('error' | 'access')[];
  /** Which slot's programs: the live one (default), the previous release's (idle slot), or both. */
  slots: LogSlots;
  lines: number;
  /**
   * Keep streaming new lines until the process `holderPid` is gone; by default the SSH server process of the
   * connection the step runs on (it lives exactly as long as our connection: closing it stops the step).
   */
  follow?: { holderPid?: number };
}

/**
 * The last lines of the chosen logs, each prefixed with its log's name; with `follow`, then every new line. A program log
 * is read from where the release its slot runs began writing it (startSlot's record, `layout.logStart`): never the lines of
 * an older release on the same slot, nor those of a release whose start or switch failed there (previous_back moves
 * the record past them as it puts the slot's previous release back: core/steps/switch.ts); with no record (a slot started by an older version), the whole file. On a host never
 * provisioned for the environment: unprovisionedNote's words on stderr, nothing shown, exit 0 (as "no logs yet").
 */
export function logsStep(env: Target, req: LogsRequest): Step {
  const L = env.layout;
  const lines = Math.max(0, Math.floor(req.lines));
  // One tail per file, its lines labelled by an unbuffered sed ("server-blue.err | ..."): an awk reading a pipe
  // (mawk) would hold lines back until its buffer fills. Files are shown one after the other, or followed together.
  // Masked here (mask_text: the secret values of every release kept on the host, whose programs wrote these logs), as
  // ops logs may run without the key that lets the runner mask them.
  const show = `release_tail "$f" ${lines} "$@" | sed -u "/^$/d; s/^/$label | /" | ${maskText(env)}`;
  return {
    name: 'logs',
    as: 'root',
    // Following: until the connection ends (see below), a week at most.
    timeout: req.follow ? 7 * 86400 : 60,
    script: String.raw`${MASK_FUNCTIONS}
# Never provisioned for this environment: said as every command says it (notProvisioned), not as "no logs yet", and
# no host-wide nginx log (another app's) shown for it.
${readProvisioned(env)}
if [ "${'$'}{provisioned:-no}" = no ]; then echo ${quote(`${unprovisionedNote(undefined, env)}: no logs of ${env.config.app} on `)}"$(hostname)" >&2; exit 0; fi
live=$(cat ${quote(L.slotFile)} 2>/dev/null || true)
case "$live" in
  blue) idle=green ;;
  green) idle=blue ;;
  *) live=blue; idle=green ;; # nothing live yet: show both
esac
want=${quote(req.slots)}
case "$want" in
  live) slots=("$live") ;;
  previous) slots=("$idle") ;;
  *) slots=("$live" "$idle") ;;
esac
programs=(${req.programs.map(quote).join(' ')})
# A slot's programs: ${req.allPrograms ? "those its supervisor file names (the release it runs may predate a program renamed or removed in the settings), else the settings'" : 'the one asked for'}.
slot_programs() {
${
  req.allPrograms
    ? `  local conf
  case "$1" in blue) conf=${quote(L.supervisorConf('blue'))} ;; *) conf=${quote(L.supervisorConf('green'))} ;; esac
  if [ -f "$conf" ]; then sed -nE "s/^\\[program:${env.config.app}-$1-([a-z0-9_-]+)\\]$/\\1/p" "$conf"; return; fi
`
    : ''
}  printf '%s\n' "${'$'}{programs[@]}"
}
# files: the program logs of the slots asked for, those that exist.
slot_files() {
  files=()
  for s in "${'$'}{slots[@]}"; do
    for p in $(slot_programs "$s"); do
      for k in out err; do f=${quote(L.logDir)}/$p-$s.$k.log; if [ -f "$f" ]; then files+=("$f"); fi; done
    done
  done
}
slot_files
# The site's own nginx logs; a site written before it had them (or a custom template without {{logs}}) logs
# to the host-wide files, shared with the other apps on the host.
${req.nginx.map((n) => `f=${quote(n === 'error' ? L.nginxErrorLog : L.nginxAccessLog)}; [ -f "$f" ] || f=/var/log/nginx/${n}.log; if [ -f "$f" ]; then files+=("$f"); fi`).join('\n')}
if [ ${'$'}{#files[@]} -eq 0 ]; then echo "no logs yet on $(hostname)" >&2; exit 0; fi
# A slot's program logs also hold what the releases before ran there wrote: each is shown from where the release
# running on the slot began writing it (startSlot's record: the file's inode and size then). A file rotated since (another
# inode: supervisor renames it) or cut (smaller) holds only newer lines; with no record (a slot started before ops kept
# one), the whole file. The last <lines> lines of that part: with -F, then every new line.
marks=$(cat ${quote(L.logStart('blue'))} ${quote(L.logStart('green'))} 2>/dev/null || true)
release_tail() { # file lines [-F]
  local f=$1 n=$2 ino off path now size
  now=$(stat -c '%i %s' -- "$f" 2>/dev/null) || now=""
  size=${'$'}{now#* }
  while read -r ino off path; do
    [ "$path" = "$f" ] || continue
    if [ "$ino" = "${'$'}{now% *}" ] && [[ $off =~ ^[0-9]+$ ]] && [ "$off" -gt 0 ] && [ "$off" -le "$size" ]; then
      # Counted on the part as it was when read (the file grows meanwhile): the byte its last n lines begin at.
      off=$(( size - $(tail -c +$(( off + 1 )) -- "$f" | head -c $(( size - off )) | tail -n "$n" | wc -c) ))
      tail -c +$(( off + 1 )) "${'$'}{@:3}" -- "$f"
      return
    fi
    break
  done <<< "$marks"
  tail -n "$n" "${'$'}{@:3}" -- "$f"
}
show_files() { # [tail options...]: each of files, labelled
  for f in "${'$'}{files[@]}"; do
    label=${'$'}{f##*/}; label=${'$'}{label%.log}
    case "$f" in /var/log/nginx/*) label=nginx.${'$'}{label##*.} ;; esac
    ${req.follow ? `${show} &` : show}
  done
}
${
  req.follow
    ? String.raw`# A switch while following (a deploy or rollback puts the other slot live): the slot asked for is then the other one,
# so its programs' tails end (tail --pid: with the sentinel process of their round) and the new slot's start, from
# where its release began writing (its record, read again: written as it started), saying so. nginx's go on.
program_round() { # the slots' program logs, followed until the sentinel $round ends
  slot_files
  marks=$(cat ${quote(L.logStart('blue'))} ${quote(L.logStart('green'))} 2>/dev/null || true)
  sleep 2147483647 & round=$!
  show_files -F --pid="$round"
}
nginx_files=()
for f in "${'$'}{files[@]}"; do case "$f" in /var/log/nginx/*) nginx_files+=("$f") ;; esac; done
files=("${'$'}{nginx_files[@]}")
show_files -F
program_round
# The SSH channel closing does not stop tail -F; the holder process ending with our connection does (checked five
# times a second: a stopped ops, Ctrl-C or a cancelled workflow, leaves nothing running a moment later).
${req.follow.holderPid === undefined ? `${CONNECTION_FUNCTIONS}\nholder=$(conn_pid)` : `holder=${req.follow.holderPid}`}
while kill -0 "$holder" 2>/dev/null; do
  sleep 0.2
  [ "$want" != both ] || continue
  now_live=$(cat ${quote(L.slotFile)} 2>/dev/null || true)
  case "$now_live" in blue | green) ;; *) continue ;; esac
  [ "$now_live" != "$live" ] || continue
  live=$now_live
  if [ "$live" = blue ]; then idle=green; else idle=blue; fi
  if [ "$want" = live ]; then slots=("$live"); else slots=("$idle"); fi
  echo "--- the $live slot went live (a deploy or rollback switched $(hostname)): following the $([ "$want" = live ] && echo live || echo previous) release's logs on the ${'$'}{slots[0]} slot now"
  kill "$round" 2>/dev/null || true
  program_round
done
kill 0`
    : "show_files -q # tail's -q (no file name headers): what it prints of one file anyway"
}`,
  };
}

