// Names the release's `.env` (environment.yml `env`) may not use. The pipeline's own commands (build, migrate,
// hooks, initdata) get those variables exported into the bash that runs them (the environ loader, core/dotenv.ts),
// and bash gives some names a meaning of its own: exported there, they would change how that script runs (IFS
// splits words, POSIXLY_CORRECT and SHELLOPTS change the shell's mode, BASH_ENV and PS4 make it run other code), or
// bash keeps a value of its own, so the one written would not reach the commands (RANDOM, SHLVL, UID...).
// Source: the bash manual, "Shell Variables" (bash 5.2, and 5.3's additions), checked with bash 5.2
// (test/unit/dotenv-render.test.ts runs the loader and the names left allowed through real bash).
// Names bash reads only in interactive shells, and locale and host settings apps do need, stay allowed.
// And `__proto__`, which Node's .env readers drop (they fill a plain object, where that key sets its prototype).

/** Each refused name, in groups that share the reason given in the error. */
const GROUPS: { reason: string; names: string[] }[] = [
  {
    reason: 'bash splits words, expands globs and ~, finds commands or changes directory by it',
    names: ['IFS', 'PATH', 'HOME', 'CDPATH', 'PWD', 'OLDPWD', 'GLOBIGNORE', 'GLOBSORT', 'EXECIGNORE', 'BASH_CMDS', 'BASH_ALIASES'],
  },
  { reason: "it sets bash's options or mode", names: ['SHELLOPTS', 'BASHOPTS', 'POSIXLY_CORRECT', 'BASH_COMPAT'] },
  {
    reason: 'bash runs or reads what it names (every bash script the commands start sources BASH_ENV; PS4 is expanded, commands in it run, on every traced line)',
    names: ['BASH_ENV', 'PS4', 'BASH_XTRACEFD', 'BASH_LOADABLES_PATH'],
  },
  { reason: "it changes what bash's builtins do (read, getopts, time, functions, $0)", names: ['TMOUT', 'FUNCNEST', 'TIMEFORMAT', 'OPTIND', 'OPTARG', 'OPTERR', 'BASH_ARGV0', 'REPLY', 'MAPFILE', 'COPROC'] },
  {
    reason: 'bash keeps a value of its own in it (read-only, or set by bash itself), so the one written would not reach the commands',
    names: [
      '_', 'BASH', 'BASHPID', 'BASH_ARGC', 'BASH_ARGV', 'BASH_COMMAND', 'BASH_EXECUTION_STRING', 'BASH_LINENO', 'BASH_MONOSECONDS', 'BASH_REMATCH',
      'BASH_SOURCE', 'BASH_SUBSHELL', 'BASH_TRAPSIG', 'BASH_VERSINFO', 'BASH_VERSION', 'COMP_CWORD', 'COMP_KEY', 'COMP_LINE', 'COMP_POINT', 'COMP_TYPE',
      'COMP_WORDS', 'DIRSTACK', 'EPOCHREALTIME', 'EPOCHSECONDS', 'EUID', 'FUNCNAME', 'GROUPS', 'HISTCMD', 'LINENO', 'PIPESTATUS', 'PPID', 'RANDOM',
      'READLINE_ARGUMENT', 'READLINE_LINE', 'READLINE_MARK', 'READLINE_POINT', 'SECONDS', 'SHLVL', 'SRANDOM', 'UID',
    ],
  },
  {
    // Checked with Node 20 and dotenv 16 and 18: `__proto__=x` parses to {} (test/unit/dotenv-render.test.ts).
    reason: "Node's .env readers drop it (process.loadEnvFile, util.parseEnv and the dotenv package fill a plain object, where __proto__ sets its prototype instead of a key), so a Node app would never see it",
    names: ['__proto__'],
  },
  {
    reason: "the pipeline's own step scripts read or set it (core/remote/wrap.ts, core/steps/initdata.ts, core/steps/sh/contain.sh)",
    names: ['OPS_CONNECTION', 'OPS_RUN', 'OPS_STEP_TIMEOUT', 'OPS_INITDATA_FILE'],
  },
];

/** Every refused name → why. */
export const RESERVED_ENV_NAMES: ReadonlyMap<string, string> = new Map(GROUPS.flatMap((g) => g.names.map((n) => [n, g.reason] as const)));

/**
 * Why `name` cannot be a variable of the release's .env (it is bash's own, or the pipeline's), for the schema's
 * message; undefined when it can.
 */
export function reservedEnvName(name: string): string | undefined {
  const reason = RESERVED_ENV_NAMES.get(name);
  return reason && `${reason}; give the app this value under another name`;
}

/** A variable a process reading the .env already has in its environment: who sets it, and for which processes. */
export interface PresetVariable {
  /** Who sets it, as messages say it. */
  by: string;
  /** Set in the app's programs' environment (supervisor's), not only for the pipeline's commands. */
  app: boolean;
  /** Only passed on from the host (not ops's nor supervisor's own): a program's env may set it for the program. */
  host?: boolean;
}

/**
 * The variables the processes reading the .env already have, besides the .env: each program's environment as
 * core/steps/switch.ts writes it (HOME, PATH, OPS_RELEASE, OPS_SLOT, and its programs.<p>.env: not listed here),
 * what supervisor 4.2.5 adds (supervisor/process.py, _spawn_as_child: SUPERVISOR_ENABLED, SUPERVISOR_PROCESS_NAME,
 * SUPERVISOR_GROUP_NAME, SUPERVISOR_SERVER_URL; `user=` only drops privileges: no HOME, USER, LOGNAME or SHELL)
 * and passes on from supervisord's own environment: LANG, which systemd gives services from the system locale, and
 * what systemd sets for every service it starts (systemd.exec(5), "Environment Variables in Spawned Processes":
 * INVOCATION_ID; JOURNAL_STREAM, its output going to the journal as supervisor.service's does; SYSTEMD_EXEC_PID,
 * systemd 248+; MEMORY_PRESSURE_WATCH and MEMORY_PRESSURE_WRITE, systemd 254+ where memory accounting is on),
 * and what sudo sets for the pipeline's commands (USER, LOGNAME, SHELL, HOME, PATH; the step scripts' OPS_*).
 * Python's and Node's .env readers let such a variable win over the .env (core/config/environment.ts, envShadowProblems).
 */
export const PRESET_VARIABLES: ReadonlyMap<string, PresetVariable> = new Map(
  (
    [
      [['HOME', 'PATH', 'OPS_RELEASE', 'OPS_SLOT'], { by: "ops, in each program's environment (core/steps/switch.ts)", app: true }],
      [['SUPERVISOR_ENABLED', 'SUPERVISOR_PROCESS_NAME', 'SUPERVISOR_GROUP_NAME', 'SUPERVISOR_SERVER_URL'], { by: "supervisor, in each program's environment", app: true }],
      [['LANG'], { by: "supervisord's own environment (the system locale, from systemd), passed on to each program", app: true, host: true }],
      [['INVOCATION_ID', 'JOURNAL_STREAM', 'SYSTEMD_EXEC_PID', 'MEMORY_PRESSURE_WATCH', 'MEMORY_PRESSURE_WRITE'], { by: "systemd, for the service running supervisord (supervisor.service), passed on to each program", app: true, host: true }],
      [['USER', 'LOGNAME', 'SHELL'], { by: "sudo, for the pipeline's commands (build, migrate, hooks, initdata)", app: false }],
      [['OPS_CONNECTION', 'OPS_RUN', 'OPS_STEP_TIMEOUT', 'OPS_INITDATA_FILE'], { by: "ops's step scripts, for the pipeline's commands", app: false }],
    ] satisfies [string[], PresetVariable][]
  ).flatMap(([names, v]) => names.map((n) => [n, v] as const)),
);

/**
 * Variable name prefixes that front-end build tools inline into the client bundle at build time, each with the tool
 * whose rule it is (their docs: Vite "Env Variables and Modes" (`envPrefix`); Next.js "Environment Variables";
 * Create React App "Adding Custom Environment Variables"; SvelteKit `$env/static/public` (`kit.env.publicPrefix`) and
 * Astro; Nuxt `runtimeConfig.public`; Expo "Environment variables"; Gatsby; Vue CLI; Storybook): a value so named is
 * served to every visitor in the built JavaScript. A vite reader's `only` prefix (dotenv.readers) counts too
 * (publicPrefixOf).
 */
export const PUBLIC_PREFIXES: readonly (readonly [prefix: string, tool: string])[] = [
  ['VITE_', 'Vite'],
  ['NEXT_PUBLIC_', 'Next.js'],
  ['REACT_APP_', 'Create React App'],
  ['PUBLIC_', 'SvelteKit, Astro'],
  ['NUXT_PUBLIC_', 'Nuxt'],
  ['EXPO_PUBLIC_', 'Expo'],
  ['GATSBY_', 'Gatsby'],
  ['VUE_APP_', 'Vue CLI'],
  ['STORYBOOK_', 'Storybook'],
];

/**
 * The public prefix `name` starts with and the tool that inlines it (PUBLIC_PREFIXES, then each of `vitePrefixes`,
 * the `only` prefixes of vite readers: vite's envPrefix); undefined when none. Case-sensitive, as the tools are.
 */
export function publicPrefixOf(name: string, vitePrefixes: readonly string[] = []): { prefix: string; tool: string } | undefined {
  const all = [...PUBLIC_PREFIXES, ...vitePrefixes.filter((p) => p).map((p) => [p, 'vite (its reader\'s `only` in dotenv.readers)'] as const)];
  const found = all.find(([prefix]) => name.startsWith(prefix));
  return found && { prefix: found[0], tool: found[1] };
}
