// Projects made by frameworks' own generators (test/fixtures/frameworks: `django-admin startproject`,
// express-generator), with only the edits README.md ("Another app's framework") tells a new user to make, deployed on
// one real host: what their defaults need (a health path Django redirects with APPEND_SLASH, ALLOWED_HOSTS, static
// files collected by the build and served by nginx, a migration and settings reading the `.env`, a Node server on
// every address) is the tool's to meet, never the fixture's.
import { readdirSync, readFileSync, mkdtempSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { deploy } from '../../core/ops/deploy.ts';
import { provision } from '../../core/ops/provision.ts';
import { MemoryReporter } from '../../core/report.ts';
import type { OpsError } from '../../core/errors.ts';
import { npmRegistryUrl, pypiIndexUrl } from '../hosts/index.ts';
import { initRepo } from '../support/gitrepo.ts';
import { asRoot, get, labHost, makeProject, webConfig } from './support.ts';

const FIXTURES = join(import.meta.dirname, '..', 'fixtures', 'frameworks');

/** The files (path → content, bytes as the generator wrote them) of its output under FIXTURES/`name`, placed under `under` in the repository. */
function generated(name: string, under: string): Record<string, string | Buffer> {
  const files: Record<string, string | Buffer> = {};
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir)) {
      const path = join(dir, entry);
      if (statSync(path).isDirectory()) walk(path);
      else files[join(under, relative(join(FIXTURES, name), path))] = readFileSync(path);
    }
  };
  walk(join(FIXTURES, name));
  return files;
}

/**
 * The startproject's settings.py with a new user's edits (Django's deployment checklist, README): the secret key
 * from the repository root's `.env` by django-environ, DEBUG off, ALLOWED_HOSTS the site's address and 127.0.0.1,
 * STATIC_ROOT for collectstatic. Nothing else of the generator's is touched (SQLite, APPEND_SLASH, the admin).
 */
function djangoSettings(original: string | Buffer, address: string): string {
  const edited = String(original)
    .replace(/^from pathlib import Path$/m, 'from pathlib import Path\nimport environ')
    .replace(/^SECRET_KEY = .*$/m, "env = environ.Env()\nenviron.Env.read_env(BASE_DIR.parent / '.env')\nSECRET_KEY = env('DJANGO_SECRET_KEY')")
    .replace(/^DEBUG = True$/m, 'DEBUG = False')
    .replace(/^ALLOWED_HOSTS = \[\]$/m, `ALLOWED_HOSTS = [${JSON.stringify(address)}, '127.0.0.1']`)
    .replace(/^STATIC_URL = 'static\/'$/m, "STATIC_URL = 'static/'\nSTATIC_ROOT = BASE_DIR / 'staticfiles'");
  expect(edited.match(/environ|DEBUG = False|ALLOWED_HOSTS = \[".+|STATIC_ROOT/g)?.length).toBeGreaterThanOrEqual(5);
  return edited;
}

/**
 * The environment of a startproject in backend/ (README "Another app's framework"): requirements, collectstatic as the
 * build, migrate with the .env, gunicorn on 127.0.0.1, its collected files served by nginx at /static/, health
 * `/admin` (APPEND_SLASH answers 301 to /admin/, which answers 302 to its login page).
 */
function djangoConfig(repo: string, readers: string[]): Record<string, unknown> {
  return webConfig(lab.host, repo, {
    release: {
      python_requirements: 'backend/requirements.txt',
      node_dir: '',
      build: 'cd backend && ../venv/bin/python manage.py collectstatic --noinput',
      build_needs_python: true,
      migrate: 'cd backend && ../venv/bin/python manage.py migrate --noinput',
      asset_dirs: [{ dir: 'backend/staticfiles', url: '/static/' }],
    },
    packages: { pip_index_url: pypiIndexUrl, npm_registry: npmRegistryUrl },
    dotenv: { readers },
    env: { DJANGO_SECRET_KEY: 'e2e-not-secret-0123456789-abcdefghijklmnopqrstuvwxyz' },
    programs: { web: { command: '{release}/venv/bin/gunicorn --bind 127.0.0.1:{port} mysite.wsgi', directory: 'backend', port: 5100, health: '/admin', strip_prefix: false } },
    routes: { '/': 'web' },
  });
}

/**
 * Flask's application factory as its docs write it ("Application Factories"; started as their "Gunicorn" page shows,
 * `gunicorn 'hello:create_app()'`), its configuration from `FLASK_*` variables (`from_prefixed_env`), a session
 * signed with FLASK_SECRET_KEY.
 */
const FLASK_FACTORY = `from flask import Flask, session


def create_app():
    app = Flask(__name__)
    app.config.from_prefixed_env()

    @app.get("/health")
    def health():
        return {"ok": True}

    @app.get("/visits")
    def visits():
        session["n"] = session.get("n", 0) + 1
        return {"visits": session["n"]}

    return app
`;

/** FastAPI's app built by a factory, as uvicorn's `--factory` starts it; its greeting from the process environment. */
const FASTAPI_FACTORY = `import os

from fastapi import FastAPI


def create_app() -> FastAPI:
    app = FastAPI()

    @app.get("/health")
    def health():
        return {"ok": True}

    @app.get("/greeting")
    def greeting():
        return {"greeting": os.environ.get("GREETING", "unset")}

    return app
`;

const lab = labHost('gen');
const root = mkdtempSync(join(tmpdir(), 'ops-generated-'));

describe('projects made by frameworks\' own generators', () => {
  it('a Django startproject behind gunicorn: its admin through an APPEND_SLASH health path, static files from collectstatic, migrated with the .env', async () => {
    const repo = join(root, 'django');
    const files = generated('django', 'backend');
    files['backend/mysite/settings.py'] = djangoSettings(files['backend/mysite/settings.py']!, lab.host.address);
    files['backend/requirements.txt'] = 'Django==5.1.4\ngunicorn==23.0.0\ndjango-environ==0.12.0\n';
    initRepo(repo, files);
    const project = makeProject('e2e', djangoConfig(repo, ['django-environ']));
    try {
      const reporter = new MemoryReporter();
      await deploy(project.ctx(reporter), project.env(), {});
      const login = await get(lab.host, '/admin/login/');
      expect(login.status).toBe(200);
      expect(login.body).toContain('Django administration');
      expect((await get(lab.host, '/static/admin/css/base.css')).status).toBe(200);
      // startproject's database is BASE_DIR / 'db.sqlite3': made in the release by migrate, so left behind by the next deploy.
      expect(await asRoot(lab.host, 'ls /srv/sample/current/backend')).toContain('db.sqlite3');
      expect(reporter.lines.join('\n')).toMatch(/warning: .*release\.migrate wrote a SQLite database in release \S+ \(backend\/db\.sqlite3\): each deploy makes a new release directory/);
    } finally {
      project.cleanup();
    }
  }, 600_000);

  it('a startproject whose settings read the secret key from the process environment (Django\'s deployment checklist): migrate passes, the start fails saying programs get no .env values', async () => {
    const repo = join(root, 'django-os-environ');
    const files = generated('django', 'backend');
    files['backend/mysite/settings.py'] = djangoSettings(files['backend/mysite/settings.py']!, lab.host.address).replace(/^env = environ\.Env\(\)\n.*\nSECRET_KEY = .*$/m, "import os\nSECRET_KEY = os.environ['DJANGO_SECRET_KEY']");
    files['backend/requirements.txt'] = 'Django==5.1.4\ngunicorn==23.0.0\ndjango-environ==0.12.0\n';
    initRepo(repo, files);
    const project = makeProject('e2e', djangoConfig(repo, ['python-dotenv']));
    try {
      const failed = await deploy(project.ctx(), project.env(), {}).then(() => undefined, (e: unknown) => e as OpsError);
      expect(failed?.message).toMatch(/step "start \w+" on \S+ failed[\s\S]*KeyError: 'DJANGO_SECRET_KEY'/);
      expect(failed?.hint).toMatch(/the programs' log names DJANGO_SECRET_KEY, of the release's \.env: build, migrate and hooks get the \.env's values in their environment, a program only .*set -a; \. \{release\}\/\.env; exec/);
      expect((await get(lab.host, '/admin/login/')).status, 'the Django release before it still serves').toBe(200);
    } finally {
      project.cleanup();
    }
  }, 600_000);

  it('a create-vite React SPA (vite 8) beside a Flask app factory under gunicorn: refused on the default Node.js 18 naming vite\'s range; on Node.js 22 its page by vite preview, its hashed assets by nginx, the API at /api/, its FLASK_SECRET_KEY warned of until the shell reader exports the .env to it', async () => {
    const repo = join(root, 'vite-flask');
    initRepo(repo, {
      ...generated('vite-react', 'client'),
      'api/hello.py': FLASK_FACTORY,
      'api/requirements.txt': 'Flask==3.1.0\ngunicorn==23.0.0\n',
    });
    const gunicorn = (quote: string) => `{release}/venv/bin/gunicorn --bind 127.0.0.1:{port} ${quote}hello:create_app()${quote}`;
    const config = (node: Record<string, unknown> | undefined, api = gunicorn("'"), readers = ['python-dotenv', 'node-dotenv']) =>
      webConfig(lab.host, repo, {
        ...(node && { runtimes: { python: { strategy: 'debian', version: '3.11' }, node } }),
        dotenv: { readers },
        release: { python_requirements: 'api/requirements.txt', node_dir: 'client', build: 'cd client && npm run build', migrate: '', asset_dirs: [{ dir: 'client/dist/assets', url: '/assets/' }] },
        packages: { pip_index_url: pypiIndexUrl, npm_registry: npmRegistryUrl },
        env: { FLASK_SECRET_KEY: 'e2e-not-secret-0123456789-abcdefghijklmnopqrstuvwxyz' },
        programs: {
          web: { command: '{npm} run preview -- --host 127.0.0.1 --port {port} --strictPort', directory: 'client', port: 5100, health: '/' },
          api: { command: api, directory: 'api', port: 5200, health: '/health' },
        },
        routes: { '/': 'web', '/api/': 'api' },
      });
    const releases = () => asRoot(lab.host, 'ls /srv/sample/releases 2>/dev/null || true');
    const before = await releases();
    const old = makeProject('e2e', config(undefined));
    try {
      const refused = await deploy(old.ctx(), old.env(), {}).then(() => undefined, (e: unknown) => e as OpsError);
      expect(refused?.message).toMatch(/refused before any host was touched:\n- release\.node_dir client: runtimes\.node pins Node\.js 18, and client\/package-lock\.json holds \d+ packages that say they need another: .*vite 8\.\S+ \(engines\.node "\^20\.19\.0 \|\| >=22\.12\.0"\)/);
      expect(refused?.message).toMatch(/\n {2}fix: pin a Node\.js they run on in runtimes\.node\.version \(20: /);
      expect(await releases()).toBe(before);
    } finally {
      old.cleanup();
    }
    const project = makeProject('e2e', config({ strategy: 'npm', version: '22.12.0' }));
    try {
      await provision(project.ctx(), project.env());
      const reporter = new MemoryReporter();
      await deploy(project.ctx(reporter), project.env(), {});
      const page = await get(lab.host, '/');
      expect(page.status).toBe(200);
      const script = page.body.match(/src="(\/assets\/index-[\w-]+\.js)"/)?.[1];
      expect(script, page.body).toBeDefined();
      expect((await get(lab.host, script!)).status).toBe(200);
      expect(await asRoot(lab.host, `ls /srv/sample/current/client/dist${script}`)).toContain('index-');
      expect(await get(lab.host, '/api/health')).toEqual({ status: 200, body: '{"ok":true}\n' });
      // from_prefixed_env reads FLASK_SECRET_KEY from gunicorn's environment, which has none of the .env's values:
      // the session fails while the deploy says the release is live. Warned of before any host, with the ways out.
      expect((await get(lab.host, '/api/visits')).status).toBe(500);
      expect(reporter.lines.join('\n')).toMatch(/warning: env FLASK_SECRET_KEY is written to the release's \.env only, and Flask's from_prefixed_env .* reads FLASK_\* from the process environment/);
      // The shell reader's way out: the .env exported into gunicorn's environment. Flask's docs' quotes nested in
      // sh -c's are refused before any host, saying how to quote; double quotes inside then start it.
      project.write(config({ strategy: 'npm', version: '22.12.0' }, `sh -c 'set -a; . {release}/.env; exec ${gunicorn("'")}'`, ['python-dotenv', 'node-dotenv', 'shell']));
      const nested = await deploy(project.ctx(), project.env(), {}).then(() => undefined, (e: unknown) => e as OpsError);
      expect(nested?.message).toMatch(/refused before any host was touched:\n- programs\.api\.command runs sh -c on a script sh cannot parse \(.*Syntax error.*\).*\n {2}fix: a ' inside the script's single quotes ends them/);
      project.write(config({ strategy: 'npm', version: '22.12.0' }, `sh -c 'set -a; . {release}/.env; exec ${gunicorn('"')}'`, ['python-dotenv', 'node-dotenv', 'shell']));
      const again = new MemoryReporter();
      await deploy(project.ctx(again), project.env(), {});
      expect(await get(lab.host, '/api/visits')).toEqual({ status: 200, body: '{"visits":1}\n' });
      expect(again.lines.join('\n')).not.toMatch(/warning: env FLASK_/);
    } finally {
      project.cleanup();
    }
  }, 600_000);

  it('a FastAPI app factory under uvicorn --factory in api/: its --env-file .env (api/.env, no file) warned of and failing the start, the live release kept; --env-file {release}/.env gives it the .env', async () => {
    const repo = join(root, 'fastapi');
    initRepo(repo, { 'api/main.py': FASTAPI_FACTORY, 'api/requirements.txt': 'fastapi==0.115.6\nuvicorn==0.32.1\npython-dotenv==1.0.1\n' });
    const config = (envFile: string) =>
      webConfig(lab.host, repo, {
        release: { python_requirements: 'api/requirements.txt', node_dir: '', build: '', migrate: '' },
        packages: { pip_index_url: pypiIndexUrl, npm_registry: npmRegistryUrl },
        env: { GREETING: 'from the .env' },
        programs: { web: { command: `{release}/venv/bin/uvicorn --factory main:create_app --host 127.0.0.1 --port {port} --env-file ${envFile}`, directory: 'api', port: 5100, health: '/health' } },
        routes: { '/': 'web' },
      });
    const project = makeProject('e2e', config('.env'));
    try {
      const before = await get(lab.host, '/');
      const reporter = new MemoryReporter();
      const failed = await deploy(project.ctx(reporter), project.env(), {}).then(() => undefined, (e: unknown) => e as OpsError);
      expect(reporter.lines.join('\n')).toMatch(/warning: programs\.web\.command passes --env-file \.env, read from its directory api: api\/\.env, which is not in commit [0-9a-f]{12} .*write --env-file \{release\}\/\.env/);
      expect(failed?.message).toMatch(/Path '\.env' does not exist/);
      expect(await get(lab.host, '/'), 'the release before it still serves').toEqual(before);
      project.write(config('{release}/.env'));
      const again = new MemoryReporter();
      await deploy(project.ctx(again), project.env(), {});
      expect(await get(lab.host, '/greeting')).toEqual({ status: 200, body: '{"greeting":"from the .env"}' });
      expect(again.lines.join('\n')).not.toMatch(/warning: programs\.web\.command passes --env-file/);
    } finally {
      project.cleanup();
    }
  }, 600_000);

  it('an express-generator app started by npm start: its page and public/ files, warned of for listening on every address', async () => {
    const repo = join(root, 'express');
    initRepo(repo, generated('express', '.'));
    const project = makeProject(
      'e2e',
      webConfig(lab.host, repo, {
        release: { python_requirements: '', node_dir: '.', build: '', migrate: '' },
        packages: { pip_index_url: pypiIndexUrl, npm_registry: npmRegistryUrl },
        programs: { web: { command: '{npm} start', port: 5100, health: '/', env: { PORT: '{port}' } } },
        routes: { '/': 'web' },
      }),
    );
    try {
      const reporter = new MemoryReporter();
      await deploy(project.ctx(reporter), project.env(), {});
      const page = await get(lab.host, '/');
      expect(page.status).toBe(200);
      expect(page.body).toContain('Welcome to Express');
      expect((await get(lab.host, '/stylesheets/style.css')).status).toBe(200);
      expect(await get(lab.host, '/users')).toEqual({ status: 200, body: 'respond with a resource' });
      expect(reporter.lines.join('\n')).toMatch(/warning: program web listens on \S+:5\d\d\d, not only on 127\.0\.0\.1/);
    } finally {
      project.cleanup();
    }
  }, 600_000);
});
