// A checkout that belongs to another user than the one skiff runs as: a GitLab job image that runs
// as a non-root user on the checkout the runner made as root. git refuses such a repository
// ("dubious ownership"); skiff says so, and trusts the job's own checkout (CI_PROJECT_DIR) under
// GitLab CI, and no other directory.
import { execFileSync } from 'node:child_process';
import { chown, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findRepoRoot, readGitInfo } from '../../src/adapters/git.js';
import { ConfigError } from '../../src/errors.js';

const OTHER_UID = 4321;
let work: string;
let dir: string;
let other: string;
/** No global or system git configuration: a safe.directory of this machine's would hide the refusal. */
let base: NodeJS.ProcessEnv;

async function repoOwnedByOther(path: string): Promise<void> {
  await mkdir(path);
  const git = (...args: string[]) => execFileSync('git', args, { cwd: path, encoding: 'utf8' });
  git('init', '-q', '-b', 'main');
  await writeFile(join(path, 'README'), 'hello\n');
  git('add', 'README');
  git('-c', 'user.name=t', '-c', 'user.email=t@example.test', 'commit', '-q', '-m', 'init');
  execFileSync('chown', ['-R', `${OTHER_UID}:${OTHER_UID}`, path]);
}

const rootUser = process.getuid?.() === 0;

beforeAll(async () => {
  if (!rootUser) return;
  work = await mkdtemp(join(tmpdir(), 'skiff-git-owner-'));
  const home = join(work, 'home');
  await mkdir(home);
  base = { PATH: process.env.PATH, HOME: home, GIT_CONFIG_NOSYSTEM: '1' };
  dir = join(work, 'checkout');
  other = join(work, 'elsewhere');
  await repoOwnedByOther(dir);
  await repoOwnedByOther(other);
  await chown(work, 0, 0);
});
afterAll(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

describe.skipIf(!rootUser)('a checkout owned by another user (needs root to make one)', () => {
  it('is refused with what git objects to and how to trust it, not as "not a Git repository"', async () => {
    const err = await findRepoRoot(dir, base).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toBe(
      `${dir}: git refuses the repository: it belongs to another user than the one skiff runs as ("dubious ownership"); run skiff as its owner, or trust it with: git config --global --add safe.directory ${dir}`,
    );
  });

  it('is the job’s own checkout under GitLab CI (CI_PROJECT_DIR): skiff reads its commit', async () => {
    const env = { ...base, GITLAB_CI: 'true', CI_PROJECT_DIR: dir };
    expect(await findRepoRoot(dir, env)).toBe(dir);
    expect(await readGitInfo({ root: dir, env })).toMatchObject({ root: dir, branch: 'main', dirty: false });
  });

  it('only the job’s checkout is trusted: another directory stays refused, and outside GitLab CI nothing is', async () => {
    await expect(findRepoRoot(other, { ...base, GITLAB_CI: 'true', CI_PROJECT_DIR: dir })).rejects.toThrow(/dubious ownership/);
    await expect(findRepoRoot(dir, { ...base, CI_PROJECT_DIR: dir })).rejects.toThrow(/dubious ownership/);
  });

  it('keeps the command-line git configuration the environment already gives (GIT_CONFIG_COUNT)', async () => {
    // The environment trusts `other` itself; the job's checkout is added beside it, not over it.
    const env = { ...base, GITLAB_CI: 'true', CI_PROJECT_DIR: dir, GIT_CONFIG_COUNT: '1', GIT_CONFIG_KEY_0: 'safe.directory', GIT_CONFIG_VALUE_0: other };
    expect(await findRepoRoot(dir, env)).toBe(dir);
    expect(await findRepoRoot(other, env)).toBe(other);
  });
});
