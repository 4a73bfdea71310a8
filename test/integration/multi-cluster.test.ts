import { copyFile, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { kubeconfigPath, kubectl, kubectlJson, repoRoot, requireCluster, uniqueSuffix } from '../helpers/cluster.js';
import { deployment } from '../helpers/manifests.js';
import { ensureSimCluster, SIM_CONTEXT, SIM_SERVER, simKubeconfigPath, simKubectl, simKubectlJson, simPidFile } from '../helpers/sim-cluster.js';
import { committedProject, git, skiff, uniqueRegistry } from '../helpers/skiff.js';

// One repository, environments on two clusters: staging on the real
// single-node cluster (context skiff), production on the kwok-simulated one
// (context skiff-sim, same kubeconfig), and canary on the simulated one
// through a kubeconfig file of its own. Run under /tmp/skiff-heavy.lock: the
// last test stops the sim's API server and starts it again.
let dir: string;
let files: string;
const sfx = uniqueSuffix();
const ns = { staging: `mc-stg-${sfx}`, production: `mc-prd-${sfx}`, canary: `mc-can-${sfx}` };
const registry = uniqueRegistry();
const env = () => ({ KUBECONFIG: kubeconfigPath(), SKIFF_REGISTRY: registry });

beforeAll(async () => {
  await requireCluster();
  await ensureSimCluster();
  files = await mkdtemp(join(tmpdir(), 'skiff-multi-kc-'));
  // A separate kubeconfig file for canary, outside the repository (credentials are never committed).
  await copyFile(simKubeconfigPath(), join(files, 'canary.kubeconfig'));
  dir = await committedProject(
    'multi',
    {
      'skiff.yaml': `project: multi
images:
  app: {}
environments:
  staging:
    namespace: ${ns.staging}
    kubeContext: skiff
  production:
    namespace: ${ns.production}
    kubeContext: ${SIM_CONTEXT}
  canary:
    namespace: ${ns.canary}
    kubeconfig: ${join(files, 'canary.kubeconfig')}
`,
      Dockerfile: 'FROM skiff-base/busybox:1\nCMD ["sleep", "3600"]\n',
      '.kube/app.yaml.ejs': deployment('app', { replicas: 2, gracePeriod: 1, image: '<%= images.app %>' }),
    },
    'two clusters',
  );
}, 600_000);

afterAll(async () => {
  await kubectl(['delete', 'namespace', ns.staging, '--wait=false', '--ignore-not-found'], { allowFailure: true });
  for (const n of [ns.production, ns.canary]) await simKubectl(['delete', 'namespace', n, '--wait=false', '--ignore-not-found'], { allowFailure: true });
});

/** The release records (Secrets owner=skiff) of a namespace on one cluster. */
const records = async (get: (args: string[]) => Promise<any>, namespace: string) =>
  ((await get(['-n', namespace, 'get', 'secrets', '-l', 'owner=skiff'])).items as Array<{ metadata: { labels: Record<string, string> } }>).map(
    (s) => `${s.metadata.labels.name} v${s.metadata.labels.version}`,
  );

describe('environments on two clusters', () => {
  it('ships staging to the real cluster and production to the simulated one, each keeping its own history', async () => {
    const stg = await skiff(['ship', 'staging'], { cwd: dir, env: env(), timeoutMs: 300_000 });
    expect(stg.exitCode, stg.all).toBe(0);
    const prd = await skiff(['ship', 'production'], { cwd: dir, env: env(), timeoutMs: 300_000 });
    expect(prd.exitCode, prd.all).toBe(0);

    // Each Deployment is on its own cluster only, with both replicas ready.
    expect((await kubectlJson(['-n', ns.staging, 'get', 'deployment', 'app'])).status.readyReplicas).toBe(2);
    expect((await simKubectlJson(['-n', ns.production, 'get', 'deployment', 'app'])).status.readyReplicas).toBe(2);
    expect((await kubectl(['get', 'namespace', ns.production], { allowFailure: true })).exitCode).not.toBe(0);
    expect((await simKubectl(['get', 'namespace', ns.staging], { allowFailure: true })).exitCode).not.toBe(0);
    // The pods on the sim cluster sit on simulated nodes.
    const pods = (await simKubectlJson(['-n', ns.production, 'get', 'pods'])).items as Array<{ spec: { nodeName: string } }>;
    expect(pods.map((p) => p.spec.nodeName)).toEqual([expect.stringMatching(/^sim-node-\d+$/), expect.stringMatching(/^sim-node-\d+$/)]);

    // History per cluster, and history/status name the cluster they read.
    expect(await records(kubectlJson, ns.staging)).toEqual(['multi-staging v1']);
    expect(await records(simKubectlJson, ns.production)).toEqual(['multi-production v1']);
    const hs = await skiff(['history', 'staging', '-o', 'json'], { cwd: dir, env: env() });
    expect(hs.exitCode, hs.all).toBe(0);
    expect(JSON.parse(hs.stdout)).toMatchObject([{ revision: 1, status: 'deployed' }]);
    expect(hs.stderr).toContain(`history of release multi-staging in ${ns.staging} on context skiff (https://127.0.0.1:6443)`);
    const hp = await skiff(['history', 'production'], { cwd: dir, env: env() });
    expect(hp.exitCode, hp.all).toBe(0);
    expect(hp.stderr).toContain(`history of release multi-production in ${ns.production} on context ${SIM_CONTEXT} (${SIM_SERVER})`);
    expect(hp.stdout).toMatch(/^1\s+\S+ \S+\s+deployed\s/m);
    const sp = await skiff(['status', 'production'], { cwd: dir, env: env() });
    expect(sp.exitCode, sp.all).toBe(0);
    expect(sp.stdout.split('\n')[0]).toBe(`release multi-production in ${ns.production} on context ${SIM_CONTEXT} (${SIM_SERVER}): revision 1 deployed`);
    expect(sp.stdout).toMatch(/Deployment\/app\s+ready\s+2\/2 updated, 2\/2 available/);
  });

  it('deploys an environment whose kubeconfig file is named in skiff.yaml, whatever KUBECONFIG says', async () => {
    // KUBECONFIG points at the shared file whose current context is the real cluster: canary must still go to the sim.
    const r = await skiff(['ship', 'canary', '-o', 'json'], { cwd: dir, env: env(), timeoutMs: 300_000 });
    expect(r.exitCode, r.all).toBe(0);
    expect((await simKubectlJson(['-n', ns.canary, 'get', 'deployment', 'app'])).status.readyReplicas).toBe(2);
    expect((await kubectl(['get', 'namespace', ns.canary], { allowFailure: true })).exitCode).not.toBe(0);
    const s = await skiff(['status', 'canary', '-o', 'json'], { cwd: dir, env: env() });
    expect(JSON.parse(s.stdout)).toMatchObject({ release: 'multi-canary', cluster: { context: SIM_CONTEXT, server: SIM_SERVER }, revision: 1 });
  });

  it('cleanup reads the releases of both clusters', async () => {
    const r = await skiff(['cleanup', '--dry-run', '--min-age', '0s', '-o', 'json'], { cwd: dir, env: env() });
    expect(r.exitCode, r.all).toBe(0);
    const releases = (JSON.parse(r.stdout).releases as Array<{ context: string; namespace: string; release: string }>).filter((x) =>
      Object.values(ns).includes(x.namespace),
    );
    expect(releases.map((x) => `${x.context} ${x.release}`).sort()).toEqual([
      'skiff multi-staging',
      `${SIM_CONTEXT} multi-canary`,
      `${SIM_CONTEXT} multi-production`,
    ]);
  });

  it('with the simulated cluster down, staging still deploys; production and cleanup stop with exit 3 naming the context', async () => {
    const pidFile = simPidFile('kube-apiserver');
    await execa('sh', ['-c', `kill "$(cat ${pidFile})"`]);
    try {
      await new Promise((r) => setTimeout(r, 2_000));
      await git(dir, 'commit', '-q', '--allow-empty', '-m', 'second');
      const stg = await skiff(['ship', 'staging'], { cwd: dir, env: { ...env(), SKIFF_KUBE_RETRY_TIMEOUT: '3' }, timeoutMs: 300_000 });
      expect(stg.exitCode, stg.all).toBe(0);
      expect(await records(kubectlJson, ns.staging)).toEqual(['multi-staging v1', 'multi-staging v2']);

      const prd = await skiff(['deploy', 'production'], { cwd: dir, env: { ...env(), SKIFF_KUBE_RETRY_TIMEOUT: '3' }, timeoutMs: 120_000 });
      expect(prd.exitCode, prd.all).toBe(3);
      expect(prd.stderr).toMatch(new RegExp(`error: .*${SIM_SERVER.replaceAll('.', '\\.')} \\(context ${SIM_CONTEXT}\\)`));
      const hist = await skiff(['history', 'staging'], { cwd: dir, env: env() });
      expect(hist.exitCode, hist.all).toBe(0);

      const clean = await skiff(['cleanup', '--min-age', '0s'], { cwd: dir, env: { ...env(), SKIFF_KUBE_RETRY_TIMEOUT: '3' }, timeoutMs: 120_000 });
      expect(clean.exitCode, clean.all).toBe(3);
      expect(clean.stderr).toMatch(
        new RegExp(`error: kube context ${SIM_CONTEXT}: .*deletes nothing without them: the releases on this cluster may use any image, so all are kept`),
      );
      expect(clean.all).not.toMatch(/deleted/);
    } finally {
      const up = await execa(join(repoRoot, 'scripts', 'cluster'), ['up', '--sim'], { reject: false, all: true, timeout: 300_000 });
      expect(up.exitCode, up.all).toBe(0);
    }
    const again = await skiff(['history', 'production', '-o', 'json'], { cwd: dir, env: env() });
    expect(JSON.parse(again.stdout)).toMatchObject([{ revision: 1, status: 'deployed' }]);
  });
});
