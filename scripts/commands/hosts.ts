// Commands about an environment's hosts and configuration.
import { stringify } from 'yaml';
import { OpsError } from '../../core/errors.ts';
import { openEnvironment } from '../../core/ops/secrets.ts';
import { fingerprint, parseHostKeys } from '../../core/config/hostkey.ts';
import { JSON_OPTION, command, printResult, reportExitCode, type Command } from '../cli.ts';

const json = JSON_OPTION;

export const commands: Command[] = [
  command({
    name: 'ping',
    hosts: true,
    summary: 'check every host: reachable, host key verified, hostname, OS, uptime, free disk, sudo; says when it is not provisioned yet (next: ops provision)',
    args: ['<env>'],
    options: { json },
    async run(ctx) {
      const { args, ops } = ctx;
      const { formatPing, ping } = await import('../../core/ops/ping.ts');
      const env = openEnvironment(ops, args[0]!);
      const results = await ping(ops, env);
      await printResult(ctx, results, formatPing, 'info');
      return reportExitCode(results, !results.every((r) => r.ok));
    },
  }),
  command({
    name: 'config',
    summary: 'print the resolved configuration of an environment (defaults filled in, secrets not shown); fails on what a deploy would refuse before reaching a host (a .env value the declared readers cannot carry, a program setting supervisor cannot be given, the site)',
    args: ['<env>'],
    options: { json },
    async run(ctx) {
      const { args, ops } = ctx;
      const { markSettingKeys, dotenvPreview } = await import('../../core/ops/secrets.ts');
      const env = openEnvironment(ops, args[0]!);
      // The deploy's own .env check: a value the readers would corrupt fails here too, by name.
      const dotenv = await dotenvPreview(ops, env);
      if (dotenv.unchecked) ops.reporter.warn(dotenv.unchecked);
      // And the deploy's check of what it renders for the hosts (supervisor's programs, nginx's site).
      const { checkHostFiles, settingsRefusal } = await import('../../core/ops/deploy-plan.ts');
      const { resolveTarget } = await import('../../core/target.ts');
      const { releaseId } = await import('../../core/steps/release.ts');
      const refused = new Map<string, OpsError>();
      checkHostFiles(resolveTarget(env), releaseId('0'.repeat(40)), (render) => {
        try {
          render();
        } catch (e) {
          if (!(e instanceof OpsError)) throw e;
          refused.set(e.message, e);
        }
      });
      if (refused.size) throw settingsRefusal(env.name, [...refused.values()], '(a deploy would refuse them before reaching any host)', 'then run ops config again');
      const resolved = {
        environment: env.name,
        url: env.url,
        app_user: env.appUser,
        base_dir: env.baseDir,
        ...env.config,
        hosts: env.hosts.map(({ hostKey, hostKeyFile: _file, ...h }) => {
          const keys = parseHostKeys(hostKey);
          return { ...h, host_key: typeof keys === 'string' ? keys : keys.map((k) => `${k.type} ${fingerprint(k.blob)}`).join(', ') };
        }),
        env: Object.fromEntries(Object.entries(env.config.env).map(([k, v]) => [k, typeof v === 'string' ? v : `<secret ${v.secret}>`])),
        dotenv: { ...env.config.dotenv, forms: dotenv.forms },
      };
      // key names shown whole, though a secret's value occurs in one or is one (the values masked as ever)
      const plain = (k: string) => stringify(k).trimEnd() === k;
      await printResult(ctx, markSettingKeys(resolved, ops.reporter, plain), (r) => stringify(r, { lineWidth: 0 }).trimEnd());
      return 0;
    },
  }),

  command({
    name: 'provision',
    hosts: true,
    summary: 'prepare the hosts for deploys: packages, pinned runtimes, app user, nginx, supervisor, TLS (idempotent)',
    args: ['<env>'],
    async run({ args, ops }) {
      const { provision, provisionSummary } = await import('../../core/ops/provision.ts');
      const env = openEnvironment(ops, args[0]!);
      const results = await provision(ops, env);
      await ops.reporter.summary(provisionSummary(env, results, ops.reporter.values));
      return 0;
    },
  }),
];
