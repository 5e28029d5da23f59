// The sample app's repository for the benchmark: the fixture's tags (v1, v2...) plus "full deploy" commits made
// here. A full deploy must change the lockfiles to a set the host never installed (else ops-pipeline rightly
// reuses the installed set), so each run gets its own commit: requirements.txt gains a comment and the client
// gains a vendored dependency (a tarball in client/vendor/, installed by `npm ci` with the rest) of a new version.
// The client's version becomes "<base>-full.<n>", so the page footer tells which commit is served.
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { OpsError, tail } from '../core/errors.ts';
import { makeAppRepo } from '../test/fixtures/app/make-repo.ts';
import { npmRegistryUrl } from '../test/hosts/index.ts';

const IDENTITY = { GIT_AUTHOR_NAME: 'Benchmark', GIT_AUTHOR_EMAIL: 'bench@ops-pipeline.invalid', GIT_COMMITTER_NAME: 'Benchmark', GIT_COMMITTER_EMAIL: 'bench@ops-pipeline.invalid' };

export function exec(program: string, args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(program, args, { cwd: options.cwd, env: { ...process.env, ...options.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (b: Buffer) => (out += b));
    child.stderr.on('data', (b: Buffer) => (err += b));
    child.on('error', (e: NodeJS.ErrnoException) => reject(e.code === 'ENOENT' ? new OpsError(`${program}: command not found`, 'prepare the machine: sudo scripts/setup-machine.sh') : e));
    child.on('close', (code) => (code === 0 ? resolve(out.trim()) : reject(new OpsError(`${program} ${args.join(' ')} failed (exit ${code})${options.cwd ? ` in ${options.cwd}` : ''}\n${tail(err || out, 15)}`))));
  });
}

const git = (cwd: string, ...args: string[]) => exec('git', args, { cwd, env: { GIT_CONFIG_NOSYSTEM: '1', GIT_CONFIG_GLOBAL: '/dev/null', ...IDENTITY } });

export interface BenchRepo {
  dir: string;
  /** The client version a ref serves (the page footer), e.g. v1 -> "1.0.0". */
  clientVersion: Record<string, string>;
  /** Make (once) the full-deploy commit number `n` on top of `base`; returns its tag. */
  full(base: string, n: number): Promise<string>;
}

export async function benchRepo(dir: string): Promise<BenchRepo> {
  await makeAppRepo(dir);
  const clientVersion: Record<string, string> = {};
  for (const tag of ['v1', 'v2']) clientVersion[tag] = (JSON.parse(await git(dir, 'show', `${tag}:client/package.json`)) as { version: string }).version;
  return {
    dir,
    clientVersion,
    async full(base, n) {
      const tag = `bench-full-${base}-${n}`;
      if (clientVersion[tag]) return tag;
      const work = mkdtempSync(join(tmpdir(), 'ops-bench-commit-'));
      try {
        await git(dir, 'worktree', 'add', '-q', '--detach', join(work, 'tree'), base);
        const tree = join(work, 'tree');
        // The vendored dependency: its version changes with every commit, so the lockfile does.
        const depVersion = `1.${base.replace(/\D/g, '') || 0}.${n}`;
        const pkg = join(work, 'bench-dep');
        mkdirSync(pkg);
        writeFileSync(join(pkg, 'package.json'), JSON.stringify({ name: 'bench-dep', version: depVersion, main: 'index.js', license: 'MIT' }, null, 2) + '\n');
        writeFileSync(join(pkg, 'index.js'), `module.exports = ${JSON.stringify(depVersion)};\n`);
        mkdirSync(join(tree, 'client', 'vendor'), { recursive: true });
        await exec('npm', ['pack', '--silent', '--pack-destination', join(tree, 'client', 'vendor')], { cwd: pkg });
        const pj = join(tree, 'client', 'package.json');
        const manifest = JSON.parse(readFileSync(pj, 'utf8')) as { version: string; dependencies?: Record<string, string> };
        const version = `${clientVersion[base] ?? manifest.version}-full.${n}`;
        manifest.version = version;
        manifest.dependencies = { ...manifest.dependencies, 'bench-dep': `file:vendor/bench-dep-${depVersion}.tgz` };
        writeFileSync(pj, JSON.stringify(manifest, null, 2) + '\n');
        await exec('npm', ['install', '--package-lock-only', '--prefer-offline', '--ignore-scripts', '--no-audit', '--no-fund', '--silent', '--registry', npmRegistryUrl], { cwd: join(tree, 'client') });
        writeFileSync(join(tree, 'requirements.txt'), `${readFileSync(join(tree, 'requirements.txt'), 'utf8')}# benchmark full deploy ${base} ${n}\n`);
        await git(tree, 'add', '-A');
        await git(tree, 'commit', '-q', '--no-verify', '-m', `Benchmark: lockfiles changed (${base}, run ${n})`);
        await git(tree, 'tag', '-f', tag);
        clientVersion[tag] = version;
        return tag;
      } finally {
        await git(dir, 'worktree', 'remove', '--force', join(work, 'tree')).catch(() => undefined);
        rmSync(work, { recursive: true, force: true });
      }
    },
  };
}
