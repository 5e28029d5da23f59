// Day-2 commands: what the seed's troubleshooting sections had people do by hand over SSH — status (502s,
// nginx not restarting, the deployed version), logs, certificates.
import { openEnvironment } from '../../core/ops/secrets.ts';
import { MAX_LOG_LINES } from '../../core/steps/logs.ts';
import { LOG_SLOTS, type LogSlots } from '../../core/steps/logs.ts';
import { OpsError } from '../../core/errors.ts';
import { RUN_SIGNALS, signalExit } from '../../core/signals.ts';
import { JSON_OPTION, UsageError, command, printResult, reportExitCode, type Command } from '../cli.ts';

const json = JSON_OPTION;

export const commands: Command[] = [
  command({
    name: 'status',
    hosts: true,
    summary: 'per host: release, nginx (+ nginx -t), supervisor programs, health, certificate, disk, lock; exit 1 if anything is unhealthy',
    args: ['<env>'],
    options: { json },
    help: `One read-only SSH round trip per host. Each problem is one line at the end (and in "problems" with
--json); the exit code is 1 when there is any, so a workflow step can gate on it (2 when a host could not be
tried for a setting to fix first: its placeholder address, a key given that is not one). Warnings (a certificate
renewal running late, a disk filling up, the previous release's programs down) do not fail.`,
    async run(ctx) {
      const { args, ops } = ctx;
      const { formatStatus, status } = await import('../../core/ops/status.ts');
      const r = await status(ops, openEnvironment(ops, args[0]!));
      await printResult(ctx, r, (s) => formatStatus(s));
      return reportExitCode(r.hosts, !r.healthy);
    },
  }),
  command({
    name: 'logs',
    hosts: true,
    summary: "the programs' and nginx's logs from every host, each line prefixed with its host and log; secrets masked",
    args: ['<env>', '[program]'],
    options: {
      lines: { type: 'number', short: 'n', value: 'N', max: MAX_LOG_LINES, description: 'lines per log file (default 50)' },
      follow: { type: 'boolean', short: 'f', description: 'keep printing new lines until Ctrl-C' },
      slot: { type: 'string', value: 'WHICH', choices: LOG_SLOTS, description: "live (default: the release serving), previous (the one kept warm for rollback) or both" },
    },
    help: `[program] is one of the environment's programs (its stdout and stderr logs), or "nginx" (access and
error logs); without it: every program, and nginx's error log. Lines are prefixed "<host> <log> |".
The environment's secret values are masked when a key opens its secrets file; the hosts also mask the
values their releases' .env takes from secrets themselves, so without a key the logs are still shown, with a
warning that masking is limited to those.`,
    async run({ args, ops, values }) {
      const { logs, logsRequest } = await import('../../core/ops/logs.ts');
      const env = openEnvironment(ops, args[0]!);
      // A program the environment does not have (or a slot asked of nginx) is a wrong argument: a usage error, before any host is reached.
      try {
        logsRequest(env, { program: args[1], lines: values.lines, slots: values.slot as LogSlots | undefined /* one of its choices */ });
      } catch (e) {
        throw e instanceof OpsError ? new UsageError(e.message, e.hint) : e;
      }
      // --follow ends on any of RUN_SIGNALS, its connections closed: a cancelled workflow's SIGTERM or a closed
      // terminal's SIGHUP would otherwise kill ops outright and leave `tail -F` running on every host (sshd does not
      // stop a command without a terminal when its connection drops). Ctrl-C is how --follow is meant to end: exit 0.
      const controller = new AbortController();
      let received: NodeJS.Signals | undefined;
      const onSignal = (signal: NodeJS.Signals) => {
        received ??= signal;
        controller.abort();
      };
      if (values.follow) for (const s of RUN_SIGNALS) process.on(s, onSignal);
      try {
        await logs(ops, env, { program: args[1], lines: values.lines, slots: values.slot as LogSlots | undefined /* one of its choices */, follow: Boolean(values.follow), signal: controller.signal });
      } finally {
        for (const s of RUN_SIGNALS) process.off(s, onSignal);
      }
      return received && received !== 'SIGINT' ? signalExit(received) : 0;
    },
  }),
  command({
    name: 'certs',
    hosts: true,
    summary: 'TLS certificates per host: names, expiry, the one nginx serves, renewal schedule; --renew forces a renewal',
    args: ['<env>'],
    options: { renew: { type: 'boolean', description: 'renew now (certbot certonly --force-renewal, or a new self-signed one), then reload nginx if nginx -t accepts it' }, json },
    async run(ctx) {
      const { args, ops, values } = ctx;
      const { certificates, formatCerts, renewCertificates } = await import('../../core/ops/certs.ts');
      const env = openEnvironment(ops, args[0]!);
      const r = values.renew ? await renewCertificates(ops, env) : await certificates(ops, env);
      await printResult(ctx, r, formatCerts);
      return reportExitCode(r.hosts, !r.ok);
    },
  })

];
