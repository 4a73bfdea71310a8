import type { LiveObject } from '../kube/objects.js';

/**
 * Everything skiff knows about a kind, in one table: whether it is namespaced,
 * when it is applied, whether its readiness is followed, and which child kinds
 * the tracker watches to judge it. Ordering, rendering, readiness and tracking
 * all read this table, so adding a kind is one row.
 */

/**
 * Apply phases, in order. An object is applied only after everything it may
 * refer to exists: namespaces and CRDs first, then identities and policies
 * that admission checks (a Pod naming a missing PriorityClass or
 * ServiceAccount is rejected), then data, storage, Services, workloads, and
 * what points at workloads. Anything unknown (custom resources, webhook
 * configurations, APIServices) goes last, so a webhook cannot block the
 * objects of its own release before its Service has endpoints.
 */
export const Phase = {
  namespace: 0,
  definition: 1,
  identity: 2,
  config: 3,
  storage: 4,
  network: 5,
  workload: 6,
  dependent: 7,
  last: 8,
} as const;

/** A child kind watched to judge a parent's rollout. */
export interface WatchedKind {
  apiVersion: string;
  kind: string;
}

export interface KindInfo {
  clusterScoped: boolean;
  phase: number;
  /** Readiness is followed after apply; untracked kinds are ready once applied. */
  tracked: boolean;
  /** What the tracker watches besides the object itself. */
  watches: readonly WatchedKind[];
  /**
   * Its controller reports status.observedGeneration: until that reaches
   * metadata.generation, the status describes the previous spec. (A Job has a
   * generation but no observedGeneration.)
   */
  observesGeneration: boolean;
  /** Where its pod template sits ([] for a Pod itself); undefined for kinds that run no pods. */
  podTemplate: readonly string[] | undefined;
}

const POD: WatchedKind = { apiVersion: 'v1', kind: 'Pod' };
const REPLICA_SET: WatchedKind = { apiVersion: 'apps/v1', kind: 'ReplicaSet' };

const SPEC_TEMPLATE = ['spec', 'template'] as const;

type Row = [
  kind: string,
  phase: number,
  scope?: 'cluster',
  tracked?: { watches: readonly WatchedKind[]; observesGeneration?: true },
  podTemplate?: readonly string[],
];

const ROWS: readonly Row[] = [
  ['Namespace', Phase.namespace, 'cluster'],
  ['CustomResourceDefinition', Phase.definition, 'cluster'],
  ['ServiceAccount', Phase.identity],
  ['Role', Phase.identity],
  ['ClusterRole', Phase.identity, 'cluster'],
  ['RoleBinding', Phase.identity],
  ['ClusterRoleBinding', Phase.identity, 'cluster'],
  // Admission-time dependencies of Pods: they exist before any workload.
  ['ResourceQuota', Phase.identity],
  ['LimitRange', Phase.identity],
  ['PriorityClass', Phase.identity, 'cluster'],
  ['RuntimeClass', Phase.identity, 'cluster'],
  ['ConfigMap', Phase.config],
  ['Secret', Phase.config],
  ['PersistentVolume', Phase.storage, 'cluster'],
  ['StorageClass', Phase.storage, 'cluster'],
  ['PersistentVolumeClaim', Phase.storage, undefined, { watches: [] }],
  ['Service', Phase.network],
  ['Deployment', Phase.workload, undefined, { watches: [POD, REPLICA_SET], observesGeneration: true }, SPEC_TEMPLATE],
  ['StatefulSet', Phase.workload, undefined, { watches: [POD], observesGeneration: true }, SPEC_TEMPLATE],
  ['DaemonSet', Phase.workload, undefined, { watches: [POD], observesGeneration: true }, SPEC_TEMPLATE],
  ['ReplicaSet', Phase.workload, undefined, undefined, SPEC_TEMPLATE],
  ['ReplicationController', Phase.workload],
  ['Job', Phase.workload, undefined, { watches: [POD] }, SPEC_TEMPLATE],
  ['Pod', Phase.workload, undefined, { watches: [] }, []],
  ['Ingress', Phase.dependent],
  ['IngressClass', Phase.dependent, 'cluster'],
  ['CronJob', Phase.dependent, undefined, undefined, ['spec', 'jobTemplate', 'spec', 'template']],
  ['HorizontalPodAutoscaler', Phase.dependent],
  ['PodDisruptionBudget', Phase.dependent],
  ['NetworkPolicy', Phase.dependent],
  // Cluster-scoped kinds applied last, with custom resources.
  ...[
    'Node',
    'APIService',
    'MutatingWebhookConfiguration',
    'ValidatingWebhookConfiguration',
    'CSIDriver',
    'CSINode',
    'VolumeAttachment',
    'ValidatingAdmissionPolicy',
    'ValidatingAdmissionPolicyBinding',
    'MutatingAdmissionPolicy',
    'MutatingAdmissionPolicyBinding',
    'CertificateSigningRequest',
    'ClusterTrustBundle',
    'FlowSchema',
    'PriorityLevelConfiguration',
    'IPAddress',
    'ServiceCIDR',
    'DeviceClass',
    'ResourceSlice',
  ].map((kind): Row => [kind, Phase.last, 'cluster']),
];

const KINDS = new Map<string, KindInfo>(
  ROWS.map(([kind, phase, scope, tracked, podTemplate]) => [
    kind,
    {
      clusterScoped: scope === 'cluster',
      phase,
      tracked: tracked !== undefined,
      watches: tracked?.watches ?? [],
      observesGeneration: tracked?.observesGeneration ?? false,
      podTemplate,
    },
  ]),
);

/** Custom resources and kinds skiff has no row for: namespaced, applied last, ready once applied. */
const UNKNOWN: KindInfo = {
  clusterScoped: false,
  phase: Phase.last,
  tracked: false,
  watches: [],
  observesGeneration: false,
  podTemplate: undefined,
};

export function kindInfo(kind: string): KindInfo {
  return KINDS.get(kind) ?? UNKNOWN;
}

/** Built-in kinds without a namespace. Custom resources are namespaced unless a CRD in the release says otherwise. */
export function isClusterScoped(kind: string): boolean {
  return kindInfo(kind).clusterScoped;
}

/** Where a kind's pod template sits: [] for a Pod, spec.template for most workloads; undefined for kinds that run no pods. */
export function podTemplatePath(kind: string): readonly string[] | undefined {
  return kindInfo(kind).podTemplate;
}

/** Kinds whose readiness is followed; everything else is ready once applied. */
export function isTracked(kind: string): boolean {
  return kindInfo(kind).tracked;
}

/**
 * Whether an object's status still describes an earlier spec: its controller
 * reports observedGeneration and has not caught up with metadata.generation.
 */
export function isStale(obj: LiveObject): boolean {
  const gen: unknown = obj.metadata.generation;
  if (!kindInfo(obj.kind).observesGeneration || typeof gen !== 'number') return false;
  const observed: unknown = obj.status?.observedGeneration;
  return typeof observed !== 'number' || observed < gen;
}
