// ops initdata <env> [--file F]: load an environment's initial data with the app's own loader. The file is
// checked (exists, decrypts, valid YAML) before any host is touched; its values are masked in every log.
import { closeSync, existsSync, fstatSync, openSync, readdirSync, readFileSync, readSync, statSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { isAbsolute, relative, resolve } from 'node:path';
import { isMap, isScalar, isSeq, parseDocument } from 'yaml';
import { envPath, type Environment } from '../config/environment.ts';
import { refuseCollisions } from '../config/siblings.ts';
import type { OpsContext } from '../context.ts';
import { resolveTarget, type Target } from '../target.ts';
import { auditReason, INITDATA_CUT, InputError, maskedText, OpsError, fileError, StepError, TransportError, userFileExists } from '../errors.ts';
import { isSopsText, loadEnvIdentities, SecretsFile } from '../secrets/index.ts';
import { syntaxError } from '../secrets/tree-parse.ts';
import { CURRENT_LAYOUT, printTree } from '../secrets/tree-print.ts';
import { decodeUtf8 } from '../secrets/utf8.ts';
import { deployState } from '../steps/release.ts';
import { environDigest, INITDATA_KEYS, initdataSettings, runInitdata } from '../steps/initdata.ts';
import { renderDotenv } from '../dotenv.ts';
import { reported } from '../remote/types.ts';
import { codeBlock, markdownValues, type ValueFormat } from '../report.ts';
import { environmentSecrets } from './secrets.ts';
import { parseState, partialState } from './host-state.ts';
import { withSession } from './hosts.ts';
import { failedRun, withLock } from './locked.ts';
import { aliasTargets, refuseAliasBomb, refuseDeepNesting } from '../yaml-depth.ts';
import { jsonFaultPlace } from '../json-error.ts';
import { dataName, directoryKind, fileKind, looksLikeSql, sopsBinaryKind, type DataName, type FileKind } from '../data-file.ts';

export interface InitdataResult {
  environment: string;
  file: string;
  encrypted: boolean;
  /** What ops checked of a file in a format it does not read (XML, another text format), or undefined when it checked it as YAML or JSON. */
  checked?: string;
  hosts: { host: string; release: string; output: string }[];
}

/** The largest initdata file sent (bytes): what Node.js reads whole (fs kIoMaxLength, 2 GiB). */
const MAX_INITDATA_BYTES = 2 ** 31 - 1;

/** Whether `text` is one JSON value (JSON.parse, RFC 8259). */
function isJson(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}

/**
 * How the user gave the initdata file, for what the errors about it say: its name, the directory a relative path
 * starts from (`dir`, in words: `dirName`), and how to give another or none. The CLI's --file by default (from the
 * directory the command was run from: ctx.cwd, npm's INIT_CWD, see scripts/cli.ts); the action's `file` input is
 * from the repository's root (INITDATA_FILE_INPUT).
 */
export interface InitdataFileOption {
  name: string;
  dir: string;
  dirName: string;
  pass: (path: string) => string;
  omit: string;
}

/** The initdata action's `file` input: a path from the repository's root (`root`), as the workflow gives it. */
export function initdataFileInput(root: string): InitdataFileOption {
  return { name: 'the file input', dir: root, dirName: 'the repository root', pass: (p) => `set the file input to ${p}`, omit: 'leave the file input empty' };
}

/**
 * The plaintext of the initdata file, decrypted if it is a sops file (then every decrypted value is masked; JSON
 * re-indented with spaces), a plain JSON file's tabs made spaces, checked by the format its name says (dataName):
 * `.json` as one JSON value, `.yaml`, `.yml` or none as one YAML document, each an object/mapping or array/list;
 * another text format (`.xml`...) as text only (`checked` says what). `suffix`: the name's extensions, which it keeps
 * on the host. @throws OpsError when missing, named as compressed or with unsafe extensions, or not its format.
 */
async function readInitdata(ctx: OpsContext, env: Target, file?: string, given?: InitdataFileOption): Promise<{ path: string; text: string; encrypted: boolean; suffix: string; checked?: string }> {
  const option = given ?? { name: '--file', dir: ctx.cwd ?? process.cwd(), dirName: 'the directory the command was run from', pass: (p: string) => `pass --file ${p}`, omit: 'leave --file out' };
  const cwd = option.dir;
  const path = file ? resolve(cwd, file) : envPath(env, env.config.initdata.file);
  // what the user meant to load is said before a symptom of it (a database dump is no data file)
  const notData = (kind: FileKind): OpsError =>
    new InputError(
      `${path} is ${kind.what}, not a data file: initdata runs the app's loader (initdata.command) on a YAML or JSON file of data${kind.dump ? '; it does not restore a database' : ''}`,
      `${kind.how}; or give initdata the loader's data file (environments/${env.name}/${env.config.initdata.file}); nothing was sent`,
    );
  const dir = statSync(path, { throwIfNoEntry: false })?.isDirectory() ? directoryKind(readdirSync(path), path) : undefined;
  if (dir) throw notData(dir);
  if (!userFileExists(path, path, 'an initdata file', file !== undefined)) {
    if (!file)
      throw new InputError(`environment ${env.name} has no initdata file (${path})`, `create environments/${env.name}/${env.config.initdata.file} (it may be sops-encrypted), set initdata.file, or ${option.pass('FILE')}`);
    // one written from the environment's folder (as initdata.file is) is a common slip
    const typed = relative(cwd, path);
    const inEnv = typed.startsWith('..') || isAbsolute(typed) ? undefined : envPath(env, typed);
    const there = inEnv && existsSync(inEnv) ? inEnv : undefined;
    const fromHere = there && relative(cwd, there);
    throw new InputError(
      `initdata file ${path} does not exist (${option.name} is relative to ${option.dirName}, ${cwd}, not to environments/${env.name}/)`,
      there
        ? `did you mean ${there}? ${option.pass(fromHere && !fromHere.startsWith('..') ? fromHere : there)}${there === envPath(env, env.config.initdata.file) ? `, or ${option.omit} (it is initdata.file)` : ''}`
        : `check the path, or ${option.omit} to load the environment's initdata.file`,
    );
  }
  let bytes: Buffer;
  try {
    // what the file is, from its first MiB: a dump of many GB is said as one without being read whole
    const fd = openSync(path, 'r');
    let size: number;
    try {
      size = fstatSync(fd).size;
      const head = Buffer.alloc(Math.min(size, 1024 * 1024));
      const kind = fileKind(head.subarray(0, readSync(fd, head, 0, head.length, 0)), path);
      if (kind) throw notData(kind);
    } finally {
      closeSync(fd);
    }
    // Node reads no file over 2 GiB whole (ERR_FS_FILE_TOO_LARGE, said as such); a loader would not read it either
    if (size > MAX_INITDATA_BYTES)
      throw new InputError(`${path} is ${(size / 2 ** 30).toFixed(1)} GiB: initdata sends a data file of at most 2 GiB`, 'split the data into smaller files and load each (an idempotent loader adds only what is missing); nothing was sent');
    bytes = readFileSync(path);
  } catch (e) {
    if (e instanceof OpsError) throw e;
    throw fileError(e, path, 'read', 'an initdata file (YAML)');
  }
  // by its name, as loaders choosing a reader by the file's name (Django's loaddata) will read it on the host
  const named = dataName(path);
  if ('refused' in named) {
    if (named.compressed)
      throw notData({
        what: `a compressed file by its name`,
        how: `initdata checks the data before anything is sent and reads no compressed file: decompress it (the loader reads the plain file as it does the compressed one: Django's loaddata reads x.json as x.json.gz) and give that`,
      });
    throw new InputError(`${path}: ${named.refused}`, 'rename it (e.g. data.yaml, data.json, data.xml); nothing was sent');
  }
  // decoded strictly: a lenient read made each byte that is not UTF-8 (a Latin-1 é) a U+FFFD, and loaded that
  const raw = decodeUtf8(bytes, path, 'convert it to UTF-8 (e.g. `iconv -f latin1 -t utf-8`); nothing was sent');
  if (named.format === 'xml' || named.format === 'other') return textOnly(path, raw, named, notData);
  const format = named.format;
  let text = raw;
  let encrypted = false;
  refuseDeepNesting(raw, path);
  // a name ending in .sops or .enc says no format: sops writes the one it read (JSON for a file it encrypted whole,
  // its binary store), which the text tells
  const stored = /\.(?:sops|enc)$/i.test(path) && raw.replace(/^\uFEFF/, '').trimStart().startsWith('{') ? 'json' : format;
  if (isSopsText(raw, stored)) {
    encrypted = true;
    const opened = await SecretsFile.fromText(raw, path, { format: stored, identities: await loadEnvIdentities(env.root, env.name, ctx.processEnv, (m) => ctx.reporter.warn(m)), mask: (v) => ctx.reporter.mask(v) });
    const decrypted = { tree: opened.tree, plaintext: () => opened.plaintext() };
    // a file sops encrypted whole (its binary store: a dump, SQL) decrypts to {data: <the file>}, which passes as data
    const [only] = decrypted.tree.entries;
    if (decrypted.tree.entries.length === 1 && only![0] === 'data' && only![1].kind === 'scalar' && only![1].type === 'str') {
      const held = only![1].bytes ?? Buffer.from(String(only![1].value), 'utf8');
      const kind = sopsBinaryKind(held, path);
      if (kind) throw notData(kind);
    }
    // JSON as sops 3.13 writes it is indented with tabs, which PyYAML (the sample app's loader) refuses: spaces
    text = stored === 'json' ? printTree(decrypted.tree, 'json', { ...CURRENT_LAYOUT, jsonIndent: '  ' }) : decrypted.plaintext();
  } else if (format === 'json' && raw.includes('\t') && isJson(raw.replace(/^\uFEFF/, ''))) {
    // (a byte order mark, as Windows editors write, is not JSON to JSON.parse, but it is to the loader: PyYAML)
    // A plain JSON file indented with tabs (an editor's, jq --tab's): valid JSON has tabs only between tokens (a
    // string holds one as \t), so spaces instead read the same to a JSON reader, and PyYAML no longer refuses it.
    text = raw.replace(/\t/g, '  ');
  }
  const suffix = encrypted ? (dataName(path, true) as DataName).suffix : named.suffix;
  if (format === 'json') {
    checkJson(path, text, bytes.length, env, notData);
    return { path, text, encrypted, suffix };
  }
  // Checked as one YAML document, without building its values: the loader reads the text, not our copy, and
  // expanding aliases here would refuse a file that shares defaults through an anchor used many times (the
  // yaml library's guard against alias bombs), which the app's loader (PyYAML) reads.
  const doc = parseDocument(text);
  // by place and kind, never the parser's message: it quotes the text it met, which may be a decrypted secret
  let why = doc.errors[0] && syntaxError(text, doc.errors[0]).replace(/^ at /, 'at ');
  if (!why) {
    for (const [alias, target] of aliasTargets(doc)) {
      if (target !== undefined) continue;
      why = `alias *${alias.source} names no anchor (&${alias.source}) before it`;
      break;
    }
  }
  // SQL is said as SQL, not as a YAML slip (its first line "a line with no ': '")
  if ((why || !(isMap(doc.contents) || isSeq(doc.contents))) && looksLikeSql(text))
    throw notData(SQL_KIND);
  if (why) throw new InputError(`${path} is not valid YAML: ${why}`, `fix the file (an encrypted one: \`sops edit ${path}\`, or decrypted, fixed and encrypted again); nothing was sent`);
  // Data is a mapping or a list: an empty file (a copy cut short, `sops -d f > f`), one of only comments, or one
  // line of text would load nothing, and a loader reading "no data" as nothing to do (the sample app's) succeeds.
  if (!isMap(doc.contents) && !isSeq(doc.contents)) {
    const what = bytes.length === 0 ? 'is empty' : doc.contents === null || (isScalar(doc.contents) && doc.contents.value === null) ? 'holds no data (only blank lines or comments)' : 'holds one text value, not data';
    throw new InputError(`${path} ${what}: initial data is a YAML mapping or list (as environments/${env.name}/${env.config.initdata.file})`, `check the file (a copy cut short? \`sops -d F > F\` empties F); nothing was sent`);
  }
  // a file the loader would expand past the limit every YAML read of ops has (an alias bomb): counted, not expanded
  refuseAliasBomb(doc, path);
  return { path, text, encrypted, suffix };
}

/** SQL statements given as data: said as SQL, with how SQL is run. */
const SQL_KIND: FileKind = { what: 'SQL statements', dump: true, how: 'run them with the database\'s client (psql --single-transaction -v ON_ERROR_STOP=1 -d "$DATABASE_URL" -f FILE), or write the data as YAML' };

/** What a data file holding `what` is told: initial data is a mapping or list (an object or array). */
const noData = (path: string, what: string, env: Target): OpsError =>
  new InputError(`${path} ${what}: initial data is a YAML mapping or list (a JSON object or array; as environments/${env.name}/${env.config.initdata.file})`, `check the file (a copy cut short? \`sops -d F > F\` empties F); nothing was sent`);

/**
 * A `.json` file checked as the JSON it is (JSON.parse, RFC 8259: the loader may read it with a JSON reader, which
 * takes no YAML), an object or array. The place of an error by line and column (jsonFaultPlace: never the text,
 * which JSON.parse's message may quote). @throws OpsError when it is not.
 */
function checkJson(path: string, text: string, size: number, env: Target, notData: (k: FileKind) => OpsError): void {
  const body = text.replace(/^\uFEFF/, '');
  let value: unknown;
  try {
    value = JSON.parse(body);
  } catch {
    if (size === 0 || body.trim() === '') throw noData(path, 'is empty', env);
    if (looksLikeSql(body)) throw notData(SQL_KIND);
    throw new InputError(`${path} is not valid JSON${jsonFaultPlace(body)}`, `fix the file (its name says JSON, and the loader reads it as JSON; YAML goes in a .yaml file); nothing was sent`);
  }
  if (value === null || typeof value !== 'object') throw noData(path, 'holds one value, not data', env);
}

/**
 * A file in a text format ops does not read (`.xml`, another extension), sent as written for the loader to read:
 * what ops checked of it is said (`checked`), the rest is the loader's. An XML file must begin as XML does (`<`).
 * @throws OpsError when empty, SQL, or named .xml without being XML.
 */
function textOnly(path: string, raw: string, named: DataName, notData: (k: FileKind) => OpsError): { path: string; text: string; encrypted: false; suffix: string; checked: string } {
  const body = raw.replace(/^\uFEFF/, '');
  const ext = named.suffix.slice(named.suffix.lastIndexOf('.'));
  if (body.trim() === '') throw new InputError(`${path} ${raw.length === 0 ? 'is empty' : 'holds only blank lines'}: it holds no data`, 'check the file (a copy cut short?); nothing was sent');
  if (ext.toLowerCase() === '.sql' || looksLikeSql(body)) throw notData(SQL_KIND);
  if (named.format === 'xml' && !body.trimStart().startsWith('<')) throw new InputError(`${path} is named ${ext} but is not XML (it does not begin with <)`, 'give it the extension of its format (.yaml, .json), which the loader reads it by; nothing was sent');
  const checked = `${path} is sent as written, for the loader to read: ops reads YAML and JSON, not ${named.format === 'xml' ? 'XML' : `${ext} files`}; it checked only that it is UTF-8 text, not a database dump, SQL, compressed or binary, not empty${named.format === 'xml' ? ', and begins as XML' : ''}`;
  return { path, text: raw, encrypted: false, suffix: named.suffix, checked };
}

/**
 * Why initdata refuses to load with the live release's environ (`live`: environDigest on the host, `none` when it
 * has none) when the environment now renders another (`expected`), or undefined when they are the same. The
 * loader gets the live release's values (its .ops-environ): after `ops secrets set` and before a deploy, those
 * are the old ones (an admin's password hashed from the old secret). Digests only: no value is shown. Pure.
 */
export function initdataSettingsRefusal(env: Environment, host: string, release: string, expected: string, live: string): OpsError | undefined {
  if (live === expected) return undefined;
  return new OpsError(
    `the live release runs with other settings or secrets than environments/${env.name} now has: deploy first (ops deploy ${env.name}), or pass --live-settings to load with the live release's`,
    `${host} runs ${release}, whose environment (env and secrets, as the loader gets them) ${live === 'none' ? 'has no environ file' : 'is not what environments/' + env.name + ' renders now'}; nothing was loaded`,
  );
}

/**
 * Load initial data with the app's loader on the first host, in the live release, as the app user: the file
 * (decrypted if sops) travels on stdin to a private temporary file, removed whatever happens. The loader gets the
 * live release's env and secrets: unless `liveSettings`, it refuses (initdataSettingsRefusal) when they are not
 * those the environment renders now (a secret set since the last deploy), so the data is never loaded with
 * values the user has just replaced.
 * @throws OpsError when nothing is live, the live release's settings are not today's, the file is missing, or
 * the loader fails (its output, masked).
 */
export async function initdata(ctx: OpsContext, environment: Environment, options: { file?: string; fileOption?: InitdataFileOption; liveSettings?: boolean } = {}): Promise<InitdataResult> {
  const env = resolveTarget(environment);
  // What the run knew when it failed: the file, the live release it loads into (which stays live: previous and live).
  const known: { file?: string; encrypted?: boolean; release?: string } = {};
  try {
    return await initdataRun(ctx, env, options, known);
  } catch (e) {
    const { release, ...fields } = known;
    throw failedRun(e, env, { environment: env.name, ...fields }, { release, previous: release, none: 'no release was loaded into: initdata ended before it read the live one (see reason)' }, (t) => ctx.reporter.redact(t));
  }
}

/** initdata's run; `known` gets what the run knows as it goes (for a failure's --json). */
async function initdataRun(ctx: OpsContext, env: Target, options: { file?: string; fileOption?: InitdataFileOption; liveSettings?: boolean }, known: { file?: string; encrypted?: boolean; release?: string }): Promise<InitdataResult> {
  // Apps sharing a host: refused before anything runs when they collide (the loader runs as this app's user).
  refuseCollisions(env, ctx.reporter);
  const data = await readInitdata(ctx, env, options.file, options.fileOption);
  if (data.checked) ctx.reporter.warn(data.checked);
  Object.assign(known, { file: data.path, encrypted: data.encrypted });
  // What a deploy would give the release now (its secrets decrypted, refused as a deploy refuses them), as a digest.
  const expected = options.liveSettings ? undefined : environDigest(renderDotenv(env, await environmentSecrets(ctx, env)).environ);
  const L = env.layout;
  const hosts = await withSession(ctx, env, (session) =>
    withLock(
      ctx,
      session,
      'initdata',
      async (locked) => {
        // Loaded once, from the first host: the data goes to the shared database, not to each host.
        const host = env.hosts[0]!;
        const remote = session.remote(host.name);
        const state = parseState(locked.inspected.get(host.name)!);
        if (state.current) known.release = state.current;
        // Refused with nothing loaded: a run that failed, audited saying why, as a refused deploy is.
        const refuse = (e: OpsError): OpsError => {
          locked.audit(host.name, { result: 'failed', ...(state.current && { release: state.current }), message: auditReason(`refused, nothing changed: ${auditReason(e, (t) => ctx.reporter.redact(t))}`) });
          return e;
        };
        if (!state.current) throw refuse(new OpsError(`no release is live on ${host.name} yet`, `deploy first: ops deploy ${env.name}`));
        if (expected !== undefined) {
          const live = reported(await remote.run(initdataSettings(env)), INITDATA_KEYS.environ_digest) ?? 'none';
          const refusal = initdataSettingsRefusal(env, host.name, state.current, expected, live);
          if (refusal) throw refuse(refusal);
        }
        const uploaded = `${L.uploads}/initdata-${randomBytes(6).toString('hex')}${data.suffix}`;
        await remote.upload(data.text, uploaded, { mode: 0o600 });
        try {
          const r = await ctx.reporter.group(`${host.name} · initdata (release ${state.current})`, () => remote.run(runInitdata(env, uploaded, `initdata${data.suffix}`)));
          locked.audit(host.name, { result: 'success', release: state.current, message: `loaded ${options.file ? 'a given file' : env.config.initdata.file}` });
          return [{ host: host.name, release: state.current, output: maskedText(r.stdout.trim(), (t) => ctx.reporter.redact(t)) }];
        } catch (e) {
          const said = initdataCut(e, env.config.initdata.timeout);
          locked.audit(host.name, { result: 'failed', release: state.current, message: auditReason(said, (t) => ctx.reporter.redact(t)) });
          throw said;
        }
      },
      // Never provisioned: refused by the lock step, said first (no release is live there only as a symptom of it).
      { inspect: deployState(env), lockRead: partialState, unprovisioned: { nothing: 'nothing was loaded', then: `deploy first: ops deploy ${env.name}` } },
    ),
  [env.hosts[0]!]);
  return { environment: env.name, file: data.path, encrypted: data.encrypted, ...(data.checked && { checked: data.checked }), hosts };
}

/**
 * The loader's failure `e`, saying what a loader stopped part-way leaves (INITDATA_CUT) when it was: by its time limit
 * (`limit`: initdata.timeout, s; exit 124, with how to give it longer), its connection lost (TransportError: the
 * lock's release stops what it left running), or killed from outside (exit 143, 137). Any other error as it is. Pure.
 */
export function initdataCut(e: unknown, limit: number): unknown {
  if (e instanceof TransportError) return new TransportError(`${e.message}\n${INITDATA_CUT}`, e.hint);
  if (!(e instanceof StepError) || ![124, 137, 143].includes(e.exitCode ?? 0)) return e;
  const hint = e.exitCode === 124 ? `a loader still running after initdata.timeout (${limit} s) is stopped: for a large file, raise initdata.timeout; ${INITDATA_CUT}` : e.hint ? `${INITDATA_CUT}; ${e.hint}` : INITDATA_CUT;
  return new StepError(e.step, e.host, e.exitCode, e.stderrTail, e.signal, hint, e.limit, e.verdict);
}

/** The job summary (Markdown) of an initdata run. Values from outside are written with `v` (the reporter's: Markdown-escaped for a job summary, as they are on a terminal). */
export function initdataSummary(r: InitdataResult, v: ValueFormat = markdownValues): string {
  return [
    `### Initial data loaded into ${v.text(r.environment)}`,
    '',
    `File: ${v.code(r.file)}${r.encrypted ? ' (sops-encrypted; values masked)' : ''}`,
    '',
    ...r.hosts.flatMap((h) => [`**${v.text(h.host)}** (release ${v.code(h.release)}):`, '', ...codeBlock(h.output || '(no output)')]),
  ].join('\n');
}
