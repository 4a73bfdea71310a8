/**
 * Owns where the key of a project's secrets is found: SKIFF_SECRET_KEY, then
 * .skiff_secret_key at the repository root (refused when Git tracks it or
 * others may read it), then ~/.skiff/secret_key; werf's values are read with
 * WERF_SECRET_KEY, else with the same key. A run's keys are looked up on first
 * use (projectKeys). Everything comes from the caller: the run context's
 * environment (the variables, HOME, git's environment) and the repository root
 * it found from its working directory; nothing is read from `process`.
 */
import { execFile } from 'node:child_process';
import { readFile, stat } from 'node:fs/promises';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { childEnv } from '../adapters/child-env.js';
import type { RunContext } from '../context.js';
import { ConfigError, InfrastructureError } from '../errors.js';
import { parseSecretKey, SecretFormatError, type SecretKey } from './crypto.js';
import { parseWerfKey } from './werf-format.js';

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

/** What key lookup reads of the run: its environment (RunContext.env). */
export type KeyContext = Pick<RunContext, 'env'>;

/** The run's home folder: its HOME, else the account's home in the user database; undefined when neither is known. */
function homeOf(env: NodeJS.ProcessEnv): string | undefined {
  if (env.HOME) return env.HOME;
  try {
    return userInfo().homedir;
  } catch {
    return undefined; // no entry for this user (a container's arbitrary uid): there is no ~/.skiff to look in
  }
}

/** The key's text and where it came from, or undefined when none of the places has one. */
async function findKeyText(ctx: KeyContext, root: string | undefined): Promise<KeyText | undefined> {
  const fromEnv = ctx.env[KEY_ENV];
  if (fromEnv?.trim()) return { text: fromEnv, source: KEY_ENV };
  if (root !== undefined) {
    const text = await readKeyFile(join(root, REPO_KEY_FILE), REPO_KEY_FILE);
    if (text !== undefined) {
      await refuseTracked(ctx, root);
      return { text, source: REPO_KEY_FILE };
    }
  }
  const home = homeOf(ctx.env);
  if (home === undefined) return undefined;
  const shown = `~/${HOME_KEY_FILE}`;
  const text = await readKeyFile(join(home, HOME_KEY_FILE), shown);
  return text === undefined ? undefined : { text, source: shown };
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
async function refuseTracked(ctx: KeyContext, root: string): Promise<void> {
  const code = await gitExit(ctx, root, ['ls-files', '--error-unmatch', '--', REPO_KEY_FILE]);
  if (code === 0) {
    throw new ConfigError(
      `${REPO_KEY_FILE} is tracked by Git, so everyone with the repository has the key; untrack it (git rm --cached ${REPO_KEY_FILE}), add it to .gitignore, and rotate the key (skiff secret rotate-key)`,
    );
  }
}

function gitExit(ctx: KeyContext, root: string, args: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    execFile('git', args, { cwd: root, env: childEnv(ctx.env) }, (err) => {
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
export async function findSecretKey(ctx: KeyContext, root: string | undefined): Promise<SecretKey | undefined> {
  const found = await findKeyText(ctx, root);
  if (!found) return undefined;
  try {
    return parseSecretKey(found.text, found.source);
  } catch (e) {
    throw asConfigError(e);
  }
}

/** The project's key; exit 2 naming `needs` (the file that needs it) and the places looked in when there is none. */
export async function requireSecretKey(ctx: KeyContext, root: string | undefined, needs: string): Promise<SecretKey> {
  const key = await findSecretKey(ctx, root);
  if (key) return key;
  throw new MissingSecretKeyError(
    `${needs} needs the secret key, and there is none: set ${KEY_ENV}, or write the key to ${REPO_KEY_FILE} at the repository root (mode 600, not committed) or to ~/${HOME_KEY_FILE}`,
  );
}

/** The key secrets are rotated from: SKIFF_OLD_SECRET_KEY. */
export function oldSecretKey(ctx: KeyContext): SecretKey | undefined {
  const text = ctx.env[OLD_KEY_ENV];
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
export async function findWerfKey(ctx: KeyContext, root: string | undefined, old = false): Promise<Buffer | undefined> {
  const found = werfKeyInEnv(ctx.env, old) ?? (old ? undefined : await findKeyText(ctx, root));
  if (!found) return undefined;
  try {
    return parseWerfKey(found.text, found.source);
  } catch (e) {
    throw asConfigError(e);
  }
}

/** WERF_SECRET_KEY (and for a rotation, else SKIFF_OLD_SECRET_KEY) when set. */
function werfKeyInEnv(env: NodeJS.ProcessEnv, old: boolean): KeyText | undefined {
  for (const name of old ? [WERF_KEY_ENV, OLD_KEY_ENV] : [WERF_KEY_ENV]) {
    const text = env[name];
    if (text?.trim()) return { text, source: name };
  }
  return undefined;
}

/** The keys a set of secret files is read (or written) with; each asked for with the file that needs it. */
export interface SecretKeys {
  skiff(needs: string): Promise<SecretKey>;
  werf(needs: string): Promise<Buffer>;
}

/** The project's keys from the run's environment, the repository and the home folder, looked up on first use. */
export function projectKeys(ctx: KeyContext, root: string | undefined): SecretKeys {
  let skiff: Promise<SecretKey> | undefined;
  let werf: Promise<Buffer | undefined> | undefined;
  return {
    skiff: (needs) => (skiff ??= requireSecretKey(ctx, root, needs)),
    async werf(needs) {
      const key = await (werf ??= findWerfKey(ctx, root));
      if (!key)
        throw new MissingSecretKeyError(`${needs} holds values in werf's format and there is no key for them: set ${WERF_KEY_ENV} to the werf project's key`);
      return key;
    },
  };
}
