import { access, constants } from 'node:fs/promises';
import { delimiter, isAbsolute, join } from 'node:path';

/**
 * A tool skiff runs as a child process (helm, cosign): the path in the
 * environment variable `variable`, else `name` in an absolute folder of PATH
 * (a relative PATH entry would resolve against the repository, which a hostile
 * one controls). `{ bad }` when the variable names no absolute executable file,
 * `{ missing }` when PATH has none: the caller words the error.
 */
export async function findExecutable(env: NodeJS.ProcessEnv, variable: string, name: string): Promise<{ path: string } | { bad: string } | { missing: true }> {
  const given = env[variable];
  if (given) return isAbsolute(given) && (await isExecutable(given)) ? { path: given } : { bad: given };
  for (const dir of (env.PATH ?? '').split(delimiter)) {
    if (!dir || !isAbsolute(dir)) continue;
    const candidate = join(dir, name);
    if (await isExecutable(candidate)) return { path: candidate };
  }
  return { missing: true };
}

async function isExecutable(path: string): Promise<boolean> {
  try {
    await access(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}
