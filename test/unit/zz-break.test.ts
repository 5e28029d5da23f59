import { writeFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { it, expect } from 'vitest';
import { loadEnvironment } from '../../core/config/environment.ts';
import { renderDotenv } from '../../core/dotenv.ts';
import { readReal } from '../support/real-dotenv.ts';
import { cli, newEnv, open, tempDir } from './secrets.helpers.ts';
const VALUES = ['pa$$w0rd', '${VAR}', 'a$$b', '\\$HOME', '\\n', 'line\nbreak', `'"\``, ' # x', 'a #b', '  lead', 'trail  ', 'nb\u00a0sp', '😀', '', 'x'.repeat(5000), '123', '0x1F', 'true', 'null', '~', '2024-01-01', '1e20', '-0', '.inf', 'yes', 'on', '0o17', '1_000', '@x', '- x', '? x', ': x', '{a}', '[a]', '*a', '&a', '!a', '%a', '|', '>', '"q"', "'q'", 'a: b', '#c', 'tab\tx', '\r\n', 'x\r', '\ufeffbom', 'é', 'a\\', '\u2028', '\x85', '\x7f', '\x1b[31m'];
it('break', async () => {
  const e = await newEnv();
  const config = join(e.root, 'environments', 'qa', 'environment.yml');
  writeFileSync(config, readFileSync(config, 'utf8').replace(/^env:\n/m, 'env:\n  BRK: { secret: brk }\n  BRK_MAP: { secret: m }\n'));
  const bad: string[] = [];
  for (const v of VALUES) {
    const r = await cli(e.root, ['secrets', 'set', 'qa', 'brk'], e.env, v);
    const r2 = await cli(e.root, ['secrets', 'set', 'qa', 'm."k.e-y"'], e.env, v);
    if (r.code !== 0 || r2.code !== 0) { console.log('refused', JSON.stringify(v), r.err.split('\n')[0], r2.err.split('\n')[0]); if (r.err.includes(v) && v.length > 3) bad.push('printed ' + JSON.stringify(v)); continue; }
    const env = loadEnvironment('qa', e.root);
    const data = (await open(e)).data as Record<string, unknown>;
    if (data.brk !== v) bad.push(`stored ${JSON.stringify(v)} as ${JSON.stringify(data.brk)}`);
    const out = renderDotenv(env, data);
    const dir = tempDir();
    writeFileSync(join(dir, '.env'), out.dotenv);
    for (const reader of new Set(env.config.dotenv.readers.map((x) => (typeof x === 'string' ? x : x.reader)))) {
      if (reader === 'vite') continue;
      for (const { how, values } of await readReal(reader, dir, ['BRK', 'BRK_MAP'])) {
        if (values.BRK !== v) bad.push(`${how}: ${JSON.stringify(v)} -> ${JSON.stringify(values.BRK)}`);
        try { if (JSON.parse(values.BRK_MAP as string)['k.e-y'] !== v) bad.push(`${how} map: ${JSON.stringify(v)} -> ${values.BRK_MAP}`); } catch { bad.push(`${how} map unparsable ${JSON.stringify(v)}`); }
      }
    }
  }
  expect(bad).toEqual([]);
}, 300_000);
