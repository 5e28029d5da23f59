// npm run bench:readme — from bench/results/latest.json (every run's record): latest.md and chart.svg drawn again
// with the current report code, and the figures put into README.md's "Performance" table (npm run bench does all
// of it after a complete run; a test keeps README and latest.json equal).
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildRows, checks, readmeWithFigures, writeResults, type Meta, type RunRecord } from './report.ts';

const root = join(fileURLToPath(import.meta.url), '..', '..');
const dir = join(root, 'bench', 'results');
const readme = join(root, 'README.md');
const saved = JSON.parse(readFileSync(join(dir, 'latest.json'), 'utf8')) as { meta: Meta; notes: string[]; runs: RunRecord[] };
const rows = buildRows(saved.runs);
writeResults(dir, rows, checks(rows, saved.runs), saved.runs, saved.meta, saved.notes);
const results = JSON.parse(readFileSync(join(dir, 'latest.json'), 'utf8'));
writeFileSync(readme, readmeWithFigures(readFileSync(readme, 'utf8'), results));
console.log(`bench/results (latest.md, chart.svg) and README.md's Performance table from bench/results/latest.json (${results.meta.date})`);
