import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { commitAll, fixtureRepo, git, skiff, uniqueRegistry } from '../helpers/skiff.js';

it('skiff init scaffolds a project that builds, and never overwrites a file', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'skiff-init-'));
  await git(dir, 'init', '-q', '-b', 'main');
  await writeFile(join(dir, 'Dockerfile'), 'FROM skiff-base/busybox:1\nCMD ["httpd", "-f", "-p", "8080"]\n');
  await writeFile(join(dir, '.gitlab-ci.yml'), '# ours\n');
  const registry = uniqueRegistry();
  const r = await skiff(['init', '--project', 'shop', '--registry', registry], { cwd: dir });
  expect(r.exitCode, r.all).toBe(0);
  expect(r.stderr).toMatch(/wrote skiff\.yaml/);
  expect(r.stderr).toMatch(/kept \.gitlab-ci\.yml \(already there\)/);
  expect(await readFile(join(dir, '.gitlab-ci.yml'), 'utf8')).toBe('# ours\n');
  expect(await readFile(join(dir, 'skiff.yaml'), 'utf8')).toContain(`registry: ${registry}`);
  await commitAll(dir, 'scaffold');
  const build = await skiff(['build', '-o', 'json'], { cwd: dir });
  expect(build.exitCode, build.all).toBe(0);
  expect(JSON.parse(build.stdout).images[0]).toMatchObject({ image: 'app', built: true });
  // Deployment files are outside the image: a template change keeps the image's tag.
  expect(await readFile(join(dir, '.dockerignore'), 'utf8')).toMatch(/^\.kube\/$/m);
  await writeFile(join(dir, '.kube', 'values.yaml'), 'replicas: 3\n');
  await commitAll(dir, 'three replicas');
  const rebuilt = await skiff(['build', '-o', 'json'], { cwd: dir });
  expect(rebuilt.exitCode, rebuilt.all).toBe(0);
  expect(JSON.parse(rebuilt.stdout).images[0]).toMatchObject({ image: 'app', built: false, tag: JSON.parse(build.stdout).images[0].tag });
  const again = await skiff(['init'], { cwd: dir });
  expect(again.exitCode).toBe(0);
  expect(again.stderr).not.toMatch(/wrote/);
});

it('skiff init leaves an existing .kube/ alone, and writes no .dockerignore where it would take no effect', async () => {
  const dir = await fixtureRepo('hello'); // .kube/ with templates, images built from subfolders
  const before = (await readdir(join(dir, '.kube'))).sort();
  const r = await skiff(['init'], { cwd: dir });
  expect(r.exitCode, r.all).toBe(0);
  expect((await readdir(join(dir, '.kube'))).sort()).toEqual(before);
  expect(r.stderr).toMatch(/\.kube\/ has templates already: the skeleton is not added to it/);
  expect(r.stderr).toMatch(/\.dockerignore not written: no image of skiff\.yaml builds from the repository root/);
  expect(existsSync(join(dir, '.dockerignore'))).toBe(false);
  expect(r.stderr).toMatch(/wrote \.gitlab-ci\.yml/);
});
