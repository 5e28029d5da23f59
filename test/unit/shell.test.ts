import { describe, expect, it } from 'vitest';
import { OpsError } from '../../core/errors.ts';
import { cmd, isValid, quote, validate } from '../../core/shell.ts';

describe('quote', () => {
  it('leaves plain words alone and single-quotes the rest', () => {
    expect(quote('v1.2/x')).toBe('v1.2/x');
    expect(quote('a b')).toBe("'a b'");
    expect(quote("it's")).toBe(`'it'\\''s'`);
    expect(quote('')).toBe("''");
    expect(cmd('echo', '$(id)', '`x`')).toBe("echo '$(id)' '`x`'");
  });
});

describe('validate', () => {
  const bad = ['; rm -rf /', '$(id)', '`id`', 'a\nb', 'with space', '-delete', 'a..b', 'x;y', 'a|b', '', 'a/', 'a.lock'];
  it.each(bad)('refuses the git ref %j with the expected form', (ref) => {
    expect(() => validate('gitRef', ref)).toThrow(/invalid git ref .*expected a branch, tag or commit sha/);
  });
  it.each(['master', 'v1', 'feature/login-form', 'release-2.3', 'a1b2c3d', 'users/jo+test'])('accepts %j', (ref) => {
    expect(validate('gitRef', ref)).toBe(ref);
  });
  it('checks environment names', () => {
    expect(validate('environment', 'prod')).toBe('prod');
    expect(() => validate('environment', '../etc')).toThrow(/invalid environment name/);
    expect(() => validate('environment', 'Prod')).toThrow(/lower-case/);
    // A rule the pattern holds is said in the message: a name one character too long is told its limit.
    expect(() => validate('environment', 'a'.repeat(41))).toThrow(/at most 40 characters/);
    expect(() => validate('name', 'a'.repeat(41))).toThrow(/at most 40 characters/);
    expect(() => validate('gitRef', 'release.lock')).toThrow('not ending in "/", "." or ".lock"');
    expect(() => validate('gitRef', 'a'.repeat(201))).toThrow(/at most 200 characters/);
    // status.yml's GitHub environment of env prod is prod-status: no environment may take that name.
    expect(() => validate('environment', 'prod-status')).toThrow('invalid environment name "prod-status": a name ending in "-status" is refused');
    expect(isValid('environment', 'prod-status')).toBe(false);
    expect(validate('environment', 'status')).toBe('status');
    expect(validate('environment', 'prod-statuses')).toBe('prod-statuses');
  });
  it('says what to give instead (a hint), for a revision expression and a name pasted with white space too', () => {
    const hint = (kind: Parameters<typeof validate>[0], v: string) => {
      try {
        validate(kind, v);
      } catch (e) {
        return (e as OpsError).hint;
      }
    };
    expect(hint('gitRef', 'HEAD~1')).toBe("a revision expression is not deployed as such: give the commit it names (its sha: git rev-parse 'HEAD~1')");
    expect(hint('gitRef', 'v2^{}')).toContain("git rev-parse 'v2^{}'");
    expect(hint('gitRef', 'main@{1}')).toContain('a revision expression');
    expect(hint('gitRef', ':/fix login')).toBe("a revision expression is not deployed as such: give the commit it names (its sha: git rev-parse ':/fix login')");
    expect(hint('gitRef', ' v1')).toBe('remove the white space around "v1" (copied with it?)');
    // any kind: white space around a valid value is said as that (a release id, an environment pasted with a space)
    expect(hint('release', '20260101T000000Z-0123456 ')).toBe('remove the white space around "20260101T000000Z-0123456" (copied with it?)');
    expect(hint('environment', ' qa')).toBe('remove the white space around "qa" (copied with it?)');
    expect(hint('environment', 'x-status ')).not.toContain('white space');
    expect(hint('gitRef', 'a..b')).toContain('git branch -a, git tag');
    // a branch name git allows with other characters (a workflow_dispatch ref input): deployed by its sha
    expect(hint('gitRef', 'feat/été')).toBe("git allows this name, ops takes refs of ASCII letters, digits and . _ / + - only: give its commit instead (its sha: git rev-parse 'feat/été')");
    expect(hint('gitRef', 'fix#12')).toContain("git rev-parse 'fix#12'");
    expect(hint('gitRef', 'a b')).toContain('git branch -a, git tag');
    expect(hint('environment', 'Prod')).toContain('its folder under environments/');
    expect(hint('release', 'latest')).toContain('ops releases <env>');
    // the environment named where the command is for one (rollback --to)
    expect(
      ((): string | undefined => {
        try {
          validate('release', 'latest', undefined, { env: 'qa' });
        } catch (e) {
          return (e as OpsError).hint;
        }
      })(),
    ).toBe('copy the id from `ops releases qa`');
  });
  it('checks release ids', () => {
    expect(validate('release', '20261125T134501Z-a1b2c3d4e5f6')).toBeTruthy();
    expect(() => validate('release', '../../etc')).toThrow(/invalid release id/);
  });
});
