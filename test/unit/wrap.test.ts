import { describe, expect, it } from 'vitest';
import { commandLine, scriptText } from '../../core/remote/wrap.ts';
import { parseReports } from '../../core/remote/types.ts';

describe('step wrapping', () => {
  const step = { name: 's', script: 'echo hi', timeout: 30 } as const;
  it('runs login steps as the login, root steps through sudo unless the login is root, app steps as the app user', () => {
    expect(commandLine({ ...step, as: 'login' }, 'deploy', 'shop')).toBe('timeout -k 10 30 bash -s');
    expect(commandLine({ ...step, as: 'root' }, 'deploy', 'shop')).toBe('sudo -n -H -- timeout -k 10 30 bash -s');
    expect(commandLine({ ...step, as: 'root' }, 'root', 'shop')).toBe('timeout -k 10 30 bash -s');
    expect(commandLine({ ...step, as: 'app' }, 'root', 'shop')).toBe('sudo -n -H -u shop -- timeout -k 10 30 bash -s');
  });
  it('sends the script on stdin after the strict prelude', () => {
    const text = scriptText({ ...step, as: 'login' });
    expect(text.startsWith('set -euo pipefail\n')).toBe(true);
    expect(text.endsWith('echo hi\n')).toBe(true);
  });
  it('parses @ops report lines only', () => {
    expect(parseReports('x\n@ops a 1\n@ops b two words\n@opsx no\n@ops flag')).toEqual([
      ['a', '1'],
      ['b', 'two words'],
      ['flag', ''],
    ]);
  });
});
