import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { kubeconfigPath, requireCluster, uniqueSuffix } from '../helpers/cluster.js';
import { commitAll, committedProject, editFile, registryDigest, registryTags, skiff, uniqueRegistry } from '../helpers/skiff.js';

// skiff test skips a test that passed before on the same image digest with the
// same definition: a re-run pipeline of an unchanged commit spends seconds. The
// record lives in the registry beside the image; cleanup deletes it with it.
let dir: string;
let registry: string;
let contentTag: string;
let imageDigest: string;
const RECORD = /^sha256-([0-9a-f]{64})\.test-[0-9a-f]{32}$/;
const env = (extra: Record<string, string> = {}) => ({ KUBECONFIG: kubeconfigPath(), SKIFF_REGISTRY: registry, ...extra });
const test = (args: string[] = [], extra: Record<string, string> = {}) => skiff(['test', ...args], { cwd: dir, env: env(extra) });
const records = async () => (await registryTags(`${registry}/app`)).filter((t) => RECORD.test(t)).sort();
const setCommand = async (command: string) => {
  await editFile(dir, 'skiff.yaml', (t) => t.replace(/command: .*/, `command: ["sh", "-c", ${JSON.stringify(command)}]`));
  await commitAll(dir, command);
};
const SKIPPED = () =>
  new RegExp(`test unit: passed before on app@${imageDigest.slice(0, 19)} \\(\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d UTC\\); skipped \\(--rerun runs it\\)`);

beforeAll(async () => {
  await requireCluster();
  registry = uniqueRegistry();
  const suffix = uniqueSuffix()
    .replace(/[^a-z0-9]/g, '')
    .slice(-8);
  dir = await committedProject(
    'test-cache',
    {
      // Unique to this run: cleanup's --min-age reads the image's creation time.
      'app/Dockerfile': `FROM skiff-base/busybox:1\nRUN echo ${suffix} > /version\n`,
      'skiff.yaml': [
        `project: tc${suffix}`,
        'images:',
        '  app:',
        '    context: app',
        'tests:',
        '  unit:',
        '    image: app',
        '    command: ["sh", "-c", "echo unit ran"]',
        'environments:',
        `  testing: { namespace: tc-${suffix} }`,
        '',
      ].join('\n'),
    },
    'a test',
  );
  const built = await skiff(['build', '--push', '-o', 'json'], { cwd: dir, env: env() });
  expect(built.exitCode, built.all).toBe(0);
  const app = (JSON.parse(built.stdout) as { images: Array<{ tag: string; digest: string }> }).images[0]!;
  contentTag = app.tag;
  imageDigest = app.digest;
  expect(await registryDigest(`${registry}/app`, contentTag)).toBe(imageDigest);
});

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('skiff test and the record of a pass', () => {
  it('the first run runs the test and records the pass beside its image', async () => {
    const r = await test();
    expect(r.exitCode, r.all).toBe(0);
    expect(r.stderr).toMatch(/\[unit\] unit ran/);
    const tags = await records();
    expect(tags).toHaveLength(1);
    expect(`sha256:${RECORD.exec(tags[0]!)![1]}`).toBe(imageDigest);
  });

  it('the second run skips it, saying where and when it passed, exit 0, without even a Docker Engine', async () => {
    const r = await test([], { DOCKER_HOST: 'tcp://127.0.0.1:9' });
    expect(r.exitCode, r.all).toBe(0);
    expect(r.stderr).toMatch(SKIPPED());
    expect(r.stderr).not.toMatch(/unit ran/);
    expect(r.stderr).toMatch(/unit\s+app\s+0\s+-\s+passed before/);
    const junit = await readFile(join(dir, '.skiff/reports/junit.xml'), 'utf8');
    expect(junit).toContain('failures="0"');
    expect(junit).toContain('<property name="skiff.cached" value="true"/>');
    expect(junit).toContain(`<property name="skiff.cached.image-digest" value="${imageDigest}"/>`);
    expect(junit).toMatch(/<system-out>test unit: passed before on app@/);
    const json = await test(['-o', 'json']);
    expect(JSON.parse(json.stdout)).toMatchObject({ passed: true, tests: [{ test: 'unit', passed: true, cached: { imageDigest } }] });
  });

  it('--rerun runs it', async () => {
    const r = await test(['--rerun']);
    expect(r.exitCode, r.all).toBe(0);
    expect(r.stderr).toMatch(/\[unit\] unit ran/);
    expect(r.stderr).not.toMatch(/passed before/);
  });

  it('a changed test command runs on the same image, and is recorded beside the first record', async () => {
    await setCommand('echo unit ran again');
    const r = await test();
    expect(r.exitCode, r.all).toBe(0);
    expect(r.stderr).toMatch(/\[unit\] unit ran again/);
    const tags = await records();
    expect(tags).toHaveLength(2);
    expect(tags.every((t) => `sha256:${RECORD.exec(t)![1]}` === imageDigest)).toBe(true);
    const again = await test();
    expect(again.stderr).toMatch(SKIPPED());
  });

  it('a failing test is never recorded: it runs, and fails, every time', async () => {
    await setCommand('echo failing; exit 1');
    for (const round of [1, 2]) {
      const r = await test();
      expect(r.exitCode, `${round}: ${r.all}`).toBe(1);
      expect(r.stderr).toMatch(/\[unit\] failing/);
      expect(r.stderr).not.toMatch(/passed before/);
    }
    expect(await records()).toHaveLength(2);
  });

  it('cleanup deletes the records with the image they describe, and never counts them as images', async () => {
    await setCommand('echo unit ran');
    await editFile(dir, 'app/Dockerfile', (t) => `${t}RUN echo two > /two\n`);
    await commitAll(dir, 'a new image');
    const built = await skiff(['build', '--push'], { cwd: dir, env: env() });
    expect(built.exitCode, built.all).toBe(0);
    const tested = await test();
    expect(tested.exitCode, tested.all).toBe(0);
    const newRecords = (await records()).filter((t) => `sha256:${RECORD.exec(t)![1]}` !== imageDigest);
    expect(newRecords).toHaveLength(1);

    const dry = await skiff(['cleanup', '--keep-commits', '1', '--min-age', '0s', '--dry-run', '-o', 'json'], { cwd: dir, env: env() });
    expect(dry.exitCode, dry.all).toBe(0);
    const planned = JSON.parse(dry.stdout) as { deleted: Array<{ digest: string }>; deletedTestRecords: Array<{ tag: string }>; kept: number };
    expect(planned.deleted.map((d) => d.digest)).toEqual([imageDigest]);
    expect(planned.deletedTestRecords.map((d) => d.tag).sort()).toEqual((await records()).filter((t) => !newRecords.includes(t)));
    expect(planned.kept).toBe(1); // the new image; its record is no image
    expect(await records()).toHaveLength(3);

    const r = await skiff(['cleanup', '--keep-commits', '1', '--min-age', '0s'], { cwd: dir, env: env() });
    expect(r.exitCode, r.all).toBe(0);
    expect(r.stderr).toMatch(/deleted 1 images and 2 test records; kept 1/);
    expect(await records()).toEqual(newRecords);
    expect(await registryDigest(`${registry}/app`, contentTag)).toBeUndefined();
  });
});
