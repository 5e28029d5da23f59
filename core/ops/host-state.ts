// A host's state as the deploy-state step (core/steps/release.ts `deployState`) reports it: what is live, on
// which slot, the releases and their history, known commits, disk; read by deploy, rollback, initdata and
// `ops diff`. Also what pruning removes after a switch.
import type { Environment } from '../config/environment.ts';
import { maskSecretLike, OpsError } from '../errors.ts';
import type { Target } from '../target.ts';
import type { OpsContext } from '../context.ts';
import { eachHost } from './hosts.ts';
import type { HostLive } from '../changes.ts';
import type { Slot } from '../layout.ts';
import { reported, reportedAll, type StepResult } from '../remote/types.ts';
import { parseDisk, type DiskSpace, FACTS_KEYS } from '../steps/facts.ts';
import { notProvisioned, provisionedIn, unprovisionedNote } from '../steps/system.ts';
import { parseReleaseRecord, retention, type ReleaseRecord } from '../steps/history.ts';
import { deployState, PREFLIGHT_KEYS, RELEASE_KEYS } from '../steps/release.ts';
import { LIBRARY_KEYS } from '../steps/libraries.ts';
import { foreignListeners, parseProcReports, type ProcReport } from '../steps/programs.ts';
import { cachesInherited, certificatePaths, coveredTarget, pendingAliases, slotPortsElsewhere } from '../steps/nginx-config.ts';
import { nginxMessages } from '../steps/status.ts';
import { isDefaultServer } from '../config/siblings.ts';

/** Parsed `deployState`. */
export interface HostState {
  provisioned: boolean;
  current: string;
  /** The commit of the live release (its record's REVISION: layout.record); '' when nothing is live. */
  liveSha: string;
  slot: Slot | undefined;
  /** Every release directory with its place in the host's history. */
  releases: ReleaseRecord[];
  known: string[];
  /** Commits the host's mirror holds without their history (sent from a shallow clone): no base for a thin pack. */
  shallow: string[];
  /** Which of the commits asked about the host's mirror already has. */
  has: string[];
  /** Which of the Git LFS oids asked about the host has stored. */
  lfsHas: string[];
  certificate: boolean;
  /** The site's names (certificateNames) the certificate there does not name (cert_lacks; [] without one, or with TLS off). */
  certLacks: string[];
  /** "ok", or what failed, for the live slot; "" when nothing is live. */
  liveHealth: string;
  /** The commit deployed is live, but its release was not deployed with this deploy's fingerprint (.env, settings). */
  liveChanged: boolean;
  /** Of liveChanged: no record of what the live release was deployed with (deployed before records; records missing or damaged). */
  liveUnrecorded: boolean;
  /** Of liveChanged: the first file of the live release's commit changed or gone since it went live (relative to the release), when that is why. */
  liveChangedFile?: string;
  /** The host's clock (`date +%s`), read with the lock. */
  hostTime?: string;
  /** The release each slot's supervisor file runs. */
  slotReleases: Partial<Record<Slot, string>>;
  /** Free space and inodes under the app's directory. */
  disk?: DiskSpace;
  /** Complete dependency sets on the host (names under shared/deps). */
  depsHas: string[];
  /** The runtimes the dependency sets are made with (dependencyRuntimes) that the host lacks (a deploy's read, with `shas`). */
  runtimesMissing: string[];
  /** What builds run on (platformReport), when asked. */
  platform?: string;
  /** nginx -t's lines when it fails (a deploy's read, deployState with `shas`); [] when it passes or was not asked. */
  nginxInvalid: string[];
  /** Lines of nginx's other files naming a slot's port at a local address (a deploy's read: slotPortLinesShell); [] otherwise. */
  nginxSlotPorts: string[];
  /** http-level proxy_cache lines of nginx's other files, which the site inherits (a deploy's read: inheritedCacheLinesShell); [] otherwise. */
  nginxCached: string[];
  /** Another server block answers the site's visitors (a deploy's read, deployState with `shas`): what answered, in which files, and the fix. */
  nginxTaken?: string;
  /** supervisord is not running (a deploy's read, deployState with `shas`; a rollback's, with `supervisor`). */
  supervisorDown: boolean;
  /** No nginx runs (a deploy's read, deployState with `shas`): what `systemctl is-enabled nginx` says (`masked`...). */
  nginxStopped?: string;
}

/** Whether the certificate's missing names (HostState.certLacks) include the environment's domain (compared as nginx does: case-insensitive, a final dot aside). */
export function lacksDomain(env: Target, lacks: readonly string[]): boolean {
  const norm = (n: string) => n.toLowerCase().replace(/\.$/, '');
  return env.config.domain !== undefined && lacks.some((n) => norm(n) === norm(env.config.domain!));
}

/**
 * The environment as a deploy's switch writes its site on a host (HostState from its state read): over TLS, only the
 * names the certificate there names (coveredTarget: an alias added, its certificate not issued yet, left out, said by
 * pendingNames); the environment itself without TLS.
 */
export function servedTarget(env: Target, state: Pick<HostState, 'certLacks'>): Target {
  return certificatePaths(env) ? coveredTarget(env, state.certLacks) : env;
}

/**
 * The warning of a deploy or rollback on a host whose certificate does not name every alias of the site yet (an alias
 * added, a provision adding it failed or has not run): the site keeps serving the names it covers, those aliases are
 * left out (coveredTarget) until `ops provision` issues their certificate. undefined when none is pending.
 */
export function pendingNames(env: Target, host: string, state: Pick<HostState, 'certificate' | 'certLacks'>): string | undefined {
  if (!state.certificate || lacksDomain(env, state.certLacks)) return undefined;
  const pending = pendingAliases(env, state.certLacks);
  if (!pending.length) return undefined;
  const covered = coveredTarget(env, state.certLacks).config;
  return `${host}: the TLS certificate there does not name ${pending.join(', ')} yet (aliases added since it was issued), so the site serves ${[covered.domain!, ...covered.aliases].join(', ')} only and ${pending.length > 1 ? 'those names get' : 'that name gets'} no https until its certificate exists: ops provision ${env.name} issues it${env.config.tls.mode === 'letsencrypt' ? ` (${pending.length > 1 ? 'their' : 'its'} DNS pointing at the host)` : ''} and the site then serves ${pending.length > 1 ? 'them' : 'it'}`;
}

/**
 * What a lock step (LockOptions.lockRead; one that failed part-way too) read of the host's state: the release live
 * before the run (`previous`; '' when none was), when it got to read it.
 */
export function partialState(r: StepResult): { previous?: string } {
  const current = reported(r, RELEASE_KEYS.current);
  return current === undefined ? {} : { previous: current };
}

/**
 * The host's state as the deploy-state step reports it (what is live, slot, releases and history, known
 * commits, disk). Pure; missing reports give empty values.
 */
export function parseState(r: StepResult): HostState {
  const slot = reported(r, RELEASE_KEYS.slot);
  const slotReleases: Partial<Record<Slot, string>> = {};
  for (const line of reportedAll(r, LIBRARY_KEYS.slot_release)) {
    const [s, id] = line.split(' ');
    if ((s === 'blue' || s === 'green') && id) slotReleases[s] = id;
  }
  return {
    // Only the marker's absence is "never provisioned" (unknown is not).
    provisioned: provisionedIn(r) !== false,
    current: reported(r, RELEASE_KEYS.current) ?? '',
    liveSha: reported(r, RELEASE_KEYS.live_sha) ?? '',
    slot: slot === 'blue' || slot === 'green' ? slot : undefined,
    releases: reportedAll(r, LIBRARY_KEYS.release).map(parseReleaseRecord),
    known: reportedAll(r, RELEASE_KEYS.known),
    shallow: reportedAll(r, RELEASE_KEYS.shallow),
    has: reportedAll(r, RELEASE_KEYS.has),
    lfsHas: reportedAll(r, RELEASE_KEYS.lfs_has),
    certificate: reported(r, RELEASE_KEYS.certificate) === 'yes',
    certLacks: (reported(r, RELEASE_KEYS.cert_lacks) ?? '').split(/\s+/).filter(Boolean),
    // A health verdict quotes what the app answered: masked as received (as status's excerpts are).
    liveHealth: maskSecretLike(reported(r, RELEASE_KEYS.live_health) ?? ''),
    liveChanged: Boolean(reported(r, RELEASE_KEYS.live_changed)),
    liveUnrecorded: reported(r, RELEASE_KEYS.live_changed) === 'unrecorded',
    ...(reported(r, RELEASE_KEYS.live_changed) === 'files' && { liveChangedFile: reported(r, RELEASE_KEYS.live_changed_file) ?? '' }),
    hostTime: reported(r, RELEASE_KEYS.now),
    slotReleases,
    disk: parseDisk(reported(r, FACTS_KEYS.disk)),
    depsHas: reportedAll(r, RELEASE_KEYS.deps_has),
    runtimesMissing: reportedAll(r, RELEASE_KEYS.runtime_missing),
    platform: reported(r, RELEASE_KEYS.platform),
    nginxInvalid: reportedAll(r, RELEASE_KEYS.nginx_invalid),
    nginxSlotPorts: reportedAll(r, RELEASE_KEYS.nginx_slot_port),
    nginxCached: reportedAll(r, RELEASE_KEYS.nginx_cache),
    nginxTaken: reported(r, RELEASE_KEYS.nginx_taken),
    supervisorDown: reported(r, RELEASE_KEYS.supervisor_down) !== undefined,
    nginxStopped: reported(r, PREFLIGHT_KEYS.nginx_stopped),
  };
}

/**
 * The refusal of an operation that needs provisioned hosts (notProvisioned, core/steps/system.ts), from each host's
 * state read before it touched anything: every host without the marker named in one error, before any other refusal. `hosts`: each host's
 * name and whether it is provisioned (HostState.provisioned), in the environment's order; `nothing`: what the
 * operation did not do; `then`: what to run once provisioned (a host never provisioned has no release: a rollback's
 * or initdata's next step is a deploy). undefined when every host is provisioned. Pure.
 */
export function unprovisionedError(env: { name: string }, hosts: { host: string; state: Pick<HostState, 'provisioned'> }[], nothing: string, then: string): OpsError | undefined {
  const bare = hosts.filter((h) => !h.state.provisioned).map((h) => h.host);
  if (!bare.length) return undefined;
  const { problem, fix } = notProvisioned(env);
  const which = bare.length === 1 ? `${bare[0]} is` : `${bare.length} hosts (${bare.join(', ')}) are`;
  return new OpsError(`${which} ${problem} (run: ${fix}): ${nothing}`, `run: ${fix}, then ${then}`);
}

/**
 * What keeps a switch from reloading nginx, from `nginx -t`'s lines when it fails (HostState.nginxInvalid): its
 * first error, unless the file it names is one the switch rewrites (the app's site or upstreams: the switch repairs
 * it) and the error is not a second `default_server` for an address when the site is the default server
 * (isDefaultServer: the switch writes it so again; the other site, loaded first, is the one to change). undefined:
 * nothing in the way. The host's side of the same rule: nginxReadiness (core/steps/release.ts).
 */
export function nginxBlocker(env: Target, lines: string[]): string | undefined {
  if (!lines.length) return undefined;
  const first = nginxMessages(lines).find((m) => /\[(emerg|alert|crit)\]/.test(m)) ?? lines.find((l) => !/test failed/.test(l)) ?? 'nginx -t failed';
  const file = / in (\/\S+?):\d+$/.exec(first)?.[1];
  const L = env.layout;
  const said = first.replace(/^nginx: /, '');
  if (!file || ![L.nginxSite, L.nginxSiteEnabled, L.nginxUpstreams].includes(file)) return said;
  if (isDefaultServer(env) && DUPLICATE_DEFAULT.test(first)) return `${said}: another enabled site says default_server for that address, loaded before ${env.config.app}'s site, which the switch writes as the default server (${env.config.domain ? 'nginx.default_server' : 'it has no domain'}); nginx allows one per address`;
  return undefined;
}

/** nginx's words for a second default_server on one address (ngx_http_core_module: "a duplicate default server for ..."). */
const DUPLICATE_DEFAULT = /a duplicate default server/;

/** The words of a refusal by nginxUnreadyError: what was not done (`nothing`), as said after "the switch would refuse any release there, so" (`taken`), and the operation to run once fixed (`again`). */
export interface UnreadyWords {
  nothing: string;
  taken: string;
  again: string;
}

/**
 * What in nginx refuses an operation about to switch on `host`, from its state read (deployState's nginx checks,
 * nginxReadiness), in order: another server block taking the site's visitors (HostState.nginxTaken: the switch's
 * proof, nginxServed, asked on the live slot), a file nginx -t refuses that the switch does not write
 * (nginxBlocker), another file nginx reads that sends requests to a slot's port itself (slotPortsElsewhere: the
 * switch would not move them), a response cache every site inherits from another file (cachesInherited: the site
 * would answer the previous release's pages; it reads the site template, which may turn the cache off). Each names
 * what is wrong and the fix, in `words` (a deploy's or a rollback's). undefined when none.
 */
export function nginxUnreadyError(env: Target, host: string, state: Pick<HostState, 'nginxTaken' | 'nginxInvalid' | 'nginxSlotPorts'> & Partial<Pick<HostState, 'nginxCached'>>, words: UnreadyWords): OpsError | undefined {
  if (state.nginxTaken)
    return new OpsError(
      `the site's visitors on ${host} do not reach ${env.config.app}'s nginx site: ${state.nginxTaken}. The switch would refuse any release there, so ${words.taken}`,
      `remove that server block, or its listen or server_name (nginx -T shows them all), reload nginx, check ops status ${env.name}, then ${words.again}`,
    );
  const broken = nginxBlocker(env, state.nginxInvalid);
  if (broken)
    return new OpsError(
      `nginx -t fails on ${host}: ${broken}. The switch could not reload nginx, so ${words.nothing}; nginx keeps serving what it loaded`,
      DUPLICATE_DEFAULT.test(broken)
        ? `remove default_server from the other site (grep -l default_server /etc/nginx/sites-enabled/* /etc/nginx/conf.d/*.conf names them; an app renamed leaves its old site: ops env remove --dry-run --force lists the commands that take an app off a host)${env.config.domain ? `, or set nginx.default_server: false in environments/${env.name}/environment.yml` : ''}, then ${words.again}`
        : `fix or remove that file (hand-edited? ops status ${env.name} shows nginx -t), then ${words.again}`,
    );
  return slotPortsElsewhere(env, host, state.nginxSlotPorts, words.nothing, words.again) ?? cachesInherited(env, host, state.nginxCached ?? [], words.nothing, words.again);
}

/**
 * The refusal of an operation on every host where supervisord is not running (HostState.supervisorDown), before it
 * touches anything: no start could succeed, and no program of the live release runs until supervisord does. One
 * host: one sentence; several: every one of them named in one error, each with its live release (as portsTakenError
 * names every host at once). `down`: each such host and the release it serves ('' when none), never empty.
 * `nothing`: what the operation did not do; `again`: the operation to run once it is started.
 */
export function supervisorDownError(env: Target, down: { host: string; current: string }[], nothing: string, again: string): OpsError {
  if (down.length === 1) {
    const { host, current } = down[0]!;
    return new OpsError(
      `supervisord is not running on ${host} (systemctl start supervisor): ${nothing}, and no program of the live release${current ? ` (${current})` : ''} runs until it does`,
      `start it (sudo systemctl start supervisor), check ops status ${env.name}, then ${again}`,
    );
  }
  return new OpsError(
    `supervisord is not running on ${down.length} hosts (${down.map((d) => d.host).join(', ')}; systemctl start supervisor): ${nothing}, and no program of the live release runs there until it does:\n${down.map((d) => `  - ${d.host}: ${d.current ? `live release ${d.current} not running` : 'no live release'}`).join('\n')}`,
    `start it on each of them (sudo systemctl start supervisor), check ops status ${env.name}, then ${again}`,
  );
}

/**
 * The refusal of an operation, before it touches anything, on every host where no nginx runs and its unit is masked
 * (HostState.nginxStopped `masked`, deployState's read: a deploy's, or a rollback's with `nginx`): the switch's reload
 * starts a stopped nginx, but systemd may not start a masked one, so the switch would fail after the start. One
 * host: one sentence; several: all of them named in one error. `nothing`: what the operation did not do; `again`:
 * the operation ("deploy", "roll back"). `hosts` must not be empty.
 */
export function nginxMaskedError(hosts: string[], nothing: string, again: string): OpsError {
  const one = hosts.length === 1;
  return new OpsError(
    `nginx is not running on ${one ? hosts[0] : `${hosts.length} hosts (${hosts.join(', ')})`} and its unit is masked (systemctl mask nginx): the switch could not start it, so ${nothing}; ${one ? 'the site stays down as it is' : 'their sites stay down as they are'}`,
    `if nginx was stopped on purpose, ${again} once it may run again; otherwise: sudo systemctl unmask nginx (unmask --runtime for a mask made with --runtime) && sudo systemctl start nginx${one ? '' : ' on each of them'}, then ${again} again`,
  );
}

/** The ports of the slot an operation would start on that a process not that slot's own holds, on one host (portsTaken). */
export interface PortsTaken {
  host: string;
  /** The slot the operation would start on (the idle one). */
  slot: Slot;
  /** The release the host serves ('' when none). */
  current: string;
  /** The foreign listeners on the slot's ports (foreignListeners): never empty. */
  listeners: ProcReport[];
}

/**
 * The listeners on `slot`'s ports in a host's state step (report_slot's `listener` lines: deployState's `preflight`)
 * that are not that slot's own (foreignListeners): the previous release kept warm there, or a failed start, is the
 * slot's own and not counted, nor is what our programs left running there outside supervisor (report_slot's `own`:
 * the start stops it first, saying so). undefined when none is foreign (or the step did not report them).
 */
export function portsTaken(env: Target, host: string, state: Pick<HostState, 'current'>, r: StepResult, slot: Slot): PortsTaken | undefined {
  const listeners = foreignListeners(parseProcReports(env, r).listeners, slot);
  return listeners.length ? { host, slot, current: state.current, listeners } : undefined;
}

/** How an operation refused for taken ports (portsTakenError) says what it is and what it did not do. */
export interface PortsRefusal {
  /** What would have started: "this release would start on", "this rollback would start its release on". */
  starting: string;
  /** What was not done, e.g. "nothing was started (no build, no migration)". */
  nothing: string;
  /** The operation to run once the ports are free: "deploy again", "roll back again". */
  again: string;
}

/**
 * The refusal of an operation, before it touches anything, on every host where a port of the slot it would start on
 * is held by a process that is not that slot's own (portsTaken): its start would fail there (or, with a warm slot,
 * stop the warm release first). Names each host, port, program, and what listens there (pid and command when ss
 * shows them; a release of ours that supervisor no longer runs for the slot), what still serves each host, and how
 * to free the ports. One host: one sentence; several: one line per host, in one error (all of them at once, not
 * one per run). `taken` must not be empty.
 */
export function portsTakenError(env: Target, taken: PortsTaken[], refusal: PortsRefusal): OpsError {
  const what = (l: ProcReport, slot: Slot) =>
    l.pid ? `pid ${l.pid}${l.command ? ` (${l.command})` : ''}${l.release ? `, a process of release ${l.release} that supervisor does not run for slot ${slot}` : ''}` : 'a socket ss names no process for';
  const ports = (t: PortsTaken) => t.listeners.map((l) => `port ${env.port(l.program, t.slot)} (program ${l.program}) is held by ${what(l, t.slot)}`).join('; ');
  const serves = (t: PortsTaken) => (t.current ? `${t.host} still serves ${t.current}` : `${t.host} had no live release`);
  const stop = (t: PortsTaken) => {
    const pids = [...new Set(t.listeners.map((l) => l.pid).filter(Boolean))];
    return pids.length ? `sudo kill ${pids.join(' ')}, or stop the service it belongs to: ps -o unit= -p ${pids.join(',')}` : 'sudo ss -tlnp shows it';
  };
  const numbers = [...new Set(taken.flatMap((t) => t.listeners.map((l) => env.port(l.program, t.slot))))];
  const off = `move it off port${numbers.length > 1 ? 's' : ''} ${numbers.join(', ')}; ops status ${env.name} warns about it; then ${refusal.again}`;
  if (taken.length === 1) {
    const t = taken[0]!;
    return new OpsError(`the ports ${refusal.starting} (slot ${t.slot}) are taken on ${t.host}: ${ports(t)}. Its start would fail, so ${refusal.nothing}; ${serves(t)}`, `stop what holds them on ${t.host} (${stop(t)}), or ${off}`);
  }
  return new OpsError(
    `the ports ${refusal.starting} are taken on ${taken.length} hosts (${taken.map((t) => t.host).join(', ')}). Its start would fail there, so ${refusal.nothing} on any host:\n${taken.map((t) => `  - ${t.host} (slot ${t.slot}): ${ports(t)}; ${serves(t)}`).join('\n')}`,
    `stop what holds them (${taken.map((t) => `on ${t.host}: ${stop(t)}`).join('; ')}), or ${off}`,
  );
}

/**
 * What pruning removes after `id` went live on a host in `state` (the state read before the deploy): the
 * new release is live (the latest in the history), the one live before stays warm on its slot unless
 * `switch.keep_previous` is off.
 */
export function pruneAfterSwitch(env: Environment, state: HostState, id: string, newSlot: Slot): string[] {
  const top = Math.max(0, ...state.releases.map((r) => Math.max(r.liveSeq ?? 0, r.eventSeq ?? 0)));
  const releases = [...state.releases.filter((r) => r.id !== id), { id, sha: '', status: 'ok' as const, liveSeq: top + 1, eventSeq: top + 1 }];
  const warm = env.config.switch.keep_previous && state.current && state.slot ? [{ id: state.current, slot: state.slot }] : [];
  const kept = retention(releases, { keep: env.config.release.keep, keepFailed: env.config.release.keep_failed, current: id, warm: [...warm, { id, slot: newSlot }] });
  return [...kept].filter(([, why]) => why === undefined).map(([r]) => r);
}

/**
 * What pruning removes after `id` failed before going live on a host in `state` (the state read before the deploy):
 * the release live before is still live, each slot keeps the release its supervisor file ran (the previous release,
 * put back warm), and `id` is the latest failed release. So a run of failed deploys (a broken commit deployed on every
 * push for a week) keeps `release.keep_failed` of them, each with its code and any dependency set only it uses, not
 * one per deploy until the next deploy that goes live.
 */
export function pruneAfterFailure(env: Environment, state: HostState, id: string): string[] {
  const top = Math.max(0, ...state.releases.map((r) => Math.max(r.liveSeq ?? 0, r.eventSeq ?? 0)));
  const releases = [...state.releases.filter((r) => r.id !== id), { id, sha: '', status: 'failed' as const, eventSeq: top + 1 }];
  const warm = (Object.entries(state.slotReleases) as [Slot, string][]).map(([slot, r]) => ({ id: r, slot }));
  const kept = retention(releases, { keep: env.config.release.keep, keepFailed: env.config.release.keep_failed, current: state.current, warm });
  return [...kept].filter(([r, why]) => why === undefined && r !== state.current).map(([r]) => r);
}

/** A host's live commit from its state (the `deployState` step). */
export function liveOf(host: string, state: HostState): HostLive {
  return { host, sha: state.liveSha, release: state.current, depsHas: state.depsHas, ...(state.liveChanged && { changed: true }), ...(state.liveUnrecorded && { unrecorded: true }), ...(state.liveChangedFile !== undefined && { changedFile: state.liveChangedFile }) };
}

/**
 * Each host's live commit, read without the lock: one read-only round trip per host (the state step, without
 * the live check; with several hosts, each one's platform too, for who builds); a host never provisioned says so
 * (HostLive.unprovisioned). `expected`: what the deploy gives
 * (its fingerprint), so that each host says whether its live release was deployed with it. A host
 * that cannot be read is reported as such, so that a plan still prints.
 */
export async function readLive(ctx: OpsContext, env: Target, expected?: { fingerprint: string }): Promise<HostLive[]> {
  // Each host on its own connection (eachHost): one host down is that host's error, not every host's.
  return eachHost(
    ctx,
    env,
    async (remote, h) => {
      const state = parseState(await remote.run(deployState(env, undefined, { platform: env.hosts.length > 1, deps: true, ...expected })));
      return { ...liveOf(h.name, state), ...(state.platform && { platform: state.platform }), ...(!state.provisioned && { unprovisioned: unprovisionedNote(h.name, env) }) };
    },
    (h, fields) => ({ host: h.name, sha: '', release: '', ...fields }),
  );
}
