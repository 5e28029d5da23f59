// ops env remove without a host (recording remotes answer as a serving or a gone host), and the day-2
// commands' argument errors through the real CLI.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml, stringify } from 'yaml';
import type { Connector } from '../../core/context.ts';
import { formatRemove, removeAppCommands, removeEnvironment } from '../../core/ops/decommission.ts';
import { RecordingRemote } from '../../core/remote/recording.ts';
import { MemoryReporter } from '../../core/report.ts';
import { readCreationRules, setEnvRule } from '../../core/secrets/sops-config.ts';
import { loadEnvironment } from '../../core/config/environment.ts';
import { OpsError } from '../../core/errors.ts';
import { PLACEHOLDER_HOST_KEY } from '../../core/config/hostkey.ts';
import { runOps } from '../support/cli.ts';
import { report, testEnv } from './status.helpers.ts';
import { startSupervisord } from '../support/supervisord.ts';

/** supervisorctl of the supervisord startSupervisord runs (4.2.5, scripts/setup-machine.sh). */
const SUPERVISORCTL = join(process.env.OPS_TESTHOSTS_CACHE || '/var/cache/ops-testhosts', 'python', 'supervisor-4.2.5', 'bin', 'supervisorctl');

const RECIPIENT = 'age1066aw35g7mgvykamlmge92f5uy6n5zhjw0mzpn0fz0t6vyrm35yqetgzkd';

/**
 * A project with environments old (to remove) and keep, each with its .sops.yaml rule, and a workflow naming
 * old. keep runs on another VM, or (`shared`) on old's VM as another app with its own domain and ports.
 */
async function project(shared: boolean | 'same-app' = false) {
  const env = testEnv({ domain: 'old.example.org', url: 'https://old.example.org', env: { APP_DATABASE_URL: { secret: 'database_url' }, APP_DATAPASS_CLIENT_ID: { secret: 'datapass_client_id' }, MODE: 'live' } }, undefined, 'old');
  const root = env.root;
  mkdirSync(join(root, 'environments', 'keep'));
  const keep = parseYaml(readFileSync(join(env.dir, 'environment.yml'), 'utf8'));
  if (shared === 'same-app') Object.assign(keep, { programs: { server: { command: 'run', port: 4579 }, client: { command: 'run', port: 4000 } } });
  else if (shared) Object.assign(keep, { app: 'keep', domain: 'keep.example.org', url: 'https://keep.example.org', programs: { server: { command: 'run', port: 4579 }, client: { command: 'run', port: 4000 } } });
  else Object.assign(keep, { domain: 'keep.example.org', url: 'https://keep.example.org', hosts: [{ ...keep.hosts[0], address: '192.0.2.2' }] });
  writeFileSync(join(root, 'environments', 'keep', 'environment.yml'), stringify(keep));
  writeFileSync(join(env.dir, 'secrets.sops.yaml'), 'x: 1\n');
  await setEnvRule(root, 'old', [RECIPIENT]);
  await setEnvRule(root, 'keep', [RECIPIENT]);
  mkdirSync(join(root, '.github', 'workflows'), { recursive: true });
  writeFileSync(join(root, '.github', 'workflows', 'deploy.yml'), 'on:\n  workflow_dispatch:\n    inputs:\n      environment:\n        options:\n          - keep\n          - old\n# old comment\n');
  // Named by its title, a branch, a concurrency group and a command, but listing only keep: not a workflow to change.
  writeFileSync(join(root, '.github', 'workflows', 'keep.yml'), 'name: deploy old\non:\n  push:\n    branches: [old]\nconcurrency:\n  group: deploy-old\njobs:\n  deploy:\n    runs-on: ubuntu-latest\n    environment:\n      name: keep\n    steps:\n      - run: echo old\n      - uses: ./actions/deploy\n        with:\n          environment: keep\n');
  // A job's environment and an action's input.
  writeFileSync(join(root, '.github', 'workflows', 'old.yml'), 'on: push\njobs:\n  deploy:\n    runs-on: ubuntu-latest\n    environment:\n      name: old\n    strategy:\n      matrix:\n        environment: [keep, old]\n    steps:\n      - uses: ./actions/deploy\n        with:\n          environment: old\n');
  return { env, root };
}

const serving: Connector = async (_e, host) => new RecordingRemote(host.name, 'deploy', 'shop', () => ({ stdout: report() }));
const notLive: Connector = async (_e, host) => new RecordingRemote(host.name, 'deploy', 'shop', () => ({ stdout: report({ current: '', release_json: undefined, slot: '', health: undefined, site: '404' }) }));
const gone: Connector = async (_e, host) => {
  throw new Error(`cannot connect to ${host.name}: connect ETIMEDOUT`);
};

describe('ops env remove', () => {
  it('refuses while a host still serves, naming it and what it serves; changes nothing', async () => {
    const { root, env } = await project();
    const err = await removeEnvironment({ root, reporter: new MemoryReporter(), processEnv: {}, connector: serving }, 'old').catch((e: Error & { hint?: string }) => e);
    expect((err as Error).message).toBe('environment old still serves: refusing to remove it\n  web1 (192.0.2.1) serves 20261125T140000Z-0123456789ab (v2), http://127.0.0.1/ answers 200');
    expect((err as { hint?: string }).hint).toMatch(/--force/);
    expect(existsSync(env.dir)).toBe(true);
    expect(readCreationRules(root).map((r) => r.pathRegex)).toEqual(['(^|/)environments/old/', '(^|/)environments/keep/']);
  });

  it('a host serving nothing (no release) does not block; the folder and only its rule go', async () => {
    const { root, env } = await project();
    const r = await removeEnvironment({ root, reporter: new MemoryReporter(), processEnv: {}, connector: notLive }, 'old');
    expect(r.removed).toBe(true);
    expect(r.hosts).toEqual([{ host: 'web1', address: '192.0.2.1', state: 'reachable, no live release' }]);
    expect(existsSync(env.dir)).toBe(false);
    expect(existsSync(join(root, 'environments', 'keep', 'environment.yml'))).toBe(true);
    expect(readCreationRules(root).map((r) => r.pathRegex)).toEqual(['(^|/)environments/keep/']);
    expect(r.changes).toEqual(['environments/old/ (2 files)', '.sops.yaml: the creation rule for environments/old/']);
  });

  it('an unreachable host: the refusal says how to reach it too (its hint), not only its error', async () => {
    const { root } = await project();
    const refused: Connector = async (_e, host) => {
      throw new OpsError(`cannot connect to ${host.name}: connection refused`, 'check that sshd runs on the host and listens on hosts[].port');
    };
    const err = await removeEnvironment({ root, reporter: new MemoryReporter(), processEnv: {}, connector: refused }, 'old').catch((e: Error) => e);
    expect((err as Error).message).toBe("cannot tell whether old's hosts still serve:\n  web1 (192.0.2.1) unreachable (cannot connect to web1: connection refused; hint: check that sshd runs on the host and listens on hosts[].port)");
  });

  it('an unreachable host blocks removal (it may still serve others), dry run too, naming it and why; --force removes', async () => {
    const { root, env } = await project();
    for (const dryRun of [false, true]) {
      const err = await removeEnvironment({ root, reporter: new MemoryReporter(), processEnv: {}, connector: gone }, 'old', { dryRun }).catch((e: Error & { hint?: string }) => e);
      expect((err as Error).message).toBe("cannot tell whether old's hosts still serve:\n  web1 (192.0.2.1) unreachable (cannot connect to web1: connect ETIMEDOUT)");
      expect((err as { hint?: string }).hint).toMatch(/remove the folder anyway with --force/);
    }
    expect(existsSync(env.dir)).toBe(true);
    expect(readCreationRules(root).map((r) => r.pathRegex)).toEqual(['(^|/)environments/old/', '(^|/)environments/keep/']);
    // through the CLI, at an address a machine may have (192.0.2.1, a documentation address, is the placeholder
    // `ops env new` writes: no machine, nothing serving, see below)
    const file = join(env.dir, 'environment.yml');
    writeFileSync(file, readFileSync(file, 'utf8').replace('address: 192.0.2.1', 'address: 127.0.0.1'));
    expect(await cli(root, 'env', 'remove', 'old', '--identity', '/nonexistent/key')).toMatchObject({ code: 1, err: expect.stringMatching(/cannot tell whether old's hosts still serve:\n  web1 \(127\.0\.0\.1\) unreachable \([^\n]*\)\n\s*hint: [^\n]*--force/) });
    expect(existsSync(env.dir)).toBe(true);
    expect((await removeEnvironment({ root, reporter: new MemoryReporter(), processEnv: {}, connector: gone }, 'old', { force: true })).removed).toBe(true);
  });

  it('a reachable host whose status cannot be read blocks removal (it may still serve)', async () => {
    const { root, env } = await project();
    const noSudo: Connector = async (_e, host) => new RecordingRemote(host.name, 'deploy', 'shop', () => ({ code: 1, stderr: 'sudo: a password is required' }));
    await expect(removeEnvironment({ root, reporter: new MemoryReporter(), processEnv: {}, connector: noSudo }, 'old')).rejects.toThrow(
      "cannot tell whether old's hosts still serve:\n  web1 (192.0.2.1) reachable, but its status cannot be read (step \"status\" on web1 failed with exit code 1; sudo: a password is required)",
    );
    expect(existsSync(env.dir)).toBe(true);
  });

  it('--force removes without contacting any host; --dry-run changes nothing', async () => {
    const { root, env } = await project();
    const never: Connector = async () => {
      throw new Error('must not connect');
    };
    const dry = await removeEnvironment({ root, reporter: new MemoryReporter(), processEnv: {}, connector: serving }, 'old', { dryRun: true, force: true });
    expect(dry.removed).toBe(false);
    expect(existsSync(env.dir)).toBe(true);
    const r = await removeEnvironment({ root, reporter: new MemoryReporter(), processEnv: {}, connector: never }, 'old', { force: true });
    expect(r.removed).toBe(true);
    expect(existsSync(env.dir)).toBe(false);
  });

  it('prints the checklist of what the repository cannot release', async () => {
    const { root } = await project();
    const r = await removeEnvironment({ root, reporter: new MemoryReporter(), processEnv: {}, connector: notLive }, 'old', { dryRun: true });
    const text = formatRemove(r, true);
    expect(text).toContain('would remove:\n  - environments/old/ (2 files)');
    for (const item of [
      /VM web1 \(192\.0\.2\.1\): delete it at the hosting provider/,
      /PostgreSQL database \(APP_DATABASE_URL\): drop the database and its login/,
      /DNS: remove the record of old\.example\.org/,
      /OpenID Connect \("Comptes DataPass"\): ask the DataPass team \(BetaGouv\) to remove the callback URLs of https:\/\/old\.example\.org/,
      /GitHub: delete the environment "old" \(Settings → Environments\) and its secrets \(SSH key, SOPS_AGE_KEY\), and its deployment history if wanted; and the environment "old-status" that status\.yml uses for old, with its secret SSH_PRIVATE_KEY/,
      /workflows still name old: remove it from them[^\n]*\n\s+\.github\/workflows\/deploy\.yml:7: - old\n/,
      // old's only recipient is keep's too: deleting the key would lose keep's secrets.
      new RegExp(`age key of old: keep it: ${RECIPIENT}: it also opens keep \\(\\.sops\\.yaml\\); deleting it would leave their secrets undecryptable`),
      /ops audit old --json/,
    ])
      expect(text).toMatch(item);
    expect(text).not.toContain('deploy.yml:8'); // a comment is not a reference
    expect(text).toMatch(/\.github\/workflows\/old\.yml:6: name: old\n\s+\.github\/workflows\/old\.yml:9: environment: \[keep, old\]\n\s+\.github\/workflows\/old\.yml:13: environment: old\n/);
    expect(text).not.toContain('keep.yml'); // a title, a branch, a group, a command spelled like it list no environment
  });

  it('an app that signs in through no OpenID Connect provider (its env names none) gets no callback-URL item', async () => {
    const { root } = await project();
    const f = join(root, 'environments', 'old', 'environment.yml');
    writeFileSync(f, stringify({ ...parseYaml(readFileSync(f, 'utf8')), env: { APP_DATABASE_URL: { secret: 'database_url' }, MODE: 'live' } }));
    const r = await removeEnvironment({ root, reporter: new MemoryReporter(), processEnv: {}, connector: notLive }, 'old', { dryRun: true });
    expect(r.checklist.join('\n')).not.toMatch(/OpenID Connect|DataPass/);
    expect(r.checklist.find((c) => c.startsWith('PostgreSQL'))).toMatch(/APP_DATABASE_URL/);
  });

  it('on a VM shared with another environment: keep the VM, and commands that take only this app off it', async () => {
    const { root } = await project(true);
    const r = await removeEnvironment({ root, reporter: new MemoryReporter(), processEnv: {}, connector: notLive }, 'old', { dryRun: true });
    const text = formatRemove(r, true);
    expect(text).not.toMatch(/delete it at the hosting provider/);
    expect(text).toContain(
      [
        '  3. VM web1 (192.0.2.1) also runs keep: keep it, and take shop off it (these touch nothing of keep):',
        '      sudo rm -f /etc/supervisor/conf.d/shop-blue.conf /etc/supervisor/conf.d/shop-green.conf /etc/supervisor/conf.d/.shop-blue.conf.ops-md5 /etc/supervisor/conf.d/.shop-green.conf.ops-md5 && for g in shop-blue shop-green; do if sudo supervisorctl status | grep -q "^$g:"; then sudo supervisorctl update "$g"; fi; done',
        '      sudo rm -f /etc/nginx/sites-enabled/shop /etc/nginx/sites-enabled/shop.acme-pending /etc/nginx/sites-available/shop /etc/nginx/sites-available/.shop.ops-md5 /etc/nginx/ops-upstreams/shop.conf && sudo nginx -t && sudo nginx -s reload',
        '      sudo rm -rf /srv/shop /var/log/shop /var/log/nginx/shop.access.log* /var/log/nginx/shop.error.log* /var/log/nginx/shop.check.log*',
        '      sudo rm -f /etc/ops-pipeline/apps/shop',
        `      if ! getent passwd shop >/dev/null; then echo 'app user shop: already removed'; elif [ "$(getent passwd shop | cut -d: -f6)" = /home/shop ]; then sudo userdel --remove shop; else echo 'shop: its home is not /home/shop, so ops did not make it: kept'; fi`,
        // Deleting the GitHub secrets leaves old's key authorized on a VM that stays: its line goes, found by the key.
        '      # the SSH key old logs in with (deploy@192.0.2.1; GitHub secret SSH_PRIVATE_KEY of "old" and "old-status"): deleting the secrets leaves it authorized here. With its private key at hand (KEY=<file>), drop its line (keep also logs in as deploy: keep the line if it uses the same key):',
        `      body=$(ssh-keygen -y -f "$KEY" | cut -d' ' -f2) && ssh -p 22 deploy@192.0.2.1 "sudo sed -i.ops-bak '\\|$body|d' ~deploy/.ssh/authorized_keys"`,
        '  4. ',
      ].join('\n'),
    );
    expect(text).not.toMatch(/keep\.conf|\/srv\/keep|userdel --remove keep/);

    // keep logs in as another user there: old's line is its own, to drop without a second thought.
    const keepFile = join(root, 'environments', 'keep', 'environment.yml');
    const keep = parseYaml(readFileSync(keepFile, 'utf8'));
    writeFileSync(keepFile, stringify({ ...keep, hosts: [{ ...keep.hosts[0], user: 'keeper' }] }));
    const other = formatRemove(await removeEnvironment({ root, reporter: new MemoryReporter(), processEnv: {}, connector: notLive }, 'old', { dryRun: true }), true);
    expect(other).toContain('deleting the secrets leaves it authorized here. With its private key at hand (KEY=<file>), drop its line:\n');
    expect(other).toContain('~deploy/.ssh/authorized_keys');
    expect(other).not.toContain('keeper');
  });

  it("the supervisor line, run against a real supervisord 4.2.5 where only blue ever ran (one deploy): blue's group goes, green's absence is no error", async () => {
    const { root } = await project(true);
    const line = removeAppCommands(loadEnvironment('old', root), [loadEnvironment('keep', root)])[0]!;
    const sup = await startSupervisord('ops-env-remove-', (d) => {
      mkdirSync(join(d, 'conf.d'));
      writeFileSync(join(d, 'conf.d', 'shop-blue.conf'), `[group:shop-blue]\nprograms=shop-blue-web\n\n[program:shop-blue-web]\ncommand=/bin/sleep 600\nstartsecs=0\nstdout_logfile=${d}/web.log\n`);
      writeFileSync(join(d, 'conf.d', 'keep-blue.conf'), `[group:keep-blue]\nprograms=keep-blue-web\n\n[program:keep-blue-web]\ncommand=/bin/sleep 600\nstartsecs=0\nstdout_logfile=${d}/keep.log\n`);
      return [`[include]\nfiles = ${d}/conf.d/*.conf\n`];
    });
    try {
      const ctl = `${SUPERVISORCTL} -s unix://${sup.sock}`;
      const status = () => execFileSync('bash', ['-c', `${ctl} status || true`], { encoding: 'utf8' });
      for (let i = 0; i < 100 && !/shop-blue-web\s+RUNNING/.test(status()); i++) await new Promise((r) => setTimeout(r, 100));
      // the line as printed, with this supervisord's paths and socket in place of the host's
      const here = line.replaceAll('/etc/supervisor/conf.d/', `${sup.dir}/conf.d/`).replaceAll('sudo supervisorctl', ctl).replaceAll('sudo ', '');
      const r = spawnSync('bash', ['-c', here], { encoding: 'utf8' });
      expect(r.stderr + r.stdout).not.toContain('ERROR');
      expect(r.status, r.stderr + r.stdout).toBe(0);
      expect(status()).not.toContain('shop-blue');
      expect(status()).toMatch(/keep-blue:keep-blue-web\s+RUNNING/);
    } finally {
      sup.daemon.kill('SIGTERM');
    }
  });

  it('on a VM shared with an environment of the same app (as ops env new gives next to prod): what both use is named as shared and kept, never removed', async () => {
    const { root } = await project('same-app');
    const r = await removeEnvironment({ root, reporter: new MemoryReporter(), processEnv: {}, connector: notLive }, 'old', { dryRun: true, force: true });
    const text = formatRemove(r, true);
    expect(text).not.toMatch(/delete it at the hosting provider/);
    expect(text).toContain('VM web1 (192.0.2.1) also runs keep: keep it, and take shop off it (these touch nothing of keep):');
    expect(text).toMatch(/# old's configuration collides with keep on this VM \(a deploy of either refuses it\):\n\s+# environments old and keep share 192\.0\.2\.1 .*both take app name "shop"/);
    for (const kept of [
      '# supervisor groups shop-blue, shop-green (/etc/supervisor/conf.d/shop-blue.conf, /etc/supervisor/conf.d/shop-green.conf): shared with keep (the same app name "shop"): kept',
      '# nginx site and upstreams /etc/nginx/sites-enabled/shop, /etc/nginx/sites-available/shop, /etc/nginx/ops-upstreams/shop.conf: shared with keep (the same app name "shop"): kept',
      '# base_dir /srv/shop: shared with keep (base directories /srv/shop, /srv/shop overlap): kept',
      '# logs /var/log/shop, /var/log/nginx/shop.access.log*, /var/log/nginx/shop.error.log*, /var/log/nginx/shop.check.log*: shared with keep (the same app name "shop"): kept',
      '# app user shop: shared with keep (the same app user): kept',
      '# record of its runtimes /etc/ops-pipeline/apps/shop: shared with keep (the same app name "shop"): kept',
    ])
      expect(text).toContain(`      ${kept}\n`);
    expect(text).not.toMatch(/sudo (rm|userdel|supervisorctl|certbot)/);

    // Only what is shared is kept: another app name under the same base_dir and user.
    const keepFile = join(root, 'environments', 'keep', 'environment.yml');
    writeFileSync(keepFile, stringify({ ...parseYaml(readFileSync(keepFile, 'utf8')), app: 'keep', app_user: 'shop', base_dir: '/srv/shop/keep', domain: 'keep.example.org' }));
    const cmds = removeAppCommands(loadEnvironment('old', root), [loadEnvironment('keep', root)]);
    expect(cmds).toEqual([
      'sudo rm -f /etc/supervisor/conf.d/shop-blue.conf /etc/supervisor/conf.d/shop-green.conf /etc/supervisor/conf.d/.shop-blue.conf.ops-md5 /etc/supervisor/conf.d/.shop-green.conf.ops-md5 && for g in shop-blue shop-green; do if sudo supervisorctl status | grep -q "^$g:"; then sudo supervisorctl update "$g"; fi; done',
      'sudo rm -f /etc/nginx/sites-enabled/shop /etc/nginx/sites-enabled/shop.acme-pending /etc/nginx/sites-available/shop /etc/nginx/sites-available/.shop.ops-md5 /etc/nginx/ops-upstreams/shop.conf && sudo nginx -t && sudo nginx -s reload',
      'sudo rm -rf /var/log/shop /var/log/nginx/shop.access.log* /var/log/nginx/shop.error.log* /var/log/nginx/shop.check.log*',
      '# base_dir /srv/shop: shared with keep (base directories /srv/shop, /srv/shop/keep overlap): kept',
      'sudo rm -f /etc/ops-pipeline/apps/shop',
      '# app user shop: shared with keep (the same app user): kept',
    ]);
  });

  it('the age key: only a recipient no other .sops.yaml rule lists is to delete; one that opens other environments is kept, naming them', async () => {
    const { root } = await project();
    const OWN = 'age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p';
    await setEnvRule(root, 'old', [OWN]);
    const own = await removeEnvironment({ root, reporter: new MemoryReporter(), processEnv: {}, connector: notLive }, 'old', { dryRun: true, force: true });
    expect(own.checklist.find((c) => c.startsWith('age key'))).toBe('age key of old: delete it from the password manager and the CI secrets; its secrets (APP_DATABASE_URL ← secret database_url, APP_DATAPASS_CLIENT_ID ← secret datapass_client_id) are dead with it');
    await setEnvRule(root, 'old', [OWN, RECIPIENT]);
    const both = await removeEnvironment({ root, reporter: new MemoryReporter(), processEnv: {}, connector: notLive }, 'old', { dryRun: true, force: true });
    expect(both.checklist.find((c) => c.startsWith('age key'))).toBe(
      `age key of old (${OWN}): delete it from the password manager and the CI secrets; its secrets (APP_DATABASE_URL ← secret database_url, APP_DATAPASS_CLIENT_ID ← secret datapass_client_id) are dead with it; keep ${RECIPIENT}: it also opens keep (.sops.yaml)`,
    );
    // Printed after the rule is gone: still read from it as it was.
    const r = await removeEnvironment({ root, reporter: new MemoryReporter(), processEnv: {}, connector: notLive }, 'old', { force: true });
    expect(r.removed).toBe(true);
    expect(r.checklist.find((c) => c.startsWith('age key'))).toBe(both.checklist.find((c) => c.startsWith('age key')));
  });

  it("a domain another environment also names (on the same VM): its DNS record, certificate and callback URLs are kept, naming it", async () => {
    const { root } = await project(true);
    const keepFile = join(root, 'environments', 'keep', 'environment.yml');
    writeFileSync(keepFile, stringify({ ...parseYaml(readFileSync(keepFile, 'utf8')), domain: 'Old.example.org.', tls: { mode: 'letsencrypt', email: 'ops@example.org' } }));
    const oldFile = join(root, 'environments', 'old', 'environment.yml');
    writeFileSync(oldFile, stringify({ ...parseYaml(readFileSync(oldFile, 'utf8')), tls: { mode: 'letsencrypt', email: 'ops@example.org' } }));
    const r = await removeEnvironment({ root, reporter: new MemoryReporter(), processEnv: {}, connector: notLive }, 'old', { dryRun: true, force: true });
    const text = formatRemove(r, true);
    expect(text).toContain('DNS: the record of old.example.org: shared with keep (the same domain): keep it');
    expect(text).toContain('TLS: the certificate of old.example.org: shared with keep (the same domain): keep it, do not revoke it');
    expect(text).toContain('OpenID Connect ("Comptes DataPass"): the callback URLs of https://old.example.org: shared with keep (the same domain): keep them');
    expect(text).toContain('      # certificate old.example.org: shared with keep (the same domain): kept');
    expect(text).not.toMatch(/remove the record of|certbot (revoke|delete)|remove the callback URLs/);
  });

  it('the aliases are names of the site too: their DNS records are listed to remove (or kept, shared, each on its own), the certificate said to name them', async () => {
    const { root } = await project();
    const oldFile = join(root, 'environments', 'old', 'environment.yml');
    writeFileSync(oldFile, stringify({ ...parseYaml(readFileSync(oldFile, 'utf8')), aliases: ['www.old.example.org', 'old.example.net'], tls: { mode: 'letsencrypt', email: 'ops@catalogue.fr' } }));
    const list = async () => (await removeEnvironment({ root, reporter: new MemoryReporter(), processEnv: {}, connector: notLive }, 'old', { dryRun: true, force: true })).checklist;
    let items = await list();
    expect(items.filter((i) => i.startsWith('DNS: '))).toEqual(['DNS: remove the records of old.example.org, www.old.example.org, old.example.net']);
    expect(items.find((i) => i.startsWith('TLS: '))).toBe('TLS: revoke the certificate (it names old.example.org, www.old.example.org, old.example.net) before deleting the VM if its key may leak (on the host: certbot revoke --cert-name old.example.org); it expires by itself otherwise');
    // keep (on another VM) serves one of old's aliases as its domain: that record is kept, the others go.
    const keepFile = join(root, 'environments', 'keep', 'environment.yml');
    writeFileSync(keepFile, stringify({ ...parseYaml(readFileSync(keepFile, 'utf8')), domain: 'old.example.net', url: 'https://old.example.net' }));
    items = await list();
    expect(items.filter((i) => i.startsWith('DNS: '))).toEqual(['DNS: the record of old.example.net: shared with keep (the same name): keep it', 'DNS: remove the records of old.example.org, www.old.example.org']);
  });

  it('a database with the same plain URL as another environment on the VM is kept; a secret one may be shared: said so', async () => {
    const { root } = await project('same-app');
    const dry = await removeEnvironment({ root, reporter: new MemoryReporter(), processEnv: {}, connector: notLive }, 'old', { dryRun: true, force: true });
    expect(dry.checklist.find((c) => c.startsWith('PostgreSQL'))).toMatch(/; unless keep on the same VM uses it too \(compare their database URLs.*\): then keep it:\n {6}# APP_DATABASE_URL \(secret database_url\) could not be read here/);
    for (const n of ['old', 'keep']) {
      const f = join(root, 'environments', n, 'environment.yml');
      writeFileSync(f, stringify({ ...parseYaml(readFileSync(f, 'utf8')), env: { APP_DATABASE_URL: 'postgresql://app@db/app' } }));
    }
    const again = await removeEnvironment({ root, reporter: new MemoryReporter(), processEnv: {}, connector: notLive }, 'old', { dryRun: true, force: true });
    expect(again.checklist.find((c) => c.startsWith('PostgreSQL'))).toBe('PostgreSQL database (APP_DATABASE_URL): shared with keep (the same APP_DATABASE_URL): keep it, and its login');
  });

  it('a database server named by the same plain URL is shared wherever the other environment runs; one on the host itself only on the same VM', async () => {
    const { root } = await project();
    const dbOf = async (url: string) => {
      for (const n of ['old', 'keep']) {
        const f = join(root, 'environments', n, 'environment.yml');
        writeFileSync(f, stringify({ ...parseYaml(readFileSync(f, 'utf8')), env: { APP_DATABASE_URL: url } }));
      }
      const r = await removeEnvironment({ root, reporter: new MemoryReporter(), processEnv: {}, connector: notLive }, 'old', { dryRun: true, force: true });
      return r.checklist.find((c) => c.startsWith('PostgreSQL'));
    };
    expect(await dbOf('postgresql://app@db.example.org/app')).toBe('PostgreSQL database (APP_DATABASE_URL): shared with keep (the same APP_DATABASE_URL): keep it, and its login');
    for (const local of ['postgresql://app@localhost/app', 'postgresql://app@127.0.0.1:5432/app', 'postgresql:///app', 'postgresql://app@[::1]/app'])
      expect(await dbOf(local), local).toMatch(/^PostgreSQL database \(APP_DATABASE_URL\): drop the database and its login/);
  });

  it('never lists rm -rf of a shared or system directory, even for a file older than the base_dir checks', () => {
    const env = testEnv();
    // Also what the checks refuse with the app's name and user: another's home, the app's log directory (once).
    for (const baseDir of ['/', '/srv', '/tmp', '/home/deploy', '/var/log', '/srv/x/..', '//srv', '/home/deploy/shop', '/var/log/shop', '/var/log/shop/app', '/var/run/shop', '/var/lib/postgresql']) {
      const cmds = removeAppCommands({ ...env, baseDir });
      const rm = cmds.find((c) => c.startsWith('sudo rm -rf '))!;
      expect(rm, baseDir).toBe('sudo rm -rf /var/log/shop /var/log/nginx/shop.access.log* /var/log/nginx/shop.error.log* /var/log/nginx/shop.check.log*');
      expect(cmds.at(-1), baseDir).toMatch(new RegExp(`^# base_dir ${baseDir.replace(/[.]/g, '\\.')} is not a directory of its own \\(.*\\): remove shop's files from it by hand \\(releases, shared, current, repo\\.git, \\.ops\\), nothing else$`));
    }
    // An app named after a system directory (refused by today's checks): its logs and TLS directory are the system's.
    const nginx = removeAppCommands({ ...env, config: { ...env.config, app: 'nginx', tls: { mode: 'self-signed' } }, baseDir: '/srv/nginx' });
    expect(nginx.filter((c) => /rm -rf/.test(c))).toEqual(['sudo rm -rf /srv/nginx /var/log/nginx/nginx.access.log* /var/log/nginx/nginx.error.log* /var/log/nginx/nginx.check.log*']);
    expect(nginx.at(-1)).toBe('# app "nginx" names /var/log/nginx, which belongs to the system: its files there are not removed');
  });

  it('the checklist in the order it can be done: the audit log saved before anything deletes it, DNS before the VMs', async () => {
    const { root } = await project(true);
    const dry = await removeEnvironment({ root, reporter: new MemoryReporter(), processEnv: {}, connector: notLive }, 'old', { dryRun: true });
    const at = (re: RegExp) => dry.checklist.findIndex((c) => re.test(c));
    // The audit log lives in the app's directory, which the printed commands (and deleting the VM) remove; ops
    // audit reads it through environments/old/, which ops env remove removes: saved first, saying why.
    expect(dry.checklist[0]).toMatch(/^first, before anything below and before ops env remove old without --dry-run .*ops audit old --json > old-audit\.json/);
    expect(at(/^DNS: /)).toBeGreaterThan(0);
    expect(at(/^VM web1 /)).toBeGreaterThan(at(/^DNS: /));
    expect(at(/sudo rm -rf \/srv\/shop/)).toBeGreaterThan(at(/ops audit old --json/));
    // Printed after the folder is gone: no instruction that can no longer work, but where what is left lives.
    const r = await removeEnvironment({ root, reporter: new MemoryReporter(), processEnv: {}, connector: gone }, 'old', { force: true });
    expect(r.removed).toBe(true);
    const text = formatRemove(r);
    expect(text).not.toContain('ops audit old');
    expect(text).toContain('  1. the audit log and logs: environments/old/ is removed, so ops audit and ops logs no longer reach them; what is left is on the hosts (/srv/shop/.ops/audit.log, /var/log/shop/)');
  });

  it('refuses unknown and invalid names before anything else', async () => {
    const { root } = await project();
    const ctx = { root, reporter: new MemoryReporter(), processEnv: {}, connector: serving };
    await expect(removeEnvironment(ctx, 'nope')).rejects.toThrow('no environment "nope": environments/nope/ does not exist');
    await expect(removeEnvironment(ctx, '../etc')).rejects.toThrow(/invalid environment name "..\/etc"/);
    await expect(removeEnvironment(ctx, 'Old')).rejects.toThrow(/invalid environment name/);
  });

  it('a host still at the placeholder address `ops env new` writes (an environment made by a typo): nothing serves there, removed without --force', async () => {
    const { root, env } = await project();
    const file = join(env.dir, 'environment.yml');
    writeFileSync(file, readFileSync(file, 'utf8').replace('address: 192.0.2.1', 'address: 203.0.113.11'));
    // the real connector, which refuses the placeholder before any connection
    const r = await removeEnvironment({ root, reporter: new MemoryReporter(), processEnv: { PATH: process.env.PATH, HOME: '/nonexistent' } }, 'old');
    expect(r.removed).toBe(true);
    expect(r.hosts).toEqual([{ host: 'web1', address: '203.0.113.11', state: 'never set up: a documentation address (RFC 5737), the placeholder ops env new writes', placeholder: true }]);
    expect(existsSync(env.dir)).toBe(false);
    // The checklist is said to apply only to what was made by hand (it is kept whole: a DNS record may exist).
    expect(formatRemove(r)).toContain("none of old's hosts was ever set up (each still at the placeholder address or host key ops env new writes): of what follows, only what was made by hand for it exists");
  });

  it('a host at a real address still pinned to the placeholder host key `ops env new` writes: ops never reached it, so nothing of the environment serves there; removed without --force', async () => {
    const { root, env } = await project();
    const file = join(env.dir, 'environment.yml');
    writeFileSync(file, readFileSync(file, 'utf8').replace('address: 192.0.2.1', 'address: 10.254.0.1').replace(/host_key: ssh-ed25519\s+\S+/, `host_key: ${PLACEHOLDER_HOST_KEY}`));
    const r = await removeEnvironment({ root, reporter: new MemoryReporter(), processEnv: { PATH: process.env.PATH, HOME: '/nonexistent' } }, 'old');
    expect(r.hosts).toEqual([{ host: 'web1', address: '10.254.0.1', state: 'never set up: its host key is the placeholder ops env new writes', placeholder: true }]);
    expect(r.removed).toBe(true);
    expect(formatRemove(r)).toContain("none of old's hosts was ever set up (each still at the placeholder address or host key ops env new writes)");
  });

  it('an unreadable environment.yml blocks the check unless forced', async () => {
    const { root, env } = await project();
    writeFileSync(join(env.dir, 'environment.yml'), 'app: [\n');
    await expect(removeEnvironment({ root, reporter: new MemoryReporter(), processEnv: {}, connector: serving }, 'old')).rejects.toThrow(/cannot tell whether old's hosts still serve/);
    const r = await removeEnvironment({ root, reporter: new MemoryReporter(), processEnv: {} }, 'old', { force: true });
    expect(r.removed).toBe(true);
    expect(r.checklist[0]).toMatch(/environment.yml could not be read/);
  });
});

const cli = (root: string, ...argv: string[]) => runOps(argv, { root, processEnv: { PATH: process.env.PATH, HOME: '/nonexistent' } });

describe('day-2 commands, argument errors', () => {
  it('env remove through the CLI: unknown name, then --force removes and lists the checklist', async () => {
    const { root, env } = await project();
    expect(await cli(root, 'env', 'remove', 'nope')).toMatchObject({ code: 2, err: expect.stringContaining('error: no environment "nope"') });
    const r = await cli(root, 'env', 'remove', 'old', '--force');
    expect(r.code).toBe(0);
    expect(r.out).toContain('removed:\n  - environments/old/ (2 files)\n  - .sops.yaml: the creation rule for environments/old/');
    expect(r.out).toContain('still to release by hand');
    expect(existsSync(env.dir)).toBe(false);
  });

  it('logs, status and certs refuse bad input before connecting', async () => {
    const { root } = await project();
    expect(await cli(root, 'logs', 'keep', '--lines', 'ten')).toMatchObject({ code: 2, err: expect.stringContaining('--lines needs a whole number from 0 to 10000, got "ten"') });
    expect(await cli(root, 'logs', 'keep', 'worker')).toMatchObject({ code: 2, err: expect.stringContaining('"worker" is not a program of keep') });
    expect(await cli(root, 'logs', 'keep', '--slot', 'blue')).toMatchObject({ code: 2, err: expect.stringContaining('--slot must be one of live, previous, both, got "blue"') });
    // nginx's logs are one pair per site, not per slot: a slot asked of them is refused, not silently ignored
    expect(await cli(root, 'logs', 'keep', 'nginx', '--slot', 'previous')).toMatchObject({
      code: 2,
      out: '',
      err: 'error: --slot does not apply to nginx: its access and error logs are the site\'s, one pair for every release and slot\n  hint: leave --slot out for nginx\'s logs; --slot previous is for a program\'s: ops logs keep <program> --slot previous (programs: server, client)\n',
    });
    expect(await cli(root, 'status', 'Nope')).toMatchObject({ code: 2, err: expect.stringContaining('invalid environment name "Nope"') });
    expect(await cli(root, 'certs', 'keep')).toMatchObject({ code: 2, err: expect.stringContaining('tls.mode is off') });
    expect((await cli(root, '--help')).out).toMatch(/status <env> +per host: release, nginx/);
  });
});

describe('ops env remove: the database and its login', () => {
  /** old's DATABASE variable set to `spec` (a plain value or a secret reference). */
  async function withDatabase(spec: unknown, shared = false) {
    const p = await project(shared);
    const f = join(p.root, 'environments', 'old', 'environment.yml');
    writeFileSync(f, stringify({ ...parseYaml(readFileSync(f, 'utf8')), env: { APP_DATABASE_URL: spec, MODE: 'live' } }));
    return p;
  }
  const item = (r: { checklist: string[] }) => r.checklist.find((c) => c.startsWith('PostgreSQL'))!;

  it('prints the exact commands, after a final dump: names decoded, SQL- and shell-quoted, never the password', async () => {
    const { root } = await withDatabase("postgresql+asyncpg://shop%27s:pa%40ss-S3cret@db.internal:5433/shop%22db?ssl=require");
    const r = await removeEnvironment({ root, reporter: new MemoryReporter(), processEnv: {}, connector: notLive }, 'old', { dryRun: true });
    const text = item(r);
    expect(text).toContain(`# APP_DATABASE_URL: PostgreSQL db.internal:5433. Review, then run them yourself (nothing here runs them): first a final dump (pg_dump asks for the login's password),\n      pg_dump --format=custom --host=db.internal --port=5433 '--username=shop'\\''s' '--dbname=shop"db' --file='shop"db-final.dump'`);
    expect(text).toContain(`# then drop the database and its login, as a superuser of that server:\n      psql --host=db.internal --port=5433 --username=postgres --dbname=postgres -v ON_ERROR_STOP=1 -c 'DROP DATABASE IF EXISTS "shop""db";' -c 'DROP ROLE IF EXISTS "shop'\\''s";'`);
    expect(text.indexOf('pg_dump')).toBeLessThan(text.indexOf('DROP DATABASE'));
    expect(formatRemove(r, true)).not.toContain('S3cret');
    // The commands, as a shell reads them: the SQL psql gets is the names quoted as identifiers.
    const psql = text.split('\n').find((l) => l.trim().startsWith('psql'))!;
    const argv = execFileSync('bash', ['-c', `printf '%s\\n' ${psql.trim().replace(/^psql /, '')}`], { encoding: 'utf8' }).trim().split('\n');
    expect(argv.slice(-4)).toEqual(['-c', 'DROP DATABASE IF EXISTS "shop""db";', '-c', `DROP ROLE IF EXISTS "shop's";`]);
  });

  it('a database on the VM itself: as its postgres user, dumped before the VM is deleted', async () => {
    const { root } = await withDatabase('postgresql://shop:pw@localhost/shop');
    const text = item(await removeEnvironment({ root, reporter: new MemoryReporter(), processEnv: {}, connector: notLive }, 'old', { dryRun: true }));
    expect(text).toContain('PostgreSQL on the VM itself (deleting the VM deletes it: dump it before)');
    expect(text).toContain("sudo -u postgres pg_dump --format=custom --dbname=shop > shop-final.dump");
    expect(text).toContain(`sudo -u postgres psql -v ON_ERROR_STOP=1 -c 'DROP DATABASE IF EXISTS "shop";' -c 'DROP ROLE IF EXISTS "shop";'`);
  });

  it('a secret URL: read with the key at hand (the commands, before and after the folder is removed); without it, how to get them', async () => {
    const { root, env } = await withDatabase({ secret: 'database_url' });
    const { generateIdentity, SecretsFile } = await import('../../core/secrets/index.ts');
    const { fromPlain } = await import('../../core/secrets/tree.ts');
    const id = await generateIdentity();
    await setEnvRule(root, 'old', [id.recipient]);
    rmSync(join(env.dir, 'secrets.sops.yaml'));
    await SecretsFile.create(join(env.dir, 'secrets.sops.yaml'), fromPlain({ database_url: 'postgresql://app_old:Zq-9secret-pw@10.0.0.9:5432/app_old' }) as never, { recipients: [id.recipient] }).save();
    const noKey = item(await removeEnvironment({ root, reporter: new MemoryReporter(), processEnv: {}, connector: notLive }, 'old', { dryRun: true }));
    expect(noKey).toContain('# APP_DATABASE_URL (secret database_url) could not be read here (no key that opens the secrets): with the environment\'s age key, ops env remove old --dry-run prints the commands');
    const reporter = new MemoryReporter();
    const r = await removeEnvironment({ root, reporter, processEnv: { SOPS_AGE_KEY: id.secret }, connector: notLive }, 'old');
    expect(r.removed).toBe(true);
    expect(item(r)).toContain(`psql --host=10.0.0.9 --port=5432 --username=postgres --dbname=postgres -v ON_ERROR_STOP=1 -c 'DROP DATABASE IF EXISTS "app_old";' -c 'DROP ROLE IF EXISTS "app_old";'`);
    expect(reporter.redact(formatRemove(r))).not.toContain('Zq-9secret-pw');
  });

  it('a database another environment uses too: kept, no command to drop it', async () => {
    const { root } = await withDatabase('postgresql://shop:pw@db.internal/shop');
    const f = join(root, 'environments', 'keep', 'environment.yml');
    writeFileSync(f, stringify({ ...parseYaml(readFileSync(f, 'utf8')), env: { APP_DATABASE_URL: 'postgresql://shop:pw@db.internal/shop', MODE: 'live' } }));
    const text = item(await removeEnvironment({ root, reporter: new MemoryReporter(), processEnv: {}, connector: notLive }, 'old', { dryRun: true }));
    expect(text).toMatch(/shared with keep .*: keep it, and its login$/);
    expect(text).not.toContain('DROP');
  });
});
