import { createHash } from 'node:crypto';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { kubeconfigPath, kubectl, kubectlJson, REGISTRY, requireCluster, uniqueSuffix } from '../helpers/cluster.js';
import { deployment, docs, SLEEP } from '../helpers/manifests.js';
import { commitAll, committedProject, skiff, uniqueRegistry } from '../helpers/skiff.js';

// Deploy's node-platform check on the real cluster and registry. The cluster's
// one real node is linux/amd64; the test adds a Node object labelled
// linux/arm64 (no kubelet behind it) with a NoSchedule taint that only this
// file's pods tolerate, so other tests' pods never land there and the check
// ignores it for them. The project image, built by skiff on this machine, is
// linux/amd64 only; the two-platform image is an index pushed here through
// the registry API.
const suffix = uniqueSuffix()
  .replace(/[^a-z0-9]/g, '')
  .slice(-8);
const ARM_NODE = `skiff-arch-test-${suffix}`;
const namespace = `plat-${suffix}`;
const TOLERATION = 'tolerations: [{ key: skiff.test/arch, operator: Equal, value: arm64, effect: NoSchedule }]';
const PIN_ARM64 = 'nodeSelector: { kubernetes.io/arch: arm64 }';
let dir: string;
let registry: string;

const deploy = (args: string[] = []) =>
  skiff(['deploy', 'staging', '--namespace', namespace, '--timeout', '2m', ...args], {
    cwd: dir,
    env: { KUBECONFIG: kubeconfigPath(), SKIFF_REGISTRY: registry },
  });

/** Commits .kube/web.yaml.ejs: the Deployment `web` of `image` with these pod spec lines. */
async function withWeb(image: string, podLines: string[], replicas = 1) {
  await writeFile(join(dir, '.kube/web.yaml.ejs'), docs(deployment('web', { image, command: SLEEP, podLines, replicas })));
  await commitAll(dir, `web: ${image} ${podLines.join(' ')} x${replicas}`);
}

const deployments = async () =>
  (await kubectlJson<{ items: Array<{ metadata: { name: string } }> }>(['-n', namespace, 'get', 'deployments'])).items.map((d) => d.metadata.name);

// ---- an image pushed through the registry API ---------------------------------

const sha256 = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

async function pushBlob(repo: string, body: Buffer): Promise<string> {
  const digest = sha256(body);
  const start = await fetch(`http://${REGISTRY}/v2/${repo}/blobs/uploads/`, { method: 'POST' });
  expect(start.status).toBe(202);
  const url = new URL(start.headers.get('location')!, `http://${REGISTRY}/`);
  url.searchParams.set('digest', digest);
  const put = await fetch(url, { method: 'PUT', headers: { 'content-type': 'application/octet-stream' }, body });
  expect(put.status).toBe(201);
  return digest;
}

async function putManifest(repo: string, reference: string, mediaType: string, body: Buffer): Promise<string> {
  const res = await fetch(`http://${REGISTRY}/v2/${repo}/manifests/${reference}`, { method: 'PUT', headers: { 'content-type': mediaType }, body });
  expect(res.status, await res.text()).toBe(201);
  return sha256(body);
}

/**
 * An image index of one tiny single-layer image per architecture (linux),
 * each config naming its architecture, and an attestation entry; returns `host/repo@<index digest>`.
 */
async function pushIndex(repo: string, archs: string[]): Promise<string> {
  const tar = Buffer.alloc(1024); // an empty tar archive: its two zero blocks
  const layer = gzipSync(tar);
  const layerDigest = await pushBlob(repo, layer);
  const manifests = [];
  for (const architecture of archs) {
    const config = Buffer.from(JSON.stringify({ architecture, os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: [sha256(tar)] } }));
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: await pushBlob(repo, config), size: config.length },
        layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: layerDigest, size: layer.length }],
      }),
    );
    const digest = await putManifest(repo, sha256(manifest), 'application/vnd.oci.image.manifest.v1+json', manifest);
    manifests.push({ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest, size: manifest.length, platform: { architecture, os: 'linux' } });
  }
  // Where BuildKit puts an attestation (provenance): an unknown/unknown entry, which is no platform.
  manifests.push({
    ...manifests[0]!,
    platform: { architecture: 'unknown', os: 'unknown' },
    annotations: { 'vnd.docker.reference.type': 'attestation-manifest', 'vnd.docker.reference.digest': manifests[0]!.digest },
  });
  const index = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests }));
  const digest = await putManifest(repo, archs.join('-'), 'application/vnd.oci.image.index.v1+json', index);
  return `${REGISTRY}/${repo}@${digest}`;
}

// ---- set-up ----------------------------------------------------------------------

let projectImage: string;

beforeAll(async () => {
  await requireCluster();
  const node = {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: {
      name: ARM_NODE,
      labels: { 'kubernetes.io/os': 'linux', 'kubernetes.io/arch': 'arm64', 'kubernetes.io/hostname': ARM_NODE, 'skiff.dev/test': 'true' },
    },
    spec: { taints: [{ key: 'skiff.test/arch', value: 'arm64', effect: 'NoSchedule' }] },
  };
  await kubectl(['create', '-f', '-'], { input: JSON.stringify(node) });
  registry = uniqueRegistry();
  dir = await committedProject(
    'plat',
    {
      'app/Dockerfile': 'FROM skiff-base/busybox:1\n',
      'skiff.yaml': `project: plat${suffix}\nimages:\n  app:\n    context: app\nenvironments:\n  staging:\n    namespace: ${namespace}\n`,
      '.kube/web.yaml.ejs': docs(deployment('web', { image: '<%= images.app %>', command: SLEEP })),
    },
    'initial',
  );
  const built = await skiff(['build', '--push', '-o', 'json'], { cwd: dir, env: { SKIFF_REGISTRY: registry } });
  expect(built.exitCode, built.all).toBe(0);
  projectImage = (JSON.parse(built.stdout) as { images: Array<{ reference: string }> }).images[0]!.reference;
}, 300_000);

afterAll(async () => {
  await kubectl(['delete', 'node', ARM_NODE, '--ignore-not-found', '--wait=false'], { allowFailure: true });
  await kubectl(['delete', 'namespace', namespace, '--wait=false', '--ignore-not-found'], { allowFailure: true });
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe("deploy compares each workload's images with the nodes its pods can be scheduled on", () => {
  it('an amd64-only image pinned to arm64 (the taint tolerated) is exit 2 naming image, platform and node; nothing is applied', async () => {
    await withWeb('<%= images.app %>', [PIN_ARM64, TOLERATION]);
    const r = await deploy(['-o', 'json']);
    expect(r.exitCode, r.all).toBe(2);
    const error = (JSON.parse(r.stdout) as { error: { kind: string; exitCode: number; message: string; detail: { conflicts: unknown[] } } }).error;
    expect(error.message).toMatch(
      new RegExp(
        `^\\.kube/web\\.yaml\\.ejs:1: Deployment/web container app: image ${escape(registry)}/app:\\w+@sha256:[0-9a-f]{64} has linux/amd64 only; ` +
          `its pods can be scheduled on node ${ARM_NODE} \\(linux/arm64\\); pin them with a nodeSelector kubernetes.io/arch: amd64, or build linux/arm64 \\(platforms: in skiff.yaml\\)$`,
      ),
    );
    expect(error).toMatchObject({
      kind: 'config',
      exitCode: 2,
      detail: {
        conflicts: [{ object: 'Deployment/web', container: 'app', imagePlatforms: ['linux/amd64'], missing: [{ platform: 'linux/arm64', nodes: [ARM_NODE] }] }],
      },
    });
    expect(r.stderr.trim().split('\n').at(-1)).toBe(`error: ${error.message}`);
    expect(await deployments()).toEqual([]);
  });

  it('tolerating the arm64 taint without a nodeSelector is refused too: the pods could land on the arm64 node', async () => {
    await withWeb('<%= images.app %>', [TOLERATION]);
    const r = await deploy();
    expect(r.exitCode, r.all).toBe(2);
    expect(r.stderr).toContain(`its pods can be scheduled on node ${ARM_NODE} (linux/arm64)`);
    expect(await deployments()).toEqual([]);
  });

  it('without the toleration only the amd64 node is reachable: deployed, its pod running there', async () => {
    await withWeb('<%= images.app %>', []);
    const r = await deploy();
    expect(r.exitCode, r.all).toBe(0);
    expect(await deployments()).toEqual(['web']);
    const pods = await kubectlJson<{ items: Array<{ spec: { nodeName?: string; containers: Array<{ image: string }> } }> }>([
      '-n',
      namespace,
      'get',
      'pods',
      '-l',
      'app=web',
    ]);
    expect(pods.items.map((p) => p.spec.containers[0]!.image.split('@')[0])).toContain(projectImage.split('@')[0]);
    expect(pods.items.map((p) => p.spec.nodeName)).not.toContain(ARM_NODE);
  });

  it('an image index with linux/amd64 and linux/arm64 passes when pinned to arm64; the same index without arm64 is refused', async () => {
    const repo = `${registry.slice(REGISTRY.length + 1)}/multi`;
    const both = await pushIndex(repo, ['amd64', 'arm64']);
    const amdOnly = await pushIndex(repo, ['amd64']);
    // No pod would ever run on the arm64 node (it has no kubelet): no replicas, so the deploy's verdict is the check's.
    await withWeb(amdOnly, [PIN_ARM64, TOLERATION], 0);
    const refused = await deploy();
    expect(refused.exitCode, refused.all).toBe(2);
    expect(refused.stderr).toContain(`image ${amdOnly} has linux/amd64 only; its pods can be scheduled on node ${ARM_NODE} (linux/arm64); `);
    expect(refused.stderr).toContain('or use an image that has linux/arm64');
    await withWeb(both, [PIN_ARM64, TOLERATION], 0);
    const passed = await deploy();
    expect(passed.exitCode, passed.all).toBe(0);
    const live = await kubectlJson(['-n', namespace, 'get', 'deployment', 'web']);
    expect(live.spec.template.spec.containers[0].image).toBe(both);
  });
  it("a deployer who may not list nodes is warned that the images' platforms were not checked, and the deploy goes on", async () => {
    // A namespace admin's token, as a CI job often has: nodes are cluster-scoped, out of its reach.
    await kubectl(['-n', namespace, 'create', 'serviceaccount', 'deployer']);
    await kubectl(['-n', namespace, 'create', 'rolebinding', 'deployer-admin', '--clusterrole', 'admin', `--serviceaccount=${namespace}:deployer`]);
    const token = (await kubectl(['-n', namespace, 'create', 'token', 'deployer'])).stdout.trim();
    const cluster = JSON.parse((await kubectl(['config', 'view', '--raw', '-o', 'json'])).stdout).clusters[0].cluster;
    const kubeconfig = join(dir, '..', `plat-kube-${suffix}.yaml`);
    await writeFile(
      kubeconfig,
      `apiVersion: v1\nkind: Config\ncurrent-context: ci\nclusters:\n- name: c\n  cluster: {server: "${cluster.server}", certificate-authority-data: ${cluster['certificate-authority-data']}}\n` +
        `users:\n- name: deployer\n  user: {token: "${token}"}\ncontexts:\n- name: ci\n  context: {cluster: c, user: deployer, namespace: ${namespace}}\n`,
    );
    try {
      // What the check would refuse (see the first test), with no replicas to wait for.
      await withWeb('<%= images.app %>', [PIN_ARM64, TOLERATION], 0);
      const r = await skiff(['deploy', 'staging', '--namespace', namespace, '--timeout', '2m'], {
        cwd: dir,
        env: { KUBECONFIG: kubeconfig, SKIFF_REGISTRY: registry },
      });
      expect(r.exitCode, r.all).toBe(0);
      expect(r.stderr).toMatch(/warning: cannot list nodes \(.*forbidden.*\); images' platforms not checked/);
    } finally {
      await rm(kubeconfig, { force: true });
    }
  });
});

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
