import { execFile } from 'node:child_process';
import { childEnv } from '../adapters/child-env.js';
import { readFile, stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { parseSecretKey, SecretFormatError, type SecretKey } from './crypto.js';
import { parseWerfKey } from './werf-format.js';
import { ConfigError, InfrastructureError } from '../errors.js';

/**
 * Where the key of a project's secrets is found: SKIFF_SECRET_KEY, then
 * .skiff_secret_key at the repository root (refused when Git tracks it or
 * others may read it), then ~/.skiff/secret_key. werf's values are read with
 * WERF_SECRET_KEY, else with the same key.
 */

export const KEY_ENV = 'SKIFF_SECRET_KEY';
export const OLD_KEY_ENV = 'SKIFF_OLD_SECRET_KEY';
export const WERF_KEY_ENV = 'WERF_SECRET_KEY';
export const WERF_OLD_KEY_ENV = 'WERF_OLD_SECRET_KEY';
export const REPO_KEY_FILE = '.skiff_secret_key';
export const HOME_KEY_FILE = '.skiff/secret_key';
/** Variables that hold keys: never handed on to a process skiff starts for the user (the editor). */
export const KEY_VARIABLES = [KEY_ENV, OLD_KEY_ENV, WERF_KEY_ENV, WERF_OLD_KEY_ENV] as const;

export const KEY_PLACES = `${KEY_ENV}, ${REPO_KEY_FILE} at the repository root, ~/${HOME_KEY_FILE}`;

interface KeyText {
  text: string;
  /** For messages: the variable or the file. */
  source: string;
}

/** No key where one is needed: exit 2, like any ConfigError; told apart so a render can wait until a template asks for a secret file. */
export class MissingSecretKeyError extends ConfigError {
  override readonly name = 'MissingSecretKeyError';
}

function homeDir(env: NodeJS.ProcessEnv): string {
  return env.HOME || homedir();
}

/** The key's text and where it came from, or undefined when none of the places has one. */
async function findKeyText(env: NodeJS.ProcessEnv, root: string | undefined): Promise<KeyText | undefined> {
  if (env[KEY_ENV]?.trim()) return { text: env[KEY_ENV], source: KEY_ENV };
  if (root !== undefined) {
    const text = await readKeyFile(join(root, REPO_KEY_FILE), REPO_KEY_FILE);
    if (text !== undefined) {
      await refuseTracked(root);
      return { text, source: REPO_KEY_FILE };
    }
  }
  const home = `~/${HOME_KEY_FILE}`;
  const text = await readKeyFile(join(homeDir(env), HOME_KEY_FILE), home);
  return text === undefined ? undefined : { text, source: home };
}

/** A key file's text, undefined when it does not exist; refused when group or others may read it. */
async function readKeyFile(path: string, shown: string): Promise<string | undefined> {
  let mode: number;
  try {
    const s = await stat(path);
    if (!s.isFile()) throw new ConfigError(`${shown} is not a file; put the key in it, or remove it`);
    mode = s.mode;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
  if ((mode & 0o077) !== 0) {
    throw new ConfigError(`${shown} may be read by other users (mode ${(mode & 0o777).toString(8)}); make it private: chmod 600 ${shown}`);
  }
  const text = await readFile(path, 'utf8');
  if (!text.trim()) throw new ConfigError(`${shown} is empty; write the key into it ("skiff secret generate-key > ${shown}"), or remove it`);
  return text;
}

/** A key committed to Git is a key given to everyone who can clone the repository. */
async function refuseTracked(root: string): Promise<void> {
  const code = await gitExit(root, ['ls-files', '--error-unmatch', '--', REPO_KEY_FILE]);
  if (code === 0) {
    throw new ConfigError(
      `${REPO_KEY_FILE} is tracked by Git, so everyone with the repository has the key; untrack it (git rm --cached ${REPO_KEY_FILE}), add it to .gitignore, and rotate the key (skiff secret rotate-key)`,
    );
  }
}

function gitExit(root: string, args: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    execFile('git', args, { cwd: root, env: childEnv() }, (err) => {
      if (!err) return resolve(0);
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return reject(new InfrastructureError('git is not installed; install it (apt-get install git)'));
      resolve(typeof code === 'number' ? code : 1);
    });
  });
}

function asConfigError(e: unknown): unknown {
  return e instanceof SecretFormatError ? new ConfigError(e.message) : e;
}

/** The project's key, or undefined when none is set anywhere. A bad key (wrong length, not hex) is exit 2. */
export async function findSecretKey(env: NodeJS.ProcessEnv, root: string | undefined): Promise<SecretKey | undefined> {
  const found = await findKeyText(env, root);
  if (!found) return undefined;
  try {
    return parseSecretKey(found.text, found.source);
  } catch (e) {
    throw asConfigError(e);
  }
}

/** The project's key; exit 2 naming `needs` (the file that needs it) and the places looked in when there is none. */
export async function requireSecretKey(env: NodeJS.ProcessEnv, root: string | undefined, needs: string): Promise<SecretKey> {
  const key = await findSecretKey(env, root);
  if (key) return key;
  throw new MissingSecretKeyError(
    `${needs} needs the secret key, and there is none: set ${KEY_ENV}, or write the key to ${REPO_KEY_FILE} at the repository root (mode 600, not committed) or to ~/${HOME_KEY_FILE}`,
  );
}

/** The key secrets are rotated from: SKIFF_OLD_SECRET_KEY. */
export function oldSecretKey(env: NodeJS.ProcessEnv): SecretKey | undefined {
  const text = env[OLD_KEY_ENV];
  if (!text?.trim()) return undefined;
  try {
    return parseSecretKey(text, OLD_KEY_ENV);
  } catch (e) {
    throw asConfigError(e);
  }
}

/**
 * The key of werf's values. For a render: WERF_SECRET_KEY, else skiff's own
 * key text read as a werf key. For `rotate-key --from-werf` (`old`):
 * WERF_SECRET_KEY, else SKIFF_OLD_SECRET_KEY.
 */
export async function findWerfKey(env: NodeJS.ProcessEnv, root: string | undefined, old = false): Promise<Buffer | undefined> {
  const name = (old ? [WERF_KEY_ENV, OLD_KEY_ENV] : [WERF_KEY_ENV]).find((n) => env[n]?.trim());
  const found = name ? { text: env[name]!, source: name } : old ? undefined : await findKeyText(env, root);
  if (!found) return undefined;
  try {
    return parseWerfKey(found.text, found.source);
  } catch (e) {
    throw asConfigError(e);
  }
}

/** Whether Git would leave .skiff_secret_key out of a commit (false: one `git add -A` away from committing the key). */
export async function keyFileIgnored(root: string): Promise<boolean> {
  return (await gitExit(root, ['check-ignore', '-q', '--', REPO_KEY_FILE])) === 0;
}
