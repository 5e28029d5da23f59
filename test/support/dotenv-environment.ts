// A minimal environment whose .env is given: what the .env tests render (test/unit/dotenv-*.test.ts).
import { parseEnvironment, resolveEnvironment, type Environment } from '../../core/config/environment.ts';

const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGMlwndpHfcJQv6XulbWIzLhQ4E5MouOGQOkSV2DMD9P';

/** An environment whose .env is `env`, read by `readers` (dotenv.readers as written in environment.yml); `serverEnv`: the server program's env. */
export function environment(env: Record<string, unknown>, readers?: unknown[], serverEnv?: Record<string, string>): Environment {
  const config = parseEnvironment(
    {
      app: 'shop',
      tls: { mode: 'off' },
      hosts: [{ name: 'web1', address: '192.0.2.1', host_key: KEY }],
      programs: { server: { command: 'run', port: 8000, ...(serverEnv ? { env: serverEnv } : {}) }, client: { command: 'run', port: 3000 } },
      // a Node.js whose own parser (node-env-file) reads the .env as the writer writes it (Debian 13's)
      runtimes: { node: { strategy: 'debian', version: '20' } },
      env,
      ...(readers ? { dotenv: { readers } } : {}),
    },
    't',
  );
  return resolveEnvironment('t', '/x', config, [{ name: 'web1', address: '192.0.2.1', port: 22, user: 'deploy', hostKey: KEY }]);
}
