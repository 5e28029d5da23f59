// ops diff <env> [--ref REF]: what a deploy of REF would change on each host (the change part of the deploy plan,
// without the plan): one read-only round trip per host to read the live commit, no lock, nothing changed. The live
// release is judged as the deploy judges it (its fingerprint: a no-op, or deployed again with a changed secret,
// setting or file on the host), never said "already live" where the deploy would deploy it again.
import type { Environment } from '../config/environment.ts';
import { resolveTarget } from '../target.ts';
import type { OpsContext } from '../context.ts';
import { type HostsChange, describeChanges, formatChanges } from '../changes.ts';
import { notDeployedNotes, type ResolvedRef } from '../source.ts';
import { readLive } from './host-state.ts';
import { fingerprintNow, resolveEnvironmentRef } from './deploy-plan.ts';
import { OpsError } from '../errors.ts';
import { sourceRepository } from '../source.ts';

export interface DiffResult {
  environment: string;
  commit: ResolvedRef;
  /** What makes the commit not what the checkout or origin may suggest (notDeployedNotes): warnings, as the plan's. */
  warnings: string[];
  changes: HostsChange[];
}

/** The change per group of hosts serving the same commit. Errors: a bad ref (before any connection). */
export async function diff(ctx: OpsContext, env: Environment, ref?: string): Promise<DiffResult> {
  const repo = await sourceRepository(ctx.root, env.config.repository, env);
  const commit = await resolveEnvironmentRef(repo, env, ref);
  const target = resolveTarget(env);
  // What the deploy compares the live release with (its fingerprint); not told when the secrets cannot be read here.
  let unjudged: string | undefined;
  const expected = await fingerprintNow(ctx, target).then(
    (fingerprint) => ({ fingerprint }),
    (e: unknown) => {
      if (!(e instanceof OpsError)) throw e;
      unjudged = `whether a deploy of the live commit would deploy it again (a changed secret, setting, or file on the host) cannot be told: ${e.message}${e.hint ? ` (${e.hint})` : ''}`;
      return undefined;
    },
  );
  const [notes, changes] = await Promise.all([notDeployedNotes(repo, commit, { project: ctx.root }), describeChanges(repo, env, await readLive(ctx, target, expected), commit.sha)]);
  const warnings = [...notes, ...(unjudged && changes.some((c) => c.live.sha === commit.sha) ? [unjudged] : [])];
  return { environment: env.name, commit, warnings, changes };
}

/** The change as text: the commit and its warnings, then per group of hosts what deploying it changes (formatChanges). */
export function formatDiff(r: DiffResult): string {
  return [`${r.environment}: ${r.commit.ref} (${r.commit.matched}) = ${r.commit.sha}`, ...r.warnings.map((w) => `warning: ${w}`), ...formatChanges(r.changes, r.commit.sha)].join('\n');
}
