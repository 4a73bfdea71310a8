import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  AUTH_PASSWORD,
  AUTH_REGISTRY,
  AUTH_USER,
  commitAll,
  dockerImageId,
  editFile,
  engineEvents,
  fixtureRepo,
  registryDigest,
  registryTags,
  removeTempDirs,
  skiff,
  skiffBin,
  uniqueRegistry,
  builtImages,
  type BuiltImage,
} from '../helpers/skiff.js';

afterAll(removeTempDirs);

describe('skiff build --push against the real Engine and registry', () => {
  let dir: string;
  let registry: string;
  let first: Record<string, BuiltImage>;

  beforeAll(async () => {
    dir = await fixtureRepo('hello');
    registry = uniqueRegistry();
    const r = await skiff(['build', '--push', '--registry', registry, '-o', 'json'], { cwd: dir });
    expect(r.exitCode, r.all).toBe(0);
    first = builtImages(r.stdout);
  });

  it('first build builds and pushes every image, with content, commit and branch tags', async () => {
    const commit = (await import('execa')).execa('git', ['rev-parse', 'HEAD'], { cwd: dir });
    const sha = (await commit).stdout.trim();
    for (const name of ['base', 'app', 'worker']) {
      expect(first[name]).toMatchObject({ built: true, pushed: true });
      expect(first[name]!.tag).toMatch(/^[0-9a-f]{32}$/);
      const digest = await registryDigest(`${registry}/${name}`, first[name]!.tag);
      expect(digest).toBe(first[name]!.digest);
      expect(await registryTags(`${registry}/${name}`)).toEqual(expect.arrayContaining([first[name]!.tag, sha, 'main']));
    }
    // app is built FROM base: its image carries base's file.
    const { execa } = await import('execa');
    const r = await execa('docker', ['run', '--rm', '--network', 'none', first.app!.reference, 'cat', '/opt/base/VERSION']);
    expect(r.stdout.trim()).toBe('base 1');
  });

  it('a second build with no change neither builds nor pushes (Engine events and registry unchanged)', async () => {
    // Engine events have one-second resolution: start in a fresh second so the first build's events are out.
    const since = Math.floor(Date.now() / 1000) + 1;
    await new Promise((resolve) => setTimeout(resolve, since * 1000 - Date.now() + 10));
    const r = await skiff(['build', '--push', '--registry', registry, '-o', 'json'], { cwd: dir });
    const until = Math.ceil(Date.now() / 1000) + 1;
    expect(r.exitCode, r.all).toBe(0);
    const second = builtImages(r.stdout);
    for (const name of ['base', 'app', 'worker']) {
      expect(second[name]).toMatchObject({ built: false, pushed: false, tag: first[name]!.tag, digest: first[name]!.digest });
      expect(await registryDigest(`${registry}/${name}`, first[name]!.tag)).toBe(first[name]!.digest);
    }
    const events = await engineEvents(since, until);
    const ours = events.filter((e) => JSON.stringify(e).includes(registry) || e.Type === 'container');
    expect(ours.filter((e) => e.Action === 'push' || e.Action === 'create' || e.Action === 'tag')).toEqual([]);
  });

  it('changing one file rebuilds only the image whose context holds it, and --why names the file', async () => {
    await editFile(dir, 'worker/worker.sh', (t) => t.replace('worker started', 'worker v2 started'));
    await commitAll(dir, 'worker v2');
    const r = await skiff(['build', '--push', '--why', '--registry', registry, '-o', 'json'], { cwd: dir });
    expect(r.exitCode, r.all).toBe(0);
    const third = builtImages(r.stdout);
    expect(third.worker).toMatchObject({ built: true, pushed: true });
    expect(third.worker!.tag).not.toBe(first.worker!.tag);
    expect(third.worker!.changes!.join('\n')).toContain('worker/worker.sh');
    expect(third.app).toMatchObject({ built: false, pushed: false, tag: first.app!.tag });
    expect(third.base).toMatchObject({ built: false, pushed: false, tag: first.base!.tag });
  });

  it('a file excluded by .dockerignore changes no tag', async () => {
    await editFile(dir, 'app/README.md', (t) => `${t}\nmore notes`);
    await commitAll(dir, 'docs only');
    const r = await skiff(['build', '--registry', registry, '-o', 'json'], { cwd: dir });
    expect(r.exitCode, r.all).toBe(0);
    expect(builtImages(r.stdout).app).toMatchObject({ built: false, tag: first.app!.tag });
  });

  it('a dependent image rebuilds when its base changes', async () => {
    await editFile(dir, 'base/Dockerfile', (t) => t.replace('base 1', 'base 2'));
    await commitAll(dir, 'base 2');
    const r = await skiff(['build', '--push', '--why', '--registry', registry, '-o', 'json'], { cwd: dir });
    expect(r.exitCode, r.all).toBe(0);
    const out = builtImages(r.stdout);
    expect(out.base).toMatchObject({ built: true, pushed: true });
    expect(out.app).toMatchObject({ built: true, pushed: true });
    expect(out.app!.changes!.join('\n')).toMatch(/base image base changed/);
    expect(out.worker!.built).toBe(false);
    const { execa } = await import('execa');
    const run = await execa('docker', ['run', '--rm', '--network', 'none', out.app!.reference, 'cat', '/opt/base/VERSION']);
    expect(run.stdout.trim()).toBe('base 2');
  });

  it('--dev builds uncommitted changes; the commit build ignores them', async () => {
    await editFile(dir, 'worker/worker.sh', (t) => t.replace('worker v2', 'worker v3'));
    const commitBuild = await skiff(['build', 'worker', '--registry', registry, '-o', 'json'], { cwd: dir });
    expect(commitBuild.exitCode, commitBuild.all).toBe(0);
    expect(builtImages(commitBuild.stdout).worker!.built).toBe(false);
    expect(commitBuild.stderr).toMatch(/uncommitted changes are not part of the build/);
    const devBuild = await skiff(['build', 'worker', '--dev', '--registry', registry, '-o', 'json'], { cwd: dir });
    expect(devBuild.exitCode, devBuild.all).toBe(0);
    expect(builtImages(devBuild.stdout).worker!.built).toBe(true);
    // In CI a dirty tree without --dev is refused before any Docker call.
    const ci = await skiff(['build', '--registry', registry], { cwd: dir, env: { CI: 'true' } });
    expect(ci.exitCode).toBe(2);
    expect(ci.stderr).toMatch(/tracked files changed in the job, uncommitted changes skiff does not build \(worker\/worker\.sh\)/);
  });

  it('in CI, untracked files (artifacts, a restored cache) do not stop a build from the commit', async () => {
    const clean = await fixtureRepo('hello');
    await mkdir(join(clean, '.skiff-artifacts'), { recursive: true });
    await writeFile(join(clean, '.skiff-artifacts', 'report.xml'), '<testsuites/>');
    await writeFile(join(clean, 'app', 'untracked.txt'), 'from an earlier job');
    const r = await skiff(['build', '--registry', uniqueRegistry(), '-o', 'json'], { cwd: clean, env: { CI: 'true' } });
    expect(r.exitCode, r.all).toBe(0);
    expect(r.stderr).not.toMatch(/uncommitted|untracked/);
  });
});

describe('build failures', () => {
  it('a failing Dockerfile step exits 1 and names the file, line and step', async () => {
    const dir = await fixtureRepo('hello');
    await editFile(dir, 'worker/Dockerfile', (t) => `${t}RUN echo about to fail && exit 7\n`);
    await commitAll(dir, 'broken step');
    const r = await skiff(['build', 'worker', '--registry', uniqueRegistry()], { cwd: dir });
    expect(r.exitCode, r.all).toBe(1);
    expect(r.stderr).toMatch(/error: image worker: worker\/Dockerfile:4: step 4 "RUN echo about to fail && exit 7" failed: .*non-zero code: 7/);
  });

  it('a wrong registry password exits 3 and never prints the password', async () => {
    const dir = await fixtureRepo('hello');
    const password = 'Wr0ng-Pa55word-x9';
    const r = await skiff(['build', 'worker', '--push', '--registry', uniqueRegistry(AUTH_REGISTRY)], {
      cwd: dir,
      env: { SKIFF_REGISTRY_USER: AUTH_USER, SKIFF_REGISTRY_PASSWORD: password, SKIFF_REGISTRY_HOST: AUTH_REGISTRY },
    });
    expect(r.exitCode, r.all).toBe(3);
    expect(r.stderr).toMatch(/denied access as "skiff"/);
    expect(r.all).not.toContain(password);
    expect(r.all).not.toContain(Buffer.from(`${AUTH_USER}:${password}`).toString('base64'));
  });

  it('the right password pushes to the htpasswd registry', async () => {
    const dir = await fixtureRepo('hello');
    const registry = uniqueRegistry(AUTH_REGISTRY);
    const r = await skiff(['build', 'worker', '--push', '--registry', registry, '-o', 'json'], {
      cwd: dir,
      env: { CI_REGISTRY_USER: AUTH_USER, CI_REGISTRY_PASSWORD: AUTH_PASSWORD, CI_REGISTRY: AUTH_REGISTRY },
    });
    expect(r.exitCode, r.all).toBe(0);
    const worker = builtImages(r.stdout).worker!;
    expect(await registryDigest(`${registry}/worker`, worker.tag, { user: AUTH_USER, password: AUTH_PASSWORD })).toBe(worker.digest);
    expect(r.all).not.toContain(AUTH_PASSWORD);
  });
});

describe('skiff test', () => {
  it('runs the tests in the built image and copies the report out', async () => {
    const dir = await fixtureRepo('hello');
    const r = await skiff(['test', '--registry', uniqueRegistry()], { cwd: dir });
    expect(r.exitCode, r.all).toBe(0);
    expect(r.stderr).toMatch(/\[unit\] tests finished with status 0/);
    const report = await readFile(join(dir, '.skiff/reports/unit/report.xml'), 'utf8');
    expect(report).toContain('failures="0"');
  });

  it('takes the image from the registry when a build job pushed it and this machine does not have it', async () => {
    const dir = await fixtureRepo('hello');
    const registry = uniqueRegistry();
    const pushed = await skiff(['build', '--push', '--registry', registry, '-o', 'json'], { cwd: dir });
    expect(pushed.exitCode, pushed.all).toBe(0);
    const app = builtImages(pushed.stdout).app!;
    const { execa } = await import('execa');
    await execa('docker', ['rmi', '-f', app.reference]);
    const r = await skiff(['test', '--registry', registry], { cwd: dir });
    expect(r.exitCode, r.all).toBe(0);
    expect(r.stderr).toMatch(new RegExp(`app: pulled \\(${app.reference.replace(/[.]/g, '\\.')}\\)`));
    expect(r.stderr).not.toMatch(/building/);
    expect(await dockerImageId(app.reference)).toBeDefined();
  });

  it('a failing test exits 1 with a summary table, and its report is still copied out', async () => {
    const dir = await fixtureRepo('hello');
    await editFile(dir, 'app/www/index.html', () => '<h1>Goodbye</h1>\n');
    await commitAll(dir, 'break the greeting');
    const r = await skiff(['test', '--registry', uniqueRegistry()], { cwd: dir });
    expect(r.exitCode, r.all).toBe(1);
    expect(r.stderr).toMatch(/TEST\s+IMAGE\s+EXIT\s+DURATION\s+RESULT/);
    expect(r.stderr).toMatch(/unit\s+app\s+1\s+\S+\s+FAILED/);
    expect(r.stderr).toMatch(/error: 1 of 1 tests failed: unit/);
    expect(existsSync(join(dir, '.skiff/reports/unit/report.xml'))).toBe(true);
    expect(await readFile(join(dir, '.skiff/reports/unit/report.xml'), 'utf8')).toContain('failures="1"');
    // With -o json, stdout is one JSON document: the result, failures included.
    const json = await skiff(['test', '--registry', uniqueRegistry(), '-o', 'json'], { cwd: dir });
    expect(json.exitCode, json.all).toBe(1);
    expect(JSON.parse(json.stdout)).toMatchObject({ passed: false, tests: [{ test: 'unit', exitCode: 1, passed: false, interrupted: false }] });
  });

  it('Ctrl-C during a test stops it, removes its container and exits 130', async () => {
    const dir = await fixtureRepo('hello');
    await editFile(dir, 'skiff.yaml', (t) => t.replace('"/app/run-tests"', '"echo started; sleep 60"'));
    await commitAll(dir, 'slow test');
    const { execa } = await import('execa');
    const child = execa(skiffBin, ['test', '--registry', uniqueRegistry()], {
      cwd: dir,
      reject: false,
      all: true,
      env: { ...process.env, CI: '', NO_COLOR: '1' },
    });
    let output = '';
    let sent = false;
    child.all.on('data', (d: Buffer) => {
      output += d.toString();
      // One Ctrl-C: a second one means "quit at once, skip the clean-up".
      if (!sent && output.includes('[unit] started')) sent = child.kill('SIGINT');
    });
    const r = await child;
    expect(r.exitCode, r.all).toBe(130);
    expect(r.all).toMatch(/SIGINT: stopping and cleaning up/);
    expect(r.all).toMatch(/unit\s+app\s+137\s+\S+\s+interrupted/);
    expect(r.all).toMatch(/error: 1 of 1 tests failed: unit \(interrupted\)/);
    const left = await execa('docker', ['ps', '-a', '--filter', 'label=io.skiff.test=unit', '--format', '{{.ID}}']);
    expect(left.stdout.trim()).toBe('');
  });

  it('a test that runs past its timeout is killed, reported, and its container removed', async () => {
    const dir = await fixtureRepo('hello');
    await editFile(dir, 'skiff.yaml', (t) => t.replace('timeout: 2m', 'timeout: 2s').replace('"/app/run-tests"', '"sleep 60"'));
    await commitAll(dir, 'slow test');
    const r = await skiff(['test', '--registry', uniqueRegistry()], { cwd: dir });
    expect(r.exitCode, r.all).toBe(1);
    expect(r.stderr).toMatch(/unit: timed out \(after 2\.0s\)/);
    const { execa } = await import('execa');
    const left = await execa('docker', ['ps', '-a', '--filter', 'label=io.skiff.test=unit', '--format', '{{.ID}}']);
    expect(left.stdout.trim()).toBe('');
  });
});
