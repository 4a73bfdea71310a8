/**
 * Owns where `skiff secret edit` keeps the plain text while the editor is
 * open: a private copy (a 0700 folder, a 0600 file, in memory where the
 * machine has /dev/shm), removed on every way out.
 */
import { rmSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { privateTempBase } from '../core/paths.js';

/**
 * Runs `body` with a private copy of `text` (a 0700 folder, a 0600 file),
 * removed when body ends in any way, and on process exit should skiff be
 * made to exit first (a second Ctrl-C).
 */
export async function withPrivateCopy<T>(name: string, text: string, body: (file: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(privateTempBase(), 'skiff-secret-'));
  const cleanup = () => rmSync(dir, { recursive: true, force: true });
  process.once('exit', cleanup);
  try {
    const file = join(dir, name);
    await writeFile(file, text, { mode: 0o600, flag: 'wx' });
    return await body(file);
  } finally {
    process.off('exit', cleanup);
    await rm(dir, { recursive: true, force: true });
  }
}
