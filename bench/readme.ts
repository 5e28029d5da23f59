// npm run bench:readme — put the figures of bench/results/latest.json into README.md's "Performance" table
// (npm run bench does it too after a complete run; a test keeps the two equal).
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readmeWithFigures } from './report.ts';

const root = join(fileURLToPath(import.meta.url), '..', '..');
const readme = join(root, 'README.md');
const results = JSON.parse(readFileSync(join(root, 'bench', 'results', 'latest.json'), 'utf8'));
writeFileSync(readme, readmeWithFigures(readFileSync(readme, 'utf8'), results));
console.log(`README.md: Performance table from bench/results/latest.json (${results.meta.date})`);
