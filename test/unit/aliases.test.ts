// The site's aliases (`aliases`): other names redirected to the domain, named by its certificate.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { loadEnvironment, parseEnvironment } from '../../core/config/environment.ts';
import { problems } from './config.helpers.ts';
import { hostSharing, sharingPlan } from '../../core/config/siblings.ts';
import { OpsError } from '../../core/errors.ts';
import { resolveTarget, type Target } from '../../core/target.ts';
import { judgeCertificate, type CertInfo } from '../../core/steps/certs.ts';
import { CERT_FUNCTIONS } from '../../core/steps/libraries.ts';
import { site } from '../../core/steps/nginx-config.ts';
import { certbotCertonly, issueCertificate, selfSignedCertificate } from '../../core/steps/tls.ts';
import { switchTo } from '../../core/steps/switch.ts';
import { nameClaims } from '../../core/steps/nginx-gate.ts';
import { deployState } from '../../core/steps/release.ts';

const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGMlwndpHfcJQv6XulbWIzLhQ4E5MouOGQOkSV2DMD9P';
const VM = { name: 'web1', address: '203.0.113.20', host_key: KEY };
const base = (app: string, ports: [number, number], extra: Record<string, unknown> = {}) => ({
  app,
  hosts: [VM],
  programs: { server: { command: 'run', port: ports[0] }, client: { command: 'run', port: ports[1] } },
  ...extra,
});
const LE = { mode: 'letsencrypt', email: 'ops@shop.fr' };


/** A project holding these environments (file contents), and the files it wrote beside them. */
function project(envs: Record<string, Record<string, unknown>>, files: Record<string, string> = {}): string {
  const root = mkdtempSync(join(tmpdir(), 'ops-aliases-'));
  writeFileSync(join(root, 'package.json'), '{}');
  for (const [name, c] of Object.entries(envs)) {
    mkdirSync(join(root, 'environments', name), { recursive: true });
    writeFileSync(join(root, 'environments', name, 'environment.yml'), stringify(c));
    for (const [f, text] of Object.entries(files)) writeFileSync(join(root, 'environments', name, f), text);
  }
  return root;
}
const load = (c: Record<string, unknown>, files: Record<string, string> = {}): Target => resolveTarget(loadEnvironment('prod', project({ prod: c }, files)));
const serverBlocks = (text: string) => text.split(/\n(?=server \{)/).filter((b) => b.startsWith('server {'));

describe('aliases', () => {
  it('are DNS names read in their one form (lower case, no final dot); default none', () => {
    const c = parseEnvironment(base('shop', [3579, 3000], { domain: 'example.org', aliases: ['WWW.Example.org.', 'old-shop.example.net'] }), 'f');
    expect(c.aliases).toEqual(['www.example.org', 'old-shop.example.net']);
    expect(parseEnvironment(base('shop', [3579, 3000], { domain: 'example.org' }), 'f').aliases).toEqual([]);
  });

  it('refused: not a DNS name (as domain is), an IP address, the domain itself, twice, or without a domain', () => {
    const p = (aliases: unknown, domain = 'example.org') => problems(base('shop', [3579, 3000], { ...(domain ? { domain } : {}), aliases }));
    expect(p(['https://www.example.org/'])).toEqual([expect.stringContaining('aliases[0]: expected a DNS name, got "https://www.example.org/" (a URL: give the host name alone (www.example.org)')]);
    expect(p(['www.example.org:8443'])).toEqual([expect.stringContaining('a port after the name')]);
    expect(p(['*.example.org'])).toEqual([expect.stringContaining('a wildcard')]);
    expect(p(['café.example.org'])).toEqual([expect.stringContaining('xn--caf-dma.example.org')]);
    expect(p(['192.0.2.7'])).toEqual([expect.stringContaining('aliases[0]: expected a DNS name, got "192.0.2.7" (an IP address: an alias is a DNS name')]);
    expect(p('www.example.org')).toEqual([expect.stringContaining('aliases: expected a list')]);
    expect(p(['Example.org.'])).toEqual(['aliases[0]: example.org is already domain: each name once (the domain is the site\'s own name, not an alias)']);
    expect(p(['www.example.org', 'WWW.example.org'])).toEqual(['aliases[1]: www.example.org is already aliases[0]: each name once (the domain is the site\'s own name, not an alias)']);
    expect(p(['www.example.org'], '')).toEqual([expect.stringContaining("aliases[0]: www.example.org: an alias redirects to the site's domain, and there is none")]);
  });

  it('a name another environment on the same host serves (its domain or one of its aliases) is refused, naming both', () => {
    const staging = base('shop-staging', [3579, 3000], { domain: 'staging.example.org', aliases: ['www.staging.example.org'] });
    const sharing = (prod: Record<string, unknown>) => hostSharing(loadEnvironment('prod', project({ prod, staging }))).collisions;
    expect(sharing(base('shop', [4579, 4000], { domain: 'example.org', aliases: ['www.example.org'] }))).toEqual([]);
    expect(sharing(base('shop', [4579, 4000], { domain: 'example.org', aliases: ['staging.example.org'] }))).toEqual([
      expect.stringContaining('but both take domain staging.example.org (prod: aliases[0] — staging: domain)'),
    ]);
    expect(sharing(base('shop', [4579, 4000], { domain: 'example.org', aliases: ['www.example.org', 'www.staging.example.org'] }))).toEqual([
      expect.stringContaining('but both take domain www.staging.example.org (prod: aliases[1] — staging: aliases[0])'),
    ]);
    // A plan lists every name of each: the other environment's aliases are names it takes on the host too.
    const prod = loadEnvironment('prod', project({ prod: base('shop', [4579, 4000], { domain: 'example.org', aliases: ['www.example.org'] }), staging }));
    expect(sharingPlan(prod, hostSharing(prod))).toEqual(['web1 (203.0.113.20): shared with staging (staging.example.org, www.staging.example.org); shop answers example.org (redirecting www.example.org to it)']);
    // On another machine the same name is no collision of the host (DNS says which one serves it).
    expect(hostSharing(loadEnvironment('prod', project({ prod: { ...base('shop', [4579, 4000], { domain: 'example.org', aliases: ['www.staging.example.org'] }), hosts: [{ ...VM, address: '203.0.113.21' }] }, staging }))).collisions).toEqual([]);
  });

  it('nginx with TLS: each alias on 80 and 443 redirects permanently to https://<domain>, path and query kept; port 80 keeps the ACME challenge; the site itself as without aliases', () => {
    const withAliases = load(base('shop', [3579, 3000], { domain: 'example.org', aliases: ['www.example.org', 'old.example.net'], tls: LE }));
    const without = load(base('shop', [3579, 3000], { domain: 'example.org', tls: LE }));
    const text = site(withAliases, true);
    const blocks = serverBlocks(text);
    expect(blocks).toHaveLength(4);
    const aliasBlocks = blocks.filter((b) => b.includes('server_name www.example.org old.example.net;'));
    expect(aliasBlocks).toHaveLength(2);
    const [http, https] = aliasBlocks;
    expect(http).toContain('listen 80;\n    listen [::]:80;\n    server_name www.example.org old.example.net;');
    expect(http).toContain('location ^~ /.well-known/acme-challenge/ {\n        root /var/www/letsencrypt;');
    expect(http).toContain('location / {\n        return 301 https://example.org$request_uri;\n    }');
    expect(https).toContain('listen 443 ssl http2;\n    listen [::]:443 ssl http2;\n    server_name www.example.org old.example.net;');
    expect(https).toContain('ssl_certificate /etc/letsencrypt/live/example.org/fullchain.pem;\n    ssl_certificate_key /etc/letsencrypt/live/example.org/privkey.pem;');
    expect(https).toContain('location / {\n        return 301 https://example.org$request_uri;\n    }');
    expect(aliasBlocks.join('\n')).not.toContain('default_server');
    // The site's own blocks are as they were; without aliases the whole text is.
    expect(text.startsWith(site(without, true))).toBe(true);
    expect(site(without, true)).not.toMatch(/alias|www\./);
  });

  it('nginx without TLS, and before the certificate is there: each alias redirects to http://<domain> on port 80 only, the ACME challenge answered', () => {
    for (const [c, ready] of [[{}, true], [{ tls: LE }, false], [{ tls: { mode: 'self-signed' } }, false]] as const) {
      const text = site(load(base('shop', [3579, 3000], { domain: 'example.org', aliases: ['www.example.org'], ...c })), ready);
      expect(text).not.toContain('listen 443');
      const alias = serverBlocks(text).find((b) => b.includes('server_name www.example.org;'))!;
      expect(alias).toContain('location / {\n        return 301 http://example.org$request_uri;\n    }');
      expect(alias).toContain('location ^~ /.well-known/acme-challenge/');
    }
  });

  it("the switch asks each alias, on each port the site serves it, for the site's own redirect (another enabled site claiming it fails the switch: e2e switch-truth); none asked without aliases", () => {
    const tlsEnv = load(base('shop', [3579, 3000], { domain: 'example.org', aliases: ['www.example.org', 'old.example.net'], tls: LE }));
    const script = switchTo(tlsEnv, 'green', 'r1', true).script;
    for (const a of ['www.example.org', 'old.example.net']) {
      expect(script).toContain(`-H 'Host: ${a}' http://"$gate_at"/.ops/slot`);
      expect(script).toContain(`--resolve ${a}:443:"$gate_at" https://${a}/.ops/slot`);
    }
    expect(script.match(/\[ "\$alias_got" = '301 https:\/\/example\.org\/\.ops\/slot' \]/g)).toHaveLength(4);
    // before the certificate (its site is kept) no alias is asked; without TLS, port 80 only, to http://
    expect(switchTo(tlsEnv, 'green', 'r1', false).script).not.toContain('alias_got');
    const plain = switchTo(load(base('shop', [3579, 3000], { domain: 'example.org', aliases: ['www.example.org'] })), 'green', 'r1', true).script;
    expect(plain.match(/\[ "\$alias_got" = '301 http:\/\/example\.org\/\.ops\/slot' \]/g)).toHaveLength(1);
    expect(plain).not.toContain('https://www.example.org');
    expect(switchTo(load(base('shop', [3579, 3000], { domain: 'example.org' })), 'green', 'r1', true).script).not.toContain('alias_');
  });

  it('a site template: {{alias_servers}} writes them; a template without it is refused while aliases are set (they would be certified, not answered)', () => {
    const tpl = '{{upstreams_include}}\nserver {\n    listen 80;\n    server_name {{server_name}};\n    {{acme_location}}\n    {{slot_location}}\n    {{locations}}\n}\n';
    const c = base('shop', [3579, 3000], { domain: 'example.org', aliases: ['www.example.org'], nginx: { site_template: 'site.conf' } });
    expect(site(load(c, { 'site.conf': `${tpl}{{alias_servers}}` }), true)).toContain('server_name www.example.org;');
    const e = (() => {
      try {
        return site(load(c, { 'site.conf': tpl }), true);
      } catch (x) {
        return x;
      }
    })() as OpsError;
    expect(e).toBeInstanceOf(OpsError);
    expect(e.message).toBe('environments/prod/site.conf has no {{alias_servers}}, so nginx would not answer the aliases (www.example.org)');
    expect(site(load({ ...c, aliases: [] }, { 'site.conf': tpl }), true)).toContain('server_name example.org;');
  });

  it('certbot: -d for the domain and each alias in one lineage named after the domain, --expand; each name checked for HTTP-01 first', () => {
    const env = load(base('shop', [3579, 3000], { domain: 'example.org', aliases: ['www.example.org', 'old.example.net'], tls: LE }));
    const script = certbotCertonly(env, false, '', 'left');
    expect(script).toContain('-d example.org -d www.example.org -d old.example.net --cert-name example.org --expand');
    expect(script).toContain('acme_names=(example.org www.example.org old.example.net)\nfor acme_name in "${acme_names[@]}"; do');
    // A certificate lacking an alias is got again (expanded) on the next provision.
    expect(issueCertificate(env, false).script).toContain('elif cert_missing=$(cert_lacks /etc/letsencrypt/live/example.org/fullchain.pem example.org www.example.org old.example.net) && [ -n "$cert_missing" ]; then');
  });

  it("cert_lacks names what a real certificate's subjectAltName does not list; a self-signed certificate names the aliases and is made again when one is added", () => {
    const dir = mkdtempSync(join(tmpdir(), 'ops-aliases-cert-'));
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '5', '-subj', '/CN=example.org', '-addext', 'subjectAltName=DNS:example.org,DNS:WWW.example.org', '-keyout', join(dir, 'k'), '-out', join(dir, 'c')], { stdio: 'ignore' });
    const lacks = (...names: string[]) => execFileSync('bash', ['-c', `ops_report() { :; }\n${CERT_FUNCTIONS}\ncert_lacks "$@"`, 'x', join(dir, 'c'), ...names], { encoding: 'utf8' });
    expect(lacks('example.org', 'www.example.org')).toBe('');
    expect(lacks('example.org', 'old.example.net', 'www.example.org', 'new.example.org')).toBe('old.example.net new.example.org');
    expect(lacks.call(undefined)).toBe('');
    const self = selfSignedCertificate(load(base('shop', [3579, 3000], { domain: 'example.org', aliases: ['www.example.org'], tls: { mode: 'self-signed' } })));
    expect(self).toContain('subjectAltName=DNS:example.org,DNS:www.example.org ');
    expect(self).toContain('[ -n "$(cert_lacks /etc/ssl/shop/example.org.crt example.org www.example.org)" ]');
  });

  it('status and certs: a live certificate not naming an alias is a problem naming it, with the fix', () => {
    const env = load(base('shop', [3579, 3000], { domain: 'example.org', aliases: ['www.example.org', 'old.example.net'], tls: LE }));
    const cert = (names: string[]): CertInfo => ({ path: '/etc/letsencrypt/live/example.org/fullchain.pem', state: 'ok', daysLeft: 60, notAfter: '2027-02-01T00:00:00.000Z', names });
    expect(judgeCertificate(env, cert(['example.org', 'www.example.org', 'old.example.net']), undefined).problems).toEqual([]);
    expect(judgeCertificate(env, cert(['*.example.org', 'example.org', 'old.example.net']), undefined).problems).toEqual([]);
    expect(judgeCertificate(env, cert(['example.org']), undefined).problems).toEqual([
      'TLS certificate /etc/letsencrypt/live/example.org/fullchain.pem does not name the aliases www.example.org, old.example.net (it names example.org): browsers refuse https://www.example.org instead of following its redirect to example.org; ops provision prod gets one that names them (certbot --expand)',
    ]);
    expect(judgeCertificate(env, cert(['example.org', 'www.example.org']), undefined).problems).toEqual([expect.stringContaining('does not name the alias old.example.net (it names example.org, www.example.org)')]);
  });

  it("before the build: a name of the site (domain or alias) another file nginx loads first gives a server block is found, naming the field and the file", () => {
    const env = load(base('shop', [3579, 3000], { domain: 'example.org', aliases: ['www.example.org', 'old.example.net'] }));
    const claims = (dump: string) => execFileSync('bash', ['-c', `${nameClaims(env, 'dump', 'out')}\nprintf %s "$out"`], { encoding: 'utf8', env: { ...process.env, dump } });
    const file = (path: string, text: string) => `# configuration file ${path}:\n${text}\n`;
    const own = file('/etc/nginx/sites-enabled/shop', 'server {\n    listen 80;\n    server_name example.org;\n}\nserver {\n    server_name www.example.org old.example.net;\n}');
    const www = file('/etc/nginx/sites-enabled/00-www', 'server {\n    listen 80;\n    server_name\n        blog.example.org WWW.Example.org. ; # the old site\n    location / { return 200; }\n}');
    expect(claims(own)).toBe('');
    // loaded after the site's own: nginx ignores it for that name ("conflicting server name ..., ignored")
    expect(claims(own + www)).toBe('');
    expect(claims(www + own)).toBe(
      `www.example.org (aliases[0]) is a server_name of /etc/nginx/sites-enabled/00-www, which nginx loads before shop's site: nginx gives each name to the first server block that lists it ("conflicting server name"), so that file takes its visitors`,
    );
    // the site not enabled yet, or not naming the alias yet (an alias just added): the other file takes it
    const other = file('/etc/nginx/conf.d/legacy.conf', 'server { server_name example.org; }\nserver { server_name old.example.net.; }\n# server_name www.example.org;');
    expect(claims(other).split('; ').map((c) => c.split(' is ')[0])).toEqual(['example.org (domain)', 'old.example.net (aliases[1])']);
    expect(claims(file('/etc/nginx/conf.d/a.conf', 'server { server_name *.example.org ~^www\\. notexample.org; }'))).toBe('');
    expect(claims('')).toBe('');
    // the deploy's read asks it, from nginx -T's text
    expect(deployState(env, ['a'.repeat(40)]).script).toContain("nginx_claimed=\"\"; claim_fields=(domain 'aliases[0]' 'aliases[1]')");
  });

});
