// Build once per rollout: the host that built a release (its code, build output and dependency sets) packs
// them as gzip'd tar files, each named and sha256-hashed on that host; the runner carries them over its own
// connections (one per host, no host-to-host traffic) to hosts of the same platform, which check every hash
// before unpacking anything. Paths are the same on every host of an environment, so venvs stay valid.
import type { Target } from '../target.ts';
import { OpsError } from '../errors.ts';
import { REPORT_PREFIX, reportKeys, reportedAll, type Step, type StepResult } from '../remote/types.ts';
import { quote } from '../shell.ts';
import { createHash } from 'node:crypto';

/** What the artifact steps report: `packArtifacts`: `part` (`<name> <sha256> <bytes>`) then `part_data` (its bytes, base64, one line; printed by printf, not ops_report, to stream them); `unpackArtifacts`: `received` (the part names unpacked, space-separated). */
export const ARTIFACT_KEYS = reportKeys('part', 'part_data', 'received');

/** One packed part: `release` (the release directory) or a dependency set's directory name under shared/deps. */
export interface ArtifactPart {
  name: string;
  sha256: string;
  bytes: Buffer;
}

const PART_NAME = /^(release|venv-[0-9a-f]+|node-[0-9a-f]+)$/;

/**
 * On the builder: pack the release directory and the dependency sets `sets` (names under shared/deps, each
 * complete), each as `tar | gzip -1` into a private temporary file, hashed there; printed base64 on one
 * `@ops part_data` line after its `@ops part <name> <sha256> <bytes>` line. Read with `parseParts`.
 */
export function packArtifacts(env: Target, id: string, sets: string[]): Step {
  const L = env.layout;
  const parts: [string, string, string][] = [['release', L.releases, id], ...sets.map((s): [string, string, string] => [s, L.deps, s])];
  for (const [name] of parts) if (!PART_NAME.test(name)) throw new OpsError(`not a part of a release: ${name}`);
  return {
    name: 'pack build',
    as: 'root',
    timeout: 900,
    quiet: true,
    script: String.raw`tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
pack() { # NAME DIR ENTRY
  [ -d "$2/$3" ] || { echo "nothing to pack: $2/$3 is missing" >&2; exit 1; }
  case "$1" in release) ;; *) [ -f "$2/$3/.complete" ] || { echo "dependency set $3 is not complete" >&2; exit 1; } ;; esac
  tar -C "$2" -cf - "$3" | gzip -1 > "$tmp/part"
  ops_report ${ARTIFACT_KEYS.part} "$1 $(sha256sum < "$tmp/part" | cut -d' ' -f1) $(stat -c %s "$tmp/part")"
  printf '${REPORT_PREFIX}${ARTIFACT_KEYS.part_data} '; base64 -w0 < "$tmp/part"; printf '\n'
}
${parts.map(([name, dir, entry]) => `pack ${quote(name)} ${quote(dir)} ${quote(entry)}`).join('\n')}`,
  };
}

/**
 * The parts a `packArtifacts` step printed, each checked against the hash the builder computed: a part
 * damaged between the builder and the runner is refused here.
 * @throws OpsError naming the part when its bytes do not match.
 */
export function parseParts(result: StepResult, builder: string): ArtifactPart[] {
  const heads = reportedAll(result, ARTIFACT_KEYS.part);
  const data = reportedAll(result, ARTIFACT_KEYS.part_data);
  if (heads.length !== data.length) throw new OpsError(`the build packed on ${builder} arrived incomplete (${data.length} of ${heads.length} parts)`);
  return heads.map((head, i) => {
    const [name = '', sha256 = '', size = ''] = head.split(' ');
    const bytes = Buffer.from(data[i]!, 'base64');
    const got = createHash('sha256').update(bytes).digest('hex');
    if (!PART_NAME.test(name) || got !== sha256 || bytes.length !== Number(size))
      throw new OpsError(`the ${name || '?'} part of the build packed on ${builder} arrived damaged on the runner (sha256 ${got}, ${bytes.length} bytes; ${builder} sent ${sha256}, ${size} bytes); nothing was changed`, 'deploy again; if it happens again, check the connection to that host');
    return { name, sha256, bytes };
  });
}

/**
 * On a receiving host: check every uploaded part's sha256 against the builder's before unpacking any, then
 * unpack each beside its place and rename it in (a dependency set the host completed meanwhile is kept),
 * owned by the app user. A damaged part fails the step with both hashes; nothing is unpacked then.
 */
export function unpackArtifacts(env: Target, id: string, parts: { name: string; upload: string; sha256: string }[], builder: string): Step {
  const L = env.layout;
  const owner = `${env.appUser}:${env.appUser}`;
  for (const p of parts) if (!PART_NAME.test(p.name)) throw new OpsError(`not a part of a release: ${p.name}`);
  const place = (p: { name: string }) => (p.name === 'release' ? [L.releases, id] : [L.deps, p.name]);
  return {
    name: 'receive build',
    as: 'root',
    timeout: 900,
    script: String.raw`trap 'rm -f ${parts.map((p) => quote(p.upload)).join(' ')}; rm -rf ${quote(`${L.releases}/.new-${id}`)} ${quote(L.deps)}/.new-*' EXIT
${parts
  .map(
    (p) => String.raw`got=$(sha256sum < ${quote(p.upload)} | cut -d' ' -f1)
if [ "$got" != ${quote(p.sha256)} ]; then echo "the ${p.name} part of the build from ${builder} arrived damaged: sha256 $got, expected ${p.sha256}; nothing was unpacked" >&2; exit 1; fi`,
  )
  .join('\n')}
unpack() { # FILE DIR ENTRY
  local new="$2/.new-$3"
  if [ -f "$2/$3/.complete" ]; then echo "$3: already here"; return 0; fi
  rm -rf "$new"; mkdir -p "$new"
  gzip -dc < "$1" | tar -C "$new" -xf - --no-same-owner
  chown -R ${quote(owner)} "$new/$3"
  rm -rf "${'$'}{2:?}/${'$'}{3:?}"; mv -T "$new/$3" "$2/$3"; rmdir "$new"
  echo "$3: unpacked"
}
${parts.map((p) => `unpack ${quote(p.upload)} ${place(p).map(quote).join(' ')}`).join('\n')}
ops_report ${ARTIFACT_KEYS.received} ${quote(parts.map((p) => p.name).join(' '))}`,
  };
}
