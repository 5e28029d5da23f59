// Text from outside ops (an app's log line, a commit subject, a host's output, an audit entry) holding a terminal
// escape sequence: shown as visible text (showControls: `\x1b`, `\x07`), never sent raw to the terminal or the job
// log, where "ESC]0;… BEL" sets the terminal's title and "ESC[2J" clears the screen; ops's own colours stay. In a
// GitHub Actions log, a line starting with "::" is not acted on as a workflow command.
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { micromark } from 'micromark';
import { gfm, gfmHtml } from 'micromark-extension-gfm';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { stringify } from 'yaml';
import { ActionsReporter } from '../../core/action.ts';
import { OpsError, showControls } from '../../core/errors.ts';
import { RecordingRemote } from '../../core/remote/recording.ts';
import type { RunOptions, Step, StepResult } from '../../core/remote/types.ts';
import { ConsoleReporter, MemoryReporter, codeBlock, maskedMarkdown, mdCode, mdLink, mdText, own } from '../../core/report.ts';
import { skippedComment } from '../../core/staging/messages.ts';
import { command, JSON_OPTION, printResult, runCli } from '../../scripts/cli.ts';
import { allCommands } from '../../scripts/commands/index.ts';
import { runOps } from '../support/cli.ts';

afterEach(() => vi.restoreAllMocks());

const HOSTILE = 'started \x1b]0;pwned\x07\x1b[2J version 13';
const SHOWN = 'started \\x1b]0;pwned\\x07\\x1b[2J version 13';
const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGMlwndpHfcJQv6XulbWIzLhQ4E5MouOGQOkSV2DMD9P';

function collect(): { stream: PassThrough; text: () => string } {
  const stream = new PassThrough();
  let text = '';
  stream.on('data', (c: Buffer) => (text += c));
  return { stream, text: () => text };
}

describe('showControls', () => {
  it('shows C0 and C1 control characters and DEL as \\xHH; keeps tab, newline and text; drops a CR before a newline only', () => {
    expect(showControls(HOSTILE)).toBe(SHOWN);
    expect(showControls('a\tb\nc\u0000d\u007fe\u009bf\u0085g')).toBe('a\tb\nc\\x00d\\x7fe\\x9bf\\x85g');
    expect(showControls('line\r\nnext\rover')).toBe('line\nnext\\x0dover');
    expect(showControls('héllo — 日本 ✓')).toBe('héllo — 日本 ✓');
  });
});

describe('the terminal reporter', () => {
  it("shows a remote line's, a message's and a group title's escapes as text; its own colours stay", () => {
    const out = collect();
    const err = collect();
    const r = new ConsoleReporter(out.stream, err.stream, { color: true });
    r.line('web1', HOSTILE, 'stdout');
    r.info(`plan: ${HOSTILE}`);
    r.warn(HOSTILE);
    expect(out.text()).toBe(`\x1b[36mweb1\x1b[0m ${SHOWN}\nplan: ${SHOWN}\n`);
    expect(err.text()).toBe(`\x1b[33mwarning: ${SHOWN}\x1b[0m\n`);
  });
});

describe('colours', () => {
  it('go to a stream that is a terminal, per stream (stderr to a file: none there), and nowhere with NO_COLOR or TERM=dumb', () => {
    const tty = () => {
      const c = collect();
      Object.assign(c.stream, { isTTY: true });
      return c;
    };
    const said = (out: ReturnType<typeof collect>, err: ReturnType<typeof collect>) => {
      const r = new ConsoleReporter(out.stream, err.stream);
      r.line('web1', 'up', 'stdout');
      r.warn('slow');
      return [out.text(), err.text()];
    };
    vi.stubEnv('NO_COLOR', '');
    vi.stubEnv('TERM', 'xterm');
    expect(said(tty(), collect())).toEqual(['\x1b[36mweb1\x1b[0m up\n', 'warning: slow\n']);
    expect(said(collect(), tty())).toEqual(['web1 up\n', '\x1b[33mwarning: slow\x1b[0m\n']);
    vi.stubEnv('NO_COLOR', '1');
    expect(said(tty(), tty())).toEqual(['web1 up\n', 'warning: slow\n']);
    vi.stubEnv('NO_COLOR', '');
    vi.stubEnv('TERM', 'dumb');
    expect(said(tty(), tty())).toEqual(['web1 up\n', 'warning: slow\n']);
    vi.unstubAllEnvs();
  });
});

describe('through the CLI', () => {
  const root = mkdtempSync(join(tmpdir(), 'ops-controls-'));
  writeFileSync(join(root, 'package.json'), '{}');
  mkdirSync(join(root, 'environments', 'x'), { recursive: true });
  writeFileSync(
    join(root, 'environments', 'x', 'environment.yml'),
    stringify({ app: 'sample', hosts: [{ name: 'web1', address: '192.0.2.1', host_key: KEY }], programs: { web: { command: 'run', port: 3579 } }, routes: { '/': 'web' } }),
  );

  it('ops logs: an app line holding an escape sequence is shown as text, prefixed with its host', async () => {
    const out = collect();
    const err = collect();
    const reporter = new ConsoleReporter(out.stream, err.stream, { color: false });
    // A host whose logs step prints the line, as the SSH transport hands each line of a step to the reporter.
    class Logging extends RecordingRemote {
      override async run(step: Step, options: RunOptions = {}): Promise<StepResult> {
        if (step.name.includes('log')) reporter.line(this.name, `web | ${HOSTILE}`, 'stdout');
        return super.run(step, options);
      }
    }
    const code = await runCli(allCommands, { argv: ['logs', 'x', 'web'], root, processEnv: { PATH: process.env.PATH }, stdout: out.stream, stderr: err.stream, reporter, connector: async (_e, host) => new Logging(host.name) });
    expect(err.text()).not.toContain('\x1b');
    expect(code, err.text()).toBe(0);
    expect(out.text()).toContain(`web1 web | ${SHOWN}`);
    expect(out.text()).not.toContain('\x1b');
  });

  // A command printing outside text every way a command does: its result (human or --json), and its error.
  const echo = command({
    name: 'echo',
    options: { json: JSON_OPTION, fail: { type: 'boolean', description: 'fail' } },
    summary: 'test',
    project: 'optional',
    async run(ctx) {
      if (ctx.values.fail) throw new OpsError(`step failed on web1: ${HOSTILE}`, 'look at the host');
      await printResult(ctx, { subject: HOSTILE }, (r) => `commits:\n  abc1234 ${r.subject}`);
      return 0;
    },
  });

  it('a result and an error quoting outside text: escapes shown on a terminal; --json is exact JSON of the same text', async () => {
    const human = await runOps(['echo'], { root, commands: [echo] });
    expect(human).toMatchObject({ code: 0, out: `commits:\n  abc1234 ${SHOWN}\n` });
    const failed = await runOps(['echo', '--fail'], { root, commands: [echo] });
    expect(failed.code).toBe(1);
    expect(failed.err).toContain(`step failed on web1: ${SHOWN}`);
    expect(failed.err).not.toContain('\x1b');
    const json = await runOps(['echo', '--json'], { root, commands: [echo] });
    expect(JSON.parse(json.out)).toEqual({ subject: HOSTILE });
    expect(json.out).not.toContain('\x1b');
  });
});

describe('the job log (GitHub Actions)', () => {
  /** What the reporter writes to stdout (the job log). */
  function jobLog(fn: (r: ActionsReporter) => void): string {
    let written = '';
    vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => ((written += String(chunk)), true));
    fn(new ActionsReporter());
    return written;
  }

  it('escape sequences are shown as text', () => {
    expect(jobLog((r) => r.line('web1', HOSTILE))).toBe(`web1 ${SHOWN}\n`);
  });

  it('a line of outside text that the runner would act on ("::set-output", "::add-mask::", "##[") is printed between stop-commands and its random token', () => {
    const log = jobLog((r) => {
      r.info('release log:\n::set-output name=live::evil\n  ::add-mask::x');
      r.line('web1', 'GET /##[error]x');
    });
    const lines = log.split('\n');
    const tokens = lines.filter((l) => l.startsWith('::stop-commands::')).map((l) => l.slice('::stop-commands::'.length));
    expect(tokens).toHaveLength(2);
    expect(tokens[0]).toMatch(/^[0-9a-f-]{36}$/);
    expect(tokens[0]).not.toBe(tokens[1]);
    expect(lines).toEqual([`::stop-commands::${tokens[0]}`, 'release log:', '::set-output name=live::evil', '  ::add-mask::x', `::${tokens[0]}::`, `::stop-commands::${tokens[1]}`, 'web1 GET /##[error]x', `::${tokens[1]}::`, '']);
  });

  it('text without them is printed as it is', () => {
    expect(jobLog((r) => r.info('deployed a1b2c3 (web: ok)'))).toBe('deployed a1b2c3 (web: ok)\n');
  });
});

describe('the job summary (GitHub Actions)', () => {
  it("a host's output longer than a step's summary may be (1 MiB: GitHub shows none of a longer one) is cut at a line, saying so; later summaries add nothing past it", async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'ops-summary-')), 'summary.md');
    writeFileSync(file, '');
    process.env.GITHUB_STEP_SUMMARY = file;
    try {
      const r = new ActionsReporter();
      const output = Array.from({ length: 60_000 }, (_, i) => `row ${i} loaded: é`).join('\n'); // ~1.3 MB
      await r.summary(`### Initial data\n\n${output}`);
      await r.summary('### more');
      const written = readFileSync(file);
      expect(written.length).toBeLessThanOrEqual(1024 * 1024);
      const text = written.toString('utf8');
      expect(text).toMatch(/^### Initial data\n\nrow 0 loaded: é\n/);
      expect(text).toMatch(/\nrow \d+ loaded: é\n\n\*\*The job summary is cut here\*\*: a step's summary holds 1 MiB at most \(GitHub shows none of a longer one\)\.\n$/);
      expect(text).not.toContain('### more');
    } finally {
      delete process.env.GITHUB_STEP_SUMMARY;
    }
  });
});

describe('outside text in Markdown (job summaries, pull-request comments)', () => {
  /** A table row's cells as GitHub splits them: at every "|" no backslash escapes. */
  const cells = (row: string) => row.split(/(?<!\\)\|/).slice(1, -1);

  it('mdText: every character with a meaning escaped, one line, no mention, issue link, HTML or math', () => {
    expect(mdText('a|b <img src=x onerror=alert(1)> *em* _u_ ~~s~~ [l](javascript:x) `c` &amp; \\ $x$\nnext line')).toBe(
      'a\\|b \\<img src=x onerror=alert(1)\\> \\*em\\* \\_u\\_ \\~\\~s\\~\\~ \\[l\\](javascript:x) \\`c\\` \\&amp; \\\\ \\$x\\$ next line',
    );
    expect(mdText('@octocat and @acme/team, #123, GH-42, acme/app#7, mail@example.org')).toBe('@\u2060octocat and @\u2060acme/team, #\u2060123, GH\u2060-42, acme/app#\u20607, mail@\u2060example.org');
    // what would start a heading, a quote or a list at the start of a line (a list item `- ${text}`)
    expect(['# h', '> q', '- l', '+ l', '1. n', '2) n'].map(mdText)).toEqual(['\\# h', '\\> q', '\\- l', '\\+ l', '1\\. n', '2\\) n']);
    expect(cells(`| ${mdText('a | b \\| c')} | x |`)).toHaveLength(2);
    // ops's own words in a message (own: marked, the marks dropped when printed) do not hide a mention from it
    const reporter = new MemoryReporter();
    void reporter.summary(mdText(own`the lock is held by @${'octocat'}, see #${'12'} and GH-${'4'}`));
    expect(reporter.summaries[0]).toBe('the lock is held by @\u2060octocat, see #\u206012 and GH\u2060-4');
  });

  /** `markdown` as GitHub renders it: CommonMark with GFM's tables, strikethrough, autolinks and tag filter, HTML let through (micromark). */
  const render = (markdown: string) => micromark(markdown, { allowDangerousHtml: true, extensions: [gfm()], htmlExtensions: [gfmHtml()] });
  /** The text a reader sees of rendered HTML: tags dropped, the entities micromark writes decoded, word joiners (invisible) left out. */
  const seen = (html: string) =>
    html
      .replace(/<[^>]*>/g, '')
      .replace(/&(lt|gt|quot|amp);/g, (_, e: string) => ({ lt: '<', gt: '>', quot: '"', amp: '&' })[e]!)
      .replace(/\u2060/g, '');

  it('a secret in outside text is masked in the summary as mdText and mdCode write it (escaped), not only as it is', async () => {
    const reporter = new MemoryReporter();
    reporter.mask('p@ss|w*rd$1_x');
    await reporter.summary(`| ${mdText('login refused for p@ss|w*rd$1_x (bad)')} | ${mdCode('p@ss|w*rd$1_x', 'cell')} |\n\n- ${mdText('p@ss|w*rd$1_x')}`);
    expect(reporter.summaries[0]).toBe('| login refused for \\*\\*\\* (bad) | `***` |\n\n- \\*\\*\\*');
  });

  it('a secret masked only when the summary is written (in ops\'s own words, not a value): its *** escaped outside code, as it is inside', async () => {
    const S = 'hunter2-Secret';
    const reporter = new MemoryReporter();
    reporter.mask(S);
    const fence = '````';
    await reporter.summary([`### Deployed ${S}`, '', `x${S}y${S}z \`code ${S}\` \\\`a${S}b`, '', S, '', `| ${S} | \`\`${S}\`\` |`, '|---|---|', `| a${S}b | c |`, '', fence, S, '```', `a${S}b`, fence, '', `**${S}**`].join('\n'));
    const html = render(reporter.summaries[0]!);
    expect(html).not.toMatch(/<(hr|em)\b/);
    expect(html).toBe(
      [
        '<h3>Deployed ***</h3>',
        '<p>x***y***z <code>code ***</code> `a***b</p>',
        '<p>***</p>',
        '<table>\n<thead>\n<tr>\n<th>***</th>\n<th><code>***</code></th>\n</tr>\n</thead>\n<tbody>\n<tr>\n<td>a***b</td>\n<td>c</td>\n</tr>\n</tbody>\n</table>',
        '<pre><code>***\n```\na***b\n</code></pre>',
        '<p><strong>***</strong></p>',
      ].join('\n'),
    );
  });

  it('a masked value in a job summary shows as *** wherever it stands: no rule, emphasis or list from its mask', async () => {
    const S = 'hunter2-Secret';
    for (const reporter of [new MemoryReporter(), new ActionsReporter()]) {
      reporter.mask(S);
      const v = reporter.values;
      const markdown = [
        v.text(S), // alone on a line: `***` is a thematic break (<hr>)
        '',
        v.text(`a${S}b${S}c`), // `a***b***c`: b in bold italics, the stars gone
        '',
        `- ${v.text(S)}`, // a list item holding a rule
        '',
        '| error | value |',
        '|---|---|',
        `| ${v.text(`login ${S} refused | x`)} | ${v.code(`${S}|y`, 'cell')} |`,
        '',
        ...codeBlock(`${S}\nend`),
      ].join('\n');
      const html = render(reporter instanceof MemoryReporter ? (await reporter.summary(markdown), reporter.summaries[0]!) : reporter.redact(markdown));
      expect(html).not.toMatch(/<(hr|em|strong)\b/);
      expect(html).toContain('<p>***</p>');
      expect(html).toContain('<li>***</li>');
      expect(html).toContain('<p>a***b***c</p>');
      expect(html).toContain('<td>login *** refused | x</td>\n<td><code>***|y</code></td>');
      expect(html).toContain('<pre><code>***\nend\n</code></pre>');
      expect(html.match(/\*\*\*/g)).toHaveLength(7); // every mask shown, none taken as markup
    }
  });

  it('outside text in Markdown shows as it is, rendered as GitHub does: HTML, table pipes, emphasis, code, links, math', () => {
    const texts = ['<b>bold</b> a|b _u_ *e* **s** ~~x~~ `c` ``d`` [l](https://x.example) ![i](y) $x$ \\ & &amp; <!-- c -->', '***', '# h', '1. n', '- l', '> q', '---', '@octocat #12'];
    for (const t of texts) {
      expect(seen(render(mdText(t))).trim()).toBe(t);
      const cell = render(`| a | b |\n|---|---|\n| ${mdText(t)} | ${mdCode(t, 'cell')} |`);
      expect(seen(cell.slice(cell.indexOf('<tbody>')))).toBe(`\n\n${t}\n${t}\n\n\n`);
    }
  });

  it('the comment on a skipped pull request shows its masked values as ***, no markup from them', () => {
    const reporter = new MemoryReporter();
    reporter.mask('tok3n-Value');
    const comment = skippedComment(
      { source: { display: 'pull/3', sha: 'a'.repeat(40), pull: { number: 3, title: 't', url: 'https://github.com/o/r/pull/3' } } as never, reason: 'conflict', message: 'fetch of https://x:tok3n-Value@git.example failed\ntok3n-Value' },
      { main: 'main', staging: 'tok3n-Value', label: 'staging' },
      'https://run/1',
      maskedMarkdown((t) => reporter.redact(t)),
    );
    const html = render(reporter.redact(comment));
    expect(html).not.toMatch(/<(hr|em)\b/);
    expect(html).toContain('<strong>Not in <code>***</code></strong>');
    expect(html).toContain('<pre><code>fetch of https://x:***@git.example failed\n***\n</code></pre>');
  });

  it('mdCode: fenced past any backticks in it; in a table cell its "|" escaped (GitHub splits cells first), elsewhere left as it is', () => {
    expect(mdCode('feature/x')).toBe('`feature/x`');
    expect(mdCode('a`b')).toBe('``a`b``');
    expect(mdCode('`x``')).toBe('``` `x`` ```');
    expect(mdCode('a|b')).toBe('`a|b`');
    expect(mdCode('a|b', 'cell')).toBe('`a\\|b`');
    expect(mdCode('two\nlines')).toBe('`two lines`');
    expect(cells(`| ${mdCode('a|b\\|c', 'cell')} | x |`)).toHaveLength(2);
  });

  it('mdLink: only an http(s) URL, its characters that would end the link or the cell encoded; anything else is the label alone', () => {
    expect(mdLink('#3', 'https://github.com/acme/app/pull/3')).toBe('[#3](https://github.com/acme/app/pull/3)');
    expect(mdLink('#3', 'https://x/3)|y')).toBe('[#3](https://x/3%29%7Cy)');
    expect(mdLink('#3', 'javascript:alert(1)')).toBe('#3');
    expect(mdLink('#3', 'https://x/a b')).toBe('#3');
  });
});
