// `ops env new` and `ops env remove`: an environment's folder made (configuration with placeholders, a new age
// key, its .sops.yaml rule, encrypted secrets) and removed (once no host serves it). The work is in core/
// (secrets/scaffold.ts, ops/decommission.ts); here only the arguments and what is printed.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { OpsError } from '../../core/errors.ts';
import { discardsOutput, writeToKeep } from '../../core/report.ts';
import { defaultKeyFile } from '../../core/secrets/key-file.ts';
import type { NewIdentity } from '../../core/secrets/keys.ts';
import { validate } from '../../core/shell.ts';
import { JSON_OPTION, command, printResult, type Command } from '../cli.ts';
import { interruptible } from './secrets.ts';

const json = JSON_OPTION;

export const commands: Command[] = [
  command({
    name: 'env new',
    summary: 'scaffold environments/<name>/: config with placeholders, a new age key, its .sops.yaml rule, encrypted secrets',
    args: ['<name>'],
    options: {
      recipient: { type: 'string', multiple: true, value: 'AGE1...', description: 'also encrypt to this public key (repeatable): e.g. your own, the CI\'s' },
    },
    help: `Writes environments/<name>/environment.yml (every value to replace is marked PLACEHOLDER), a rule
for environments/<name>/ in .sops.yaml, and environments/<name>/secrets.sops.yaml with a generated
secret_key and config_repo_api_key, and CHANGE-ME placeholders for the other secrets.
The new environment's age private key is printed once, alone on stdout (the rest goes to stderr, so
\`ops env new <name> > FILE\` writes a key file): store it, it is not written anywhere else. When it cannot be
printed (stdout full, its reader gone), everything written is undone (exit 1, nothing changed); stdout /dev/null is
refused unless a --recipient is a key of yours.`,
    async run(ctx) {
      const { args, ops, values, stdout } = ctx;
      const { newEnvironment } = await import('../../core/secrets/scaffold.ts');
      const name = validate('environment', ctx.args[0]!);
      // A signal while it writes: what was written is undone, said as nothing changed (exit 130), never a half-made
      // environment whose secrets are encrypted to a key nobody was shown.
      const recipients = ctx.values.recipient ?? [];
      // a key printed to /dev/null is lost: refused unless a key of the user's is a recipient too (checked after the
      // request itself: a name already taken is the problem to say first)
      const checkOutput = async (recipients: string[]) => {
        if (!discardsOutput(ctx.stdout)) return;
        const { loadIdentities, recipientKey } = await import('../../core/secrets/keys.ts');
        const mine = (await loadIdentities(ctx.processEnv)).identities.map((i) => i.recipient);
        // an SSH key of the user's counts (compared without its comment)
        if (!recipients.some((r) => mine.includes(recipientKey(r))))
          throw new OpsError(
            `stdout is /dev/null: the new environment's private key, printed once, would be lost, and with it its secrets; nothing was changed`,
            `run it with stdout to a terminal or a file you keep (ops env new ${name} > FILE), or give --recipient with a public key of yours`,
          );
      };
      // the key printed at once, synchronously: when it cannot be (stdout full or gone), the environment is undone
      const deliver = (identity: NewIdentity) => {
        const failed = writeToKeep(
          `\n# age identity of environment ${name}: shown once, store it now (password manager, and\n` +
            `# ${defaultKeyFile(ctx.processEnv)} or $SOPS_AGE_KEY_FILE locally, the SOPS_AGE_KEY secret in CI)\n` +
            identity.keyFile,
          ctx.stdout,
        );
        if (failed)
          throw new OpsError(
            `cannot print the new environment's private key to stdout (${failed}): its secrets would be encrypted to a key nobody holds; nothing was changed`,
            `run it again with stdout to a terminal or a file you keep (ops env new ${name} > FILE)`,
          );
      };
      return interruptible(ctx, async (signal) => {
        const result = await newEnvironment(ctx.root, name, { recipients, signal, deliver, beforeWrite: checkOutput });
        // stdout holds the key file alone (`ops env new qa > FILE` is one $SOPS_AGE_KEY_FILE reads), as keygen's does
        const note = (message: string) => ctx.stderr.write(`${message}\n`);
        for (const f of result.files) note(`wrote ${f}`);
        if (result.near)
          ctx.reporter.warn(`${name} is a slip away from the existing environment ${result.near}: if you meant to work on ${result.near}, take this one back (ops env remove ${name}) and use ${result.near}`);
        note(
          `\nnext: replace the PLACEHOLDER values in environments/${name}/environment.yml, then \`ops secrets edit ${name}\` for the CHANGE-ME secrets` +
            `\nits host's address ${result.address} is a placeholder no other environment uses: set the VM's own; on a VM that already runs another environment, ${name} also needs its own app name (app: catalogage now), app user, base_dir, domain and ports (README: "Several environments on one host")` +
            (result.recipients.length > 1 ? '' : `\nadd your team's keys: ops secrets recipients ${name} add age1...`) +
            // The workflows list their environments (a choice input, status.yml's matrix; test/unit/workflows.test.ts
            // checks they match environments/), and each job takes its secrets from a GitHub environment.
            (existsSync(join(ctx.root, '.github', 'workflows'))
              ? `\nto run it from GitHub Actions: add ${name} to the environment options of the manual workflows (deploy, rollback, provision, initdata) and to the matrix of status.yml, and create the GitHub environments ${name} (secrets SSH_PRIVATE_KEY and SOPS_AGE_KEY) and ${name}-status (SSH_PRIVATE_KEY only), each allowing master only (README: "Setting up the repository")`
              : ''),
        );
        return 0;
      });
    },
  }),
  command({
    name: 'env remove',
    hosts: true,
    summary: "decommission an environment: refuses while its hosts serve; removes its folder and .sops.yaml rule; lists what else to release",
    args: ['<name>'],
    options: {
      force: { type: 'boolean', description: 'remove even though hosts still serve (or cannot be checked); contacts no host' },
      'dry-run': { type: 'boolean', description: 'check the hosts and print what would be removed and the checklist; change nothing' },
      json,
    },
    help: `The seed's decommissioning checklist: save its audit log and logs (ops audit and ops logs read them
through its folder, and taking the app off its hosts deletes them), take it out of service, remove its folder,
then release its resources: run it with --dry-run first for the checklist in that order. The command checks
every host (as ops status does) and refuses while one still serves a release. It then deletes environments/<name>/ and its rule in .sops.yaml (review and commit the
change), and prints what the repository cannot release: VMs, database, DNS, certificate, OpenID Connect
(DataPass) callback URLs, the GitHub environments <name> and <name>-status and their secrets, workflow options
naming it, its age key; what another environment also uses (domain, database, an age recipient) is named, to keep.`,
    async run(ctx) {
      const { args, ops, values } = ctx;
      const { formatRemove, removeEnvironment } = await import('../../core/ops/decommission.ts');
      const dryRun = Boolean(values['dry-run']);
      const r = await removeEnvironment(ops, args[0]!, { force: Boolean(values.force), dryRun });
      await printResult(ctx, r, (r) => formatRemove(r, dryRun));
      return 0;
    },
  }),
];
