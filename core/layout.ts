// Where everything lives on a host, derived from the environment in one place.
//
//   <base>/                 root:root 0755   the app user cannot flip `current` or rewrite history
//     repo.git/             root             bare mirror; the runner sends git packs into it (submodule commits too)
//     repo.git/lfs/objects/ root             Git LFS contents by oid, sent by the runner
//     releases/<id>/        app              code (git archive), release.json and REVISION (copies for the app to read,
//                                            written after removing the commit's own entries at those names), and what
//                                            its deploy gave it:
//       .env                app 0600         rendered for the app's .env parsers; the release's own (12-factor: a
//                                            release is code + config), so a failed deploy touches no live one and a
//                                            rollback brings back what its release was deployed with
//       .ops-environ        app 0600         the same values, NUL-separated NAME=VALUE: for the pipeline's own commands
//       .ops-assets-carried app              release.asset_dirs' files carried in from the release live before it
//     shared/deps/<hash>/   app              installed dependencies (venv, node_modules), reused by hash
//     current -> releases/<id>               flipped by rename(2)
//     .ops/lock/            root             the lock (its details renamed in whole): owner, run, time, holder pid
//     .ops/lock.queue/      root             runs waiting for the lock: a ticket each, numbered in order of arrival
//     .ops/audit.log        root 0644        append-only record of every run
//     .ops/history          root 0644        append-only order in which releases went live (sequence numbers)
//     .ops/slot             root             live blue/green slot
//     .ops/assets/{current,next,previous}/  root 0755  release.asset_dirs' { dir, url } of the live release, of the
//                                            one a rollout under way is about to switch to, and of the one live
//                                            before it, hard links: what nginx serves at those URLs (layout.assets)
//     .ops/kept-masks       root 0600        the .ops-masks lines of every release pruned: what their programs wrote
//                                            stays in the log files after them (core/steps/sh/mask.sh keep_masks)
//     .ops/releases/<id>/   root 0755        what ops records of release <id> (made with it, pruned with it), the
//                                            only place ops reads them from: the app user owns its release directory
//                                            and may leave anything there (a link into /etc, a REVISION of its own)
//       REVISION            root 0644        its commit
//       release.json        root 0644        its ReleaseMeta as ops wrote it
//       .ops-files          root 0644        its commit's files as made (size, mtime, path), before its build
//       .ops-tree           root 0600        those still as made when its deploy switched to it: what a no-op
//                                            compares (core/steps/sh/tree.sh)
//       .ops-runtimes       root 0644        the runtimes it was built with (version, absolute path): what its
//                                            programs start on, whatever runtimes pins today (switch.ts releaseRuntimes)
//       .ops-masks          root 0600        every form the runner masks of its secret values, one a line: what
//                                            the hosts mask themselves (ops status and logs run without the key;
//                                            core/steps/sh/mask.sh); never packed for other hosts (each has its own)
//       .ops-failed, .ops-abandoned  root    its mark: its deploy failed, or it was rolled back from (markRelease)
//                                            A release made by an older ops has no such directory: its own directory
//                                            holds these under the same names, read as before (history.sh
//                                            release_record, mask.sh mask_record) for it alone.
//     .ops/fingerprint      root 0600        per kept release, its id, the digest of what its deploy gave it (.env, settings)
//                                            and the sha256 of the .env and .ops-environ it wrote
//
// Outside <base>, every name an app takes on a host is derived from its app name (nginx site, upstreams and
// logs, supervisor groups and programs, /var/log/<app>, /etc/ssl/<app>) or is its app user: several apps
// share a host when those differ (core/config/siblings.ts refuses collisions before anything runs).
import type { Environment } from './config/environment.ts';

export type Slot = 'blue' | 'green';

export interface Layout {
  base: string;
  mirror: string;
  /** Git LFS contents by oid (aa/bb/<oid>), beside the mirror: what releases copy in place of pointers. */
  lfsStore: string;
  releases: string;
  shared: string;
  /** The .env of the release in directory `release` (a releases/<id> path, or `current`). */
  dotenv: (release: string) => string;
  /** The environ (NUL-separated NAME=VALUE records) of the release in directory `release`. */
  environ: (release: string) => string;
  /** The files release.asset_dirs carried into the release in directory `release` from the one live before it (NUL-separated paths): not its own, so never carried on. */
  carriedAssets: (release: string) => string;
  /**
   * In a release's record directory `record` (layout.record): its masks file (core/steps/masks.ts releaseMasks), root
   * 0600, never sent back; read by the hosts' masking (sh/mask.sh). A release made by an older ops has it in its own
   * directory under the same name (read there for it alone: mask.sh mask_record).
   */
  masks: (record: string) => string;
  /** Where ops records what it knows of each release, by id (root's; the app user cannot write there). */
  records: string;
  /** What ops records of release `id` (its REVISION, release.json, tree records and mark): created with it, pruned with it. */
  record: (id: string) => string;
  /** In a release's record directory `record` (layout.record): the record of its commit's files as made (core/steps/sh/tree.sh tree_made). */
  treeMade: (record: string) => string;
  /** In a release's record directory `record`: those files still as made when a deploy switched to it (tree_record): what a no-op compares. */
  treeLive: (record: string) => string;
  /**
   * In a release's record directory `record`: the runtimes it was built with (`python <version> <path>`, `node <version>
   * <path>` lines, core/steps/release.ts releaseRecord): what its programs start on (rollback, a warm slot started again),
   * whatever `runtimes` pins today. A release made by an older ops has none: today's runtimes start it.
   */
  runtimes: (record: string) => string;
  /** The shared .env and environ versions before releases had their own wrote (their releases' .env links to it): read as a fallback, removed by pruning with the last such release. */
  legacyShared: { dotenv: string; environ: string };
  /** The texts to mask of every release pruned (core/steps/sh/mask.sh keep_masks): root 0600, never sent back. */
  keptMasks: string;
  deps: string;
  current: string;
  /**
   * What nginx serves release.asset_dirs' { dir, url } from: `current/<dir>`, the live release's, `next/<dir>`, the
   * release a rollout under way prepared on this host and is about to switch it to (other hosts may serve its pages
   * already), and `previous/<dir>`, the release live before the last switch (deploy or rollback), whose pages may
   * still be open. Root's, readable by nginx's workers (the releases are not: 0750), hard links to the releases' files
   * (no link to follow; a file not readable by all a copy: core/steps/sh/assets.sh).
   */
  assets: string;
  state: string;
  lock: string;
  audit: string;
  history: string;
  slotFile: string;
  /** `<inode> <size> <log file>` lines, one per program log of the slot: where the release the slot runs began writing each (startSlot), so ops logs shows its lines alone. */
  logStart: (slot: Slot) => string;
  /** `<release id> <fingerprint> <.env sha256> <environ sha256>` lines (older ones: the fingerprint alone), one per release a deploy put live and still kept: what each was deployed with (fingerprintRecords). */
  fingerprint: string;
  uploads: string;
  /** The app user's package caches (uv's, pip's, npm's content store), shared by every dependency set it makes: bounded by the prune (release.ts packageCaches). */
  packageCaches: string[];
  logDir: string;
  nginxSite: string;
  nginxSiteEnabled: string;
  /** The port-80 server answering the ACME HTTP-01 challenge for names the site does not serve yet (their certificate not issued): there only while it is not (tls.ts acmePending). */
  nginxAcmePending: string;
  nginxUpstreams: string;
  /** nginx upstream block of a program ("<app>_<program>"). */
  nginxUpstream: (program: string) => string;
  /** nginx variable holding the live slot, served at /.ops/slot (no "$"). */
  nginxSlotVariable: string;
  /** nginx variable holding the live release's id, set by the switch in the upstreams file: what a cache key of the site must carry (no "$"). */
  nginxReleaseVariable: string;
  /** nginx variable holding the Connection header passed to the programs: "upgrade" for a WebSocket, else "" (no "$"). */
  nginxUpgradeVariable: string;
  /** The site's own nginx logs (not the host-wide ones shared by every site). */
  nginxAccessLog: string;
  nginxErrorLog: string;
  /** The site's log of the switch's own requests through nginx (those carrying X-Ops-Check): which upstream answered each (nginx-config.ts checkLog). */
  nginxCheckLog: string;
  /** nginx variable (no "$") and log_format naming that log's requests and lines: "ops_check_<app>". */
  nginxCheckName: string;
  supervisorConf: (slot: Slot) => string;
  supervisorGroup: (slot: Slot) => string;
  supervisorProgram: (slot: Slot, program: string) => string;
  acmeWebroot: string;
  selfSignedDir: string;
}

/**
 * Every path and name an environment uses on a host (base_dir, releases, shared, .ops, nginx, supervisor,
 * logs, TLS), from its settings. Pure: the one place these are spelt.
 */
export function layout(env: Environment): Layout {
  const base = env.baseDir;
  const app = env.config.app;
  return {
    base,
    mirror: `${base}/repo.git`,
    lfsStore: `${base}/repo.git/lfs/objects`,
    releases: `${base}/releases`,
    shared: `${base}/shared`,
    dotenv: (release) => `${release}/.env`,
    environ: (release) => `${release}/.ops-environ`,
    carriedAssets: (release) => `${release}/.ops-assets-carried`,
    masks: (record) => `${record}/.ops-masks`,
    records: `${base}/.ops/releases`,
    record: (id) => `${base}/.ops/releases/${id}`,
    treeMade: (record) => `${record}/.ops-files`,
    treeLive: (record) => `${record}/.ops-tree`,
    runtimes: (record) => `${record}/.ops-runtimes`,
    legacyShared: { dotenv: `${base}/shared/.env`, environ: `${base}/shared/environ` },
    keptMasks: `${base}/.ops/kept-masks`,
    deps: `${base}/shared/deps`,
    current: `${base}/current`,
    assets: `${base}/.ops/assets`,
    state: `${base}/.ops`,
    lock: `${base}/.ops/lock`,
    audit: `${base}/.ops/audit.log`,
    history: `${base}/.ops/history`,
    slotFile: `${base}/.ops/slot`,
    logStart: (slot) => `${base}/.ops/log-start-${slot}`,
    fingerprint: `${base}/.ops/fingerprint`,
    uploads: `${base}/.ops/uploads`,
    packageCaches: ['.cache/uv', '.cache/pip', '.npm/_cacache'].map((c) => `/home/${env.appUser}/${c}`),
    logDir: `/var/log/${app}`,
    nginxSite: `/etc/nginx/sites-available/${app}`,
    nginxSiteEnabled: `/etc/nginx/sites-enabled/${app}`,
    nginxAcmePending: `/etc/nginx/sites-enabled/${app}.acme-pending`,
    nginxUpstreams: `/etc/nginx/ops-upstreams/${app}.conf`,
    nginxUpstream: (program) => `${app}_${program}`,
    nginxSlotVariable: `ops_slot_${app.replace(/-/g, '_')}`,
    nginxReleaseVariable: `ops_release_${app.replace(/-/g, '_')}`,
    nginxUpgradeVariable: `ops_upgrade_${app.replace(/-/g, '_')}`,
    nginxAccessLog: `/var/log/nginx/${app}.access.log`,
    nginxErrorLog: `/var/log/nginx/${app}.error.log`,
    nginxCheckLog: `/var/log/nginx/${app}.check.log`,
    nginxCheckName: `ops_check_${app.replace(/-/g, '_')}`,
    supervisorConf: (slot) => `/etc/supervisor/conf.d/${app}-${slot}.conf`,
    supervisorGroup: (slot) => `${app}-${slot}`,
    supervisorProgram: (slot, program) => `${app}-${slot}-${program}`,
    // Shared by every app on the host: challenge tokens are unique, and certbot only adds and removes its own.
    acmeWebroot: '/var/www/letsencrypt',
    selfSignedDir: `/etc/ssl/${app}`,
  };
}

/** Port of a program in a slot: blue uses the configured port, green the port + offset. */
export function slotPort(env: Environment, program: string, slot: Slot): number {
  const p = env.config.programs[program];
  if (!p) throw new Error(`no program ${program}`);
  return slot === 'blue' ? p.port : p.port + env.config.switch.port_offset;
}

/** The slot that is not `slot` (blue ↔ green). */
export function otherSlot(slot: Slot): Slot {
  return slot === 'blue' ? 'green' : 'blue';
}
