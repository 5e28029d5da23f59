// The truth about a skipped deploy on GitHub's environment page. A job with `environment:` gets a deployment that
// GitHub Actions itself marks `success` when the job ends; a forward-only deploy that found a newer commit live
// (superseded) ends in success too, so GitHub would show the skipped commit as deployed, and (auto_inactive, the
// default of a success status) mark the deployment of the commit really live `inactive`. A later job of the same
// run (the deploy job over, its status written) corrects both through the REST API: the skipped run's deployment
// gets an `inactive` status saying a newer commit was already live, and a deployment that run's success made
// inactive gets its `success` back. Deployment status states (REST "Deployment statuses"): error, failure,
// inactive, in_progress, queued, pending, success; `auto_inactive: false` on ours so they touch nothing else.
import { OpsError } from './errors.ts';
import { API_ADDRESS_HINT, apiAddressProblem, apiError, clearTextWarning, fetchWithDeadline, octokitFor, shownAddress } from './github.ts';
import { REPOSITORY } from './runinfo.ts';
import type { Reporter } from './report.ts';

/** A deployment status as the REST API lists it (newest first), the fields used here. */
interface Status {
  id: number;
  state: string;
  description?: string | null;
  environment_url?: string;
  log_url?: string;
  target_url?: string;
  created_at: string;
}

interface Deployment {
  id: number;
  sha: string;
  environment?: string;
  created_at: string;
}

/** What the token needs (a 403/404 on the deployments API). */
const DEPLOYMENTS_ACCESS = 'the job needs `permissions: deployments: write` (and the token access to this repository)';

/** States of a deployment status that the job running it may still replace. */
const UNFINISHED = new Set(['queued', 'pending', 'in_progress']);

export interface SupersededOptions {
  token: string;
  /** "owner/name". */
  repository: string;
  /** The REST API base ($GITHUB_API_URL). */
  apiUrl: string;
  /** The GitHub environment of the skipped deploy job (prod). */
  environment: string;
  /** The commit the skipped run was asked to deploy (its deployment's sha). */
  sha: string;
  /** The workflow run that skipped it ($GITHUB_RUN_ID): picks its deployment among those of `sha`. */
  runId?: string;
  /** The URL of this run, for the status's log link. */
  logUrl?: string;
  /** How long to wait for the skipped job's own status to be written (ms, default 120 000); poll every pollMs (5 000). */
  waitMs?: number;
  pollMs?: number;
  /** Deadline of each HTTP request (ms, default 15 000). */
  timeoutMs?: number;
  /** Pauses before reading again after a 5xx (default RETRY_DELAYS_MS, core/github.ts). */
  retryDelaysMs?: readonly number[];
}

export interface SupersededResult {
  /** The skipped run's deployment, and what was done to it. */
  deployment: number;
  marked: 'inactive' | 'already inactive' | 'left (the run failed)';
  /** Deployments given their success back (their commit is the one live), by id. */
  restored: number[];
}

/** The description on the skipped run's deployment (GitHub keeps 140 characters). */
export function supersededDescription(sha: string): string {
  return `Not deployed: a newer commit was already live when ${sha.slice(0, 12)} came (forward-only skip)`.slice(0, 140);
}

/** Whether a status links to run `runId` (a number: checkRunId), as …/actions/runs/<id> or …/actions/runs/<id>/job/<job>. */
const runOf = (s: Status, runId: string): boolean =>
  [s.log_url, s.target_url].some((u) => typeof u === 'string' && (u.endsWith(`/actions/runs/${runId}`) || u.includes(`/actions/runs/${runId}/`)));

/** $GITHUB_RUN_ID as the runner sets it (a number), else an OpsError: it is matched against GitHub's links. */
function checkRunId(runId: string): string {
  if (/^[1-9][0-9]{0,19}$/.test(runId)) return runId;
  throw new OpsError(`invalid $GITHUB_RUN_ID ${JSON.stringify(runId)}: expected the workflow run's number`, 'the runner sets it in a GitHub Actions job: do not set it in the workflow\'s env:');
}

/**
 * Tell the truth about a forward-only deploy that was skipped: its deployment (of `sha` in `environment`, the one
 * whose statuses link to run `runId`; failing that, or without runId, the newest, said) gets an `inactive` status saying a newer commit was already
 * live, once the job's own final status is there (waits up to waitMs while it is queued/pending/in_progress); and
 * every deployment of the environment that the skipped run's `success` made inactive (an inactive status written
 * after it, right after a success) gets `success` again, with its URL. Idempotent: run again, it changes nothing.
 * A run that ended in failure or error is left as it is (it tells no lie).
 * @throws OpsError when `apiUrl` is no http(s) URL, the API refuses (token without `deployments: write`), the deployment is not found, or its
 * job's status does not settle in time.
 */
export async function markSuperseded(options: SupersededOptions, reporter: Reporter): Promise<SupersededResult> {
  const { environment, sha } = options;
  const problem = apiAddressProblem(options.apiUrl);
  if (problem) throw new OpsError(`invalid $GITHUB_API_URL ${JSON.stringify(shownAddress(options.apiUrl))}: it ${problem}`, API_ADDRESS_HINT);
  const clear = clearTextWarning(options.apiUrl);
  if (clear) reporter.warn(clear); // said first: every request of this run carries the token
  const runId = options.runId === undefined || options.runId === '' ? undefined : checkRunId(options.runId);
  if (!REPOSITORY.test(options.repository)) {
    throw new OpsError(`invalid $GITHUB_REPOSITORY ${JSON.stringify(options.repository)}: expected owner/name`, 'the runner sets it in a GitHub Actions job: do not set it in the workflow\'s env:');
  }
  const timeoutMs = options.timeoutMs ?? 15_000;
  const octokit = await octokitFor(options.token, {
    baseUrl: options.apiUrl.replace(/\/+$/, ''),
    request: { fetch: fetchWithDeadline(timeoutMs, options.retryDelaysMs) },
  });
  const [owner, repo] = options.repository.split('/') as [string, string];
  const fail = (what: string, e: unknown) => apiError(what, { apiUrl: options.apiUrl, timeoutMs, access: DEPLOYMENTS_ACCESS }, e);
  const call = async <T>(what: string, f: () => Promise<{ data: T }>): Promise<T> => {
    try {
      return (await f()).data;
    } catch (e) {
      throw fail(what, e);
    }
  };
  // At most `max` items, through the pages the server links to (its Link header: no request past the last page, as
  // a count of items would make for every deployment of the environment).
  const upTo = async <T>(what: string, max: number, pages: AsyncIterable<{ data: unknown }>): Promise<T[]> => {
    const out: T[] = [];
    try {
      for await (const page of pages) {
        out.push(...(page.data as T[]));
        if (out.length >= max) break;
      }
    } catch (e) {
      throw fail(what, e);
    }
    return out.slice(0, max);
  };
  const statuses = (id: number) =>
    upTo<Status>(`read the statuses of deployment ${id}`, 100, octokit.paginate.iterator(octokit.rest.repos.listDeploymentStatuses, { owner, repo, deployment_id: id, per_page: 100 }));
  const byNewest = <T extends { created_at: string; id: number }>(list: T[]) => [...list].sort((a, b) => b.created_at.localeCompare(a.created_at) || b.id - a.id);

  // The skipped run's deployment.
  const ofSha = byNewest(await upTo<Deployment>(`list the deployments of ${sha.slice(0, 12)} in ${environment}`, 30, octokit.paginate.iterator(octokit.rest.repos.listDeployments, { owner, repo, environment, sha, per_page: 30 })));
  let ours: Deployment | undefined;
  for (const d of ofSha) {
    if (!runId || (await statuses(d.id)).some((s) => runOf(s, runId))) {
      ours = d;
      break;
    }
  }
  if (!ours && runId && ofSha[0]) {
    // No status links to the run (GitHub's links changed shape?): the newest deployment of that commit there.
    ours = ofSha[0];
    reporter.warn(`no deployment of ${sha.slice(0, 12)} in ${environment} links to run ${runId}: taking the newest one, ${ours.id} (${ours.created_at})`);
  }
  if (!ours) {
    throw new OpsError(
      `no deployment of ${sha.slice(0, 12)} in the GitHub environment ${environment}: nothing to correct`,
      'this runs after a deploy job that declares `environment:` in the same workflow run (deploy-prod.yml)',
    );
  }

  // Wait for the job's own last word (Actions writes success when the job ends).
  const waitMs = options.waitMs ?? 120_000;
  const pollMs = options.pollMs ?? 5_000;
  const started = performance.now();
  let mine = byNewest(await statuses(ours.id));
  while (!mine[0] || UNFINISHED.has(mine[0].state)) {
    if (performance.now() - started >= waitMs) {
      throw new OpsError(`deployment ${ours.id} (${sha.slice(0, 12)}, ${environment}) is still ${mine[0]?.state ?? 'without a status'} after ${Math.round(waitMs / 1000)} s: not marked`, 'run this job again once the deploy job has finished');
    }
    await new Promise((r) => setTimeout(r, pollMs));
    mine = byNewest(await statuses(ours.id));
  }
  const last = mine[0]!;
  const result: SupersededResult = { deployment: ours.id, marked: 'inactive', restored: [] };
  if (last.state === 'failure' || last.state === 'error') {
    reporter.info(`deployment ${ours.id} of ${sha.slice(0, 12)} in ${environment} ended in ${last.state}: left as it is`);
    return { ...result, marked: 'left (the run failed)' };
  }
  if (last.state === 'inactive') result.marked = 'already inactive';
  else {
    await call(`mark deployment ${ours.id} inactive`, () =>
      octokit.rest.repos.createDeploymentStatus({ owner, repo, deployment_id: ours.id, state: 'inactive', description: supersededDescription(sha), auto_inactive: false, ...(options.logUrl && { log_url: options.logUrl }) }),
    );
    reporter.info(`deployment ${ours.id} of ${sha.slice(0, 12)} in ${environment}: ${last.state} → inactive (${supersededDescription(sha)})`);
  }

  // What our success made inactive: a deployment of the environment whose last status is an inactive one written
  // after our success, right after a success of its own. Its commit is the one still live.
  // Only right after our success (a deployment already inactive was settled by someone else, or by an earlier
  // run of this job), and only the newest such deployment (the one that was active), unless a newer deploy is.
  const ourSuccess = last.state === 'success' ? last : undefined;
  if (ourSuccess) {
    const all = await upTo<Deployment>(`list the deployments in ${environment}`, 30, octokit.paginate.iterator(octokit.rest.repos.listDeployments, { owner, repo, environment, per_page: 30 }));
    const others = [];
    for (const d of byNewest(all)) if (d.id !== ours.id) others.push({ d, list: byNewest(await statuses(d.id)) });
    if (others.some((o) => o.list[0]?.state === 'success' && o.list[0].created_at >= ourSuccess.created_at)) return result;
    for (const { d, list } of others) {
      const [latest, before] = list;
      if (latest?.state !== 'inactive' || before?.state !== 'success' || latest.created_at < ourSuccess.created_at) continue;
      await call(`give deployment ${d.id} its success back`, () =>
        octokit.rest.repos.createDeploymentStatus({
          owner,
          repo,
          deployment_id: d.id,
          state: 'success',
          description: `Live (still): the skipped deploy of ${sha.slice(0, 12)} had marked it inactive`.slice(0, 140),
          auto_inactive: false,
          ...(before.environment_url && { environment_url: before.environment_url }),
          ...((before.log_url || before.target_url) && { log_url: before.log_url || before.target_url }),
        }),
      );
      result.restored.push(d.id);
      reporter.info(`deployment ${d.id} of ${d.sha.slice(0, 12)} in ${environment}: inactive → success again (its commit is the one live)`);
      break;
    }
  }
  return result;
}
