import { describe, expect, it } from 'vitest';
import {
  canSchedule,
  formatConflict,
  imagePlacements,
  nodeFacts,
  platformConflicts,
  tolerates,
  type NodeFacts,
  type Platform,
} from '../../src/kinds/node-platforms.js';
import type { Manifest } from '../../src/kube/objects.js';

const node = (name: string, arch: string, extra: { labels?: Record<string, string>; taints?: NodeFacts['taints']; os?: string } = {}): NodeFacts =>
  nodeFacts({
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name, labels: { 'kubernetes.io/os': extra.os ?? 'linux', 'kubernetes.io/arch': arch, ...extra.labels } },
    spec: { taints: extra.taints },
  });

const amd1 = node('amd-1', 'amd64', { labels: { zone: 'a', cpus: '8' } });
const amd2 = node('amd-2', 'amd64', { labels: { zone: 'b', cpus: '2' } });
const arm1 = node('arm-1', 'arm64', { labels: { zone: 'a', cpus: '4' } });
const armTainted = node('arm-2', 'arm64', { taints: [{ key: 'arch', value: 'arm64', effect: 'NoSchedule' }] });
const nodes = [amd1, amd2, arm1, armTainted];

const fits = (spec: Record<string, unknown>, on: NodeFacts[] = nodes) => on.filter((n) => canSchedule(spec, n)).map((n) => n.name);
const affinity = (...terms: unknown[]) => ({ affinity: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: terms } } } });

describe('canSchedule: the nodes a pod spec can land on', () => {
  it('nodeSelector: every label must match', () => {
    expect(fits({})).toEqual(['amd-1', 'amd-2', 'arm-1']);
    expect(fits({ nodeSelector: { 'kubernetes.io/arch': 'arm64' } })).toEqual(['arm-1']);
    expect(fits({ nodeSelector: { 'kubernetes.io/arch': 'amd64', zone: 'b' } })).toEqual(['amd-2']);
    expect(fits({ nodeSelector: { missing: 'x' } })).toEqual([]);
  });

  it('required node affinity: terms ORed, expressions ANDed, each operator', () => {
    expect(fits(affinity({ matchExpressions: [{ key: 'kubernetes.io/arch', operator: 'In', values: ['arm64'] }] }))).toEqual(['arm-1']);
    expect(fits(affinity({ matchExpressions: [{ key: 'kubernetes.io/arch', operator: 'NotIn', values: ['arm64'] }] }))).toEqual(['amd-1', 'amd-2']);
    expect(fits(affinity({ matchExpressions: [{ key: 'zone', operator: 'Exists' }] }))).toEqual(['amd-1', 'amd-2', 'arm-1']);
    expect(fits(affinity({ matchExpressions: [{ key: 'zone', operator: 'DoesNotExist' }] }))).toEqual([]);
    expect(fits(affinity({ matchExpressions: [{ key: 'cpus', operator: 'Gt', values: ['3'] }] }))).toEqual(['amd-1', 'arm-1']);
    expect(fits(affinity({ matchExpressions: [{ key: 'cpus', operator: 'Lt', values: ['3'] }] }))).toEqual(['amd-2']);
    // ANDed within a term
    expect(
      fits(
        affinity({
          matchExpressions: [
            { key: 'zone', operator: 'In', values: ['a'] },
            { key: 'kubernetes.io/arch', operator: 'In', values: ['amd64'] },
          ],
        }),
      ),
    ).toEqual(['amd-1']);
    // ORed across terms
    expect(
      fits(
        affinity(
          { matchExpressions: [{ key: 'zone', operator: 'In', values: ['b'] }] },
          { matchExpressions: [{ key: 'kubernetes.io/arch', operator: 'In', values: ['arm64'] }] },
        ),
      ),
    ).toEqual(['amd-2', 'arm-1']);
    // an empty term matches no node, as the scheduler has it
    expect(fits(affinity({}))).toEqual([]);
  });

  it('matchFields metadata.name, and nodeSelector with affinity both apply', () => {
    expect(fits(affinity({ matchFields: [{ key: 'metadata.name', operator: 'In', values: ['amd-2', 'arm-1'] }] }))).toEqual(['amd-2', 'arm-1']);
    expect(fits(affinity({ matchFields: [{ key: 'metadata.name', operator: 'NotIn', values: ['amd-2'] }] }))).toEqual(['amd-1', 'arm-1']);
    expect(fits({ nodeSelector: { zone: 'a' }, ...affinity({ matchFields: [{ key: 'metadata.name', operator: 'In', values: ['amd-2', 'arm-1'] }] }) })).toEqual(
      ['arm-1'],
    );
  });

  it('a NoSchedule or NoExecute taint keeps pods off unless tolerated; PreferNoSchedule and condition taints do not', () => {
    const tol = (t: Record<string, unknown>) => fits({ tolerations: [t] }, [armTainted]);
    expect(tol({ key: 'arch', operator: 'Equal', value: 'arm64', effect: 'NoSchedule' })).toEqual(['arm-2']);
    expect(tol({ key: 'arch', value: 'arm64' })).toEqual(['arm-2']); // Equal is the default, any effect
    expect(tol({ key: 'arch', operator: 'Exists' })).toEqual(['arm-2']);
    expect(tol({ operator: 'Exists' })).toEqual(['arm-2']); // an empty key with Exists tolerates every taint
    expect(tol({ key: 'arch', value: 'amd64' })).toEqual([]);
    expect(tol({ key: 'arch', operator: 'Exists', effect: 'NoExecute' })).toEqual([]);
    expect(tol({ key: 'other', operator: 'Exists' })).toEqual([]);
    const noExecute = node('x', 'arm64', { taints: [{ key: 'k', effect: 'NoExecute' }] });
    expect(fits({}, [noExecute])).toEqual([]);
    const soft = node('soft', 'arm64', { taints: [{ key: 'k', effect: 'PreferNoSchedule' }] });
    const notReady = node('nr', 'arm64', { taints: [{ key: 'node.kubernetes.io/unreachable', effect: 'NoSchedule' }] });
    expect(fits({}, [soft, notReady])).toEqual(['soft', 'nr']);
  });

  it('spec.nodeName: only that node, past its NoSchedule taints', () => {
    expect(fits({ nodeName: 'arm-2' })).toEqual(['arm-2']);
    expect(fits({ nodeName: 'elsewhere' })).toEqual([]);
  });

  it('tolerates, as Kubernetes decides it', () => {
    const taint = { key: 'a', value: 'b', effect: 'NoSchedule' };
    expect(tolerates({ key: 'a', operator: 'Equal', value: 'b' }, taint)).toBe(true);
    expect(tolerates({ key: 'a', operator: 'Equal', value: 'c' }, taint)).toBe(false);
    expect(tolerates({ key: 'a', operator: 'Bogus' }, taint)).toBe(false);
    expect(tolerates({ key: 'a', operator: 'Exists', effect: 'NoSchedule' }, taint)).toBe(true);
    expect(tolerates({ key: 'a', operator: 'Equal' }, { key: 'a', effect: 'NoSchedule' })).toBe(true); // both values empty
  });
});

const manifest = (kind: string, name: string, podSpec: Record<string, unknown>, line = 1): Manifest => {
  const apiVersion = kind === 'Pod' ? 'v1' : kind === 'Job' || kind === 'CronJob' ? 'batch/v1' : 'apps/v1';
  const template = { metadata: { labels: { app: name } }, spec: podSpec };
  const spec = kind === 'Pod' ? podSpec : kind === 'CronJob' ? { schedule: '* * * * *', jobTemplate: { spec: { template } } } : { template };
  return { object: { apiVersion, kind, metadata: { name }, spec }, source: { file: `.kube/${name}.yaml`, line } };
};

const AMD: Platform[] = [{ os: 'linux', architecture: 'amd64' }];
const BOTH: Platform[] = [
  { os: 'linux', architecture: 'amd64' },
  { os: 'linux', architecture: 'arm64', variant: 'v8' },
];

describe('imagePlacements and platformConflicts', () => {
  it('every pod template kind, containers and init containers; kinds without pods are not read', () => {
    const spec = { initContainers: [{ name: 'init', image: 'r/init' }], containers: [{ name: 'app', image: 'r/app' }] };
    const kinds = ['Deployment', 'StatefulSet', 'DaemonSet', 'ReplicaSet', 'Job', 'CronJob', 'Pod'];
    const placed = imagePlacements([...kinds.map((k) => manifest(k, k.toLowerCase(), spec)), manifest('ConfigMap', 'c', spec)], nodes);
    expect(placed.map((p) => `${p.object} ${p.init ? 'init ' : ''}${p.container} ${p.image} ${p.nodes.length}`)).toEqual(
      kinds.flatMap((k) => [`${k}/${k.toLowerCase()} init init r/init 3`, `${k}/${k.toLowerCase()} app r/app 3`]),
    );
  });

  it('an amd64-only image pinned to arm64 nodes conflicts; unpinned it conflicts too (it can land on arm-1); pinned to amd64 it does not', () => {
    const pinned = manifest(
      'Deployment',
      'web',
      { nodeSelector: { 'kubernetes.io/arch': 'arm64' }, containers: [{ name: 'app', image: 'r/app@sha256:1' }] },
      7,
    );
    const free = manifest('Deployment', 'free', { containers: [{ name: 'app', image: 'r/app@sha256:1' }] });
    const amd = manifest('Deployment', 'amd', { nodeSelector: { 'kubernetes.io/arch': 'amd64' }, containers: [{ name: 'app', image: 'r/app@sha256:1' }] });
    const conflicts = platformConflicts(imagePlacements([pinned, free, amd], nodes), new Map([['r/app@sha256:1', AMD]]));
    expect(conflicts).toEqual([
      {
        object: 'Deployment/web',
        source: { file: '.kube/web.yaml', line: 7 },
        container: 'app',
        init: false,
        image: 'r/app@sha256:1',
        imagePlatforms: ['linux/amd64'],
        missing: [{ platform: 'linux/arm64', nodes: ['arm-1'] }],
      },
      expect.objectContaining({ object: 'Deployment/free', missing: [{ platform: 'linux/arm64', nodes: ['arm-1'] }] }),
    ]);
    expect(formatConflict(conflicts[0]!, { projectImage: true })).toMatchInlineSnapshot(
      `".kube/web.yaml:7: Deployment/web container app: image r/app@sha256:1 has linux/amd64 only; its pods can be scheduled on node arm-1 (linux/arm64); pin them with a nodeSelector kubernetes.io/arch: amd64, or build linux/arm64 (platforms: in skiff.yaml)"`,
    );
    expect(formatConflict(conflicts[0]!, { projectImage: false })).toMatchInlineSnapshot(
      `".kube/web.yaml:7: Deployment/web container app: image r/app@sha256:1 has linux/amd64 only; its pods can be scheduled on node arm-1 (linux/arm64); pin them with a nodeSelector kubernetes.io/arch: amd64, or use an image that has linux/arm64"`,
    );
  });

  it('a two-platform image (variant aside) conflicts with no node; an unknown image is not judged', () => {
    const pinned = manifest('Deployment', 'web', {
      nodeSelector: { 'kubernetes.io/arch': 'arm64' },
      containers: [
        { name: 'app', image: 'r/both' },
        { name: 'side', image: 'r/unknown' },
      ],
    });
    expect(
      platformConflicts(
        imagePlacements([pinned], nodes),
        new Map([
          ['r/both', BOTH],
          ['r/unknown', undefined],
        ]),
      ),
    ).toEqual([]);
  });

  it('nodes without os/arch labels are not judged; other operating systems are', () => {
    const unlabelled = nodeFacts({ apiVersion: 'v1', kind: 'Node', metadata: { name: 'bare' } });
    const win = node('win-1', 'amd64', { os: 'windows' });
    const d = manifest('Deployment', 'web', { containers: [{ name: 'app', image: 'r/app' }] });
    const conflicts = platformConflicts(imagePlacements([d], [amd1, unlabelled, win]), new Map([['r/app', AMD]]));
    expect(conflicts.map((c) => c.missing)).toEqual([[{ platform: 'windows/amd64', nodes: ['win-1'] }]]);
  });

  it('many nodes: a few named, the rest counted, per platform', () => {
    const arms = Array.from({ length: 7 }, (_, i) => node(`arm-${i}`, 'arm64'));
    const s390 = node('z-1', 's390x');
    const d = manifest('Job', 'migrate', { initContainers: [{ name: 'wait', image: 'r/app' }], containers: [] });
    const [c] = platformConflicts(imagePlacements([d], [amd1, ...arms, s390]), new Map([['r/app', AMD]]));
    expect(formatConflict(c!, { projectImage: true })).toMatchInlineSnapshot(
      `".kube/migrate.yaml:1: Job/migrate init container wait: image r/app has linux/amd64 only; its pods can be scheduled on nodes arm-0, arm-1, arm-2 and 4 more (linux/arm64), z-1 (linux/s390x); pin them with a nodeSelector kubernetes.io/arch: amd64, or build linux/arm64, linux/s390x (platforms: in skiff.yaml)"`,
    );
  });
});
