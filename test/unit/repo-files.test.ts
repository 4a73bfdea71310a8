// Paths skiff derives from names stay in their folder, and no write under the
// repository follows a symlink the repository may commit (issue 18, items 1, 6, 14).
import { existsSync } from 'node:fs';
import { lstat, mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createTemporaryBeside, folderInside, isTemporaryName, refuseSymlinks, replaceInside, writeInside } from '../../src/adapters/repo-files.js';
import { pathInside } from '../../src/core/paths.js';
import { ConfigError, ExitCode } from '../../src/errors.js';

function thrown(f: () => unknown): ConfigError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return e as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

async function rejected(p: Promise<unknown>): Promise<ConfigError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(ConfigError);
  expect((e as ConfigError).exitCode).toBe(ExitCode.badInput);
  expect((e as ConfigError).message).not.toContain('\n');
  return e as ConfigError;
}

describe('pathInside: a name becomes a path strictly below its folder', () => {
  it('joins plain names', () => {
    expect(pathInside('/repo/.skiff/reports', 'unit', 'test name')).toBe('/repo/.skiff/reports/unit');
    expect(pathInside('out', 'deployment-web.yaml', 'file')).toBe('out/deployment-web.yaml');
    expect(pathInside('/r', 'a..b', 'x')).toBe('/r/a..b');
  });

  it('refuses every name that climbs out, is absolute, or is the folder itself: exit 2', () => {
    for (const name of ['..', '../..', '../../..', 'a/../../b', '.', '', './', 'a/..', '/etc/passwd', 'x\0y']) {
      const e = thrown(() => pathInside('/repo/.skiff/reports', name, 'test name'));
      expect(e.exitCode).toBe(ExitCode.badInput);
      expect(e.message).toMatch(/^test name ".*" does not name a path inside \/repo\/\.skiff\/reports/);
    }
    expect(thrown(() => pathInside('out', '../x-web.yaml', 'Deployment "web": the file name')).message).toMatchInlineSnapshot(
      `"Deployment "web": the file name "../x-web.yaml" does not name a path inside out; use letters, digits, ".", "_" and "-""`,
    );
  });
});

describe('writes under the repository never follow a symlink', () => {
  let repo: string;
  let outside: string;
  const victim = () => join(outside, 'victim');

  beforeEach(async () => {
    repo = await mkdtemp(join(tmpdir(), 'skiff-repo-files-'));
    outside = await mkdtemp(join(tmpdir(), 'skiff-outside-'));
    await writeFile(victim(), 'precious\n');
  });
  afterEach(async () => {
    await rm(repo, { recursive: true, force: true });
    await rm(outside, { recursive: true, force: true });
  });

  it('makes .skiff with a .gitignore of "*", and keeps a .gitignore that is there', async () => {
    await writeInside(repo, '.skiff/reports/junit.xml', '<x/>');
    expect(await readFile(join(repo, '.skiff/reports/junit.xml'), 'utf8')).toBe('<x/>');
    expect((await readFile(join(repo, '.skiff/.gitignore'), 'utf8')).split('\n')).toContain('*');
    await writeFile(join(repo, '.skiff/.gitignore'), 'mine\n');
    await writeInside(repo, '.skiff/deploy.env', 'A=b\n');
    expect(await readFile(join(repo, '.skiff/.gitignore'), 'utf8')).toBe('mine\n');
  });

  it('refuses a symlink at the file, naming it; the target is unchanged', async () => {
    await mkdir(join(repo, '.skiff'));
    await symlink(victim(), join(repo, '.skiff/deploy.env'));
    const e = await rejected(writeInside(repo, '.skiff/deploy.env', 'SKIFF_STATUS=deployed\n'));
    expect(e.message).toMatchInlineSnapshot(
      `".skiff/deploy.env is a symbolic link; skiff does not write through symbolic links in the repository: remove it and run again"`,
    );
    await rejected(refuseSymlinks(repo, '.skiff/deploy.env'));
    expect(await readFile(victim(), 'utf8')).toBe('precious\n');
  });

  it('refuses .skiff itself, or a folder on the way, as a symlink; nothing is written in the folder it points at', async () => {
    await symlink(outside, join(repo, '.skiff'));
    expect((await rejected(writeInside(repo, '.skiff/reports/junit.xml', '<x/>'))).message).toMatch(/^\.skiff is a symbolic link;/);
    expect((await rejected(folderInside(repo, '.skiff/reports'))).message).toMatch(/^\.skiff is a symbolic link;/);
    expect((await rejected(refuseSymlinks(repo, '.skiff/reports/junit.xml'))).message).toMatch(/^\.skiff is a symbolic link;/);
    await rm(join(repo, '.skiff'));
    await mkdir(join(repo, '.skiff'));
    await symlink(outside, join(repo, '.skiff/reports'));
    expect((await rejected(writeInside(repo, '.skiff/reports/junit.xml', '<x/>'))).message).toMatch(/^\.skiff\/reports is a symbolic link;/);
    expect((await readdir(outside)).sort()).toEqual(['victim']);
    expect(await readFile(victim(), 'utf8')).toBe('precious\n');
  });

  it('replaces a secret file through a fresh temporary file: a symlink at the old fixed temporary name is not followed', async () => {
    await mkdir(join(repo, '.kube'), { recursive: true });
    await writeFile(join(repo, '.kube/secret-values.yaml'), 'a: old\n');
    await symlink(victim(), join(repo, '.kube/secret-values.yaml.skiff-tmp'));
    await replaceInside(repo, '.kube/secret-values.yaml', 'a: new\n');
    expect(await readFile(join(repo, '.kube/secret-values.yaml'), 'utf8')).toBe('a: new\n');
    expect((await lstat(join(repo, '.kube/secret-values.yaml'))).isFile()).toBe(true);
    expect(await readFile(victim(), 'utf8')).toBe('precious\n');
    expect((await readdir(join(repo, '.kube'))).sort()).toEqual(['secret-values.yaml', 'secret-values.yaml.skiff-tmp']);
  });

  it('refuses to replace a secret file that is a symlink, or that sits below one', async () => {
    await mkdir(join(repo, '.kube'));
    await symlink(victim(), join(repo, '.kube/secret-values.yaml'));
    expect((await rejected(replaceInside(repo, '.kube/secret-values.yaml', 'a: b\n'))).message).toMatch(/^\.kube\/secret-values\.yaml is a symbolic link;/);
    await symlink(outside, join(repo, '.kube/secret'));
    expect((await rejected(replaceInside(repo, '.kube/secret/victim', 'x'))).message).toMatch(/^\.kube\/secret is a symbolic link;/);
    expect(await readFile(victim(), 'utf8')).toBe('precious\n');
  });

  it('creates temporary files exclusively under random names', async () => {
    const file = join(repo, 'f');
    const a = await createTemporaryBeside(file, 'a', 'skiff-rotate');
    const b = await createTemporaryBeside(file, 'b', 'skiff-rotate');
    expect(a).not.toBe(b);
    expect(a).toMatch(/\/f\.skiff-rotate-[0-9a-f]{12}$/);
    expect(isTemporaryName(a) && isTemporaryName(b)).toBe(true);
    expect(isTemporaryName('.kube/secret/app.conf')).toBe(false);
    expect(existsSync(file)).toBe(false);
  });
});
