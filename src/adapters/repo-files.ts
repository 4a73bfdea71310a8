import { randomBytes } from 'node:crypto';
import { constants, type Stats } from 'node:fs';
import { lstat, mkdir, open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { ConfigError } from '../errors.js';

/**
 * Files skiff writes inside a repository (.skiff/ output, secret files). The
 * repository may commit a symlink anywhere, so no write here follows one: the
 * folders on the way are checked one by one, outputs are opened O_NOFOLLOW,
 * temporary files are created exclusively under random names.
 */

/** skiff's output folder at the repository root; it ignores itself in Git. */
export const SKIFF_DIR = '.skiff';

function symlinkRefused(shown: string): ConfigError {
  return new ConfigError(`${shown} is a symbolic link; skiff does not write through symbolic links in the repository: remove it and run again`);
}

const parts = (rel: string) => rel.split(/[\\/]+/).filter((p) => p !== '' && p !== '.');

/** One step of a walk from root to root/rel: the path, its repository-relative spelling, and what lstat says (undefined: missing). */
interface WalkStep {
  at: string;
  shown: string;
  st: Stats | undefined;
}

/** root/rel's path components from the top down, each looked at (lstat, never followed) only when the walk gets there. */
async function* walkInside(root: string, rel: string): AsyncGenerator<WalkStep> {
  let at = root;
  const shown: string[] = [];
  for (const part of parts(rel)) {
    at = join(at, part);
    shown.push(part);
    const st = await lstat(at).catch((e: NodeJS.ErrnoException) => (e.code === 'ENOENT' ? undefined : Promise.reject(e)));
    yield { at, shown: shown.join('/'), st };
  }
}

/**
 * Makes root/rel one folder at a time and returns it; a folder on the way
 * that is a symlink or not a folder is refused (exit 2, naming it). Making
 * .skiff also writes its .gitignore ("*"), so skiff's output is never
 * committed by a `git add -A`.
 */
export async function folderInside(root: string, rel: string): Promise<string> {
  let folder = root;
  for await (const { at, shown, st } of walkInside(root, rel)) {
    if (!st) await mkdir(at).catch((e: NodeJS.ErrnoException) => (e.code === 'EEXIST' ? undefined : Promise.reject(e)));
    const made = st ?? (await lstat(at));
    if (made.isSymbolicLink()) throw symlinkRefused(shown);
    if (!made.isDirectory()) throw new ConfigError(`${shown} is not a folder; skiff writes its output below it: remove it and run again`);
    if (shown === SKIFF_DIR) await ignoreItself(at);
    folder = at;
  }
  return folder;
}

async function ignoreItself(skiffDir: string): Promise<void> {
  try {
    const fh = await open(join(skiffDir, '.gitignore'), constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o644);
    await fh.writeFile('# skiff output (reports, deploy.env): never committed\n*\n');
    await fh.close();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
  }
}

/** Refuses (exit 2) a symlink at root/rel or at any existing folder on the way; creates nothing. */
export async function refuseSymlinks(root: string, rel: string): Promise<void> {
  for await (const { shown, st } of walkInside(root, rel)) {
    if (!st) return;
    if (st.isSymbolicLink()) throw symlinkRefused(shown);
  }
}

/** Opens `path` for writing without following a symlink there (`shown` names it in the message) and writes `content`. */
export async function writeNoFollow(path: string, content: string, shown: string, mode = 0o644): Promise<void> {
  let fh;
  try {
    fh = await open(path, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW, mode);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ELOOP') throw symlinkRefused(shown);
    throw e;
  }
  try {
    await fh.writeFile(content);
  } finally {
    await fh.close();
  }
}

/** Writes root/rel (repository-relative, "/"-separated): its folders through folderInside, the file itself O_NOFOLLOW. */
export async function writeInside(root: string, rel: string, content: string): Promise<string> {
  const dir = await folderInside(root, dirname(rel));
  const file = join(dir, basename(rel));
  await writeNoFollow(file, content, parts(rel).join('/'));
  return file;
}

/** Where a new file for `path` is first written: beside it (so rename is atomic), under a random name, created exclusively. */
export async function createTemporaryBeside(path: string, content: string, suffix: string): Promise<string> {
  const tmp = `${path}.${suffix}-${randomBytes(6).toString('hex')}`;
  const fh = await open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o644);
  try {
    await fh.writeFile(content);
    await fh.close();
  } catch (e) {
    await fh.close().catch(() => undefined);
    await rm(tmp, { force: true });
    throw e;
  }
  return tmp;
}

/**
 * Replaces root/rel with `content` atomically: a temporary file created
 * exclusively beside it, renamed over it. A symlink at rel or on the way is
 * refused first (rename would replace the link, not its target, but a link
 * committed there says the repository meant the file to live elsewhere).
 */
export async function replaceInside(root: string, rel: string, content: string): Promise<void> {
  await refuseSymlinks(root, rel);
  const dir = await folderInside(root, dirname(rel));
  const file = join(dir, basename(rel));
  const tmp = await createTemporaryBeside(file, content, 'skiff-tmp');
  try {
    await rename(tmp, file);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
}

/** Whether a file name is one of the temporary files above, or an edit kept beside a file that changed meanwhile (never a secret file of its own). */
export function isTemporaryName(name: string): boolean {
  return /\.skiff-(tmp|rotate|conflict)(-[0-9a-f]{12})?$/.test(name);
}
