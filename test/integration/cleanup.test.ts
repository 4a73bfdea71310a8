import { mkdtemp, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { kubeconfigPath, kubectl, requireCluster, uniqueSuffix } from '../helpers/cluster.js';
import { commitAll, git, registryTags, skiff, uniqueRegistry } from '../helpers/skiff.js';

// Four commits, each pushed; the first one deployed. cleanup --keep-commits 2
// keeps the deployed image and the two newest, and deletes the second.
let dir: string;
const registry = uniqueRegistry();
const namespace = `clean-${uniqueSuffix()}`;
const env = (extra: Record<string, string> = {}) => ({ KUBECONFIG: kubeconfigPath(), SKIFF_REGISTRY: registry, ...extra });
const repo = `${registry}/web`;
const tagOf = async () => {
  const r = await skiff(['build', '--push', '-o', 'json'], { cwd: dir, env: env() });
  expect(r.exitCode, r.all).toBe(0);
  return JSON.parse(r.stdout).images[0].tag as string;
};
const commits: Array<{ sha: string; tag: string }> = [];

beforeAll(async () => {
  await requireCluster();
  dir = await mkdtemp(join(tmpdir(), 'skiff-clean-'));
  await writeFile(join(dir, 'skiff.yaml'), `project: clean\nimages:\n  web: {}\nenvironments:\n  testing: { namespace: ${namespace} }\n  production: { namespace: ${namespace}-prod }\n`);
  await writeFile(join(dir, '.dockerignore'), '.kube/\n');
  await mkdir(join(dir, '.kube'));
  await writeFile(join(dir, '.kube', 'web.yaml.ejs'), 'apiVersion: v1\nkind: ConfigMap\nmetadata: { name: web }\ndata:\n  image: <%= images.web %>\n');
  await git(dir, 'init', '-q', '-b', 'main');
  for (const n of [1, 2, 3, 4]) {
    await writeFile(join(dir, 'Dockerfile'), `FROM skiff-base/busybox:1\nRUN echo ${n} > /version\n`);
    await commitAll(dir, `version ${n}`);
    const tag = await tagOf();
    commits.push({ sha: (await git(dir, 'rev-parse', 'HEAD')).stdout.trim(), tag });
    if (n === 1) {
      const d = await skiff(['deploy', 'testing'], { cwd: dir, env: env() });
      expect(d.exitCode, d.all).toBe(0);
    }
  }
});

afterAll(async () => {
  await kubectl(['delete', 'namespace', namespace, '--wait=false', '--ignore-not-found'], { allowFailure: true });
  if (dir) await rm(dir, { recursive: true, force: true });
});

it('without every environment\'s history it deletes nothing and says which environment failed', async () => {
  const before = (await registryTags(repo)).sort();
  const r = await skiff(['cleanup'], { cwd: dir, env: env({ KUBECONFIG: join(dir, 'no-such-kubeconfig') }) });
  expect(r.exitCode, r.all).toBe(2);
  expect(r.stderr).toMatch(/error: environment testing \(namespace clean-\S+\): no kubeconfig found/);
  expect((await registryTags(repo)).sort()).toEqual(before);
});

it('--dry-run lists the image of the second commit and deletes nothing', async () => {
  const before = (await registryTags(repo)).sort();
  const r = await skiff(['cleanup', '--keep-commits', '2', '--dry-run', '-o', 'json'], { cwd: dir, env: env() });
  expect(r.exitCode, r.all).toBe(0);
  const result = JSON.parse(r.stdout);
  expect(result.deleted.map((d: { tags: string[] }) => d.tags.sort())).toEqual([[commits[1]!.tag, commits[1]!.sha].sort()]);
  expect((await registryTags(repo)).sort()).toEqual(before);
});

it('deletes what nothing needs: the deployed image, the newest commits and the branch tag stay', async () => {
  const r = await skiff(['cleanup', '--keep-commits', '2'], { cwd: dir, env: env() });
  expect(r.exitCode, r.all).toBe(0);
  expect(r.stderr).toMatch(new RegExp(`web: deleted ${registry.replace(/[.]/g, '\\.')}/web:${commits[1]!.tag}`));
  const tags = await registryTags(repo);
  expect(tags).not.toContain(commits[1]!.tag);
  expect(tags).not.toContain(commits[1]!.sha);
  for (const kept of [commits[0]!, commits[2]!, commits[3]!]) expect(tags).toContain(kept.tag);
  expect(tags).toContain('main');
  // The deployed revision can still be rolled back to: its image is there.
  const again = await skiff(['cleanup', '--keep-commits', '2', '-o', 'json'], { cwd: dir, env: env() });
  expect(JSON.parse(again.stdout).deleted).toEqual([]);
});
