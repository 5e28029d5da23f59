// Build once per rollout: the host that built a release (its code, build output and dependency sets) packs
// them as gzip'd tar files, each named and sha256-hashed on that host; the runner carries them over its own
// connections (one per host, no host-to-host traffic) to hosts of the same platform, in chunks (a part of any
// size, never whole in the runner's memory), and they check every hash before unpacking anything. Paths are
// the same on every host of an environment, so venvs stay valid.
import type { Target } from '../target.ts';
import { OpsError } from '../errors.ts';
import { REPORT_PREFIX, reportKeys, reported, reportedAll, type Step, type StepResult } from '../remote/types.ts';
import { quote } from '../shell.ts';
import { releaseDotenv, releaseRecord, type DotenvUploads, type ReleaseMeta } from './release.ts';

/** What the artifact steps report: `packArtifacts`: `part` (`<name> <sha256> <bytes> <bytes unpacked> <inodes unpacked>`); `readChunk`: `chunk` (its bytes, base64, one line; printed by printf, not ops_report, to stream them); `unpackArtifacts`: `received` (the part names unpacked, space-separated). */
export const ARTIFACT_KEYS = reportKeys('part', 'chunk', 'received');

/** One part packed on the builder: `release` (the release directory) or a dependency set's directory name under shared/deps. */
export interface PackedPart {
  name: string;
  sha256: string;
  /** Bytes of the gzip'd tar file. */
  size: number;
  /** What it takes on the builder's disk (du: bytes of its blocks, inodes): what unpacking it needs on a receiver. */
  unpacked?: { bytes: number; inodes: number };
}

/**
 * Bytes a chunk carries from the builder to the runner (one round trip each) and from the runner to each
 * receiver (one upload each): 32 MiB, i.e. about 45 MB of base64 text in the runner at a time, far from
 * V8's string limit (2^29 - 24 characters) that a whole part printed at once would hit past about 380 MB.
 */
export const CHUNK_BYTES = 32 * 1024 * 1024;

const PART_NAME = /^(release|venv-[0-9a-f]+|node-[0-9a-f]+)$/;

/** Where the builder keeps the packed parts of release `id` until they are carried (removed by dropPacked, else by the next lock). */
function packDir(env: Target, id: string): string {
  return `${env.layout.uploads}/pack-${id}`;
}

/** The last part of a path: a record's name (layout.treeMade). */
const name = (path: string) => path.slice(path.lastIndexOf('/') + 1);

function checkName(name: string): void {
  if (!PART_NAME.test(name)) throw new OpsError(`not a part of a release: ${name}`);
}

/**
 * On the builder: pack the release directory (without its .env and environ) and the dependency sets `sets`
 * (names under shared/deps, each complete), each as `tar | gzip -1` into a private file under the uploads directory (the app's filesystem,
 * whose space the deploy checks), hashed there. Reports `part <name> <sha256> <bytes> <bytes unpacked> <inodes
 * unpacked>` each (du of what was packed: a receiver's space is checked against it before anything is sent); read with
 * `parsePacked`, then the bytes with `readChunk`. A full disk fails the step (ENOSPC in its output).
 */
export function packArtifacts(env: Target, id: string, sets: string[]): Step {
  const L = env.layout;
  const parts: [string, string, string][] = [['release', L.releases, id], ...sets.map((s): [string, string, string] => [s, L.deps, s])];
  for (const [name] of parts) checkName(name);
  const dir = packDir(env, id);
  return {
    name: 'pack build',
    as: 'root',
    timeout: 900,
    script: String.raw`rm -rf ${quote(dir)}; install -d -m 0700 ${quote(dir)}
pack() { # NAME DIR ENTRY
  [ -d "$2/$3" ] || { echo "nothing to pack: $2/$3 is missing" >&2; exit 1; }
  case "$1" in release) ;; *) [ -f "$2/$3/.complete" ] || { echo "dependency set $3 is not complete" >&2; exit 1; } ;; esac
  # A release's .env and environ stay on its host: each host is given its own (unpackArtifacts), and its masks file
  # (in its record) too. With the release, of its record only its files as made (layout.treeMade), for the
  # receivers' no-op.
  made=(); if [ "$1" = release ] && [ -f ${quote(L.treeMade(L.record(id)))} ]; then made=(-C ${quote(L.record(id))} ${quote(name(L.treeMade('.')))}); fi
  tar -C "$2" --anchored --exclude="${L.dotenv('$3')}" --exclude="${L.environ('$3')}" -cf - "$3" "${'$'}{made[@]}" | gzip -1 > ${quote(dir)}/"$1"
  ops_report ${ARTIFACT_KEYS.part} "$1 $(sha256sum < ${quote(dir)}/"$1" | cut -d' ' -f1) $(stat -c %s ${quote(dir)}/"$1") $(du -s -B1 -- "$2/$3" | cut -f1) $(du -s --inodes -- "$2/$3" | cut -f1)"
}
${parts.map(([name, d, entry]) => `pack ${quote(name)} ${quote(d)} ${quote(entry)}`).join('\n')}`,
  };
}

/** The parts a `packArtifacts` step reported. @throws OpsError on a line that is not `<name> <sha256> <bytes>`
 * (then, as this version packs, `<bytes unpacked> <inodes unpacked>`). */
export function parsePacked(result: StepResult, builder: string): PackedPart[] {
  return reportedAll(result, ARTIFACT_KEYS.part).map((line) => {
    const [name = '', sha256 = '', size = '', bytes, inodes, ...more] = line.split(' ');
    const unpacked = bytes !== undefined || inodes !== undefined;
    if (!PART_NAME.test(name) || !/^[0-9a-f]{64}$/.test(sha256) || !/^\d+$/.test(size) || (unpacked && !(/^\d+$/.test(bytes ?? '') && /^\d+$/.test(inodes ?? ''))) || more.length)
      throw new OpsError(`the build packed on ${builder} reported a part the runner cannot read: ${JSON.stringify(line)}`);
    return { name, sha256, size: Number(size), ...(unpacked && { unpacked: { bytes: Number(bytes), inodes: Number(inodes) } }) };
  });
}

/** On the builder: `length` bytes of packed part `name` from byte `offset`, printed base64 on one `@ops chunk` line. Read with `parseChunk`. */
export function readChunk(env: Target, id: string, name: string, offset: number, length: number): Step {
  checkName(name);
  return {
    name: `read ${name}`,
    as: 'root',
    timeout: 300,
    quiet: true,
    script: String.raw`printf '${REPORT_PREFIX}${ARTIFACT_KEYS.chunk} '
dd if=${quote(`${packDir(env, id)}/${name}`)} iflag=skip_bytes,count_bytes skip=${offset} count=${length} status=none | base64 -w0
printf '\n'`,
  };
}

/** The bytes a `readChunk` step printed. @throws OpsError when fewer or more than `length` arrived. */
export function parseChunk(result: StepResult, part: PackedPart, offset: number, length: number, builder: string): Buffer {
  const bytes = Buffer.from(reported(result, ARTIFACT_KEYS.chunk) ?? '', 'base64');
  if (bytes.length !== length) throw new OpsError(`the ${part.name} part of the build packed on ${builder} arrived short on the runner: ${bytes.length} of ${length} bytes from byte ${offset}; nothing was changed`, 'deploy again; if it happens again, check the disk and the connection of that host');
  return bytes;
}

/**
 * The hash the runner computed over a part's chunks, against the builder's: a part damaged between the builder and
 * the runner is refused before its last chunk reaches any receiver. @throws OpsError naming the part.
 */
export function checkPart(part: PackedPart, got: string, builder: string): void {
  if (got !== part.sha256)
    throw new OpsError(`the ${part.name} part of the build packed on ${builder} arrived damaged on the runner (sha256 ${got}; ${builder} sent ${part.sha256}); nothing was changed`, 'deploy again; if it happens again, check the connection to that host');
}

/** On the builder, once its parts are carried: remove them (an interrupted run's are removed by the next lock). */
export function dropPacked(env: Target, id: string): Step {
  return { name: 'drop packed build', as: 'root', timeout: 60, script: `rm -rf ${quote(packDir(env, id))}` };
}

/**
 * On a receiving host: check every uploaded part's sha256 (its chunks in order) against the builder's before
 * unpacking any, then unpack each beside its place and rename it in (a dependency set the host completed
 * meanwhile is kept), owned by the app user; the release with the .env and environ uploaded to this host
 * (`dotenv`: releaseDotenv) put in before its rename. A damaged part fails the step with both hashes; nothing is
 * unpacked then. The uploads and anything half-unpacked are removed whatever happens.
 */
export function unpackArtifacts(env: Target, meta: ReleaseMeta, parts: { name: string; uploads: string[]; sha256: string }[], builder: string, dotenv: DotenvUploads): Step {
  const L = env.layout;
  const id = meta.id;
  const made = name(L.treeMade('.'));
  const owner = `${env.appUser}:${env.appUser}`;
  for (const p of parts) checkName(p.name);
  const place = (p: { name: string }) => (p.name === 'release' ? [L.releases, id] : [L.deps, p.name]);
  const files = (p: { uploads: string[] }) => p.uploads.map(quote).join(' ');
  return {
    name: 'receive build',
    as: 'root',
    timeout: 900,
    script: String.raw`trap 'rm -f ${parts.map(files).join(' ')} ${quote(dotenv.dotenv)} ${quote(dotenv.environ)} ${quote(dotenv.masks)}; rm -rf ${quote(`${L.releases}/.new-${id}`)} ${quote(L.deps)}/.new-*; [ -d ${quote(`${L.releases}/${id}`)} ] || rm -rf ${quote(L.record(id))}' EXIT
${parts
  .map(
    (p) => String.raw`got=$(cat -- ${files(p)} | sha256sum | cut -d' ' -f1)
if [ "$got" != ${quote(p.sha256)} ]; then echo "the ${p.name} part of the build from ${builder} arrived damaged: sha256 $got, expected ${p.sha256}; nothing was unpacked" >&2; exit 1; fi`,
  )
  .join('\n')}
unpack() { # DIR ENTRY FILE...
  local dir=$1 entry=$2 new="$1/.new-$2"
  shift 2
  if [ -f "$dir/$entry/.complete" ]; then echo "$entry: already here"; return 0; fi
  rm -rf "$new"; mkdir -p "$new"
  cat -- "$@" | gzip -dc | tar -C "$new" -xf - --no-same-owner
  if [ "$dir" = ${quote(L.releases)} ]; then
    # Its record, from this deploy's own meta (not the builder's files), with the builder's record of its files as made.
    ${releaseRecord(env, `${L.releases}/.new-${id}/${id}`, meta)}
    if [ -f "$new"/${quote(made)} ]; then mv -f "$new"/${quote(made)} ${quote(L.treeMade(L.record(id)))}; fi
  fi
  chown -R ${quote(owner)} "$new/$entry"
  if [ "$dir" = ${quote(L.releases)} ]; then
    ${releaseDotenv(env, `${L.releases}/.new-${id}/${id}`, L.record(id), dotenv)}
  fi
  rm -rf "${'$'}{dir:?}/${'$'}{entry:?}"; mv -T "$new/$entry" "$dir/$entry"; rmdir "$new"
  echo "$entry: unpacked"
}
${parts.map((p) => `unpack ${place(p).map(quote).join(' ')} ${files(p)}`).join('\n')}
ops_report ${ARTIFACT_KEYS.received} ${quote(parts.map((p) => p.name).join(' '))}`,
  };
}
