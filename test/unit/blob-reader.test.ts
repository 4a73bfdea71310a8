// BlobReader reads blobs of a commit through one `git cat-file --batch`: every
// byte of every object comes back, in the order asked, whatever the pipe's
// chunking; a large blob costs its size (it was once joined chunk by chunk,
// quadratic: a 48 MB file in a build context took 26 s).
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BlobReader } from '../../src/adapters/git.js';

let dir: string;
const git = (...args: string[]) => execFileSync('git', args, { cwd: dir, encoding: 'utf8', maxBuffer: 1 << 30 });
const files: Record<string, Buffer> = {
  'empty.txt': Buffer.alloc(0),
  'lines.txt': Buffer.from('one\ntwo\n\nthree 4 5\n'),
  'binary.bin': randomBytes(70_000),
  'large.bin': randomBytes(40 * 1024 * 1024),
};
const oids: Record<string, string> = {};

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'skiff-blob-reader-'));
  git('init', '-q', '-b', 'main');
  for (const [name, content] of Object.entries(files)) {
    await writeFile(join(dir, name), content);
    oids[name] = git('hash-object', '-w', name).trim();
  }
}, 60_000);
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('BlobReader', () => {
  it('returns each blob whole, asked one after another and all at once', async () => {
    const reader = new BlobReader({ root: dir, env: process.env });
    try {
      for (const name of Object.keys(files)) expect((await reader.read(oids[name]!)).equals(files[name]!), name).toBe(true);
      const names = [...Object.keys(files), ...Object.keys(files).reverse()];
      const all = await Promise.all(names.map((n) => reader.read(oids[n]!)));
      all.forEach((b, i) => expect(b.equals(files[names[i]!]!), names[i]).toBe(true));
    } finally {
      reader.close();
    }
  }, 60_000);

  it('rejects a missing object and goes on with the next', async () => {
    const reader = new BlobReader({ root: dir, env: process.env });
    try {
      const missing = reader.read('0123456789012345678901234567890123456789');
      const next = reader.read(oids['lines.txt']!);
      await expect(missing).rejects.toThrow(/0123456789012345678901234567890123456789 is missing/);
      expect((await next).toString()).toBe(files['lines.txt']!.toString());
    } finally {
      reader.close();
    }
  });
});
