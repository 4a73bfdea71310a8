import type { LiveObject } from '../kube/objects.js';
import { daemonSetRow } from './daemonset.js';
import { deploymentRow, replicaSetRow } from './deployment.js';
import { cronJobRow, jobRow } from './job.js';
import { Phase, type KindRow } from './kind-row.js';
import { podRow } from './pod.js';
import { persistentVolumeClaimRow } from './pvc.js';
import { serviceRow } from './service.js';
import { statefulSetRow } from './statefulset.js';

/**
 * Everything skiff knows about a kind, in one table: its scope, when it is
 * applied, where its pod template is, and, for kinds whose readiness is
 * followed, what the tracker watches, which pods are its current ones and how
 * its verdict is reached. Ordering, rendering, lint, readiness and tracking
 * all read this table, so adding a kind is one row: a line below, or a row
 * in its family's file (deployment.ts, statefulset.ts…) listed here.
 */
const ROWS: readonly KindRow[] = [
  row('Namespace', Phase.namespace, 'cluster'),
  row('CustomResourceDefinition', Phase.definition, 'cluster'),
  row('ServiceAccount', Phase.identity),
  row('Role', Phase.identity),
  row('ClusterRole', Phase.identity, 'cluster'),
  row('RoleBinding', Phase.identity),
  row('ClusterRoleBinding', Phase.identity, 'cluster'),
  // Admission-time dependencies of Pods: they exist before any workload.
  row('ResourceQuota', Phase.identity),
  row('LimitRange', Phase.identity),
  row('PriorityClass', Phase.identity, 'cluster'),
  row('RuntimeClass', Phase.identity, 'cluster'),
  row('ConfigMap', Phase.config),
  row('Secret', Phase.config),
  row('PersistentVolume', Phase.storage, 'cluster'),
  row('StorageClass', Phase.storage, 'cluster'),
  persistentVolumeClaimRow,
  serviceRow,
  deploymentRow,
  statefulSetRow,
  daemonSetRow,
  replicaSetRow,
  row('ReplicationController', Phase.workload),
  jobRow,
  podRow,
  row('Ingress', Phase.dependent),
  row('IngressClass', Phase.dependent, 'cluster'),
  cronJobRow,
  row('HorizontalPodAutoscaler', Phase.dependent),
  row('PodDisruptionBudget', Phase.dependent),
  row('NetworkPolicy', Phase.dependent),
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
  ].map((kind) => row(kind, Phase.last, 'cluster')),
];

/** A kind that is only applied: ready once applied, no pods of its own. */
function row(kind: string, phase: number, scope?: 'cluster'): KindRow {
  return { kind, phase, clusterScoped: scope === 'cluster' };
}

const KINDS = new Map<string, KindRow>(ROWS.map((r) => [r.kind, r]));

/** The row of a kind; undefined for custom resources and kinds skiff has no row for. */
export function kindRow(kind: string): KindRow | undefined {
  return KINDS.get(kind);
}

/** The apply phase of a kind: 0 first; custom resources and kinds without a row are applied last. */
export function applyPhase(kind: string): number {
  return KINDS.get(kind)?.phase ?? Phase.last;
}

/** Built-in kinds without a namespace. Custom resources are namespaced unless a CRD in the release says otherwise. */
export function isClusterScoped(kind: string): boolean {
  return KINDS.get(kind)?.clusterScoped ?? false;
}

/** Where a kind's pod template sits: [] for a Pod, spec.template for most workloads; undefined for kinds that run no pods. */
export function podTemplatePath(kind: string): readonly string[] | undefined {
  return KINDS.get(kind)?.podTemplate;
}

/** Kinds whose readiness is followed; everything else is ready once applied. */
export function isTracked(kind: string): boolean {
  return KINDS.get(kind)?.rollout !== undefined;
}

/**
 * Whether an object's status still describes an earlier spec: its controller
 * reports observedGeneration and has not caught up with metadata.generation.
 */
export function isStale(obj: LiveObject): boolean {
  const gen: unknown = obj.metadata.generation;
  if (!KINDS.get(obj.kind)?.rollout?.observesGeneration || typeof gen !== 'number') return false;
  const observed = (obj.status as { observedGeneration?: unknown } | undefined)?.observedGeneration;
  return typeof observed !== 'number' || observed < gen;
}
