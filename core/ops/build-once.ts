// Build once per rollout: which hosts build and which receive (one builder per platform), and carrying a builder's
// packed build to its receivers through the runner's connections, in chunks, checked by sha256. The rollout's
// order (core/ops/deploy.ts) decides when.
import { type Target } from '../target.ts';
import { createHash, randomBytes } from 'node:crypto';
import { CHUNK_BYTES, checkPart, parseChunk, readChunk, type PackedPart } from '../steps/artifact.ts';
import { checkSpace, wants, type HostPlan, type Received } from './deploy-host.ts';
import { pooled } from './host-run.ts';
import { type Plan } from './deploy-plan.ts';

/**
 * Which hosts build and which receive: hosts reporting the same platform (OS release, architecture, runtime
 * versions: platformReport) form a group whose first host builds for the others; a host whose platform
 * differs from every other's, or is unknown, builds for itself. In the environment's host order.
 */
export function buildGroups<T extends { name: string; platform?: string }>(hosts: T[]): { builder: T; receivers: T[]; platform?: string }[] {
  const groups = new Map<string, T[]>();
  for (const hst of hosts) {
    const key = hst.platform ? `p ${hst.platform}` : `h ${hst.name}`;
    groups.set(key, [...(groups.get(key) ?? []), hst]);
  }
  return [...groups.values()].map(([builder, ...receivers]) => ({ builder: builder!, receivers, platform: builder!.platform }));
}

/** Hosts receiving a build at once, per builder (each holds an exec channel and its upload in flight). */
export const RECEIVE_CONCURRENCY = 8;

/**
 * Carry the build packed on `b` (parts `parts`) to its receivers: each part read from the builder in chunks of
 * CHUNK_BYTES (one round trip each) and uploaded to every receiver that wants it, so no part is ever whole in
 * the runner's memory; the part's sha256 is checked on the runner before its last chunk leaves; a receiver
 * without the space for what it would receive, and for it unpacked (as it takes on the builder), is refused
 * before anything is sent (checkSpace); `fits` is called once
 * every receiver has it, before the first chunk is read (what may travel beside the carry). `attempt` runs one
 * host's piece of work and blames that host for its failure.
 * @returns the chunk files uploaded to each receiver, per part.
 */
export async function carryBuild(env: Target, b: HostPlan, receivers: HostPlan[], p: Plan, parts: PackedPart[], attempt: (hp: HostPlan, work: () => Promise<void>) => Promise<void>, fits: () => void = () => undefined): Promise<Map<HostPlan, Received[]>> {
  // A receiver short of space is refused before any byte moves.
  await pooled(receivers, RECEIVE_CONCURRENCY, (r) =>
    attempt(r, async () => {
      const taken = parts.filter((x) => wants(r, x.name));
      const sum = (of: (x: PackedPart) => number | undefined) => (taken.every((x) => of(x) !== undefined) ? taken.reduce((n, x) => n + of(x)!, 0) : undefined);
      checkSpace(env, r.name, r.state, p, sum((x) => x.size)!, { bytes: sum((x) => x.unpacked?.bytes), inodes: sum((x) => x.unpacked?.inodes) });
    }),
  );
  fits();
  const out = new Map<HostPlan, Received[]>(receivers.map((r) => [r, []]));
  const tags = new Map(receivers.map((r) => [r, `${p.id}-${randomBytes(4).toString('hex')}`]));
  for (const part of parts) {
    const takers = receivers.filter((r) => wants(r, part.name));
    const uploads = new Map<HostPlan, string[]>(takers.map((r) => [r, []]));
    for (const r of takers) out.get(r)!.push({ part, uploads: uploads.get(r)! });
    const hash = createHash('sha256');
    for (let offset = 0, i = 0; offset < part.size; offset += CHUNK_BYTES, i++) {
      const length = Math.min(CHUNK_BYTES, part.size - offset);
      let chunk: Buffer = Buffer.alloc(0);
      await attempt(b, async () => {
        chunk = parseChunk(await b.h.run(readChunk(env, p.id, part.name, offset, length)), part, offset, length, b.name);
        hash.update(chunk);
        if (offset + length === part.size) checkPart(part, hash.digest('hex'), b.name);
      });
      await pooled(takers, RECEIVE_CONCURRENCY, (r) =>
        attempt(r, async () => {
          const path = `${env.layout.uploads}/${tags.get(r)}.${part.name}.tar.gz.${i}`;
          await r.h.upload(chunk, path, 0o600);
          uploads.get(r)!.push(path);
        }),
      );
    }
  }
  return out;
}

/**
 * The fields of a platform line (platformReport: `<os id> <version id> <machine> python <v> node <v>`) in words,
 * keyed by what they are; undefined for a line not of that form.
 */
function platformFields(platform: string): Record<string, string> | undefined {
  const m = /^(\S+ \S+) (\S+) python (\S+) node (\S+)$/.exec(platform);
  return m ? { 'OS release': m[1]!, architecture: m[2]!, python: m[3]!, node: m[4]! } : undefined;
}

/** What differs between two platform lines, in words (`python 3.11.9 (web1: 3.11.2)`), '' when not known. */
function platformDiffers(platform: string, other: string, otherHost: string): string {
  const [a, b] = [platformFields(platform), platformFields(other)];
  if (!a || !b) return '';
  return Object.keys(a)
    .filter((k) => a[k] !== b[k])
    .map((k) => `${k} ${a[k]} (${otherHost}: ${b[k]})`)
    .join(', ');
}

/**
 * Who builds and who receives, in words (the plan and the deploy's log). A group other than the first says what
 * of its platform differs from the first group's (a Python patch release, a Node minor version: each builds for
 * itself, as a venv or a native module made for one is not known to be valid on the other).
 */
export function describeBuilds(groups: { builder: { name: string }; receivers: { name: string }[]; platform?: string }[]): string[] {
  if (groups.length === 1 && !groups[0]!.receivers.length) return [];
  const first = groups[0]!;
  return groups.map(({ builder, receivers, platform }, i) => {
    const differs = i > 0 && platform && first.platform ? platformDiffers(platform, first.platform, first.builder.name) : '';
    const why = differs ? ` — differs in ${differs}` : '';
    return receivers.length
      ? `build once: ${builder.name} builds, ${receivers.map((r) => r.name).join(', ')} receive${receivers.length === 1 ? 's' : ''} its build (sha256-checked)${platform ? ` — same platform: ${platform}` : ''}${why}`
      : `${builder.name} builds for itself: ${platform ? (i === 0 ? `no other host has its platform (${platform})` : `its platform differs (${platform})`) : 'its platform is unknown'}${why}`;
  });
}
