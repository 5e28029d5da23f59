// PyYAML, the YAML 1.1 reader an app's initdata loader reads its file with (the sample app's yaml.safe_load), run
// from the pinned venv scripts/setup-machine.sh makes (test/support/pyyaml.txt).
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/** The Python of the pinned PyYAML venv. */
export const PYYAML_PYTHON = `/var/cache/ops-pipeline/py/pyyaml-${readFileSync(join(import.meta.dirname, 'pyyaml.txt'), 'utf8').split('\n').find((l) => l.trim() && !l.startsWith('#'))!.trim()}/bin/python`;

/** Run `script` with the pinned PyYAML, `input` on stdin; its stdout as JSON. @throws Error with PyYAML's last line when it fails. */
export function withPyyaml(script: string, input: string): unknown {
  const r = spawnSync(PYYAML_PYTHON, ['-c', script], { input, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`PyYAML failed: ${r.stderr.trim().split('\n').pop()}`);
  return JSON.parse(r.stdout);
}

/** A script for withPyyaml: yaml.safe_load of stdin, each mapping as [key, value] pairs and every scalar as Python's repr (750 and '12:30' differ; a date is not JSON). */
export const SAFE_LOAD_REPR = `import json, sys, yaml
def show(v):
    if isinstance(v, dict): return [[repr(k), show(x)] for k, x in v.items()]
    if isinstance(v, list): return [show(x) for x in v]
    return repr(v)
print(json.dumps(show(yaml.safe_load(sys.stdin.read()))))`;

/** Strings a YAML 1.1 resolver types otherwise when bare, by kind (yaml.org/type), and some near misses. */
export const TRICKY = [
  // int and float in base 60
  '1:20', '12:30', '-1:20', '+1:20', '190:20:30', '1:20.5', '190:20:30.15', '1_0:20',
  // timestamps
  '2024-01-15', '2024-1-5 1:02:03', '2002-12-14t21:59:43.10-05:00', '2001-12-14 21:59:43.10 -5', '2024-01-01 10:00:00.', '2001-12-14 21:59:43 +35', '2001-12-14T21:59:43Z',
  // value, merge, null
  '=', '<<', '~', 'null', 'Null', 'NULL', '',
  // bool
  'y', 'Y', 'n', 'N', 'yes', 'Yes', 'NO', 'on', 'ON', 'off', 'Off', 'true', 'False',
  // int
  '0o17', '0x1F', '0x_1', '0b101', '+0b1', '1_000', '017', '0_1', '-0', '+1', '12',
  // float
  '.inf', '-.Inf', '+.INF', '.NaN', '.nan', '1.', '1e3', '1.5e3', '1.0e+3', '.5', '+.5', '1_0.5', '.5_e+3', '1_.',
  // near misses, strings to every reader (left as they are or quoted: either way they must come back)
  '1:60', '0:0', '00:00', '._1', '1__0', '0x', '0b', '-', '+', '.', '_', '0_', 'a=b', '<<x', '12:30 pm', '2024-01', '3.8.1', 'age1abc', 'hello world',
];
