import { afterAll, beforeAll, expect, it } from 'vitest';
import { uniqueSuffix, waitFor } from '../helpers/cluster.js';
import { ensureSimCluster, simKubectl, simKubectlJson } from '../helpers/sim-cluster.js';

// The simulated cluster as the tests that use it find it: started from empty
// etcd data by scripts/test (scripts/testbed wipe), its nodes must take pods
// from the first second. The API server's TaintNodesByCondition admission
// once tainted every new node not-ready, and with the node lifecycle
// controller off nothing took the taint away: on a fresh machine no pod was
// ever scheduled, while an etcd kept from older runs hid it.
const namespace = `simbed-${uniqueSuffix()}`;

beforeAll(async () => {
  await ensureSimCluster(50);
  await simKubectl(['create', 'namespace', namespace]);
});

afterAll(async () => {
  await simKubectl(['delete', 'namespace', namespace, '--wait=false', '--ignore-not-found'], { allowFailure: true });
});

it('no simulated node carries a taint', async () => {
  const nodes = await simKubectlJson<{ items: { metadata: { name: string }; spec: { taints?: { key: string }[] } }[] }>(['get', 'nodes', '-l', 'type=kwok']);
  expect(nodes.items).toHaveLength(50);
  expect(nodes.items.filter((n) => (n.spec.taints ?? []).length > 0).map((n) => `${n.metadata.name}: ${n.spec.taints!.map((t) => t.key).join(',')}`)).toEqual(
    [],
  );
});

it('a Deployment of 20 pods is scheduled and available within a minute', async () => {
  await simKubectl(['create', 'deployment', 'web', '-n', namespace, '--image', 'sim.invalid/web:1', '--replicas', '20']);
  await waitFor(
    async () => {
      const d = await simKubectlJson<{ status: { availableReplicas?: number } }>(['get', 'deployment', 'web', '-n', namespace]);
      return d.status.availableReplicas === 20;
    },
    60_000,
    { description: 'deployment web with 20 available replicas on the simulated cluster' },
  );
  const pods = await simKubectlJson<{ items: { spec: { nodeName?: string } }[] }>(['get', 'pods', '-n', namespace]);
  expect(pods.items.filter((p) => !p.spec.nodeName)).toEqual([]);
});
