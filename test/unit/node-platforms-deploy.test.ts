// Deploy's node-platform check against MemoryKube (its Nodes seeded) and a
// registry on loopback whose every image is linux/amd64 only: what is refused,
// what is applied, what is said when the nodes cannot be listed.
import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runDeploy } from '../../src/actions/deploy.js';
import { runPlan } from '../../src/actions/plan.js';
import { KubeApiError } from '../../src/kube/kube-client.js';
import { configFailure } from '../helpers/failure.js';
import { deployment, docs, SLEEP } from '../helpers/manifests.js';
import type { MemoryKube } from '../helpers/memory-kube.js';
import { orchestrationHarness, readyOnApply, removeProjectRepos, skiffYaml, type FakeRegistry } from '../helpers/orchestration.js';

const NS = 'plat-staging';

/** Every manifest is one linux/amd64 image whose config blob is served too. */
async function amd64Registry(): Promise<FakeRegistry> {
  const config = Buffer.from(JSON.stringify({ os: 'linux', architecture: 'amd64', rootfs: { type: 'layers', diff_ids: [] } }));
  const configDigest = `sha256:${createHash('sha256').update(config).digest('hex')}`;
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { digest: configDigest, size: config.length },
      layers: [],
    }),
  );
  const digest = `sha256:${createHash('sha256').update(manifest).digest('hex')}`;
  const requests: string[] = [];
  const server: Server = createServer((req, res) => {
    requests.push(`${req.method} ${req.url}`);
    const url = req.url ?? '';
    if (/^\/v2\/.+\/manifests\/[^/]+$/.test(url)) {
      res.writeHead(200, { 'docker-content-digest': digest, 'content-type': 'application/vnd.oci.image.manifest.v1+json', 'content-length': manifest.length });
      res.end(req.method === 'GET' ? manifest : undefined);
    } else if (url.endsWith(`/blobs/${configDigest}`)) {
      res.writeHead(200, { 'content-length': config.length });
      res.end(config);
    } else {
      res.writeHead(404);
      res.end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { host: `127.0.0.1:${port}`, digest, requests, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

let registry: FakeRegistry;
beforeAll(async () => {
  registry = await amd64Registry();
});
afterAll(async () => {
  await registry.close();
  await removeProjectRepos();
});

const node = (name: string, arch: string, taints: Array<{ key: string; value: string; effect: string }> = []) => ({
  apiVersion: 'v1',
  kind: 'Node',
  metadata: { name, labels: { 'kubernetes.io/os': 'linux', 'kubernetes.io/arch': arch } },
  spec: { taints },
});

const ARM_TOLERATION = 'tolerations: [{ key: skiff.test/arch, operator: Equal, value: arm64, effect: NoSchedule }]';
const web = (podLines: string[]) => docs(deployment('web', { image: '<%= images.app %>', command: SLEEP, podLines }));

async function harness(podLines: string[], deploy: Record<string, string> = { timeout: '5s' }) {
  const h = await orchestrationHarness(
    { 'skiff.yaml': skiffYaml('plat', { staging: { namespace: NS } }, deploy), '.kube/web.yaml': web(podLines) },
    { registry, repository: 'plat' },
  );
  h.kube.seed(node('amd-1', 'amd64'));
  h.kube.seed(node('arm-1', 'arm64', [{ key: 'skiff.test/arch', value: 'arm64', effect: 'NoSchedule' }]));
  readyOnApply(h.kube);
  return h;
}

const writes = (kube: MemoryKube) => kube.calls.filter((c) => ['apply', 'create', 'replace', 'delete'].includes(c.verb) && !c.dryRun);

describe('deploy: images against the nodes their pods can be scheduled on', () => {
  it('an amd64-only image pinned to arm64 (the taint tolerated) is exit 2 naming image, platform and node; nothing is written', async () => {
    const h = await harness(['nodeSelector: { kubernetes.io/arch: arm64 }', ARM_TOLERATION]);
    const message = await configFailure(runDeploy(h.ctx, { env: 'staging' }));
    expect(message).toBe(
      `.kube/web.yaml:1: Deployment/web container app: image ${registry.host}/plat/app:${/\/plat\/app:(\w+)@/.exec(message)?.[1]}@${registry.digest} has linux/amd64 only; ` +
        'its pods can be scheduled on node arm-1 (linux/arm64); pin them with a nodeSelector kubernetes.io/arch: amd64, or build linux/arm64 (platforms: in skiff.yaml)',
    );
    expect(writes(h.kube)).toEqual([]);
    // plan refuses it as well, before anything is saved
    expect(await configFailure(runPlan(h.ctx, { env: 'staging' }))).toBe(message);
  });

  it('tolerating the arm64 taint without a pin is refused too; without the toleration only amd64 nodes are reachable: deployed', async () => {
    const tolerated = await harness([ARM_TOLERATION]);
    expect(await configFailure(runDeploy(tolerated.ctx, { env: 'staging' }))).toContain('its pods can be scheduled on node arm-1 (linux/arm64)');
    const plain = await harness([]);
    expect((await runDeploy(plain.ctx, { env: 'staging' })).status).toBe('deployed');
  });

  it('nodes that cannot be listed: a warning, and the deploy goes on', async () => {
    const h = await harness(['nodeSelector: { kubernetes.io/arch: arm64 }', ARM_TOLERATION]);
    h.kube.rejectRequest(
      (c) => c.verb === 'list' && c.kind === 'Node',
      new KubeApiError(403, 'Forbidden', 'nodes is forbidden: User "ci" cannot list resource "nodes"'),
    );
    expect((await runDeploy(h.ctx, { env: 'staging' })).status).toBe('deployed');
    expect(h.reporter.warnings).toContain(`cannot list nodes (nodes is forbidden: User "ci" cannot list resource "nodes"); images' platforms not checked`);
  });

  it('deploy.checkNodePlatforms: false skips it without asking the cluster for its nodes', async () => {
    const h = await harness(['nodeSelector: { kubernetes.io/arch: arm64 }', ARM_TOLERATION], { timeout: '5s', checkNodePlatforms: 'false' });
    expect((await runDeploy(h.ctx, { env: 'staging' })).status).toBe('deployed');
    expect(h.kube.calls.filter((c) => c.kind === 'Node')).toEqual([]);
  });
});
