// .sops.yaml: creation rules read as sops reads them, and edited per environment without losing the rest.
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { OpsError } from '../../core/errors.ts';
import { generateIdentity } from '../../core/secrets/keys.ts';
import { envPathRegex, readCreationRules, recipientsFor, removeEnvRule, ruleFor, setEnvRule } from '../../core/secrets/sops-config.ts';
import { ageKey, sops, tempDir, tempRoot } from './secrets.helpers.ts';

/** Four fresh age recipients. */
async function recipients(): Promise<[string, string, string, string]> {
  const r = async () => (await generateIdentity()).recipient;
  return [await r(), await r(), await r(), await r()];
}

describe('.sops.yaml', () => {
  it('first matching rule wins; age as a comma-separated string or a list; a rule without path_regex matches all', async () => {
    const [a, b, c, d] = await recipients();
    const root = tempRoot();
    writeFileSync(
      join(root, '.sops.yaml'),
      `creation_rules:
  - path_regex: (^|/)environments/prod/
    age: ${a}, ${b}
  - path_regex: environments/staging/.*\\.yaml$
    age: [${c}]
  - age: ${d}
`,
    );
    expect(recipientsFor(root, 'environments/prod/secrets.sops.yaml')).toEqual([a, b]);
    expect(recipientsFor(root, join(root, 'environments/prod/assets/initdata.yml'))).toEqual([a, b]);
    expect(recipientsFor(root, 'environments/staging/secrets.sops.yaml')).toEqual([c]);
    expect(recipientsFor(root, 'environments/demo/secrets.sops.yaml')).toEqual([d]);
    expect(ruleFor(root, 'environments/prod-eu/secrets.sops.yaml')?.index).toBe(2);
  });

  it('a misspelled key sops would ignore (creation_rule, path-regex, ages) is refused by name: a rule without its path_regex would match every file', async () => {
    const [a] = await recipients();
    const root = tempRoot();
    const refused = (text: string) => {
      writeFileSync(join(root, '.sops.yaml'), text);
      try {
        readCreationRules(root);
      } catch (e) {
        return (e as OpsError).message;
      }
      return 'read';
    };
    expect(refused(`creation_rule:\n  - path_regex: (^|/)environments/prod/\n    age: ${a}\n`)).toBe('.sops.yaml: unknown key `creation_rule` (did you mean `creation_rules`?): sops ignores it, so what it holds is not read');
    expect(refused(`creation_rules:\n  - path-regex: (^|/)environments/prod/\n    age: ${a}\n`)).toBe('.sops.yaml: creation_rules[0]: unknown key `path-regex` (did you mean `path_regex`?): sops ignores it, so what it holds is not read');
    expect(refused(`creation_rules:\n  - path_regex: (^|/)environments/prod/\n    ages: ${a}\n`)).toContain('creation_rules[0]: unknown key `ages` (did you mean `age`?)');
    // keys sops reads, and another tool's own, far from them: read as before
    expect(refused(`x-team: ops\nstores: {yaml: {indent: 4}}\ncreation_rules:\n  - path_regex: x\n    age: ${a}\n    encrypted_regex: ^data$\n    mac_only_encrypted: true\n`)).toBe('read');
  });

  it('a YAML mistake in it is said as in every YAML file a person writes: where, the line, and the fix for its kind', async () => {
    const root = tempRoot();
    const said = (text: string) => {
      writeFileSync(join(root, '.sops.yaml'), text);
      try {
        readCreationRules(root);
      } catch (e) {
        return e as OpsError;
      }
      throw new Error('read');
    };
    const tab = said('creation_rules:\n\t- path_regex: x\n');
    expect(tab.message).toBe('.sops.yaml:2:1: not valid YAML: a tab used as indentation (indent with spaces)');
    expect(tab.hint).toBe('replace the tab at the start of the line with spaces (set your editor to insert spaces for Tab)');
    expect(said('creation_rules: []\n---\nx: 1\n').hint).toBe('.sops.yaml is one YAML document: remove the `---` line and what is another document after it (sops reads one)');
  });

  it('no matching rule: says which file and shows the rule to add', async () => {
    const [a] = await recipients();
    const root = tempRoot();
    writeFileSync(join(root, '.sops.yaml'), `creation_rules:\n  - path_regex: (^|/)environments/prod/\n    age: ${a}\n`);
    const err = (() => {
      try {
        recipientsFor(root, 'environments/qa/secrets.sops.yaml');
      } catch (e) {
        return e as OpsError;
      }
      throw new Error('expected an error');
    })();
    expect(err).toBeInstanceOf(OpsError);
    expect(err.message).toBe(
      'no matching creation rule for environments/qa/secrets.sops.yaml in .sops.yaml: add one like\ncreation_rules:\n  - path_regex: (^|/)environments/qa/\n    age: age1...',
    );
    expect(() => recipientsFor(tempRoot(), 'environments/qa/secrets.sops.yaml')).toThrow('no matching creation rule');
  });

  it('a file outside the project is matched by its absolute path, as sops matches it (never by ../); with no rule it is refused saying so, no ../ rule suggested', async () => {
    const key = ageKey();
    const root = tempRoot();
    const outside = join(tempDir(), 'plain.yaml');
    writeFileSync(outside, 'a: 1\n');
    const config = join(root, '.sops.yaml');
    const hasSops = !spawnSync('sops', ['--version', '--disable-version-check']).error;
    for (const [regex, matches] of [['^\\.\\./', false], ['(^|/)plain\\.yaml$', true], [`^${outside.replace(/\./g, '\\.')}$`, true]] as const) {
      writeFileSync(config, `creation_rules:\n  - path_regex: '${regex}'\n    age: ${key.recipient}\n`);
      expect(ruleFor(root, outside)?.index, regex).toBe(matches ? 0 : undefined);
      // the real sops, given this .sops.yaml, picks the same rule
      if (hasSops) expect(sops(['--config', config, 'encrypt', outside], key.file).code === 0, regex).toBe(matches);
    }
    writeFileSync(config, `creation_rules:\n  - path_regex: (^|/)environments/prod/\n    age: ${key.recipient}\n`);
    const err = (() => {
      try {
        recipientsFor(root, outside);
      } catch (e) {
        return e as OpsError;
      }
      throw new Error('expected an error');
    })();
    expect(err.message).toBe(`no creation rule in .sops.yaml matches ${outside}, which is outside the project (${root}): rules match the paths of the project's files (sops matches an outside file by its absolute path)`);
    expect(err.hint).toBe('move it into the project (an environment\'s files go in its folder\'s assets/) and run the command on it there');
    // the project's environments named, never a literal <env>
    mkdirSync(join(root, 'environments', 'prod'), { recursive: true });
    writeFileSync(join(root, 'environments', 'prod', 'environment.yml'), 'app: x\n');
    expect(() => recipientsFor(root, outside)).toThrow(expect.objectContaining({ hint: 'move it into the project (an environment\'s files go in its folder\'s assets/: environments/prod/assets/) and run the command on it there' }));
    expect(ruleFor(root, join(root, 'environments/prod/x.yaml'))?.index).toBe(0); // a file inside: relative to the project, as before
  });

  it('YAML anchors, aliases and merge keys are read as the real sops reads them; a rule sharing nodes is refused for a change, the file unchanged', async () => {
    const key = ageKey();
    const [b] = await recipients();
    const root = tempRoot();
    const config = join(root, '.sops.yaml');
    const plain = join(root, 'environments', 'prod', 'x.yaml');
    mkdirSync(dirname(plain), { recursive: true });
    const hasSops = !spawnSync('sops', ['--version', '--disable-version-check']).error;
    const forms = {
      'an alias of a recipient': `keys:\n  - &team ${key.recipient}\ncreation_rules:\n  - path_regex: (^|/)environments/prod/\n    age: *team\n`,
      'an alias of a list': `recips: &r\n  - ${key.recipient}\ncreation_rules:\n  - path_regex: (^|/)environments/prod/\n    age: *r\n`,
      'an alias of a whole rule': `creation_rules:\n  - &rule\n    path_regex: (^|/)environments/demo/\n    age: ${b}\n  - path_regex: (^|/)environments/prod/\n    age: &mine ${key.recipient}\n  - *rule\n`,
      'a merge key': `x-base: &base\n  age: ${key.recipient}\ncreation_rules:\n  - <<: *base\n    path_regex: (^|/)environments/prod/\n`,
    };
    for (const [form, text] of Object.entries(forms)) {
      writeFileSync(config, text);
      expect(recipientsFor(root, 'environments/prod/secrets.sops.yaml'), form).toEqual([key.recipient]);
      if (hasSops) {
        // the real sops encrypts to the same recipient
        writeFileSync(plain, 'a: 1\n');
        const r = sops(['--config', config, 'encrypt', plain], key.file);
        expect(r.code, `${form}: ${r.err}`).toBe(0);
        expect((parse(r.out) as { sops: { age: { recipient: string }[] } }).sops.age.map((a) => a.recipient), form).toEqual([key.recipient]);
      }
      // changing or removing the rule would change or break what shares it: refused, the file as it was
      await expect(setEnvRule(root, 'prod', [key.recipient, b]), form).rejects.toThrow(/creation_rules\[\d\], the rule of prod, is written with a YAML anchor, alias or merge key .*nothing was changed/);
      await expect(removeEnvRule(root, 'prod'), form).rejects.toThrow(/the rule of prod, is written with a YAML anchor/);
      expect(readFileSync(config, 'utf8'), form).toBe(text);
    }
    // another environment's rule, written in full, is changed as ever, the shared nodes kept
    await setEnvRule(root, 'qa', [b]);
    expect(recipientsFor(root, 'environments/qa/secrets.sops.yaml')).toEqual([b]);
    expect(recipientsFor(root, 'environments/prod/secrets.sops.yaml')).toEqual([key.recipient]);
    expect(readFileSync(config, 'utf8')).toContain('<<: *base');
  });

  it('a rule with a bad recipient or a bad regex is reported with its place', async () => {
    const root = tempRoot();
    writeFileSync(join(root, '.sops.yaml'), 'creation_rules:\n  - path_regex: x\n    age: age1nope\n');
    expect(() => recipientsFor(root, 'x')).toThrow('.sops.yaml creation_rules[0].age[0]: "age1nope" is not a valid age recipient');
    writeFileSync(join(root, '.sops.yaml'), 'creation_rules:\n  - path_regex: "(unclosed"\n');
    expect(() => readCreationRules(root)).toThrow('creation_rules[0].path_regex /(unclosed/ is not a valid Go regular expression');
    // path_regex is a Go regexp, as sops reads it: RE2 syntax JavaScript lacks works, syntax RE2 lacks is refused
    writeFileSync(join(root, '.sops.yaml'), `creation_rules:\n  - path_regex: '(?i)\\Aenvironments/PROD/'\n    age: ${(await recipients())[0]}\n`);
    expect(ruleFor(root, 'environments/prod/secrets.sops.yaml')?.index).toBe(0);
    expect(ruleFor(root, 'x/environments/prod/secrets.sops.yaml')).toBeUndefined();
    writeFileSync(join(root, '.sops.yaml'), "creation_rules:\n  - path_regex: '(?<=x)y'\n");
    expect(() => readCreationRules(root)).toThrow(/is not a valid Go regular expression/);
  });

  it('setEnvRule creates the file, adds a rule before a catch-all, updates in place and keeps comments', async () => {
    const [a, b, c] = await recipients();
    const root = tempRoot();
    await setEnvRule(root, 'prod', [a]);
    expect(parse(readFileSync(join(root, '.sops.yaml'), 'utf8'))).toEqual({ creation_rules: [{ path_regex: envPathRegex('prod'), age: a }] });
    // a hand-written catch-all and a comment
    writeFileSync(join(root, '.sops.yaml'), readFileSync(join(root, '.sops.yaml'), 'utf8') + `  # everything else\n  - age: ${c}\n`);
    await setEnvRule(root, 'qa', [b]);
    await setEnvRule(root, 'prod', [a, b]);
    const text = readFileSync(join(root, '.sops.yaml'), 'utf8');
    expect(text).toContain('# everything else');
    expect(parse(text).creation_rules).toEqual([
      { path_regex: '(^|/)environments/prod/', age: `${a},${b}` },
      { path_regex: '(^|/)environments/qa/', age: b },
      { age: c },
    ]);
    expect(recipientsFor(root, 'environments/qa/secrets.sops.yaml')).toEqual([b]);
    expect(await removeEnvRule(root, 'qa')).toBe(true);
    expect(await removeEnvRule(root, 'qa')).toBe(false);
    expect(recipientsFor(root, 'environments/qa/secrets.sops.yaml')).toEqual([c]);
    expect(() => envPathRegex('bad.name')).toThrow('invalid environment name');
  });
});
