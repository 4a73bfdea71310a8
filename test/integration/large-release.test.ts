import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { kubeconfigPath, kubectl, kubectlJson, requireCluster, uniqueSuffix } from '../helpers/cluster.js';
import { commitAll, git, skiff, uniqueRegistry } from '../helpers/skiff.js';

// A release of 500 objects whose record does not fit one Kubernetes object:
// the history must be split over several Secrets, each under the 1 MiB limit.
let dir: string;
const namespace = `big-${uniqueSuffix()}`;
const registry = uniqueRegistry();
const env = () => ({ KUBECONFIG: kubeconfigPath(), SKIFF_REGISTRY: registry });

beforeAll(async () => {
  await requireCluster();
  dir = await mkdtemp(join(tmpdir(), 'skiff-big-'));
  await writeFile(join(dir, 'skiff.yaml'), 'project: big\nimages:\n  app: {}\nenvironments:\n  testing: {}\n');
  await writeFile(join(dir, 'Dockerfile'), 'FROM skiff-base/busybox:1\nCMD ["sleep", "3600"]\n');
  await mkdir(join(dir, '.kube'));
  for (let i = 0; i < 500; i++) {
    // Random hex does not compress much, so 500 × 5 KB stays well over 1 MiB gzipped.
    const data = randomBytes(2500).toString('hex');
    await writeFile(join(dir, '.kube', `cm-${i}.yaml`), `apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-${i}\ndata:\n  blob: "${data}"\n`);
  }
  await git(dir, 'init', '-q', '-b', 'main');
  await commitAll(dir, '500 objects');
  const build = await skiff(['build', '--push'], { cwd: dir, env: env() });
  expect(build.exitCode, build.all).toBe(0);
});

afterAll(async () => {
  await kubectl(['delete', 'namespace', namespace, '--wait=false', '--ignore-not-found'], { allowFailure: true });
});

it('deploys a 500-object release and stores its history split over Secrets under 1 MiB each', async () => {
  const r = await skiff(['deploy', 'testing', '--namespace', namespace], { cwd: dir, env: env(), timeoutMs: 300_000 });
  expect(r.exitCode, r.all).toBe(0);
  const cms = await kubectlJson(['-n', namespace, 'get', 'configmaps', '-l', 'skiff.io/release=big-testing']);
  expect(cms.items).toHaveLength(500);
  const secrets = (await kubectlJson(['-n', namespace, 'get', 'secrets', '-l', 'owner=skiff,name=big-testing,version=1'])).items as Array<{
    metadata: { name: string };
    data: Record<string, string>;
  }>;
  expect(secrets.length).toBeGreaterThan(1);
  // The API's limit: a Secret's decoded data may total at most 1 MiB.
  for (const s of secrets) {
    const bytes = Object.values(s.data).reduce((n, v) => n + Buffer.from(v, 'base64').length, 0);
    expect(bytes).toBeLessThan(1024 * 1024);
  }
  const history = await skiff(['history', 'testing', '--namespace', namespace, '-o', 'json'], { cwd: dir, env: env() });
  expect(history.exitCode, history.all).toBe(0);
  expect(JSON.parse(history.stdout)).toMatchObject([{ revision: 1, status: 'deployed', objects: 500 }]);
});
