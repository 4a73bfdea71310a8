import { accessSync, constants } from 'node:fs';
import { tmpdir } from 'node:os';
import { isAbsolute, join, relative, resolve, sep } from 'node:path';
import { ConfigError } from '../errors.js';

/**
 * `base` joined with `name`, checked to be strictly below `base`: a name from
 * skiff.yaml or a template (a test, an object's kind and name) becomes a path
 * only through here, so no name reaches outside its folder, whatever
 * validation let through. `what` says what the name is, for the message.
 */
export function pathInside(base: string, name: string, what: string): string {
  const path = join(base, name);
  const rel = relative(resolve(base), resolve(path));
  if (name.includes('\0') || isAbsolute(name) || rel === '' || isAbsolute(rel) || rel === '..' || rel.startsWith(`..${sep}`)) {
    throw new ConfigError(`${what} "${name}" does not name a path inside ${base}; use letters, digits, ".", "_" and "-"`);
  }
  return path;
}

/**
 * Where a short-lived private file (a decrypted value, the values handed to
 * helm) goes: /dev/shm where there is one, so it never reaches a disk; else
 * the system's temporary folder.
 */
export function privateTempBase(): string {
  try {
    accessSync('/dev/shm', constants.W_OK | constants.X_OK);
    return '/dev/shm';
  } catch {
    return tmpdir();
  }
}
