import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { kubeconfigPath, requireCluster, uniqueSuffix } from '../helpers/cluster.js';
import { ensureSimCluster, SIM_CONTEXT, simKubectl, simKubectlJson } from '../helpers/sim-cluster.js';
import { commitAll, git, skiff, uniqueRegistry } from '../helpers/skiff.js';

// A rollout at scale on the kwok-simulated cluster: 10 Deployments × 30 pods
// on 50 simulated nodes. Every pod that lands on sim-node-0 crash-loops
// (annotation sim.skiff.test/fail-on-nodes, see scripts/cluster-sim.sh): about
// 6 of 300 pods (2%) over several Deployments, a bad node's worth. skiff must
// report the release failed and group those pods by cause, not list them.
let dir: string;
const namespace = `scale-${uniqueSuffix()}`;
const registry = uniqueRegistry();
const env = () => ({ KUBECONFIG: kubeconfigPath(), SKIFF_REGISTRY: registry });
const DEPLOYMENTS = 10;
const REPLICAS = 30;

beforeAll(async () => {
  await requireCluster();
  await ensureSimCluster(50);
  dir = await mkdtemp(join(tmpdir(), 'skiff-scale-'));
  await writeFile(
    join(dir, 'skiff.yaml'),
    `project: scale\nimages:\n  app: {}\nenvironments:\n  production:\n    namespace: ${namespace}\n    kubeContext: ${SIM_CONTEXT}\n`,
  );
  await writeFile(join(dir, 'Dockerfile'), 'FROM skiff-base/busybox:1\nCMD ["sleep", "3600"]\n');
  await mkdir(join(dir, '.kube'));
  await writeFile(
    join(dir, '.kube', 'web.yaml.ejs'),
    `<% for (let i = 0; i < ${DEPLOYMENTS}; i++) { %>
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web-<%= i %>
spec:
  replicas: ${REPLICAS}
  selector: {matchLabels: {app: web-<%= i %>}}
  template:
    metadata:
      labels: {app: web-<%= i %>}
      annotations:
        sim.skiff.test/fail-on-nodes: <%= values.failOn %>
        sim.skiff.test/exit-code: "3"
        sim.skiff.test/message: "cannot open /data/cache: read-only file system"
    spec:
      containers:
      - name: app
        image: <%= images.app %>
<% } %>
`,
  );
  await writeFile(join(dir, '.kube', 'values.yaml'), 'failOn: none\n');
  await git(dir, 'init', '-q', '-b', 'main');
  await commitAll(dir, 'ten deployments');
  const build = await skiff(['build', '--push'], { cwd: dir, env: env() });
  expect(build.exitCode, build.all).toBe(0);
}, 600_000);

afterAll(async () => {
  await simKubectl(['delete', 'namespace', namespace, '--wait=false', '--ignore-not-found'], { allowFailure: true });
});

it('300 pods ready on 50 simulated nodes: deployed, with one progress line per workload and none per pod', async () => {
  const r = await skiff(['deploy', 'production'], { cwd: dir, env: env(), timeoutMs: 300_000 });
  expect(r.exitCode, r.all).toBe(0);
  const lines = r.stderr.split('\n');
  expect(lines.filter((l) => /^Deployment\/web-\d+: ready/.test(l))).toHaveLength(DEPLOYMENTS);
  expect(lines.some((l) => /web-\d+-[a-z0-9]+-[a-z0-9]{5}\b.*: (waiting|ready)/.test(l))).toBe(false);
  expect(lines.length).toBeLessThan(80);
  const deps = (await simKubectlJson(['-n', namespace, 'get', 'deployments'])).items as Array<{ status: { readyReplicas: number } }>;
  expect(deps.map((d) => d.status.readyReplicas)).toEqual(Array(DEPLOYMENTS).fill(REPLICAS));
});

it('the pods of a bad node crash: failed, diagnosed as one group with its count, not pod by pod', async () => {
  const r = await skiff(['deploy', 'production', '--set', 'failOn=sim-node-0', '-o', 'json'], { cwd: dir, env: env(), timeoutMs: 300_000 });
  expect(r.exitCode, r.all).toBe(1);
  const result = JSON.parse(r.stdout);
  expect(result.status).toBe('failed');
  const [first] = result.failures;
  expect(first).toMatchObject({ reason: 'CrashLoopBackOff', container: 'app', exitCode: 3 });
  const groups = first.groups as Array<{
    reason: string;
    container: string;
    exitCode: number;
    message: string;
    count: number;
    objects: string[];
    examples: string[];
  }>;
  expect(groups).toHaveLength(1);
  const [group] = groups;
  expect(group).toMatchObject({ reason: 'CrashLoopBackOff', container: 'app', exitCode: 3 });
  expect(group!.examples.length).toBeLessThanOrEqual(3);
  // What crashed is what sits on sim-node-0 (some may crash after skiff's verdict, none before it without being counted).
  const crashed = (
    (await simKubectlJson(['-n', namespace, 'get', 'pods', '--field-selector', 'spec.nodeName=sim-node-0'])).items as Array<{
      metadata: { name: string; labels: Record<string, string> };
      status: { containerStatuses?: Array<{ state: { waiting?: { reason: string } } }> };
    }>
  ).filter((p) => p.status.containerStatuses?.[0]?.state.waiting?.reason === 'CrashLoopBackOff');
  expect(crashed.length).toBeGreaterThanOrEqual(group!.count);
  expect(group!.count).toBeGreaterThanOrEqual(1);
  expect(group!.count).toBeLessThan(DEPLOYMENTS * REPLICAS * 0.05);
  for (const pod of group!.examples) expect(crashed.map((p) => p.metadata.name)).toContain(pod);
  // The text report (the same rollout again: the bad node's pods fail at once): one line for the group, with the count and a few names.
  const text = await skiff(['deploy', 'production', '--set', 'failOn=sim-node-0'], { cwd: dir, env: env(), timeoutMs: 300_000 });
  expect(text.exitCode, text.all).toBe(1);
  expect(text.stderr).toMatch(/failing in the release: \d+ pods?, by cause:/);
  expect(text.stderr).toMatch(/^ {4}\d+ pods? of .*CrashLoopBackOff in container app, exit code 3: .*; e\.g\. web-\d+-/m);
  // Pods are named only as examples: per failed object (its status line, at most 3 diagnoses) and 3 in the group line.
  const failedObjects = text.stderr.split('\n').filter((l) => /^Deployment\/web-\d+: failed/.test(l)).length;
  const podLines = text.stderr.split('\n').filter((l) => crashed.some((p) => l.includes(p.metadata.name)));
  expect(podLines.length, text.stderr).toBeLessThanOrEqual(failedObjects + 3 + 2);
  expect(text.stderr.split('\n').length, text.stderr).toBeLessThan(80);
});
