// The benchmark's hosts, all started from the same provisioned snapshot (test/e2e/support.ts readyHost):
//   ours:    1 host (env "bench1"; "bench1p" = the same host with release.python_installer pip) and 10 hosts
//            ("bench10", all at once; "bench10r", one at a time), the first 3 of them also as "bench3"/"bench3r"
//   ansible: 1 host and 3 hosts, set up the seed's way (root login, code in ~/catalogage, a bare repository on
//            the host standing in for GitHub, which test hosts cannot reach)
// Everything made here is recorded in a Cleanup as soon as it exists, so an error or Ctrl-C undoes it all.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { quote } from '../core/shell.ts';
import { APP, makeProject, readyHost, testConfig, testDatabase, type TestProject } from '../test/e2e/support.ts';
import { acquireLab, downHost, dropDatabase, ensureDatabase, ensureLab, npmRegistryUrl, pypiIndexUrl, releaseLab, sshRun, type Host } from '../test/hosts/index.ts';
import { exec } from './repo.ts';

export interface OursEnv {
  name: string;
  project: TestProject;
  hosts: Host[];
}

export interface AnsibleGroup {
  hosts: Host[];
  inventory: string;
}

export interface OursLab {
  one: OursEnv;
  /** The same host, its Python sets made by pip (release.python_installer: pip). */
  onePip: OursEnv;
  three: OursEnv;
  /** The same three hosts with the default batch size (one host at a time). */
  threeRolling: OursEnv;
  /** Ten hosts (the three among them), all at once and one at a time. */
  ten: OursEnv;
  tenRolling: OursEnv;
}

export interface AnsibleLab {
  one: AnsibleGroup;
  /** Undefined when Ansible's 3-host scenario is left out (--ansible-scenarios). */
  three?: AnsibleGroup;
  /** All the Ansible hosts (their first provision is one run). */
  all: AnsibleGroup;
  /** Extra vars file for ansible-playbook (-e @file): repository, database URL. */
  vars: string;
}

/** A side is undefined when the benchmark runs without it (--only). */
export interface Lab {
  ours?: OursLab;
  ansible?: AnsibleLab;
}

/** What the benchmark made, undone in reverse by `run()`: hosts (purged), databases, scratch projects, the lease. */
export class Cleanup {
  readonly owner = `bench-${process.pid}`;
  hosts: Host[] = [];
  databases: string[] = [];
  projects: TestProject[] = [];
  leased = false;
  async run(log: (line: string) => void): Promise<void> {
    // In parallel: a systemd host powers off cleanly, which takes seconds each.
    await Promise.all(this.hosts.splice(0).map((h) => downHost(h.name, { purge: true }).catch((e) => log(`warning: could not remove host ${h.name}: ${(e as Error).message}`))));
    for (const d of this.databases.splice(0)) await dropDatabase(d).catch((e) => log(`warning: could not drop database ${d}: ${(e as Error).message}`));
    for (const p of this.projects.splice(0)) p.cleanup();
    if (this.leased) await releaseLab(this.owner).catch(() => undefined);
    this.leased = false;
  }
}

/** ssh options for OpenSSH clients (git push) that trust only the host's pinned key. */
export function sshOptions(host: Host): string[] {
  return ['-F', '/dev/null', '-i', host.identityFile, '-o', 'IdentitiesOnly=yes', '-o', `UserKnownHostsFile=${host.knownHostsFile}`, '-o', 'GlobalKnownHostsFile=/dev/null', '-o', 'StrictHostKeyChecking=yes', '-o', 'BatchMode=yes', '-o', 'LogLevel=ERROR'];
}

/** Where the seed's playbook clones from (the seed: GitHub). */
export const SEED_REPOSITORY = '/root/app.git';

/** Make a host what the seed's inventory expects: root login with our key, no ops-pipeline site, a git remote. */
async function prepareSeedHost(host: Host, app: string): Promise<void> {
  await sshRun(
    host,
    [
      'set -e',
      'sudo install -d -m 700 /root/.ssh',
      'sudo install -m 600 "$HOME/.ssh/authorized_keys" /root/.ssh/authorized_keys',
      `sudo rm -f ${quote(`/etc/nginx/sites-enabled/${app}`)}`,
      `sudo git init -q --bare ${SEED_REPOSITORY}`,
    ].join('\n'),
  );
}

/** Send every tag of `repo` to the seed hosts' remote (outside any measurement: GitHub has the code already). */
export async function pushToSeedHosts(repo: string, hosts: Host[]): Promise<void> {
  for (const host of hosts) {
    await exec('git', ['-C', repo, 'push', '-q', '--force', `ssh://root@${host.address}${SEED_REPOSITORY}`, 'refs/tags/*:refs/tags/*'], {
      env: { GIT_SSH_COMMAND: ['ssh', ...sshOptions(host)].map(quote).join(' ') },
    });
  }
}

function inventory(file: string, hosts: Host[]): string {
  const lines = ['[web]'];
  for (const h of hosts) {
    // The pinned known_hosts file only keeps Ansible from writing to root's ~/.ssh/known_hosts; it does not
    // change what Ansible does per task (host_key_checking = False as in the seed).
    lines.push(`${h.name} ansible_host=${h.address} ansible_user=root ansible_ssh_private_key_file=${h.identityFile} ansible_ssh_extra_args='-o UserKnownHostsFile=${h.knownHostsFile}'`);
  }
  writeFileSync(file, `${lines.join('\n')}\n`);
  return file;
}

/**
 * Start the benchmark's hosts and scratch projects (see the top of this file), every one recorded in `options.cleanup`
 * as soon as it exists. `ansibleThree: false` leaves out Ansible's three-host group (one seed host only).
 */
export async function setUpLab(options: { work: string; repo: string; cleanup: Cleanup; log: (line: string) => void; ours: boolean; ansible: boolean; ansibleThree: boolean }): Promise<Lab> {
  const { work, repo, cleanup, log } = options;
  process.env.OPS_TESTHOSTS_OWNER = cleanup.owner; // readyHost records it: hosts left by a crash can be found
  await ensureLab({ log });
  acquireLab(cleanup.owner);
  cleanup.leased = true;
  await ensureDatabase();
  const up = async (prefix: string) => {
    const started = Date.now();
    const h = await readyHost(prefix);
    cleanup.hosts.push(h);
    log(`host ${h.name} up at ${h.address} (${((Date.now() - started) / 1000).toFixed(1)} s)`);
    return h;
  };
  const db = async (name: string) => {
    const full = `${name}_${process.pid}`;
    cleanup.databases.push(full);
    return testDatabase(full);
  };
  // The first host alone (it may build the provisioned snapshot: minutes, once per machine), then two at a time.
  const some = async (prefix: string, count: number) => {
    const letters = 'abcdefghijklmnop'.slice(0, count).split('');
    const first = cleanup.hosts.length ? [] : [await up(`${prefix}-a`)];
    const rest = letters.slice(first.length).map((x) => `${prefix}-${x}`);
    const made = [...first];
    for (let i = 0; i < rest.length; i += 2) made.push(...(await Promise.all(rest.slice(i, i + 2).map(up))));
    return made;
  };
  const lab: Lab = {};
  if (options.ours) {
    const o = await some('bo', 11);
    const ours = (name: string, envHosts: Host[], url: string, extra: Record<string, unknown>): OursEnv => {
      const project = makeProject(name, testConfig(envHosts, repo, url, extra));
      cleanup.projects.push(project);
      return { name, project, hosts: envHosts };
    };
    const url1 = await db('bench_ours1');
    const url3 = await db('bench_ours3');
    lab.ours = {
      // The product's switch defaults (the tests' 10 s health timeout is too short for a busy machine).
      one: ours('bench1', [o[0]!], url1, { switch: {} }),
      onePip: ours('bench1p', [o[0]!], url1, { switch: {}, release: { python_installer: 'pip' } }),
      // Three hosts at once (as Ansible's forks do), and the default rolling deploy (one host at a time).
      three: ours('bench3', o.slice(1, 4), url3, { switch: { batch_size: 3 } }),
      threeRolling: ours('bench3r', o.slice(1, 4), url3, { switch: {} }),
      ten: ours('bench10', o.slice(1, 11), url3, { switch: { batch_size: 10 } }),
      tenRolling: ours('bench10r', o.slice(1, 11), url3, { switch: {} }),
    };
  }
  if (options.ansible) {
    const a = await some('ba', options.ansibleThree ? 4 : 1);
    const seedUrl = await db('bench_seed');
    for (const h of a) await prepareSeedHost(h, APP);
    await pushToSeedHosts(repo, a);
    mkdirSync(work, { recursive: true });
    const vars = join(work, 'ansible-vars.yml');
    writeFileSync(
      vars,
      `git_repo: ${JSON.stringify(SEED_REPOSITORY)}\ndatabase_url: ${JSON.stringify(seedUrl)}\ndomain_name: bench.invalid\n` +
        // The hosts reach no Internet: the playbook's pip and npm use the lab's caches, as ops-pipeline's hosts do.
        `pip_index_url: ${JSON.stringify(pypiIndexUrl)}\npip_trusted_host: ${JSON.stringify(new URL(pypiIndexUrl).host)}\nnpm_registry: ${JSON.stringify(npmRegistryUrl)}\n`,
      { mode: 0o600 },
    );
    lab.ansible = {
      one: { hosts: [a[0]!], inventory: inventory(join(work, 'inventory-1'), [a[0]!]) },
      three: options.ansibleThree ? { hosts: a.slice(1), inventory: inventory(join(work, 'inventory-3'), a.slice(1)) } : undefined,
      all: { hosts: a, inventory: inventory(join(work, 'inventory-all'), a) },
      vars,
    };
  }
  return lab;
}
