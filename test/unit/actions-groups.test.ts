// The job log's groups (ActionsReporter.group, through @actions/core's workflow commands): Actions groups cannot
// nest, so a step run beside another becomes a heading; a step that starts after the grouped one ended gets a
// group of its own even while a concurrent step still runs (a deploy's Python set beside its node set, then the
// build): before, the build stayed ungrouped for as long as the Python set ran. The terminal's groups
// (ConsoleReporter): steps run at once are siblings, not nested in each other by the order they started.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { PassThrough } from 'node:stream';
import { ActionsReporter } from '../../core/action.ts';
import { ConsoleReporter } from '../../core/report.ts';

afterEach(() => vi.restoreAllMocks());

/** Run `fn` with a fresh reporter; the workflow-command lines written to stdout. */
async function log(fn: (r: ActionsReporter) => Promise<void>): Promise<string[]> {
  const written: string[] = [];
  vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    written.push(String(chunk));
    return true;
  });
  await fn(new ActionsReporter());
  return written.join('').split('\n').filter((l) => l.startsWith('::') || l.startsWith('▸'));
}

/** A promise and its resolver. */
function gate(): { wait: Promise<void>; open: () => void } {
  let open = () => {};
  const wait = new Promise<void>((resolve) => (open = resolve));
  return { wait, open };
}

describe('job log groups', () => {
  it('node set grouped, Python set beside it a heading, then the build grouped while the Python set still runs', async () => {
    const lines = await log(async (r) => {
      const nodeDone = gate();
      const pythonDone = gate();
      const node = r.group('h · node dependencies', () => nodeDone.wait);
      const python = r.group('h · python dependencies', () => pythonDone.wait);
      nodeDone.open();
      await node;
      await r.group('h · build', async () => {});
      pythonDone.open();
      await python;
      await r.group('h · migrate', async () => {});
    });
    expect(lines).toEqual(['::group::h · node dependencies', '▸ h · python dependencies', '::endgroup::', '::group::h · build', '::endgroup::', '::group::h · migrate', '::endgroup::']);
  });

  it('a group inside a group is a heading', async () => {
    const lines = await log((r) => r.group('outer', () => r.group('inner', async () => {})));
    expect(lines).toEqual(['::group::outer', '▸ inner', '::endgroup::']);
  });
});

describe('terminal groups', () => {
  it('steps run at once are siblings (each ends at its own depth); remote lines indented once; a group started by a group\'s own work is nested', async () => {
    const out = new PassThrough();
    let text = '';
    out.on('data', (c) => (text += String(c)));
    const r = new ConsoleReporter(out, out, { color: false });
    const nodeDone = gate();
    const pythonDone = gate();
    const node = r.group('h · node dependencies', () => nodeDone.wait);
    const python = r.group('h · python dependencies', () => pythonDone.wait);
    r.line('h', '[python dependencies] Resolved 12 packages', 'stdout'); // from the connection, outside any group's flow
    nodeDone.open();
    await node;
    const build = r.group('h · build', async () => {
      r.info('building');
      await r.group('inner', async () => r.info('deeper'));
    });
    await build;
    pythonDone.open();
    await python;
    r.info('done');
    expect(text.split('\n').map((l) => l.replace(/\(\d+\.\ds\)/, '(t)'))).toEqual([
      '▸ h · node dependencies',
      '▸ h · python dependencies',
      '  h [python dependencies] Resolved 12 packages',
      '✓ h · node dependencies (t)',
      '▸ h · build',
      '  building',
      '  ▸ inner',
      '    deeper',
      '  ✓ inner (t)',
      '✓ h · build (t)',
      '✓ h · python dependencies (t)',
      'done',
      '',
    ]);
  });
});
