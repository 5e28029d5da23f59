// Commands about secrets: sops files with age recipients, handled without the sops binary.
// `secrets decrypt` and `secrets show` are the only commands that print plaintext.
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { isAbsolute, relative, resolve, sep } from 'node:path';
import { createInterface } from 'node:readline';
import { OpsError } from '../../core/errors.ts';
import { type EditIo, type EditorExit, editSecrets } from '../../core/secrets/edit.ts';
import { envSopsFiles, generateApiKey, generateSecretKey, loadEnvIdentities, secretsPath } from '../../core/secrets/env.ts';
import { type Identities, checkRecipient, defaultKeyFile, generateIdentity, loadIdentities } from '../../core/secrets/keys.ts';
import { newEnvironment } from '../../core/secrets/scaffold.ts';
import { recipientsFor, ruleFor, setEnvRule } from '../../core/secrets/sops-config.ts';
import { SecretsFile, parseSops } from '../../core/secrets/sops.ts';
import { formatOf, getEntry, parseTree, printTree, str, toYaml, type TreeNode } from '../../core/secrets/tree.ts';
import { validate } from '../../core/shell.ts';
import type { Command, CommandContext } from '../cli.ts';

function show(root: string, file: string): string {
  const rel = relative(root, file);
  return rel.startsWith('..') ? file : rel;
}

/** The environment a path belongs to (environments/<env>/...), if any. */
function envOfPath(root: string, file: string): string | undefined {
  const rel = relative(root, file).split(sep).join('/');
  return /^environments\/([a-z][a-z0-9-]{0,39})\//.exec(rel)?.[1];
}

async function identitiesFor(ctx: CommandContext, env: string | undefined): Promise<Identities> {
  return env ? loadEnvIdentities(ctx.root, env, ctx.env) : loadIdentities(ctx.env);
}

async function openEnvFile(ctx: CommandContext, env: string, file: string): Promise<SecretsFile> {
  return SecretsFile.open(file, { identities: await identitiesFor(ctx, env), mask: (v) => ctx.reporter.mask(v) });
}

/** The environment's secrets file, opened; or a new, empty one for .sops.yaml's recipients if there is none yet. */
async function openOrCreateSecrets(ctx: CommandContext, env: string): Promise<{ secrets: SecretsFile; created: boolean }> {
  validate('environment', env);
  const file = secretsPath(ctx.root, env);
  if (existsSync(file)) return { secrets: await openEnvFile(ctx, env, file), created: false };
  if (!existsSync(resolve(file, '..'))) {
    throw new OpsError(`no environment "${env}": environments/${env}/ does not exist`, 'create one with `ops env new <name>`');
  }
  return { secrets: SecretsFile.create(file, { kind: 'map', entries: [] }, { recipients: recipientsFor(ctx.root, file) }), created: true };
}

function readAll(stream: NodeJS.ReadableStream): Promise<string> {
  return new Promise((res, rej) => {
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer | string) => chunks.push(typeof c === 'string' ? Buffer.from(c) : c));
    stream.on('end', () => res(Buffer.concat(chunks).toString('utf8')));
    stream.on('error', rej);
    stream.resume();
  });
}

function keyPath(text: string): string[] {
  const path = text.split('.');
  if (path.some((p) => p === '')) throw new OpsError(`invalid key path "${text}"`, 'keys separated by dots, e.g. database_url or datapass.client_id');
  return path;
}

/** Run $EDITOR (else $VISUAL, else vi) through the shell, as git does, so "code --wait" works. */
function runEditor(file: string, env: NodeJS.ProcessEnv, signal: AbortSignal): Promise<EditorExit> {
  const editor = env.EDITOR || env.VISUAL || 'vi';
  return new Promise((res, rej) => {
    const child = spawn('sh', ['-c', `exec ${editor} "$@"`, 'editor', file], { stdio: 'inherit', env });
    const stop = () => child.kill('SIGTERM');
    signal.addEventListener('abort', stop, { once: true });
    child.on('error', (e) => {
      signal.removeEventListener('abort', stop);
      rej(new OpsError(`cannot start the editor "${editor}": ${e.message}`, 'set EDITOR to your editor command'));
    });
    child.on('exit', (code, sig) => {
      signal.removeEventListener('abort', stop);
      res({ code, signal: sig });
    });
  });
}

function confirm(ctx: CommandContext, question: string, signal: AbortSignal): Promise<boolean> {
  return new Promise((res) => {
    const rl = createInterface({ input: ctx.stdin, output: ctx.stderr, terminal: false });
    let answered = false;
    const done = (v: boolean) => {
      if (answered) return;
      answered = true;
      signal.removeEventListener('abort', onAbort);
      rl.close();
      res(v);
    };
    const onAbort = () => done(false);
    signal.addEventListener('abort', onAbort, { once: true });
    ctx.stderr.write(question);
    rl.once('line', (line) => {
      if (!(ctx.stdin as NodeJS.ReadStream).isTTY) ctx.stderr.write(`${line}\n`);
      done(!/^\s*n/i.test(line));
    });
    rl.once('close', () => done(false));
  });
}

function changeSummary(c: { added: string[]; removed: string[]; changed: string[] }): string {
  const parts = [
    c.changed.length ? `changed ${c.changed.join(', ')}` : '',
    c.added.length ? `added ${c.added.join(', ')}` : '',
    c.removed.length ? `removed ${c.removed.join(', ')}` : '',
  ].filter(Boolean);
  return parts.join('; ') || 'formatting only';
}

const SIGNAL_EXIT: Record<string, number> = { SIGHUP: 129, SIGINT: 130, SIGTERM: 143 };

export const commands: Command[] = [
  {
    name: 'secrets decrypt',
    summary: 'print the plaintext of a sops-encrypted file (verifies its MAC)',
    args: ['<file>'],
    help: `Decrypts with your age identities: $SOPS_AGE_KEY, $SOPS_AGE_KEY_FILE, $SOPS_AGE_KEY_CMD and ${defaultKeyFile()}.
The file's MAC is verified as sops does: a changed, deleted or reordered value is refused.`,
    async run(ctx) {
      const file = resolve(ctx.args[0]!);
      const secrets = await SecretsFile.open(file, { identities: await identitiesFor(ctx, envOfPath(ctx.root, file)), mask: (v) => ctx.reporter.mask(v) });
      ctx.stdout.write(secrets.plaintext());
      return 0;
    },
  },
  {
    name: 'secrets show',
    summary: "print an environment's secrets in plaintext (all of them, or one key)",
    args: ['<env>'],
    options: { key: { type: 'string', value: 'PATH', description: 'print only this value (a.b for nested keys)' } },
    async run(ctx) {
      const env = validate('environment', ctx.args[0]!);
      const file = secretsPath(ctx.root, env);
      if (!existsSync(file)) throw new OpsError(`environments/${env} has no secrets file (${show(ctx.root, file)})`, `create it with \`ops secrets edit ${env}\` or \`ops secrets set ${env} <key>\``);
      const secrets = await openEnvFile(ctx, env, file);
      const key = ctx.values.key as string | undefined;
      if (!key) {
        ctx.stdout.write(secrets.plaintext());
        return 0;
      }
      let node: TreeNode | undefined = secrets.tree;
      for (const k of keyPath(key)) node = node?.kind === 'map' ? getEntry(node, k) : undefined;
      if (!node) throw new OpsError(`no key ${key} in ${show(ctx.root, file)}`, `\`ops secrets show ${env}\` lists them all`);
      if (node.kind === 'scalar') ctx.stdout.write(`${node.type === 'bool' ? String(node.value) : node.value}\n`);
      else if (node.kind === 'null') ctx.stdout.write('null\n');
      else ctx.stdout.write(node.kind === 'map' ? printTree(node, secrets.format) : toYaml({ kind: 'map', entries: [[key, node]] }));
      return 0;
    },
  },
  {
    name: 'secrets edit',
    summary: "edit an environment's secrets in $EDITOR; they are re-encrypted on save",
    args: ['<env>'],
    help: `The plaintext goes to a private temporary file (mode 0600) that is removed afterwards, whatever happens.
Values you did not change keep their ciphertext; an unchanged file is not rewritten.
Text that is not valid YAML is offered back to the editor (answer n to drop the edit).`,
    async run(ctx) {
      const env = validate('environment', ctx.args[0]!);
      const { secrets, created } = await openOrCreateSecrets(ctx, env);
      const abort = new AbortController();
      const onSignal = (sig: NodeJS.Signals) => abort.abort(sig);
      const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
      for (const s of signals) process.on(s, onSignal);
      const io: EditIo = {
        edit: (file) => runEditor(file, ctx.env, abort.signal),
        confirm: (q) => confirm(ctx, q, abort.signal),
        warn: (m) => ctx.reporter.warn(m),
        signal: abort.signal,
      };
      try {
        const result = await editSecrets(secrets, io);
        const file = show(ctx.root, secrets.file);
        if (result.status === 'unchanged') ctx.reporter.info(`${file}: no changes${created ? ' (nothing written)' : ''}`);
        else if (result.status === 'saved') ctx.reporter.info(`${file}: ${created ? 'created' : 'updated'} (${changeSummary(result.changes)})`);
        else {
          ctx.reporter.error(`${file}: ${result.reason}`);
          return abort.signal.aborted ? (SIGNAL_EXIT[String(abort.signal.reason)] ?? 130) : 1;
        }
        return 0;
      } finally {
        for (const s of signals) process.off(s, onSignal);
      }
    },
  },
  {
    name: 'secrets encrypt',
    summary: 'encrypt a plain YAML/JSON file in place (e.g. environments/<env>/assets/initdata.yml) to its .sops.yaml recipients',
    args: ['<file>'],
    async run(ctx) {
      const file = resolve(ctx.args[0]!);
      if (!existsSync(file)) throw new OpsError(`${file} does not exist`);
      const text = readFileSync(file, 'utf8');
      const format = formatOf(file);
      let already = false;
      try {
        parseSops(text, file, format);
        already = true;
      } catch {}
      if (already) throw new OpsError(`${show(ctx.root, file)} is already a sops file`, 'edit it with ops secrets edit, or decrypt it first');
      const tree = parseTree(text, format, { file: show(ctx.root, file) });
      const secrets = SecretsFile.create(file, tree, { recipients: recipientsFor(ctx.root, file) });
      await secrets.save();
      ctx.reporter.info(`${show(ctx.root, file)}: encrypted to ${secrets.recipients.length} recipient(s)`);
      return 0;
    },
  },
  {
    name: 'secrets set',
    summary: 'set one secret from stdin (never from the command line), creating nested keys',
    args: ['<env>', '<key>'],
    help: `The value is read from stdin, one trailing newline removed:
  printf '%s' "$DATABASE_URL" | ops secrets set prod database_url
  ops secrets set prod datapass.client_secret < secret.txt`,
    async run(ctx) {
      const env = validate('environment', ctx.args[0]!);
      const path = keyPath(ctx.args[1]!);
      if ((ctx.stdin as NodeJS.ReadStream).isTTY) ctx.stderr.write(`value for ${path.join('.')} (end with Ctrl-D):\n`);
      const value = (await readAll(ctx.stdin)).replace(/\r?\n$/, '');
      if (value === '') throw new OpsError('no value on stdin', `pipe the value in: printf '%s' "$VALUE" | ops secrets set ${env} ${path.join('.')}`);
      ctx.reporter.mask(value);
      const { secrets, created } = await openOrCreateSecrets(ctx, env);
      secrets.set(path, str(value));
      const written = await secrets.save();
      ctx.reporter.info(`${show(ctx.root, secrets.file)}: ${written ? (created ? 'created with' : 'set') : 'unchanged,'} ${path.join('.')}`);
      return 0;
    },
  },
  {
    name: 'secrets rotate',
    summary: "give an environment's sops files a new data key (values kept, all re-encrypted)",
    args: ['<env>'],
    async run(ctx) {
      const env = validate('environment', ctx.args[0]!);
      const files = envSopsFiles(ctx.root, env);
      if (!files.length) throw new OpsError(`environments/${env} has no sops-encrypted files`);
      const opened = [];
      for (const f of files) opened.push(await openEnvFile(ctx, env, f)); // all decrypt before any is written
      for (const s of opened) {
        s.rotate();
        await s.save();
        ctx.reporter.info(`${show(ctx.root, s.file)}: new data key, for ${s.recipients.length} recipient${s.recipients.length > 1 ? 's' : ''}`);
      }
      return 0;
    },
  },
  {
    name: 'secrets recipients',
    summary: "list, add or remove who can decrypt an environment's secrets, or sync them from .sops.yaml",
    args: ['<env>', '[add|remove|sync]', '[recipient]'],
    help: `  ops secrets recipients prod                    list the recipients (file and .sops.yaml)
  ops secrets recipients prod add age1...        add one to .sops.yaml and to every sops file of prod
  ops secrets recipients prod remove age1...     remove one, and rotate the data key (the removed key
                                                 may have kept the old one)
  ops secrets recipients prod sync               make the files' recipients those of .sops.yaml
                                                 (like sops updatekeys; rotates if one is removed)
Files: environments/<env>/secrets.sops.yaml and sops-encrypted files in environments/<env>/assets/.`,
    async run(ctx) {
      const env = validate('environment', ctx.args[0]!);
      const action = ctx.args[1];
      const files = envSopsFiles(ctx.root, env);
      const probe = secretsPath(ctx.root, env);
      const rule = ruleFor(ctx.root, probe);
      if (!action) {
        const ruleList = rule?.age ?? [];
        ctx.stdout.write(`.sops.yaml (${rule ? `creation_rules[${rule.index}]` : 'no matching rule'}):\n${ruleList.map((r) => `  ${r}`).join('\n') || '  (none)'}\n`);
        let inSync = true;
        for (const f of files) {
          const recipients = parseSops(readFileSync(f, 'utf8'), f).meta.age.map((s) => s.recipient);
          ctx.stdout.write(`${show(ctx.root, f)}:\n${recipients.map((r) => `  ${r}`).join('\n') || '  (none)'}\n`);
          if (rule && (recipients.length !== ruleList.length || recipients.some((r) => !ruleList.includes(r)))) inSync = false;
        }
        if (!inSync) ctx.reporter.warn(`the files' recipients differ from .sops.yaml: run \`ops secrets recipients ${env} sync\``);
        return 0;
      }
      if (!['add', 'remove', 'sync'].includes(action)) throw new OpsError(`unknown action "${action}"`, 'use add, remove or sync');
      const recipientArg = ctx.args[2];
      if (action !== 'sync' && !recipientArg) throw new OpsError(`"secrets recipients ${env} ${action}" needs an age recipient (age1...)`);
      if (action === 'sync' && recipientArg) throw new OpsError('"sync" takes no recipient: it uses .sops.yaml');
      const opened = [];
      for (const f of files) opened.push(await openEnvFile(ctx, env, f)); // all decrypt before anything changes
      if (action === 'sync') {
        const wanted = recipientsFor(ctx.root, probe);
        for (const s of opened) {
          const { added, removed } = s.setRecipients(wanted);
          const written = await s.save();
          const what = [added.length ? `added ${added.join(', ')}` : '', removed.length ? `removed ${removed.join(', ')} (new data key)` : ''].filter(Boolean).join('; ');
          ctx.reporter.info(`${show(ctx.root, s.file)}: ${written ? what : 'already in sync'}`);
        }
        if (!opened.length) ctx.reporter.info(`environments/${env} has no sops-encrypted files yet`);
        return 0;
      }
      const recipient = checkRecipient(recipientArg!);
      const base = rule?.pathRegex !== undefined && rule.age.length ? rule.age : (opened[0]?.recipients ?? []);
      if (action === 'add') {
        for (const s of opened) s.addRecipient(recipient);
        for (const s of opened) ctx.reporter.info(`${show(ctx.root, s.file)}: ${(await s.save()) ? `added ${recipient}` : `${recipient} was already a recipient`}`);
        await setEnvRule(ctx.root, env, [...base, recipient]);
        ctx.reporter.info(`.sops.yaml: ${env}'s rule lists ${recipient}`);
        return 0;
      }
      const inRule = base.includes(recipient);
      const inFiles = opened.filter((s) => s.recipients.includes(recipient));
      if (!inRule && !inFiles.length) throw new OpsError(`${recipient} is not a recipient of ${env}'s secrets`, `\`ops secrets recipients ${env}\` lists them`);
      const remaining = base.filter((r) => r !== recipient);
      if (inRule && remaining.length === 0) throw new OpsError(`${recipient} is the only recipient of ${env}`, 'add the new recipient first, then remove this one');
      for (const s of inFiles) s.removeRecipient(recipient);
      for (const s of inFiles) {
        await s.save();
        ctx.reporter.info(`${show(ctx.root, s.file)}: removed ${recipient}; new data key for ${s.recipients.join(', ')}`);
      }
      if (inRule) {
        await setEnvRule(ctx.root, env, remaining);
        ctx.reporter.info(`.sops.yaml: ${recipient} removed from ${env}'s rule`);
      }
      ctx.reporter.warn('the removed key can still open old copies of these files (git history): change the secrets themselves if it leaked');
      return 0;
    },
  },
  {
    name: 'keygen',
    summary: 'make a new age identity: prints the private key once, and its public key (recipient)',
    options: { output: { type: 'string', short: 'o', value: 'FILE', description: 'write the key to FILE (mode 0600, never overwritten) instead of printing it' } },
    async run(ctx) {
      const id = await generateIdentity();
      const out = ctx.values.output as string | undefined;
      if (out) {
        const path = isAbsolute(out) ? out : resolve(out);
        try {
          await writeFile(path, id.keyFile, { mode: 0o600, flag: 'wx' });
        } catch (e) {
          const code = (e as NodeJS.ErrnoException).code;
          throw new OpsError(`cannot write ${path}: ${code === 'EEXIST' ? 'it already exists' : (code ?? (e as Error).message)}`, code === 'EEXIST' ? 'choose another file: keys are never overwritten' : undefined);
        }
        ctx.stdout.write(`${id.recipient}\n`);
        ctx.stderr.write(`private key written to ${path}; public key (recipient) above\n`);
        return 0;
      }
      ctx.stdout.write(id.keyFile);
      ctx.stderr.write(
        `This private key is shown once: store it (password manager; ${defaultKeyFile(ctx.env)} or $SOPS_AGE_KEY_FILE; the SOPS_AGE_KEY secret in CI).\n` +
          `Give the public key to whoever adds you: ops secrets recipients <env> add ${id.recipient}\n`,
      );
      return 0;
    },
  },
  {
    name: 'secretkey',
    summary: 'print a new random secret_key (86 URL-safe characters)',
    async run(ctx) {
      ctx.stdout.write(`${generateSecretKey()}\n`);
      return 0;
    },
  },
  {
    name: 'apikey',
    summary: 'print a new random API key (43 URL-safe characters)',
    async run(ctx) {
      ctx.stdout.write(`${generateApiKey()}\n`);
      return 0;
    },
  },
  {
    name: 'env new',
    summary: 'scaffold environments/<name>/: config with placeholders, a new age key, its .sops.yaml rule, encrypted secrets',
    args: ['<name>'],
    options: {
      recipient: { type: 'string', multiple: true, value: 'AGE1...', description: 'also encrypt to this public key (repeatable): e.g. your own, the CI\'s' },
    },
    help: `Writes environments/<name>/environment.yml (every value to replace is marked PLACEHOLDER), a rule
for environments/<name>/ in .sops.yaml, and environments/<name>/secrets.sops.yaml with a generated
secret_key and config_repo_api_key, and CHANGE-ME placeholders for the other secrets.
The new environment's age private key is printed once: store it, it is not written anywhere.`,
    async run(ctx) {
      const name = validate('environment', ctx.args[0]!);
      const result = await newEnvironment(ctx.root, name, { recipients: (ctx.values.recipient as string[] | undefined) ?? [] });
      for (const f of result.files) ctx.reporter.info(`wrote ${f}`);
      ctx.stdout.write(
        `\n# age identity of environment ${name}: shown once, store it now (password manager, and\n` +
          `# ${defaultKeyFile(ctx.env)} or $SOPS_AGE_KEY_FILE locally, the SOPS_AGE_KEY secret in CI)\n` +
          result.identity.keyFile,
      );
      ctx.reporter.info(
        `\nnext: replace the PLACEHOLDER values in environments/${name}/environment.yml, then \`ops secrets edit ${name}\` for the CHANGE-ME secrets` +
          (result.recipients.length > 1 ? '' : `\nadd your team's keys: ops secrets recipients ${name} add age1...`),
      );
      return 0;
    },
  },
];
