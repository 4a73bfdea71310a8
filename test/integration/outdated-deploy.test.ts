import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { kubeconfigPath, kubectl, kubectlJson, requireCluster, uniqueSuffix } from '../helpers/cluster.js';
import { configMap, docs } from '../helpers/manifests.js';
import { commitAll, committedProject, editFile, git, skiff, uniqueRegistry } from '../helpers/skiff.js';

// The outdated-deploy guard on the real cluster: an older pipeline's commit
// never replaces a newer one unasked. One project, one namespace; the tests
// build on each other's releases. The image is built once: the commits only
// change .kube/, so every one of them deploys the same content tag.
let dir: string;
let namespace: string;
let registry: string;
const commits: Record<'A' | 'B' | 'C', string> = { A: '', B: '', C: '' };
const env = (extra: Record<string, string> = {}) => ({ KUBECONFIG: kubeconfigPath(), SKIFF_REGISTRY: registry, ...extra });
const run = (args: string[], extra: Record<string, string> = {}, cwd = dir) => skiff(args, { cwd, env: env(extra) });
const deploy = (args: string[] = [], extra: Record<string, string> = {}, cwd = dir) =>
  run(['deploy', 'staging', '--namespace', namespace, '--timeout', '2m', ...args], extra, cwd);
const history = async () => {
  const r = await run(['history', 'staging', '--namespace', namespace, '-o', 'json']);
  expect(r.exitCode, r.all).toBe(0);
  return (JSON.parse(r.stdout) as Array<{ revision: number; status: string; git: { commit: string; pipelineId?: number; ref?: string } }>).map(
    (h) => `${h.revision} ${h.status} ${h.git.commit.slice(0, 7)}`,
  );
};
const liveVersion = async () => (await kubectlJson(['-n', namespace, 'get', 'configmap', 'guard'])).data.version as string;
const head = async (cwd = dir) => (await git(cwd, 'rev-parse', 'HEAD')).stdout.trim();
const short = (c: string) => c.slice(0, 7);
const setVersion = (version: string) => editFile(dir, '.kube/guard.yaml.ejs', (t) => t.replace(/version: \S+/, `version: ${version}`));

beforeAll(async () => {
  await requireCluster();
  const suffix = uniqueSuffix()
    .replace(/[^a-z0-9]/g, '')
    .slice(-8);
  namespace = `guard-${suffix}`;
  registry = uniqueRegistry();
  dir = await committedProject(
    'guard',
    {
      'app/Dockerfile': 'FROM skiff-base/busybox:1\n',
      'skiff.yaml': `project: guard${suffix}\nimages:\n  app:\n    context: app\nenvironments:\n  staging:\n    namespace: ${namespace}\n`,
      '.kube/guard.yaml.ejs': docs(configMap('guard', { version: 'A', image: '<%= images.app %>' })),
    },
    'A',
  );
  commits.A = await head();
  const built = await run(['build', '--push']);
  expect(built.exitCode, built.all).toBe(0);
  await setVersion('B');
  await commitAll(dir, 'B');
  commits.B = await head();
});

afterAll(async () => {
  await kubectl(['delete', 'namespace', namespace, '--wait=false', '--ignore-not-found'], { allowFailure: true });
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('the outdated-deploy guard', () => {
  it('B deployed; then A, its parent, is exit 2 naming both commits, and nothing is applied', async () => {
    const b = await deploy();
    expect(b.exitCode, b.all).toBe(0);
    await git(dir, 'checkout', '-q', commits.A);
    const a = await deploy();
    expect(a.exitCode, a.all).toBe(2);
    expect(a.stderr.trim().split('\n').at(-1)).toBe(
      `error: staging runs ${short(commits.B)}, newer than ${short(commits.A)}; --allow-older to deploy it anyway`,
    );
    expect(await history()).toEqual([`1 deployed ${short(commits.B)}`]);
    expect(await liveVersion()).toBe('B');
  });

  it('--allow-older deploys A, saying so', async () => {
    const a = await deploy(['--allow-older']);
    expect(a.exitCode, a.all).toBe(0);
    expect(a.stderr).toContain(`warning: staging runs ${short(commits.B)}, newer than ${short(commits.A)}: deploying it anyway (--allow-older)`);
    expect(await liveVersion()).toBe('A');
    expect(await history()).toEqual([`1 superseded ${short(commits.B)}`, `2 deployed ${short(commits.A)}`]);
    await git(dir, 'checkout', '-q', 'main');
    const b = await deploy();
    expect(b.exitCode, b.all).toBe(0);
  });

  it('a commit of a branch that diverged from main (a review branch off A) deploys', async () => {
    await git(dir, 'checkout', '-q', '-b', 'review', commits.A);
    await setVersion('review');
    await commitAll(dir, 'review');
    const r = await deploy();
    expect(r.exitCode, r.all).toBe(0);
    expect(await liveVersion()).toBe('review');
    await git(dir, 'checkout', '-q', 'main');
  });

  it("a rollback to A's revision is not refused", async () => {
    const r = await run(['rollback', 'staging', '--namespace', namespace, '--to', '2']);
    expect(r.exitCode, r.all).toBe(0);
    expect(await liveVersion()).toBe('A');
    expect((await history()).at(-1)).toBe(`5 deployed ${short(commits.A)}`);
  });

  it('a shallow CI clone that lacks the deployed commit refuses an older pipeline of the same ref, and lets a pipeline of another ref deploy', async () => {
    // Pipeline 812 deploys C, the tip of main; pipeline 809's job, slower, runs last in a clone of depth 1 at B.
    await setVersion('C');
    await commitAll(dir, 'C');
    commits.C = await head();
    const ci = (pipeline: number) => ({ CI_PIPELINE_ID: String(pipeline), CI_COMMIT_REF_NAME: 'main' });
    const c = await deploy([], ci(812));
    expect(c.exitCode, c.all).toBe(0);
    await git(dir, 'tag', 'at-b', commits.B);
    const clone = await mkdtemp(join(tmpdir(), 'skiff-guard-shallow-'));
    try {
      await git(clone, 'clone', '-q', '--depth', '1', '--branch', 'at-b', `file://${dir}`, '.');
      expect((await git(clone, 'rev-parse', '--is-shallow-repository')).stdout.trim()).toBe('true');
      const hasC = await git(clone, 'rev-parse', '--verify', '--quiet', `${commits.C}^{commit}`).then(
        () => true,
        () => false,
      );
      expect(hasC).toBe(false);
      const older = await deploy([], ci(809), clone);
      expect(older.exitCode, older.all).toBe(2);
      expect(older.stderr).toContain(
        `error: staging runs ${short(commits.C)} (pipeline 812), newer than ${short(commits.B)} (pipeline 809); --allow-older to deploy it anyway`,
      );
      expect(await liveVersion()).toBe('C');
      // Another ref's pipeline is not ordered against main's: a review app of an older pipeline id deploys.
      const otherRef = await deploy([], { CI_PIPELINE_ID: '809', CI_COMMIT_REF_NAME: 'feature' }, clone);
      expect(otherRef.exitCode, otherRef.all).toBe(0);
      expect(await liveVersion()).toBe('B');
    } finally {
      await rm(clone, { recursive: true, force: true });
    }
  });
});
