// What the environment schema says of a document, as the unit tests of settings read it.
import { ConfigError, parseEnvironment } from '../../core/config/environment.ts';

/** Each problem parseEnvironment finds in `doc`, as `<path>: <message>`; [] when it loads. Other errors are thrown. */
export function problems(doc: unknown): string[] {
  try {
    parseEnvironment(doc, 'environments/x/environment.yml');
  } catch (e) {
    if (e instanceof ConfigError) return e.problems.map((p) => `${p.path}: ${p.message}`);
    throw e;
  }
  return [];
}
