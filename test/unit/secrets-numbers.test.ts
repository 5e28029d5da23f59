// Numbers typed without quotes, as the real sops stores them (the pinned build on PATH, as in
// secrets-sops.test.ts): sops's JSON store makes an integer within int64 an int and any other number a float64
// (getsops/sops stores/json/store.go, normalizeJSONNumber), so 1.0, 0.10, 1e3, -0 and 12345678901234567890 reach
// the app as another text than typed. ops reads them as sops does, names them (never their values) when they are
// typed in an edit or encrypted, and a deploy refuses a secret whose integer was rounded.
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadEnvironment } from '../../core/config/environment.ts';
import { asString, holdsRoundedNumber, READERS, refuseUnreadableSecrets, renderDotenv } from '../../core/dotenv.ts';
import { secretParts } from '../../core/secrets/parts.ts';
import { dotenvDir, readReal } from '../support/real-dotenv.ts';
import { environment } from '../support/dotenv-environment.ts';
import { OpsError } from '../../core/errors.ts';
import { environmentSecrets } from '../../core/ops/secrets.ts';
import { MemoryReporter } from '../../core/report.ts';
import { type EditIo, editSecrets, retypedWarning } from '../../core/secrets/edit.ts';
import { identitiesFromText } from '../../core/secrets/keys.ts';
import { SecretsFile } from '../../core/secrets/sops.ts';
import { type Retyped, parseTree } from '../../core/secrets/tree-parse.ts';
import { showPath, toPlain } from '../../core/secrets/tree.ts';
import { ageKey, cli, newEnv, secretsFile, sops, tempDir } from './secrets.helpers.ts';

/** Each number as typed, and whether it reaches the app (.env) as typed, as the real sops 3.13.3 stores it. */
const TYPED: [key: string, text: string, asTyped: boolean][] = [
  ['big', '12345678901234567890', false], // beyond int64: a float64, digits past the 17th rounded
  ['exp', '1e3', false], // 1000.0
  ['tenth', '0.10', false], // 0.1
  ['onezero', '1.0', true], // a float: 1.0, as sops exec-env gives it (its JSON output: 1)
  ['negzero', '-0', false], // the int 0
  ['negzerof', '-0.0', true], // the float -0: -0.0 in the .env, as sops's dotenv output has it (its JSON output: -0)
  ['int', '42', true],
  ['i64max', '9223372036854775807', true], // an int, exact (a bigint here)
  ['half', '1.5', true],
  ['tiny', '1e-7', false], // 1E-07, as sops's dotenv output has it
];
const JSON_TEXT = `{\n${TYPED.map(([k, t]) => `  "${k}": ${t}`).join(',\n')}\n}\n`;

describe('JSON numbers, as the real sops stores them', () => {
  it('a file sops encrypted: ops reads each number as sops decrypts it, and gives the .env each as sops exec-env does; what reaches it equals what was typed only for ints within int64 and floats in their shortest form', async () => {
    const key = ageKey();
    const plain = join(tempDir('ops-numbers-'), 'n.json');
    writeFileSync(plain, JSON_TEXT);
    const enc = sops(['encrypt', '--age', key.recipient, plain], key.file);
    expect(enc.err).toBe('');
    const file = join(tempDir('ops-numbers-'), 'n.enc.json');
    writeFileSync(file, enc.out);
    const ours = await SecretsFile.open(file, { identities: await identitiesFromText(readFileSync(key.file, 'utf8')) });
    // sops's dotenv output gives each as exec-env does (stores.ValToString)
    const dotenv = sops(['decrypt', '--output-type', 'dotenv', file], key.file);
    expect(dotenv.err).toBe('');
    const given = new Map(dotenv.out.trimEnd().split('\n').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
    for (const [k, typed, asTyped] of TYPED) {
      const env = asString(ours.data[k]);
      expect(env, k).toBe(given.get(k));
      const theirs = sops(['decrypt', '--extract', `["${k}"]`, file], key.file).out.trim();
      // the same number as sops's (its --extract writes 1e-7 as 1e-07, the same float64)
      expect(Object.is(Number(env), Number(theirs)), `${k}: ${env} / ${theirs}`).toBe(true);
      expect(env === typed, `${k}: ${typed} reaches the .env as ${env}`).toBe(asTyped);
    }
    // the rule edit and encrypt apply names exactly those whose text changes
    const retyped: Retyped[] = [];
    parseTree(JSON_TEXT, 'json', { file: 'typed', retyped });
    // (and -0.0 and 1.0, which reach the .env as typed, but sops's JSON output writes as -0 and 1)
    expect(retyped.map((r) => showPath(r.path))).toEqual(TYPED.filter(([k, , t]) => !t || k === 'negzerof' || k === 'onezero').map(([k]) => k));
    expect(retyped.find((r) => showPath(r.path) === 'big')).toMatchObject({ type: 'float', typed: 'digits' });
  });

  it('ops secrets edit of a JSON file names them by key and kind (never the value) and asks; quoted, sops decrypts them as typed', async () => {
    const { key, file, ids } = await secretsFile('{}', 'secrets.json');
    const before = readFileSync(file, 'utf8');
    const warnings: string[] = [];
    let text = JSON_TEXT;
    const io = (answer: boolean): EditIo => ({ edit: async (tmp) => (writeFileSync(tmp, text), { code: 0, signal: null }), confirm: async () => answer, warn: (m) => warnings.push(m) });
    const aborted = await editSecrets(await SecretsFile.open(file, { identities: ids }), io(false));
    expect(aborted).toEqual({ status: 'aborted', reason: 'big, exp, tenth, onezero, negzero, negzerof, tiny would not be stored as typed (quote them); nothing was changed' });
    expect(warnings[0]).toBe(
      [
        '7 values typed without quotes would not be stored as typed:',
        '  big: typed as an integer beyond the 64-bit range, which sops stores as a floating-point number: digits past the 17th are rounded, and the app would get it as sops writes such a float (1E+20 for 100000000000000000000)',
        ...['exp', 'tenth', 'onezero'].map((k) => `  ${k}: typed as a number with a fraction or an exponent, which sops stores as a floating-point number, given back in another form (its shortest digits: trailing zeros dropped, an exponent as sops writes it, 1E+20 for 1e20, digits past the 17th rounded): the app would get another text`),
        '  negzero: sops reads what was typed as an integer, stored in another form than typed',
        ...['negzerof', 'tiny'].map((k) => `  ${k}: typed as a number with a fraction or an exponent, which sops stores as a floating-point number, given back in another form (its shortest digits: trailing zeros dropped, an exponent as sops writes it, 1E+20 for 1e20, digits past the 17th rounded): the app would get another text`),
        'to keep them as typed (text), put each in double quotes: "key": "..."',
      ].join('\n'),
    );
    for (const [, typed] of TYPED) expect(warnings.join('\n')).not.toContain(typed);
    expect(readFileSync(file, 'utf8')).toBe(before);
    // quoted: stored as text, and the real sops gives back exactly what was typed
    text = `{\n${TYPED.map(([k, t]) => `  "${k}": "${t}"`).join(',\n')}\n}\n`;
    warnings.length = 0;
    expect((await editSecrets(await SecretsFile.open(file, { identities: ids }), io(false))).status).toBe('saved');
    expect(warnings.filter((w) => /stored as typed/.test(w))).toEqual([]);
    const decrypted = JSON.parse(sops(['decrypt', file], key.file).out) as Record<string, string>;
    for (const [k, typed] of TYPED) expect(decrypted[k], k).toBe(typed);
  });

  it('ops secrets encrypt of a plain JSON file encrypts them as sops would, and names them; the real sops decrypts the same numbers', async () => {
    const e = await newEnv();
    const assets = join(e.root, 'environments/qa/assets');
    mkdirSync(assets, { recursive: true });
    const asset = join(assets, 'data.json');
    writeFileSync(asset, JSON_TEXT);
    const r = await cli(e.root, ['secrets', 'encrypt', asset], e.env);
    expect(r.code).toBe(0);
    expect(r.err).toContain('warning: environments/qa/assets/data.json: 7 values typed without quotes are not stored as typed:\n  big: typed as an integer beyond the 64-bit range');
    expect(r.err).toContain('to keep them as typed (text), put each in double quotes: "key": "..."');
    const theirs = JSON.parse(sops(['decrypt', asset], e.keyFile).out) as Record<string, number>;
    const ours = (await SecretsFile.open(asset, { identities: await identitiesFromText(e.key) })).data;
    for (const [k] of TYPED) expect(Number(asString(ours[k])) === Number(theirs[k]), k).toBe(true);
  });
});

describe('a deploy refuses a secret whose integer sops rounded', () => {
  it('an integer beyond 64 bits typed without quotes (here by the real sops, YAML store: the same rule) is refused by variable and key, never shown, with the fix: quote it', async () => {
    // (go-yaml reads one within uint64 as a uint64, which sops refuses to encrypt: "unknown type: uint64")
    const e = await newEnv();
    const recipient = (await SecretsFile.open(e.secrets, { identities: await identitiesFromText(e.key) })).recipients[0]!;
    const plain = join(tempDir('ops-numbers-'), 'secrets.sops.yaml');
    writeFileSync(plain, 'chat:\n    id: 123456789012345678901234\nexact: 9223372036854775807\nquoted: "123456789012345678901234"\nlimit: 1e20\n');
    const enc = sops(['encrypt', '--age', recipient, plain], e.keyFile);
    expect(enc.err).toBe('');
    writeFileSync(e.secrets, enc.out);
    const base = loadEnvironment('qa', e.root);
    const reporter = new MemoryReporter();
    const secrets = await environmentSecrets({ root: e.root, reporter, processEnv: e.env }, base);
    expect(holdsRoundedNumber(secrets.chat)).toBe(true);
    expect(holdsRoundedNumber([secrets.exact, secrets.quoted, 1.5, 2 ** 53 - 1])).toBe(false);
    const withEnv = (env: Record<string, unknown>) => ({ ...base, config: { ...base.config, env } }) as typeof base;
    const err = (() => {
      try {
        renderDotenv(withEnv({ CHAT_ID: { secret: 'chat.id' }, CHATS: { secret: 'chat' }, EXACT: { secret: 'exact' } }), secrets);
      } catch (x) {
        return x as OpsError;
      }
      throw new Error('not refused');
    })();
    expect(err).toBeInstanceOf(OpsError);
    expect(err.message).toBe(
      'environments/qa/secrets.sops.yaml: 2 secrets the .env needs hold a number with more digits than a floating-point number holds exactly (over 15), which sops stored as one (as it stores an integer typed without quotes beyond the 64-bit range, a number with a fraction or an exponent, and every number given to `sops set`), keeping not the text typed but the float\'s digits, 17 at most, any past them rounded away, and nothing tells whether the text had more: the app could get another number than the one typed (nothing was sent to any host):\n  - CHAT_ID (secret "chat.id")\n  - CHATS (secret "chat", its member chat.id)',
    );
    expect(err.hint).toBe('quote it as a string, so that it is stored and given as typed: `ops secrets edit qa` and write it in double quotes (key: "..."), or set it again: printf \'%s\' VALUE | ops secrets set qa chat.id (always text)');
    expect(`${err.message}\n${err.hint}`).not.toMatch(/1234567890123456/);
    // a number typed with an exponent (1e20, exact as a float64: nothing was rounded) is given as sops gives it, as
    // any other float is: 1E+20 as a variable's whole value (sops exec-env, checked in 'YAML scalars typed without
    // quotes, in the .env'), 100000000000000000000 inside JSON (sops decrypt --output-type json: this file's
    // 'values taken whole'); a text no reader changes
    expect(holdsRoundedNumber(secrets.limit)).toBe(false);
    expect(renderDotenv(withEnv({ LIMIT: { secret: 'limit' } }), secrets).environ).toBe('LIMIT=1E+20\0');
    // integers within int64 and quoted text reach the .env as typed
    const ok = renderDotenv(withEnv({ EXACT: { secret: 'exact' }, QUOTED: { secret: 'quoted' } }), secrets);
    expect(ok.environ).toBe('EXACT=9223372036854775807\0QUOTED=123456789012345678901234\0');
  });

  it('a float typed past the 17th digit (here by the real sops, YAML and JSON stores: it encrypts the float\'s shortest digits, not the text) is refused by variable and key, never shown; a float of 15 digits or fewer reaches the .env as sops gives it', async () => {
    const e = await newEnv();
    const recipient = (await SecretsFile.open(e.secrets, { identities: await identitiesFromText(e.key) })).recipients[0]!;
    const base = loadEnvironment('qa', e.root);
    const withEnv = (env: Record<string, unknown>) => ({ ...base, config: { ...base.config, env } }) as typeof base;
    for (const [name, text] of [
      ['secrets.sops.yaml', 'pi: 3.14159265358979323846\nrate: {fee: 0.1234567890123456789}\nshort: 0.123456789012345\nhalf: 1.5\n'],
      ['secrets.sops.json', '{"pi": 3.14159265358979323846, "rate": {"fee": 0.1234567890123456789}, "short": 0.123456789012345, "half": 1.5}\n'],
    ] as const) {
      const plain = join(tempDir('ops-numbers-'), name);
      writeFileSync(plain, text);
      const enc = sops(['encrypt', '--age', recipient, plain], e.keyFile);
      expect(enc.err).toBe('');
      const file = join(tempDir('ops-numbers-'), name);
      writeFileSync(file, enc.out);
      // what sops itself gives: the float's digits, the typed ones past the 17th gone
      expect(sops(['decrypt', '--extract', '["pi"]', file], e.keyFile).out.trim()).toBe('3.141592653589793');
      const secrets = (await SecretsFile.open(file, { identities: await identitiesFromText(e.key) })).data;
      expect(holdsRoundedNumber(secrets.pi), name).toBe(true);
      expect(holdsRoundedNumber(secrets.rate), name).toBe(true);
      expect(holdsRoundedNumber([secrets.short, secrets.half, 0.1, 1e-7, 5e-324]), name).toBe(false);
      let err: unknown;
      try {
        renderDotenv(withEnv({ PI: { secret: 'pi' }, RATES: { secret: 'rate' }, SHORT: { secret: 'short' } }), secrets);
      } catch (x) {
        err = x;
      }
      expect(err, name).toBeInstanceOf(OpsError);
      expect((err as OpsError).message, name).toMatch(/^environments\/qa\/secrets\.sops\.yaml: 2 secrets the \.env needs hold a number with more digits than a floating-point number holds exactly \(over 15\).*\n {2}- PI \(secret "pi"\)\n {2}- RATES \(secret "rate", its member rate\.fee\)$/);
      expect(`${(err as OpsError).message}\n${(err as OpsError).hint}`).not.toMatch(/314159|1234567/);
      // (as sops exec-env gives floats: 'YAML scalars typed without quotes, in the .env')
      expect(renderDotenv(withEnv({ SHORT: { secret: 'short' }, HALF: { secret: 'half' } }), secrets).environ, name).toBe('SHORT=0.123456789012345\0HALF=1.5\0');
    }
  });

  it('an integer within 64 bits given to the real `sops set` (which stores every JSON number as a float64, rounding one of 17 digits) is refused too, the message saying so, not "typed beyond the 64-bit range"', async () => {
    const e = await newEnv();
    const recipient = (await SecretsFile.open(e.secrets, { identities: await identitiesFromText(e.key) })).recipients[0]!;
    const plain = join(tempDir('ops-numbers-'), 'secrets.sops.yaml');
    writeFileSync(plain, 'team: Zq8-vT3m-Lw5x-Pk2r\n');
    writeFileSync(e.secrets, sops(['encrypt', '--age', recipient, plain], e.keyFile).out);
    const set = sops(['set', e.secrets, '["chat_id"]', '12345678901234567'], e.keyFile);
    expect(set.err).toBe('');
    const base = loadEnvironment('qa', e.root);
    const secrets = await environmentSecrets({ root: e.root, reporter: new MemoryReporter(), processEnv: e.env }, base);
    expect(secrets.chat_id).toBe(12345678901234568); // what sops stored: the 17th digit rounded
    const env = { ...base, config: { ...base.config, env: { CHAT_ID: { secret: 'chat_id' } } } } as typeof base;
    const err = (() => {
      try {
        renderDotenv(env, secrets);
      } catch (x) {
        return x as OpsError;
      }
      throw new Error('not refused');
    })();
    expect(err.message).toContain('given to `sops set`');
    expect(err.message).not.toContain('holds an integer typed without quotes');
    expect(err.message).toContain('  - CHAT_ID (secret "chat_id")');
    expect(`${err.message}\n${err.hint}`).not.toMatch(/1234567890123456/);
  });

  it('secrets set of a new member in a map named whole, beside a rounded integer or a binary value already there: refused naming that member, said to be there already, the file unchanged', async () => {
    const e = await newEnv();
    const recipient = (await SecretsFile.open(e.secrets, { identities: await identitiesFromText(e.key) })).recipients[0]!;
    const config = join(e.root, 'environments', 'qa', 'environment.yml');
    writeFileSync(config, readFileSync(config, 'utf8').replace(/^env:\n/m, 'env:\n  CHATS: { secret: chat }\n'));
    for (const [member, plainText, expected] of [
      ['id', 'chat:\n    id: 123456789012345678901234\n', '  - CHATS (secret "chat", its member chat.id, already in the file before this change: every deploy already refuses it)'],
      ['cert', 'chat:\n    cert: !!binary /w==\n', 'the secret "chat.cert" is a binary value (YAML !!binary: bytes that are not UTF-8 text); binary values are not supported in the .env (CHATS, which takes the map "chat" whole) (already in the file before this change: every deploy already refuses it; nothing was written: environments/qa/secrets.sops.yaml is unchanged)'],
    ] as const) {
      const plain = join(tempDir('ops-numbers-'), 'secrets.sops.yaml');
      writeFileSync(plain, plainText);
      const enc = sops(['encrypt', '--age', recipient, plain], e.keyFile);
      expect(enc.err).toBe('');
      writeFileSync(e.secrets, enc.out);
      const r = await cli(e.root, ['secrets', 'set', 'qa', 'chat.name'], e.env, 'team-chat-name-4f9a');
      expect(r.code, member).toBe(2);
      expect(r.err).toContain(expected);
      expect(r.err).not.toMatch(/1234567890123456|team-chat/);
      expect(readFileSync(e.secrets, 'utf8')).toBe(enc.out);
    }
  });
});

describe('the key path a refusal gives is one ops secrets set takes', () => {
  it('a member whose key holds a space, a colon, a bracket or a quote (a map keyed by names or host:port) is named quoted, and the command of the hint, run as given, fixes it', async () => {
    const e = await newEnv();
    const recipient = (await SecretsFile.open(e.secrets, { identities: await identitiesFromText(e.key) })).recipients[0]!;
    const config = join(e.root, 'environments', 'qa', 'environment.yml');
    writeFileSync(config, readFileSync(config, 'utf8').replace(/^env:\n/m, 'env:\n  CHATS: { secret: chat }\n'));
    for (const [key, spelled] of [
      ['team room', '\'chat."team room"\''],
      ['db:5432', '\'chat."db:5432"\''],
      ['ids[0]', '\'chat."ids[0]"\''],
      ['a"b', '\'chat.a"b\''], // a quote inside: no quotes needed (a leading one would open a quoted key)
      // a quote where the key needs quotes (a space, a leading quote): written \" inside them, a backslash \\
      ['Dwayne "The Rock" Johnson', '\'chat."Dwayne \\"The Rock\\" Johnson"\''],
      ['"quoted"', '\'chat."\\"quoted\\""\''],
      ['C:\\dir "x"', '\'chat."C:\\\\dir \\"x\\""\''],
    ] as const) {
      const plain = join(tempDir('ops-numbers-'), 'secrets.sops.yaml');
      writeFileSync(plain, `chat:\n    ${JSON.stringify(key)}: 123456789012345678901234\n`);
      const enc = sops(['encrypt', '--age', recipient, plain], e.keyFile);
      expect(enc.err).toBe('');
      writeFileSync(e.secrets, enc.out);
      const base = loadEnvironment('qa', e.root);
      const secrets = await environmentSecrets({ root: e.root, reporter: new MemoryReporter(), processEnv: e.env }, base);
      const only = { ...base, config: { ...base.config, env: { CHATS: { secret: 'chat' } } } } as typeof base;
      const err = (() => {
        try {
          renderDotenv(only, secrets);
        } catch (x) {
          return x as OpsError;
        }
        throw new Error('not refused');
      })();
      expect(err.hint, key).toContain(`printf '%s' VALUE | ops secrets set qa ${spelled} (always text)`);
      // the hint's command, as given (the shell's single quotes taken off)
      const r = await cli(e.root, ['secrets', 'set', 'qa', spelled.slice(1, -1)], e.env, '123456789012345678901234');
      expect(r.err, key).toBe('');
      expect(r.code).toBe(0);
      const fixed = await environmentSecrets({ root: e.root, reporter: new MemoryReporter(), processEnv: e.env }, base);
      expect(JSON.parse(renderDotenv(only, fixed).environ.slice('CHATS='.length, -1))).toEqual({ [key]: '123456789012345678901234' });
    }
  });
});

describe('the ops secrets commands a hint gives are shell-quoted: the shell hands ops the key path as written', () => {
  /** The words bash makes of `command` (its `ops` run as printf). */
  const words = (command: string): string[] => execFileSync('bash', ['-c', `ops() { printf '%s\\0' "$@"; }; ${command}`], { encoding: 'utf8' }).split('\0').slice(0, -1);

  it('a binary member of a map taken whole keyed with a space, and a key path typed quoted with no value piped', async () => {
    const e = await newEnv();
    const recipient = (await SecretsFile.open(e.secrets, { identities: await identitiesFromText(e.key) })).recipients[0]!;
    const plain = join(tempDir('ops-numbers-'), 'secrets.sops.yaml');
    writeFileSync(plain, 'chat:\n    "team room": !!binary /w==\n');
    const enc = sops(['encrypt', '--age', recipient, plain], e.keyFile);
    expect(enc.err).toBe('');
    writeFileSync(e.secrets, enc.out);
    const base = loadEnvironment('qa', e.root);
    const secrets = await environmentSecrets({ root: e.root, reporter: new MemoryReporter(), processEnv: e.env }, base);
    const hint = (() => {
      try {
        renderDotenv({ ...base, config: { ...base.config, env: { CHATS: { secret: 'chat' } } } } as typeof base, secrets);
      } catch (x) {
        return (x as OpsError).hint ?? '';
      }
      throw new Error('not refused');
    })();
    const pipeline = hint.slice(hint.indexOf('ops secrets show'));
    expect(words(pipeline.replace(/ \| base64 -w0 \| .*$/, ''))).toEqual(['secrets', 'show', 'qa', '--key', 'chat."team room"']);
    expect(words(pipeline.slice(pipeline.lastIndexOf('ops secrets set')))).toEqual(['secrets', 'set', 'qa', 'chat."team room"']);
    const r = await cli(e.root, ['secrets', 'set', 'qa', 'passwords."new@example.org"'], e.env, '');
    expect(r.code).toBe(2);
    const set = /\| (ops secrets set .*?); to store an empty value/.exec(r.err)![1]!;
    expect(words(set)).toEqual(['secrets', 'set', 'qa', 'passwords."new@example.org"']);
  });
});

describe('YAML whole floats', () => {
  it('a huge number typed in YAML (digits beyond the 64-bit range, or 1e20) is named for what happens to it: no "leading zeros" it does not have', () => {
    const retyped: Retyped[] = [];
    parseTree('big: 100000000000000000000\nlimit: 1e20\nzeros: 0123456789012345678901\n', 'yaml', { file: 'typed', retyped });
    const warning = retypedWarning(retyped, 'yaml', 'would not be');
    expect(warning).toContain('  big: typed as an integer beyond the 64-bit range, which sops stores as a floating-point number: digits past the 17th are rounded, and the app would get it as sops writes such a float (1E+20 for 100000000000000000000)');
    expect(warning).toContain('  limit: typed as a number with a fraction or an exponent, which sops stores as a floating-point number, given back in another form (its shortest digits: trailing zeros dropped, an exponent as sops writes it, 1E+20 for 1e20, digits past the 17th rounded)');
    expect(warning).toContain('  zeros: typed as digits with a leading 0, which sops reads as a floating-point number: leading zeros are dropped');
    expect(asString(1e20)).toBe('1E+20');
  });

  it('2.0 typed without quotes is a float that reaches the .env as typed (as sops exec-env gives it: 2.0, the int 2 as 2); 1e3 does not (1000.0): ops secrets edit names that one only', async () => {
    const retyped: Retyped[] = [];
    parseTree('whole: 2.0\nhalf: 1.5\ntiny: 1E-07\nint: 2\nexp: 1e3\n', 'yaml', { file: 'typed', retyped });
    expect(retyped).toEqual([{ path: ['exp'], type: 'float', typed: 'other' }]);
    const data = toPlain(parseTree('whole: 2.0\nint: 2\nexp: 1e3\n', 'yaml', { file: 'typed' }), 'dotenv') as Record<string, unknown>;
    expect([data.whole, data.int, data.exp].map(asString)).toEqual(['2.0', '2', '1000.0']);
  });

  it('a timestamp typed with a fraction of a second reaches the .env without it, as sops gives it: ops secrets edit names it and asks', () => {
    const retyped: Retyped[] = [];
    parseTree('ts: 2024-01-15T10:20:30Z\nfrac: 2024-01-15T10:20:30.25+02:00\nquoted: "2024-01-15T10:20:30.25Z"\n', 'yaml', { file: 'typed', retyped });
    expect(retyped).toEqual([{ path: ['frac'], type: 'time', typed: 'fraction' }]);
    expect(retypedWarning(retyped, 'yaml', 'would not be')).toContain('frac: sops reads what was typed as a timestamp, which the .env gets as sops\'s dotenv output gives it, without its fraction of a second');
  });

  it('a whole float already stored (shown as 2.0) is not asked about again when another value is edited', async () => {
    const { file, ids } = await secretsFile('whole: 2.0\ninf: .inf\nname: Zq8-vT3m-Lw5x-Pk2r\n', 'secrets.yaml');
    const warnings: string[] = [];
    const io: EditIo = {
      edit: async (tmp) => (writeFileSync(tmp, readFileSync(tmp, 'utf8').replace('Zq8-vT3m-Lw5x-Pk2r', 'Zq8-vT3m-Lw5x-Pk2s')), { code: 0, signal: null }),
      confirm: async () => false,
      warn: (m) => warnings.push(m),
    };
    const r = await editSecrets(await SecretsFile.open(file, { identities: ids }), io);
    expect(r).toEqual({ status: 'saved', changes: { added: [], removed: [], changed: ['name'] } });
    expect(warnings).toEqual([]);
  });
});

describe('YAML scalars typed without quotes, in the .env', () => {
  // go-yaml's types: YAML 1.1 and 1.2 ints (octal, hex, underscores, a sign), floats (an exponent, .inf, .nan, -0.0),
  // booleans, timestamps; and words that stay strings (yes, on, 190:20:30)
  const TYPED_YAML = [
    'inf: .inf', 'pinf: +.Inf', 'ninf: -.inf', 'nan: .nan', 'negzero: -0.0', 'octal12: 0o17', 'octal11: 0777', 'hex: 0x1F', 'under: 1_000', 'plus: +1',
    'bin: 0b101', 'small: 1e-7', 'neg_small: -2.5E-3', 'tiny: 0.00001', 'frac_big: 1234567.5', 'f3: 3.10', 'dot5: .5', 'yes_w: yes', 'on_w: on', 'off_w: off',
    'true_w: true', 'False_w: False', 'date: 2001-12-14', 'ts: 2024-01-15T10:20:30Z', 'ts_offset: 2024-01-15T10:20:30+02:00', 'sexa: 190:20:30',
    // a fraction of a second: kept by sops (json, yaml, --extract), dropped by its dotenv output and exec-env
    'ts_frac: 2024-01-15T10:20:30.5Z', 'ts_frac_tz: 2001-12-14t21:59:43.10-05:00', 'ts_frac_space: 2001-12-14 21:59:43.123456789', 'ts_frac_zeros: 2024-01-15T10:20:30.000Z',
    'int_big: 9223372036854775807', 'int_neg: -9223372036854775808',
  ];
  // whole floats: sops gives them with a ".0" (2.0, 1000.0 for 1e3, 8.0 for 08) or an exponent (1.5E+10; 1E+20,
  // beyond 2^53 but exact, no longer refused)
  const WHOLE = ['zero_f: 0.0', 'exp: 1e3', 'exp2: 1.5e10', 'f2: 2.0', 'dot: 1.', 'lead0: 08', 'hundred: 100.0', 'e20: 1e20'];

  it('each reaches the .env as `sops decrypt --output-type dotenv` gives it (+Inf, NaN, -0.0, 1E-07), a whole float too (2.0)', async () => {
    const key = ageKey();
    const plain = join(tempDir('ops-numbers-'), 'typed.yaml');
    writeFileSync(plain, [...TYPED_YAML, ...WHOLE].join('\n') + '\n');
    const enc = sops(['encrypt', '--age', key.recipient, plain], key.file);
    expect(enc.err).toBe('');
    const file = join(tempDir('ops-numbers-'), 'typed.enc.yaml');
    writeFileSync(file, enc.out);
    const theirs = sops(['decrypt', '--output-type', 'dotenv', file], key.file);
    expect(theirs.err).toBe('');
    const ours = await SecretsFile.open(file, { identities: await identitiesFromText(readFileSync(key.file, 'utf8')) });
    const lines = theirs.out.trimEnd().split('\n');
    expect(lines.map((l) => l.split('=')[0])).toEqual(Object.keys(ours.data));
    for (const line of lines) {
      const [k, v] = [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)];
      expect(asString(ours.data[k]), k).toBe(v);
    }
  });

  it('each reaches the app through the release .env (renderDotenv) exactly as `sops exec-env` gives it, at any depth, quoted text that reads as a number as typed; each is masked as that text', async () => {
    const key = ageKey();
    const dir = tempDir('ops-numbers-');
    const QUOTED = ['q_f2: "2.0"', "q_int: '42'", 'q_exp: "1e3"', 'q_true: "true"', 'q_null: "null"'];
    const typed = [...TYPED_YAML, ...WHOLE, ...QUOTED];
    const encrypt = (name: string, text: string) => {
      writeFileSync(join(dir, name), text);
      const enc = sops(['encrypt', '--age', key.recipient, join(dir, name)], key.file);
      expect(enc.err).toBe('');
      writeFileSync(join(dir, `enc.${name}`), enc.out);
      return join(dir, `enc.${name}`);
    };
    // the real sops gives a command its variables (only top-level scalars: it refuses a map or list)
    const flat = encrypt('flat.yaml', typed.join('\n') + '\n');
    const run = sops(['exec-env', '--pristine', flat, 'env -0'], key.file);
    expect(run.err).toBe('');
    const theirs = new Map(run.out.split('\0').map((r) => [r.slice(0, r.indexOf('=')), r.slice(r.indexOf('=') + 1)]));
    const keys = typed.map((t) => t.slice(0, t.indexOf(':')));
    // ops: each as a variable of its own, and each again as a member of a map (`{ secret: m.<key> }`), which sops
    // gives its text by the same rule (stores.ValToString)
    const nested = encrypt('nested.yaml', `m:\n${typed.map((t) => `    ${t}\n`).join('')}`);
    for (const [file, path] of [[flat, (k: string) => k], [nested, (k: string) => `m.${k}`]] as const) {
      const masked: string[] = [];
      const ours = await SecretsFile.open(file, { identities: await identitiesFromText(readFileSync(key.file, 'utf8')), mask: (v) => masked.push(v) });
      const { environ } = renderDotenv(environment(Object.fromEntries(keys.map((k) => [`V_${k}`, { secret: path(k) }]))), ours.data);
      const given = new Map(environ.split('\0').filter(Boolean).map((r) => [r.slice(2, r.indexOf('=')), r.slice(r.indexOf('=') + 1)]));
      for (const k of keys) expect(given.get(k), path(k)).toBe(theirs.get(k));
      // masked as the app gets it (a boolean is not masked: one bit)
      for (const k of keys) if (!/^(true|false)$/i.test(theirs.get(k)!) || k.startsWith('q_')) expect(masked, path(k)).toContain(theirs.get(k));
    }
    expect([theirs.get('f2'), theirs.get('exp'), theirs.get('exp2'), theirs.get('q_f2'), theirs.get('e20')]).toEqual(['2.0', '1000.0', '1.5E+10', '2.0', '1E+20']);
  });
});

describe('ops secrets show --key of a float', () => {
  it('prints it as the .env gives it (+Inf, -0.0, 1E-07, 2.0), not as JavaScript writes it (Infinity, 0, 1e-7, 2)', async () => {
    const e = await newEnv();
    const file = await SecretsFile.open(e.secrets, { identities: await identitiesFromText(e.key) });
    for (const [k, v] of [['inf', Infinity], ['negzero', -0], ['tiny', 1e-7], ['half', 0.5], ['whole', 2]] as const) file.set([k], { kind: 'scalar', type: 'float', value: v });
    file.set(['int'], { kind: 'scalar', type: 'int', value: 2 });
    await file.save();
    for (const [k, shown] of [['inf', '+Inf'], ['negzero', '-0.0'], ['tiny', '1E-07'], ['half', '0.5'], ['whole', '2.0'], ['int', '2']]) expect((await cli(e.root, ['secrets', 'show', 'qa', '--key', k!], e.env)).out, k).toBe(shown);
  });
});

describe('numbers inside a map or list the .env takes whole (as JSON)', () => {
  it('reach the app as `sops decrypt --output-type json` gives them: the text sops encrypted (a float\'s shortest digits; -0.0 keeps its sign), not the text typed, which no sops file holds', async () => {
    const key = ageKey();
    const plain = join(tempDir('ops-numbers-'), 'm.yaml');
    const members = ['whole: 2.0', 'exp: 1e3', 'tenth: 0.10', 'tiny: 1e-7', 'huge: 1.5e300', 'negzero: -0.0', 'half: -1.5', 'int: 7'];
    writeFileSync(plain, `m:\n${members.map((m) => `    ${m}\n`).join('')}l: [2.0, -0.0, 0.10]\n`);
    const enc = sops(['encrypt', '--age', key.recipient, plain], key.file);
    expect(enc.err).toBe('');
    const file = join(tempDir('ops-numbers-'), 'm.enc.yaml');
    writeFileSync(file, enc.out);
    // what sops encrypted for 2.0 is the one byte "2" (Go's strconv.FormatFloat 'f' -1): the typed text is gone from the file
    expect(/whole: ENC\[AES256_GCM,data:([^,]*),/.exec(enc.out)![1]).toHaveLength(4);
    const ours = await SecretsFile.open(file, { identities: await identitiesFromText(readFileSync(key.file, 'utf8')) });
    for (const k of ['m', 'l']) {
      const theirs = sops(['decrypt', '--extract', `["${k}"]`, '--output-type', 'json', file], key.file);
      expect(theirs.err).toBe('');
      // sops indents its JSON; the .env has it compact (the same text but for white space, which no member holds)
      expect(asString(ours.data[k]), k).toBe(theirs.out.replace(/\s+/g, ''));
    }
  });
});

describe('values taken whole: a map or list the .env takes as JSON', () => {
  // every scalar kind sops holds, at several depths: ints (beyond 2^53, int64's ends, negative), floats (whole,
  // fractional, exponents on both sides of Go's and ECMAScript's 1e-6 and 1e21, 1e20 beyond 2^53 but exact, -0.0),
  // booleans in the forms go-yaml reads, null, timestamps with and without fractions and zones (and a date),
  // strings with Unicode, control characters, <>&, U+2028/U+2029, quotes, $ and backslashes, !!binary that is text
  const MEMBERS = [
    'i: 42', 'ineg: -7', 'i53: 9007199254740993', 'i64: 9223372036854775807', 'i64min: -9223372036854775808', 'e20: 1e20', 'e21: 1e21', 'negbig: -1.5e300',
    'whole: 2.0', 'frac: 0.1', 'tiny: 1e-7', 'small: 0.000001', 'negzero: -0.0', 'b1: true', 'b2: False', 'b3: TRUE', 'n: null', 'n2: ~',
    't1: 2024-01-15T10:20:30Z', 't2: 2024-01-15T10:20:30.5Z', 't3: 2001-12-14t21:59:43.10-05:00', 't4: 2001-12-14 21:59:43.123456789', 't5: 2001-12-14',
    's1: "héllo ✓ 😀"', 's2: "a\\x01b\\x7fc\\bd\\fe\\tf\\ng\\rh\\e"', `s3: "<a href='x'>&amp;</a>"`, 's4: "x\\u2028y\\u2029z"', `s5: 'back\\slash "q" $HOME \`t\` it''s'`, 'bin: !!binary aGVsbG8=',
  ];
  const YAML_TEXT = `m:\n${MEMBERS.map((m) => `    ${m}\n`).join('')}    sub:\n        t: 2024-01-15T10:20:30.25+02:00\n        f: 1.0e-7\n    list: [1, 2.5, {k: [x, {t: 2024-01-15T10:20:30.000000001Z, e: 1e20}]}, [true, null]]\n`;
  /** sops's JSON without its indentation (white space outside strings), as the .env has it compact. */
  const compact = (json: string) => json.replace(/("(?:[^"\\]|\\[\s\S])*")|\s+/g, (_, str?: string) => str ?? '');

  it('each reaches the app byte for byte as `sops decrypt --output-type json` writes that member (a timestamp keeps its fraction, 1e20 is 100000000000000000000, <>& and U+2028 as Go escapes them), but for \' ` \\ $, which the .env writes as \\u escapes, the same JSON; every reader reads that text; each text is masked', async () => {
    const key = ageKey();
    const dir = tempDir('ops-whole-');
    writeFileSync(join(dir, 'p.yaml'), YAML_TEXT);
    const enc = sops(['encrypt', '--age', key.recipient, join(dir, 'p.yaml')], key.file);
    expect(enc.err).toBe('');
    const file = join(dir, 'e.yaml');
    writeFileSync(file, enc.out);
    const masked: string[] = [];
    const ours = await SecretsFile.open(file, { identities: await identitiesFromText(readFileSync(key.file, 'utf8')), mask: (v) => masked.push(v) });
    const vars = { M: ['m'], SUB: ['m', 'sub'], LIST: ['m', 'list'] };
    const { dotenv, environ, forms } = renderDotenv(environment(Object.fromEntries(Object.entries(vars).map(([k, p]) => [k, { secret: p.join('.') }])), [...READERS]), ours.data);
    const given = new Map(environ.split('\0').filter(Boolean).map((r) => [r.slice(0, r.indexOf('=')), r.slice(r.indexOf('=') + 1)]));
    for (const [name, path] of Object.entries(vars)) {
      const theirs = sops(['decrypt', '--extract', path.map((k) => `["${k}"]`).join(''), '--output-type', 'json', file], key.file);
      expect(theirs.err).toBe('');
      // the four characters the .env writes as \u escapes (dotenvJsonEscaped; NEL too, which these values do not hold), as sops would have them
      const expected = compact(theirs.out).replace(/\\[\s\S]|['`$]/g, (m) => (m === '\\\\' ? '\\u005c' : m.length === 1 ? `\\u00${m.charCodeAt(0).toString(16)}` : m));
      expect(given.get(name), name).toBe(expected);
      expect(JSON.parse(given.get(name)!), name).toEqual(JSON.parse(theirs.out));
    }
    expect(given.get('M')).toContain('"t2":"2024-01-15T10:20:30.5Z"');
    expect(given.get('M')).toContain('"e20":100000000000000000000,');
    expect(given.get('M')).toContain('"s3":"\\u003ca href=\\u0027x\\u0027\\u003e\\u0026amp;\\u003c/a\\u003e"');
    // the app reads that text, with every reader (each in the quoting the .env chose for all of them)
    const { dir: envDir, remove } = dotenvDir(dotenv);
    try {
      for (const reader of READERS)
        for (const { how, values } of await readReal(reader, envDir, Object.keys(vars))) for (const name of Object.keys(vars)) expect(values[name], `${how}: ${name} (${forms[name]})`).toBe(given.get(name));
    } finally {
      remove();
    }
    // masked in the text the app gets: a number's and a timestamp's JSON text, and (the reporter's secretParts) a string's
    for (const text of ['2024-01-15T10:20:30.5Z', '2024-01-15T10:20:30.25+02:00', '2024-01-15T10:20:30.000000001Z', '100000000000000000000', '-1.5e+300', '9223372036854775807']) expect(masked, text).toContain(text);
    const parts = masked.flatMap((m) => secretParts(m));
    const strings = [...given.get('M')!.matchAll(/:"((?:[^"\\]|\\[\s\S])*)"/g)].map((m) => m[1]!).filter((t) => t.length >= 8);
    expect(strings.length).toBe(12); // s1-s5 and the seven timestamps
    for (const str of strings) expect(parts, str).toContain(str);
  });
});

describe('.inf and .nan in a map the .env takes whole (as JSON)', () => {
  it('are refused by member, never written as null; the float on its own is written as sops gives it (+Inf)', () => {
    const data = toPlain(parseTree('inf: .inf\nlimits:\n  max: .inf\n  n: 1\nlist: [1, .nan]\n', 'yaml', { file: 'typed' }));
    expect(renderDotenv(environment({ INF: { secret: 'inf' } }), data).environ).toBe('INF=+Inf\0');
    expect(() => renderDotenv(environment({ LIMITS: { secret: 'limits' } }), data)).toThrow(
      'the secret "limits.max" holds .inf, -.inf or .nan, typed without quotes, inside "limits", which the .env (LIMITS) takes whole as JSON: JSON has no text for such a float (it would be null)',
    );
    expect(() => renderDotenv(environment({ LIST: { secret: 'list' } }), data)).toThrow(/^the secret "list" holds \.inf/);
    // ops secrets set/edit refuse it as they store it, saying what was left as it was
    expect(() => refuseUnreadableSecrets(environment({ LIMITS: { secret: 'limits' } }), {}, data)).toThrow(/^the secret "limits\.max" holds .*\(nothing was written: .* is unchanged\)$/);
  });
});

describe('a YAML integer within uint64 but above int64', () => {
  it('is refused as the real sops refuses it ("unknown type: uint64"), by key, never showing the value', () => {
    const key = ageKey();
    const plain = join(tempDir('ops-numbers-'), 'u.yaml');
    writeFileSync(plain, 'u: 12345678901234567890\n');
    expect(sops(['encrypt', '--age', key.recipient, plain], key.file).err).toContain('unknown type: uint64');
    let message = '';
    try {
      parseTree('u: 12345678901234567890\n', 'yaml', { file: 'the edited text', retyped: [] });
    } catch (e) {
      message = (e as Error).message;
    }
    expect(message).toBe('the edited text: u: an integer typed without quotes above the 64-bit signed range, which sops cannot encrypt (it reads it as a uint64)');
  });
});
