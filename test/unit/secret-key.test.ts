import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { findSecretKey, findWerfKey, oldSecretKey, requireSecretKey } from '../../src/secrets/key-lookup.js';
import { keyId } from '../../src/secrets/crypto.js';
import { configFailure } from '../helpers/failure.js';
import { git } from '../helpers/skiff.js';

const KEY_A = 'a1'.repeat(32);
const KEY_B = 'b2'.repeat(32);
const KEY_C = 'c3'.repeat(32);
const idOf = (hex: string) => keyId(Buffer.from(hex, 'hex'));

const made: string[] = [];
let root: string;
let home: string;

async function tempDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  made.push(dir);
  return dir;
}

beforeEach(async () => {
  root = await tempDir('skiff-key-repo-');
  home = await tempDir('skiff-key-home-');
  await git(root, 'init', '-q', '-b', 'main');
});

afterAll(async () => {
  for (const d of made) await rm(d, { recursive: true, force: true });
});

/** What key lookup reads of a run: its environment, with HOME the test's own folder. */
const inRun = (vars: NodeJS.ProcessEnv = {}) => ({ env: { PATH: process.env.PATH, HOME: home, ...vars } });

async function writeKey(path: string, text: string, mode = 0o600) {
  await mkdir(join(path, '..'), { recursive: true });
  await writeFile(path, text);
  await chmod(path, mode);
}

describe('where the secret key is found', () => {
  it('SKIFF_SECRET_KEY first, then .skiff_secret_key at the root, then ~/.skiff/secret_key', async () => {
    await writeKey(join(root, '.skiff_secret_key'), `${KEY_B}\n`);
    await writeKey(join(home, '.skiff', 'secret_key'), KEY_C);
    expect((await findSecretKey(inRun({ SKIFF_SECRET_KEY: KEY_A }), root))?.id).toBe(idOf(KEY_A));
    expect((await findSecretKey(inRun(), root))?.id).toBe(idOf(KEY_B));
    await rm(join(root, '.skiff_secret_key'));
    expect((await findSecretKey(inRun(), root))?.id).toBe(idOf(KEY_C));
    await rm(join(home, '.skiff', 'secret_key'));
    expect(await findSecretKey(inRun(), root)).toBeUndefined();
  });

  it('no key anywhere: exit 2 naming the file that needs it and every place looked in', async () => {
    const e = requireSecretKey(inRun(), root, '.kube/secret-values.yaml');
    expect(await configFailure(e)).toBe(
      '.kube/secret-values.yaml needs the secret key, and there is none: set SKIFF_SECRET_KEY, or write the key to .skiff_secret_key at the repository root (mode 600, not committed) or to ~/.skiff/secret_key',
    );
  });

  it('refuses a key file Git tracks', async () => {
    await writeKey(join(root, '.skiff_secret_key'), KEY_B);
    await git(root, 'add', '.skiff_secret_key');
    expect(await configFailure(findSecretKey(inRun(), root))).toBe(
      '.skiff_secret_key is tracked by Git, so everyone with the repository has the key; untrack it (git rm --cached .skiff_secret_key), add it to .gitignore, and rotate the key (skiff secret rotate-key)',
    );
    // The variable wins without looking at the file.
    expect((await findSecretKey(inRun({ SKIFF_SECRET_KEY: KEY_A }), root))?.id).toBe(idOf(KEY_A));
  });

  it('refuses key files that other users may read', async () => {
    await writeKey(join(root, '.skiff_secret_key'), KEY_B, 0o644);
    expect(await configFailure(findSecretKey(inRun(), root))).toBe(
      '.skiff_secret_key may be read by other users (mode 644); make it private: chmod 600 .skiff_secret_key',
    );
    await rm(join(root, '.skiff_secret_key'));
    await writeKey(join(home, '.skiff', 'secret_key'), KEY_C, 0o640);
    expect(await configFailure(findSecretKey(inRun(), root))).toMatch(/^~\/\.skiff\/secret_key may be read by other users \(mode 640\)/);
  });

  it('a key of the wrong length or an empty key file is a one-line error naming where it came from', async () => {
    expect(await configFailure(findSecretKey(inRun({ SKIFF_SECRET_KEY: 'abcd' }), root))).toBe(
      'SKIFF_SECRET_KEY has 4 hex characters; a skiff key is 64 (256 bits); generate one with "skiff secret generate-key"',
    );
    await writeKey(join(root, '.skiff_secret_key'), '\n');
    expect(await configFailure(findSecretKey(inRun(), root))).toMatch(/^\.skiff_secret_key is empty; write the key into it/);
  });

  it("reads the run's environment, not the process's: neither its key variable nor its HOME", async () => {
    const processHome = await tempDir('skiff-key-process-home-');
    await writeKey(join(processHome, '.skiff', 'secret_key'), KEY_C);
    vi.stubEnv('HOME', processHome);
    vi.stubEnv('SKIFF_SECRET_KEY', KEY_A);
    try {
      // A run without HOME: the account's home from the user database, never the process's HOME.
      const found = await findSecretKey({ env: { PATH: process.env.PATH } }, root);
      expect([idOf(KEY_A), idOf(KEY_C)]).not.toContain(found?.id);
      await writeKey(join(home, '.skiff', 'secret_key'), KEY_B);
      expect((await findSecretKey(inRun(), root))?.id).toBe(idOf(KEY_B));
    } finally {
      vi.unstubAllEnvs();
    }
  });

  it('the old key of a rotation: SKIFF_OLD_SECRET_KEY', () => {
    expect(oldSecretKey({ env: {} })).toBeUndefined();
    expect(oldSecretKey({ env: { SKIFF_OLD_SECRET_KEY: KEY_C } })?.id).toBe(idOf(KEY_C));
    expect(() => oldSecretKey({ env: { SKIFF_OLD_SECRET_KEY: 'xyz' } })).toThrow(/^SKIFF_OLD_SECRET_KEY is not a hex key/);
  });

  it("werf's key: WERF_SECRET_KEY, else skiff's key read as a werf key; for --from-werf WERF_SECRET_KEY, else SKIFF_OLD_SECRET_KEY", async () => {
    const werf = '0f'.repeat(16);
    expect((await findWerfKey(inRun({ WERF_SECRET_KEY: werf, SKIFF_SECRET_KEY: KEY_A }), root))?.toString('hex')).toBe(werf);
    expect((await findWerfKey(inRun({ SKIFF_SECRET_KEY: KEY_A }), root))?.toString('hex')).toBe(KEY_A);
    expect(await findWerfKey(inRun({ SKIFF_SECRET_KEY: KEY_A }), root, true)).toBeUndefined();
    expect((await findWerfKey(inRun({ SKIFF_OLD_SECRET_KEY: werf }), root, true))?.toString('hex')).toBe(werf);
    expect(await configFailure(findWerfKey(inRun({ WERF_SECRET_KEY: 'abc' }), root))).toMatch(/^WERF_SECRET_KEY is not a werf key/);
  });
});
