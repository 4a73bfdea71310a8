// readGitInfo's dirty check: tracked files only for a commit build (no walk of
// the worktree for untracked files), untracked files too when asked (--dev).
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readGitInfo } from '../../src/adapters/git.js';

let dir: string;
const git = (...args: string[]) => execFileSync('git', args, { cwd: dir, encoding: 'utf8' });

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'skiff-git-info-'));
  git('init', '-q', '-b', 'main');
  await writeFile(join(dir, 'tracked.txt'), 'one\n');
  git('add', 'tracked.txt');
  git('-c', 'user.name=t', '-c', 'user.email=t@example.test', 'commit', '-q', '-m', 'init');
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('readGitInfo dirty check', () => {
  it('a clean checkout is clean either way', async () => {
    expect(await readGitInfo({ root: dir, env: process.env })).toMatchObject({ branch: 'main', dirty: false, changedTracked: [] });
    expect(await readGitInfo({ root: dir, env: process.env }, {}, { untracked: true })).toMatchObject({ dirty: false, changedTracked: [] });
  });

  it('an untracked file makes the tree dirty only when untracked files are asked for', async () => {
    await writeFile(join(dir, 'new.txt'), 'not added\n');
    expect(await readGitInfo({ root: dir, env: process.env })).toMatchObject({ dirty: false, changedTracked: [] });
    expect(await readGitInfo({ root: dir, env: process.env }, {}, { untracked: true })).toMatchObject({ dirty: true, changedTracked: [] });
  });

  it('a changed tracked file is dirty and named either way', async () => {
    await writeFile(join(dir, 'tracked.txt'), 'two\n');
    expect(await readGitInfo({ root: dir, env: process.env })).toMatchObject({ dirty: true, changedTracked: ['tracked.txt'] });
    expect(await readGitInfo({ root: dir, env: process.env }, {}, { untracked: true })).toMatchObject({ dirty: true, changedTracked: ['tracked.txt'] });
  });
});
