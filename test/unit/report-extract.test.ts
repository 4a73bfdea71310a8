// A test image's report archive is not trusted: hostile tars built here
// (escaping paths, absolute paths, symlinks and hardlinks to host files,
// device files, an oversized file) write nothing outside the report folder.
import { lstat, mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import tar from 'tar-stream';
import { afterEach, describe, expect, it } from 'vitest';
import { extractReports, safeEntryPath, type ReportBudget } from '../../src/adapters/container-run.js';
import { ConfigError } from '../../src/errors.js';
import { reportMaxBytes } from '../../src/stages/run-tests.js';

type Entry = { name: string; type?: tar.Header['type']; body?: Buffer | string; linkname?: string; size?: number; mode?: number };

function tarOf(entries: Entry[]): Readable {
  const pack = tar.pack();
  void (async () => {
    for (const e of entries) {
      await new Promise<void>((resolve, reject) => {
        const body = e.body === undefined ? undefined : Buffer.isBuffer(e.body) ? e.body : Buffer.from(e.body);
        pack.entry({ name: e.name, type: e.type ?? 'file', linkname: e.linkname, mode: e.mode, size: body?.length ?? 0 }, body ?? Buffer.alloc(0), (err) =>
          err ? reject(err) : resolve(),
        );
      });
    }
    pack.finalize();
  })();
  return pack as unknown as Readable;
}

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

async function sandbox() {
  const root = await mkdtemp(join(tmpdir(), 'skiff-reports-'));
  dirs.push(root);
  const reports = join(root, 'project', '.skiff', 'reports', 'unit');
  const outside = join(root, 'outside');
  await mkdir(reports, { recursive: true });
  await mkdir(outside, { recursive: true });
  await writeFile(join(outside, 'host-file'), 'host secret\n');
  return { root, reports, outside };
}

/** Every path under dir, relative, with its type. */
async function tree(dir: string, prefix = ''): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const rel = `${prefix}${e.name}`;
    if (e.isSymbolicLink()) out.push(`${rel} -> symlink`);
    else if (e.isDirectory()) out.push(`${rel}/`, ...(await tree(join(dir, e.name), `${rel}/`)));
    else out.push(rel);
  }
  return out.sort();
}

const budget = (max = 64 * 1024 * 1024): ReportBudget => ({ max, remaining: max, discarded: 0 });

describe('report archives from a test container', () => {
  it('copies regular files and folders; skips ../, absolute paths, symlinks, hardlinks and devices, each with a reason', async () => {
    const { reports, outside, root } = await sandbox();
    const archive = tarOf([
      { name: 'out/', type: 'directory' },
      { name: 'out/junit.xml', body: '<testsuite/>', mode: 0o4777 },
      { name: '../../escape.txt', body: 'climbed out' },
      { name: 'out/../../../escape2.txt', body: 'climbed out too' },
      { name: join(outside, 'absolute.txt'), body: 'absolute' },
      { name: 'out/link', type: 'symlink', linkname: outside },
      { name: 'out/link/through-symlink.txt', body: 'through a symlink' },
      { name: 'out/hard', type: 'link', linkname: join(outside, 'host-file') },
      { name: 'out/tty', type: 'character-device' },
      { name: 'out/fifo', type: 'fifo' },
      { name: 'out/nested/deep.txt', body: 'deep' },
    ]);
    const result = await extractReports(archive, reports, budget());
    // The symlink was not made, so the file "through" it lands in a real folder inside.
    expect(await tree(reports)).toEqual(['out/', 'out/junit.xml', 'out/link/', 'out/link/through-symlink.txt', 'out/nested/', 'out/nested/deep.txt']);
    expect(result.written.map((w) => w.slice(reports.length + 1)).sort()).toEqual(['out/junit.xml', 'out/link/through-symlink.txt', 'out/nested/deep.txt']);
    expect(result.skipped).toEqual([
      '../../escape.txt: its path leads outside the report folder; not copied',
      'out/../../../escape2.txt: its path leads outside the report folder; not copied',
      `${join(outside, 'absolute.txt')}: its path leads outside the report folder; not copied`,
      `out/link: a symlink entry to ${outside}; only regular files are copied`,
      'out/hard: a link entry to ' + join(outside, 'host-file') + '; only regular files are copied',
      'out/tty: a character-device entry; only regular files are copied',
      'out/fifo: a fifo entry; only regular files are copied',
    ]);
    // Nothing landed outside, and the host file is untouched.
    expect(await tree(outside)).toEqual(['host-file']);
    expect(await readFile(join(outside, 'host-file'), 'utf8')).toBe('host secret\n');
    expect(await tree(join(root, 'project', '.skiff'))).toEqual(['reports/', 'reports/unit/', ...(await tree(reports)).map((p) => `reports/unit/${p}`)]);
    // No setuid or world-writable bits come along.
    expect((await stat(join(reports, 'out', 'junit.xml'))).mode & 0o7777).toBe(0o644 & ~process.umask());
  });

  it('a symlink already in the report folder (an earlier run, a race) is never followed', async () => {
    const { reports, outside } = await sandbox();
    await symlink(outside, join(reports, 'out'));
    await symlink(join(outside, 'host-file'), join(reports, 'junit.xml'));
    const result = await extractReports(
      tarOf([
        { name: 'out/pwned.txt', body: 'x' },
        { name: 'junit.xml', body: 'overwrite the host file' },
      ]),
      reports,
      budget(),
    );
    expect(result.written).toEqual([]);
    expect(result.skipped).toEqual(['out/pwned.txt: out is not a directory; not copied', 'junit.xml: cannot be written (ELOOP); not copied']);
    expect(await tree(outside)).toEqual(['host-file']);
    expect(await readFile(join(outside, 'host-file'), 'utf8')).toBe('host secret\n');
    expect((await lstat(join(reports, 'junit.xml'))).isSymbolicLink()).toBe(true);
  });

  it('files beyond the size cap are not copied, with a warning naming the size and the cap; smaller ones after it still are', async () => {
    const { reports } = await sandbox();
    const b = budget(1024 * 1024);
    const result = await extractReports(
      tarOf([
        { name: 'big.bin', body: Buffer.alloc(3 * 1024 * 1024) },
        { name: 'junit.xml', body: '<testsuite/>' },
        { name: 'half.bin', body: Buffer.alloc(600 * 1024) },
        { name: 'other-half.bin', body: Buffer.alloc(600 * 1024) },
      ]),
      reports,
      b,
    );
    expect(await tree(reports)).toEqual(['half.bin', 'junit.xml']);
    expect(result.skipped).toEqual([
      'big.bin: 3.0 MiB is over the report size cap (1.0 MiB per test, 1.0 MiB left); not copied',
      expect.stringMatching(/^other-half\.bin: 614400 bytes is over the report size cap \(1\.0 MiB per test, \d+ bytes left\); not copied$/),
    ]);
    expect(b.remaining).toBe(1024 * 1024 - 600 * 1024 - '<testsuite/>'.length);
  });

  it('a huge entry (a 1 GB file) is not read to its end: the rest of the archive is left unread', async () => {
    const { reports } = await sandbox();
    const b = budget(1024 * 1024);
    const result = await extractReports(
      tarOf([
        { name: 'junit.xml', body: '<testsuite/>' },
        { name: 'huge.bin', body: Buffer.alloc(5 * 1024 * 1024) },
        { name: 'after.xml', body: '<testsuite/>' },
      ]),
      reports,
      b,
    );
    expect(await tree(reports)).toEqual(['junit.xml']);
    expect(result.skipped).toEqual([
      expect.stringMatching(/^huge\.bin: 5\.0 MiB is over the report size cap \(1\.0 MiB per test/),
      'huge.bin: the rest of this report archive was not read',
    ]);
  });

  it('entry names: only relative paths that stay inside', () => {
    expect(safeEntryPath('reports/junit.xml')).toBe(join('reports', 'junit.xml'));
    expect(safeEntryPath('./reports//a.xml')).toBe(join('reports', 'a.xml'));
    for (const bad of ['../x', 'a/../../x', 'a/..', '/etc/passwd', 'C:\\x', '', '.', 'a\0b']) expect(safeEntryPath(bad), bad).toBeUndefined();
  });

  it('SKIFF_REPORT_MAX_MB sets the cap; a bad value is bad input', () => {
    expect(reportMaxBytes({})).toBe(64 * 1024 * 1024);
    expect(reportMaxBytes({ SKIFF_REPORT_MAX_MB: '2' })).toBe(2 * 1024 * 1024);
    expect(() => reportMaxBytes({ SKIFF_REPORT_MAX_MB: 'lots' })).toThrow(ConfigError);
  });
});
