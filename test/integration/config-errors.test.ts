import { mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { commitAll, editFile, fixtureRepo, git, removeTempDirs, repoRoot, skiff } from '../helpers/skiff.js';

// With Docker unreachable, exit 3 would mean skiff tried the Engine; exit 2
// proves the bad input was found first, with nothing touched.
const NO_DOCKER = { DOCKER_HOST: 'unix:///nonexistent/docker.sock' };
const BUILD = ['build', '--push', '--registry', '127.0.0.1:5000/cfgerr'];
/** Any mention of the Engine; "Dockerfile" is a file name, not the Engine. */
const DOCKER_ENGINE = /docker(?!file)/i;

afterAll(removeTempDirs);

/** A fresh hello repository whose committed skiff.yaml (or other files) had `edit` applied. */
async function brokenRepo(edit: (dir: string) => Promise<void>): Promise<string> {
  const dir = await fixtureRepo('hello');
  await edit(dir);
  await commitAll(dir, 'break the config');
  return dir;
}

const replaceInConfig = (dir: string, from: string, to: string) =>
  editFile(dir, 'skiff.yaml', (t) => {
    if (!t.includes(from)) throw new Error(`fixture skiff.yaml has no ${JSON.stringify(from)}`);
    return t.replace(from, to);
  });

async function expectConfigError(dir: string, args: string[], stderr: RegExp) {
  const r = await skiff(args, { cwd: dir, env: NO_DOCKER });
  expect(r.exitCode, r.all).toBe(2);
  expect(r.stderr.split('\n'), r.stderr).toHaveLength(1);
  expect(r.stderr).toMatch(stderr);
  expect(r.all).not.toMatch(DOCKER_ENGINE);
  return r;
}

describe('bad skiff.yaml: exit 2 before any Docker call', () => {
  beforeAll(async () => {
    // The line numbers below count lines of the fixture; fail loudly if it moves.
    const lines = (await readFile(join(repoRoot, 'fixtures/hello/skiff.yaml'), 'utf8')).split('\n');
    expect(lines[6]).toBe('    context: base');
    expect(lines[11]).toBe('      APP_ENV: production');
    expect(lines[13]).toBe('    context: worker');
    expect(lines[17]).toBe('    image: app');
  });

  it('control: a valid config with Docker unreachable exits 3', async () => {
    const dir = await fixtureRepo('hello');
    const r = await skiff(BUILD, { cwd: dir, env: NO_DOCKER });
    expect(r.exitCode, r.all).toBe(3);
    expect(r.stderr).toMatch(/^error: Docker Engine at unix:\/\/\/nonexistent\/docker\.sock \(from DOCKER_HOST\) is unreachable/m);
  });

  it('an unknown key', async () => {
    const dir = await brokenRepo((d) => replaceInConfig(d, '    context: worker', '    contxt: worker'));
    await expectConfigError(dir, BUILD, /^error: skiff\.yaml:14:5: unknown key "contxt" in images\.worker \(did you mean "context"\?\)$/);
  });

  it('a dependency cycle', async () => {
    const dir = await brokenRepo((d) => replaceInConfig(d, '    context: base\n', '    context: base\n    dependsOn: [app]\n'));
    await expectConfigError(dir, BUILD, /^error: skiff\.yaml:8:5: dependency cycle between images: base → app → base; remove one of these dependsOn entries$/);
  });

  it('a test whose image does not exist', async () => {
    const dir = await brokenRepo((d) => replaceInConfig(d, '    image: app', '    image: web'));
    await expectConfigError(
      dir,
      BUILD,
      /^error: skiff\.yaml:18:5: tests\.unit\.image names "web", which is not an image in skiff\.yaml \(images: base, app, worker\)$/,
    );
  });

  it('a Dockerfile that is not in the commit', async () => {
    const dir = await brokenRepo((d) => replaceInConfig(d, '    context: worker\n', '    context: worker\n    dockerfile: Dockerfile.missing\n'));
    await expectConfigError(
      dir,
      BUILD,
      /^error: skiff\.yaml:15:5: Dockerfile "worker\/Dockerfile\.missing" of image worker is not in commit [0-9a-f]{8}; fix images\.worker\.dockerfile or commit the file$/,
    );
  });

  it('a context with no tracked files (present on disk, but ignored by Git)', async () => {
    const dir = await brokenRepo(async (d) => {
      await mkdir(join(d, 'scratch'));
      await writeFile(join(d, 'scratch', 'Dockerfile'), 'FROM skiff-base/busybox:1\n');
      await writeFile(join(d, '.gitignore'), 'scratch/\n');
      await replaceInConfig(d, '    context: worker', '    context: scratch');
    });
    await expectConfigError(
      dir,
      BUILD,
      /^error: skiff\.yaml:14:5: context "scratch" of image worker has no tracked files at commit [0-9a-f]{8}; fix images\.worker\.context or commit the directory$/,
    );
  });

  it('invalid YAML', async () => {
    const dir = await brokenRepo((d) => replaceInConfig(d, '      APP_ENV: production', '      APP_ENV: production: yes'));
    await expectConfigError(dir, BUILD, /^error: skiff\.yaml:12:16: invalid YAML: Nested mappings are not allowed in compact mappings$/);
  });
});

describe('bad input on the command line: exit 2', () => {
  it('outside a Git repository', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'skiff-nogit-'));
    await writeFile(join(dir, 'skiff.yaml'), 'project: x\nimages:\n  app: {}\n');
    // Make sure no repository encloses the temp dir, or the test proves nothing.
    expect((await git(dir, 'rev-parse', '--show-toplevel').catch((e: { exitCode: number }) => e)).exitCode).not.toBe(0);
    const r = await expectConfigError(dir, BUILD, /^error: .*: not a Git repository; skiff builds from a commit/);
    expect(r.stderr).toContain(dir);
  });

  it('skiff build with an image that is not defined', async () => {
    const dir = await fixtureRepo('hello');
    await expectConfigError(dir, [...BUILD, 'nosuchimage'], /^error: image "nosuchimage" is not defined in skiff\.yaml \(images: base, app, worker\)$/);
  });

  it('skiff test with a test that is not defined', async () => {
    const dir = await fixtureRepo('hello');
    await expectConfigError(dir, ['test', 'nosuchtest'], /^error: test "nosuchtest" is not defined in skiff\.yaml \(tests: unit\)$/);
  });
});

describe('version and help', () => {
  it('skiff --version prints the package.json version', async () => {
    const { version } = JSON.parse(await readFile(join(repoRoot, 'package.json'), 'utf8')) as { version: string };
    for (const flag of ['--version', '-V']) {
      const r = await skiff([flag], { cwd: tmpdir() });
      expect(r.exitCode, r.all).toBe(0);
      expect(r.stdout).toBe(version);
    }
  });

  it('skiff build --help shows usage and examples', async () => {
    const r = await skiff(['build', '--help'], { cwd: tmpdir() });
    expect(r.exitCode, r.all).toBe(0);
    expect(r.stdout).toMatch(/^Usage: skiff build \[options\] \[image\.\.\.\]/);
    expect(r.stdout).toContain('Examples:');
    expect(r.stdout).toContain('skiff build app --push');
    expect(r.stdout).toContain('--why');
  });
});
