// An environment resolved once per operation: the paths, runtime paths and ports its steps use on a host.
import type { Environment } from './config/environment.ts';
import { layout, slotPort, type Layout, type Slot } from './layout.ts';
import { runtimePaths, type RuntimePaths } from './runtimes.ts';

/**
 * What steps act on: the Environment (its settings, hosts, `appUser`, `baseDir`, `url`) plus what is derived
 * from it, resolved once. An operation builds it with `resolveTarget` and hands it to every step, so no step
 * re-derives paths or ports from the settings.
 *
 * - `layout`: every path and name on a host (core/layout.ts: base, releases, shared, .ops, nginx, supervisor).
 * - `runtime`: absolute paths of python, node, npm and uv on a host (core/runtimes.ts).
 * - `port(program, slot)`: TCP port of a program in a slot (blue: `programs.<p>.port`; green: plus
 *   `switch.port_offset`); throws for a program the environment does not declare.
 *
 * A Target is an Environment, so an operation passes the one it resolved wherever an Environment is asked for.
 */
export interface Target extends Environment {
  readonly layout: Layout;
  readonly runtime: RuntimePaths;
  port(program: string, slot: Slot): number;
}

/**
 * Resolve `env` into a Target: pure, no host is contacted, nothing thrown for a loaded environment. Resolving a
 * Target again (an operation calling another) recomputes the same values from its settings.
 */
export function resolveTarget(env: Environment): Target {
  return { ...env, layout: layout(env), runtime: runtimePaths(env), port: (program, slot) => slotPort(env, program, slot) };
}
