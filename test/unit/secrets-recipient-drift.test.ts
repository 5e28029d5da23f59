// A recipient taken out of .sops.yaml by hand (a leaked key, a colleague gone), then `ops secrets rotate`, `set` or
// `edit`: each file keeps its own recipients (as sops does), so the key taken out still decrypts the new values.
// Said by each of them, naming the key and the command that applies .sops.yaml.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ageKey, cli, editor, newEnv } from './secrets.helpers.ts';

describe('a recipient taken out of .sops.yaml', () => {
  it('rotate, set and edit say the files still are encrypted to it, and how to apply .sops.yaml; sync does, after which none says so', async () => {
    const e = await newEnv();
    const gone = ageKey();
    expect((await cli(e.root, ['secrets', 'recipients', 'qa', 'add', gone.recipient], e.env)).code).toBe(0);
    const rules = join(e.root, '.sops.yaml');
    // taken out by hand, as a person edits the file
    writeFileSync(rules, readFileSync(rules, 'utf8').replace(new RegExp(`,?${gone.recipient}`), ''));
    expect(readFileSync(rules, 'utf8')).not.toContain(gone.recipient);
    const said = new RegExp(`still encrypted to ${gone.recipient}, which \\.sops\\.yaml no longer lists .*ops secrets recipients qa sync`);
    const rotate = await cli(e.root, ['secrets', 'rotate', 'qa'], e.env);
    expect(rotate.code).toBe(0);
    expect(rotate.err).toMatch(said);
    expect(rotate.err).toContain('a rotate keeps each file');
    const set = await cli(e.root, ['secrets', 'set', 'qa', 'datapass_client_id'], e.env, 'Zq7-client-id-value');
    expect(set.code).toBe(0);
    expect(set.err).toMatch(said);
    const ed = editor("sed -i 's/^datapass_client_id: .*/datapass_client_id: Zq7-client-id-other/' \"$1\"");
    const edit = await cli(e.root, ['secrets', 'edit', 'qa'], { ...e.env, EDITOR: ed.cmd });
    expect(edit.code).toBe(0);
    expect(edit.err).toMatch(said);
    expect((await cli(e.root, ['secrets', 'recipients', 'qa', 'sync'], e.env)).code).toBe(0);
    const again = await cli(e.root, ['secrets', 'set', 'qa', 'datapass_client_id'], e.env, 'Zq7-client-id-third');
    expect(again.err).not.toMatch(/no longer lists/);
    expect(readFileSync(e.secrets, 'utf8')).not.toContain(gone.recipient);
  });
});
