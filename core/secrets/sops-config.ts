// .sops.yaml at the project root: creation rules mapping file paths (path_regex) to age recipients, read
// as sops reads them (path_regex is a Go regexp; first matching rule wins; a rule without path_regex matches every file; `age` is a
// comma-separated string or a list) and edited in place, keeping comments and the other rules.
import { readFileSync } from 'node:fs';
import { isAbsolute, join, relative, sep } from 'node:path';
import { Document, isAlias, isMap, isPair, isScalar, isSeq, parseDocument, Scalar, visit, YAMLMap, YAMLSeq, type Node } from 'yaml';
import { yamlErrorHint, yamlErrorMessage } from '../config/environment.ts';
import { distance } from '../config/schema-object.ts';
import { OpsError, userFileExists } from '../errors.ts';
import { environmentFolders, validate } from '../shell.ts';
import { retryOnChange, writeIfUnchanged } from './atomic.ts';
import { goRegexp } from './goregex.ts';
import { checkRecipient } from './keys.ts';
import { hideSecrets, isPrivateKey } from './parts.ts';
import { refuseAliasBomb, refuseDeepNesting } from '../yaml-depth.ts';

export const SOPS_CONFIG_FILE = '.sops.yaml';

const CONFIG_HEADER = [
  ' Which age public keys (recipients) each sops file is encrypted to; sops and `ops` both read it.',
  ' The first rule whose path_regex matches a file wins. `ops env new` adds a rule per environment;',
  ' `ops secrets recipients <env> add|remove|sync` keep the rules and the files in step.',
].join('\n');

export interface CreationRule {
  /** Position in creation_rules (0-based). */
  index: number;
  pathRegex?: string;
  age: string[];
}

/** The rule `ops env new` writes for an environment: every file under environments/<env>/ (relative or absolute path). */
export function envPathRegex(env: string): string {
  validate('environment', env);
  return `(^|/)environments/${env}/`;
}

/**
 * The file path a rule is matched against, with "/" separators, as sops matches it: relative to the project root
 * (the .sops.yaml's directory) for a file under it; a file outside it keeps its absolute path, as sops only trims
 * that directory off the front of the file's absolute path (sops 3.13, config.go parseCreationRuleForFile), so a
 * path_regex never meets `../`.
 */
export function rulePath(root: string, file: string): string {
  const rel = isAbsolute(file) ? relative(root, file) : file;
  const outside = isAbsolute(file) && (rel === '..' || rel.startsWith(`..${sep}`) || isAbsolute(rel));
  return (outside ? file : rel).split(sep).join('/');
}

function configError(file: string, what: string): OpsError {
  return new OpsError(hideSecrets(`${file}: ${what}`), 'each rule looks like `- path_regex: (^|/)environments/prod/` with `age: age1...,age1...`');
}

/** A rule's `age` as sops reads it (aliases and merge keys already resolved): a comma-separated string or a list. */
function parseAge(file: string, i: number, value: unknown): string[] {
  if (value === null || value === undefined) return [];
  if (typeof value === 'string') return value.split(',').map((s) => s.trim()).filter(Boolean);
  if (Array.isArray(value) && value.every((v) => typeof v === 'string')) return (value as string[]).map((s) => s.trim()).filter(Boolean);
  throw configError(file, `creation_rules[${i}].age must be a comma-separated string or a list of age recipients`);
}

interface Loaded {
  path: string;
  /** The file's text as read: what a change may replace (writeIfUnchanged). */
  text: string;
  doc: Document;
  rules: CreationRule[];
}

/** The keys sops reads at the top of .sops.yaml, and in a creation rule (getsops/sops config/config.go, v3.13). */
const TOP_KEYS = ['creation_rules', 'destination_rules', 'stores'];
const RULE_KEYS = ['path_regex', 'age', 'pgp', 'kms', 'aws_profile', 'gcp_kms', 'azure_keyvault', 'hc_vault_transit_uri', 'hckms', 'key_groups', 'shamir_threshold', 'unencrypted_suffix', 'encrypted_suffix', 'unencrypted_regex', 'encrypted_regex', 'unencrypted_comment_regex', 'encrypted_comment_regex', 'mac_only_encrypted'];

/**
 * A key of `map` that is a misspelling of one of `known` (`creation_rule`, `path-regex`, `ages`): sops ignores keys it
 * does not know, so the rules would silently not be there (every file "has no matching rule"). A key far from all
 * of them is left alone (another tool's, or a later sops's). @throws OpsError naming the key, where, and the key meant.
 */
function refuseMisspelledKeys(map: YAMLMap, known: string[], where: string): void {
  for (const pair of map.items) {
    const key = isScalar(pair.key) ? String(pair.key.value) : undefined;
    if (key === undefined || known.includes(key)) continue;
    const typed = key.toLowerCase().replace(/-/g, '_');
    const near = known.find((k) => k === typed) ?? known.map((k) => [k, distance(typed, k)] as const).sort((a, b) => a[1] - b[1]).find(([k, d]) => d <= Math.max(1, Math.floor(k.length / 4)))?.[0];
    if (near) throw configError(SOPS_CONFIG_FILE, `${where}unknown key \`${key}\` (did you mean \`${near}\`?): sops ignores it, so what it holds is not read`);
  }
}

function load(root: string, required: boolean): Loaded | undefined {
  const path = join(root, SOPS_CONFIG_FILE);
  if (!userFileExists(path, SOPS_CONFIG_FILE)) {
    if (!required) return undefined;
    throw new OpsError(`no ${SOPS_CONFIG_FILE} at the project root (${root})`, 'create an environment with `ops env new <name>`, which writes its rule');
  }
  const text = readFileSync(path, 'utf8');
  refuseDeepNesting(text, SOPS_CONFIG_FILE);
  // merge keys (`<<: *base`) as sops (go-yaml) merges them: a key written in the rule wins over a merged one
  const doc = parseDocument(text, { merge: true });
  // said as every YAML file a person writes is: where, the line, and the fix for its kind (a tab: indent with spaces)
  if (doc.errors.length)
    throw new OpsError(yamlErrorMessage(SOPS_CONFIG_FILE, text, doc.errors[0]!), yamlErrorHint(doc.errors[0]!, `${SOPS_CONFIG_FILE} is one YAML document: remove the \`---\` line and what is another document after it (sops reads one)`, text));
  // as every user YAML file: ops reads the rules without building the aliases' copies, sops (go-yaml) builds them
  refuseAliasBomb(doc, SOPS_CONFIG_FILE);
  const rules: CreationRule[] = [];
  const contents = doc.contents;
  if (contents !== null && !isMap(contents)) throw configError(SOPS_CONFIG_FILE, 'the top level must be a map with `creation_rules:`');
  if (isMap(contents)) refuseMisspelledKeys(contents, TOP_KEYS, '');
  const list = isMap(contents) ? contents.get('creation_rules', true) : undefined;
  if (list !== undefined && list !== null && !isSeq(list)) throw configError(SOPS_CONFIG_FILE, '`creation_rules` must be a list');
  (isSeq(list) ? list.items : []).forEach((entry, index) => {
    // read as sops reads it: an alias (`- *rule`, `age: *team`) is the node it names, merge keys merged
    const item = isAlias(entry) ? entry.resolve(doc) : entry;
    if (!isMap(item)) throw configError(SOPS_CONFIG_FILE, `creation_rules[${index}] is not a map`);
    refuseMisspelledKeys(item, RULE_KEYS, `creation_rules[${index}]: `);
    const rule = item.toJS(doc, { maxAliasCount: -1 }) as Record<string, unknown>;
    const re = rule.path_regex;
    if (re !== undefined && re !== null && typeof re !== 'string') throw configError(SOPS_CONFIG_FILE, `creation_rules[${index}].path_regex must be a string`);
    if (typeof re === 'string') {
      try {
        goRegexp(re);
      } catch (e) {
        throw configError(SOPS_CONFIG_FILE, `creation_rules[${index}].path_regex /${re}/ is not a valid Go regular expression (${(e as Error).message})`);
      }
    }
    const age = parseAge(SOPS_CONFIG_FILE, index, rule.age);
    // A private key pasted as a recipient is refused on every read (never listed, never used), by the recipient check:
    // said by its shape, never quoted. Other entries are checked where a rule is used (recipientsFor).
    age.forEach((r, i) => isPrivateKey(r) && checkRecipient(r, `${SOPS_CONFIG_FILE} creation_rules[${index}].age[${i}]`));
    rules.push({ index, pathRegex: typeof re === 'string' && re !== '' ? re : undefined, age });
  });
  return { path, text, doc, rules };
}

/** The creation rules of <root>/.sops.yaml ([] when there is none). */
export function readCreationRules(root: string): CreationRule[] {
  return load(root, false)?.rules ?? [];
}

/** The rule sops would use for `file` (first match), or undefined. */
export function ruleFor(root: string, file: string): CreationRule | undefined {
  const rel = rulePath(root, file);
  return readCreationRules(root).find((r) => r.pathRegex === undefined || goRegexp(r.pathRegex).test(rel));
}

/** The age recipients `.sops.yaml` gives to `file`; a clear error when no rule matches or the rule has none. */
export function recipientsFor(root: string, file: string): string[] {
  const rel = rulePath(root, file);
  const rule = ruleFor(root, file);
  const env = /^environments\/([^/]+)\//.exec(rel)?.[1];
  const example = `  - path_regex: ${env ? envPathRegex(env) : JSON.stringify(`^${rel.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`)}\n    age: age1...`;
  // no rule for a file outside the project: a rule naming its absolute path would hold one machine's layout
  if (!rule && isAbsolute(rel))
    throw new OpsError(
      `no creation rule in ${SOPS_CONFIG_FILE} matches ${rel}, which is outside the project (${root}): rules match the paths of the project's files (sops matches an outside file by its absolute path)`,
      `move it into the project (an environment's files go in its folder's assets/${((envs) => (envs.length ? `: ${envs.map((e) => `environments/${e}/assets/`).join(', ')}` : ''))(environmentFolders(root).slice(0, 4))}) and run the command on it there`,
    );
  if (!rule) {
    throw new OpsError(`no matching creation rule for ${rel} in ${SOPS_CONFIG_FILE}: add one like\ncreation_rules:\n${example}`, env ? `\`ops env new\` writes this rule for new environments; \`ops keygen\` makes an age key` : undefined);
  }
  if (rule.age.length === 0) {
    throw new OpsError(`the creation rule for ${rel} in ${SOPS_CONFIG_FILE} (creation_rules[${rule.index}]) has no age recipients`, 'add `age: age1...` to it (comma-separated for several)');
  }
  rule.age.forEach((r, i) => checkRecipient(r, `${SOPS_CONFIG_FILE} creation_rules[${rule.index}].age[${i}]`));
  return rule.age;
}

/**
 * The rule at `index` as a map ops may change or remove: one written out in full. A rule that is an alias, holds an
 * anchor or an alias, or merges keys (`<<`) is shared with other places of the file, which sops reads through it:
 * changing it in place would change them too, removing it would leave their aliases naming nothing. @throws OpsError
 * saying so, and how to write the rule so ops can keep it; nothing is written.
 */
function plainRule(entry: unknown, index: number, env: string): YAMLMap {
  let shared = isAlias(entry) || !isMap(entry);
  if (!shared)
    visit(entry as YAMLMap, {
      Alias: () => void (shared = true),
      Node: (_, node: Node) => void (node.anchor && (shared = true)),
      Pair: (_, pair) => void (isPair(pair) && isScalar(pair.key) && pair.key.value === '<<' && (shared = true)),
    });
  if (shared)
    throw new OpsError(
      `${SOPS_CONFIG_FILE}: creation_rules[${index}], the rule of ${env}, is written with a YAML anchor, alias or merge key (&name, *name, <<): changing it in place would change or break the rules sharing it; nothing was changed`,
      `write the rule of ${env} out in full (path_regex: ${envPathRegex(env)} and its own age: list), then run the command again`,
    );
  return entry as YAMLMap;
}

/**
 * Give environment `env` the recipients `recipients` in .sops.yaml: its own rule (path_regex
 * envPathRegex(env)) is updated, or created before any rule that would otherwise match its files. Written only over
 * the file as read, read again when another command changed it meanwhile (retryOnChange: two environments' rules
 * changed at once both land). @throws ChangedOnDiskError when it kept changing, OpsError for a broken file,
 * InterruptedError (nothing written) when `signal` aborts before its lock is taken.
 */
export async function setEnvRule(root: string, env: string, recipients: string[], signal?: AbortSignal): Promise<void> {
  await retryOnChange(`the rule of ${env} in ${SOPS_CONFIG_FILE}`, () => setEnvRuleOnce(root, env, recipients, signal));
}

async function setEnvRuleOnce(root: string, env: string, recipients: string[], signal?: AbortSignal): Promise<void> {
  const regex = envPathRegex(env);
  const list = [...new Set(recipients.map((r) => checkRecipient(r)))];
  if (list.length === 0) throw new OpsError(`the rule for ${env} needs at least one recipient`);
  const loaded = load(root, false);
  const doc = loaded?.doc ?? new Document({ creation_rules: [] });
  if (!loaded) doc.commentBefore = CONFIG_HEADER;
  if (doc.contents === null || (isScalar(doc.contents) && doc.contents.value === null)) doc.contents = new YAMLMap();
  const found: unknown = (doc.contents as YAMLMap).get('creation_rules', true);
  let seq: YAMLSeq;
  if (isSeq(found)) seq = found;
  else {
    seq = new YAMLSeq();
    (doc.contents as YAMLMap).set('creation_rules', seq);
  }
  seq.flow = false;
  const items = seq.items;
  // the rule sops takes for the environment's files, as read (an alias or a merged path_regex included)
  const own = loaded?.rules.find((r) => r.pathRegex === regex)?.index ?? -1;
  const ageValue = new Scalar(list.join(','));
  if (own >= 0) {
    const rule = plainRule(items[own], own, env);
    const old = rule.get('age', true);
    if (isSeq(old)) {
      const s = new YAMLSeq();
      s.items = list.map((r) => new Scalar(r));
      rule.set('age', s);
    } else rule.set('age', ageValue);
  } else {
    const rule = new YAMLMap();
    rule.set('path_regex', regex);
    rule.set('age', ageValue);
    // Before the first rule that would catch this environment's files (sops takes the first match)
    const probe = `environments/${env}/secrets.sops.yaml`;
    const at = (loaded?.rules ?? []).find((r) => r.pathRegex === undefined || goRegexp(r.pathRegex).test(probe));
    if (at) items.splice(at.index, 0, rule);
    else items.push(rule);
  }
  await writeIfUnchanged(join(root, SOPS_CONFIG_FILE), doc.toString({ lineWidth: 0 }), loaded?.text ?? null, undefined, undefined, undefined, signal);
}

/** Remove environment `env`'s own rule from .sops.yaml (as setEnvRule writes it). Returns false if it had none. */
export async function removeEnvRule(root: string, env: string): Promise<boolean> {
  return retryOnChange(`the rule of ${env} in ${SOPS_CONFIG_FILE}`, () => removeEnvRuleOnce(root, env));
}

async function removeEnvRuleOnce(root: string, env: string): Promise<boolean> {
  const regex = envPathRegex(env);
  const loaded = load(root, false);
  if (!loaded) return false;
  const seq = (loaded.doc.contents as YAMLMap | null)?.get('creation_rules', true);
  if (!isSeq(seq)) return false;
  const i = loaded.rules.find((r) => r.pathRegex === regex)?.index ?? -1;
  if (i < 0) return false;
  plainRule(seq.items[i], i, env);
  seq.items.splice(i, 1);
  await writeIfUnchanged(loaded.path, loaded.doc.toString({ lineWidth: 0 }), loaded.text);
  return true;
}
