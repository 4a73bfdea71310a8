import { mkdtemp, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { kubeconfigPath, kubectl, requireCluster, uniqueSuffix } from '../helpers/cluster.js';
import { commitAll, git, registryTags, skiff, uniqueRegistry } from '../helpers/skiff.js';

// Five commits, each pushed; the first deployed to the testing environment, the
// second by hand to another namespace (--namespace). cleanup --keep-commits 2
// keeps both deployed images and the two newest, and deletes the third.
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
  const runId = Date.now().toString(36);
  await writeFile(
    join(dir, 'skiff.yaml'),
    `project: clean\nimages:\n  web: {}\nenvironments:\n  testing: { namespace: ${namespace} }\n  production: { namespace: ${namespace}-prod }\n`,
  );
  await writeFile(join(dir, '.dockerignore'), '.kube/\n');
  await mkdir(join(dir, '.kube'));
  await writeFile(join(dir, '.kube', 'web.yaml.ejs'), 'apiVersion: v1\nkind: ConfigMap\nmetadata: { name: web }\ndata:\n  image: <%= images.web %>\n');
  await git(dir, 'init', '-q', '-b', 'main');
  for (const n of [1, 2, 3, 4, 5]) {
    // Unique to this run: an image the Engine kept from an earlier run would be older than --min-age.
    await writeFile(join(dir, 'Dockerfile'), `FROM skiff-base/busybox:1\nRUN echo ${n} ${runId} > /version\n`);
    await commitAll(dir, `version ${n}`);
    const tag = await tagOf();
    commits.push({ sha: (await git(dir, 'rev-parse', 'HEAD')).stdout.trim(), tag });
    if (n <= 2) {
      const d = await skiff(['deploy', 'testing', ...(n === 2 ? ['--namespace', `${namespace}-adhoc`] : [])], { cwd: dir, env: env() });
      expect(d.exitCode, d.all).toBe(0);
    }
  }
});

afterAll(async () => {
  await kubectl(['delete', 'namespace', namespace, `${namespace}-adhoc`, '--wait=false', '--ignore-not-found'], { allowFailure: true });
  if (dir) await rm(dir, { recursive: true, force: true });
});

it('without the release histories, or in a shallow clone, it deletes nothing and says why', async () => {
  const before = (await registryTags(repo)).sort();
  const r = await skiff(['cleanup', '--min-age', '0s'], { cwd: dir, env: env({ KUBECONFIG: join(dir, 'no-such-kubeconfig') }) });
  expect(r.exitCode, r.all).toBe(2);
  expect(r.stderr).toMatch(/error: kube context \(current context\): no kubeconfig found .*deletes nothing without them/);
  const shallow = `${dir}-shallow`;
  await git(tmpdir(), 'clone', '-q', '--depth', '1', `file://${dir}`, shallow);
  const s = await skiff(['cleanup', '--min-age', '0s'], { cwd: shallow, env: env() });
  expect(s.exitCode, s.all).toBe(2);
  expect(s.stderr).toMatch(/is a shallow clone: cleanup must see the newest commits of every branch and tag/);
  await rm(shallow, { recursive: true, force: true });
  expect((await registryTags(repo)).sort()).toEqual(before);
});

it('--dry-run lists the image of the third commit and deletes nothing; images younger than --min-age stay', async () => {
  const before = (await registryTags(repo)).sort();
  const r = await skiff(['cleanup', '--keep-commits', '2', '--min-age', '0s', '--dry-run', '-o', 'json'], { cwd: dir, env: env() });
  expect(r.exitCode, r.all).toBe(0);
  const result = JSON.parse(r.stdout);
  expect(result.deleted.map((d: { tags: string[] }) => d.tags.sort())).toEqual([[commits[2]!.tag, commits[2]!.sha].sort()]);
  // Every skiff release in the cluster is read, the one deployed by hand to another namespace too.
  expect(result.releases.map((x: { namespace: string }) => x.namespace)).toEqual(expect.arrayContaining([namespace, `${namespace}-adhoc`]));
  const young = await skiff(['cleanup', '--keep-commits', '2', '--dry-run', '-o', 'json'], { cwd: dir, env: env() });
  expect(JSON.parse(young.stdout).deleted).toEqual([]);
  expect((await registryTags(repo)).sort()).toEqual(before);
});

it('deletes what nothing needs: the deployed image, the newest commits and the branch tag stay', async () => {
  const r = await skiff(['cleanup', '--keep-commits', '2', '--min-age', '0s'], { cwd: dir, env: env() });
  expect(r.exitCode, r.all).toBe(0);
  expect(r.stderr).toMatch(new RegExp(`web: deleted \\(${registry.replace(/[.]/g, '\\.')}/web:${commits[2]!.tag}, sha256:`));
  const tags = await registryTags(repo);
  expect(tags).not.toContain(commits[2]!.tag);
  expect(tags).not.toContain(commits[2]!.sha);
  // Deployed (also by hand with --namespace) or recent: still there, so every rollback works.
  for (const kept of [commits[0]!, commits[1]!, commits[3]!, commits[4]!]) expect(tags).toContain(kept.tag);
  expect(tags).toContain('main');
  const again = await skiff(['cleanup', '--keep-commits', '2', '--min-age', '0s', '-o', 'json'], { cwd: dir, env: env() });
  expect(JSON.parse(again.stdout).deleted).toEqual([]);
});
