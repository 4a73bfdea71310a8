import { ConfigError } from '../errors.js';
import type { KubeObject, Manifest } from '../release/types.js';
import { describeObject } from './object-key.js';

/**
 * Apply phases, in order. An object is applied only after everything it may
 * refer to exists: namespaces and CRDs first, then identities and policies
 * that admission checks (a Pod naming a missing PriorityClass or
 * ServiceAccount is rejected), then data, storage, Services, workloads, and
 * what points at workloads. Anything unknown (custom resources, webhook
 * configurations, APIServices) goes last, so a webhook cannot block the
 * objects of its own release before its Service has endpoints.
 */
const PHASES: readonly (readonly string[])[] = [
  ['Namespace'],
  ['CustomResourceDefinition'],
  [
    'ServiceAccount',
    'Role',
    'ClusterRole',
    'RoleBinding',
    'ClusterRoleBinding',
    // Admission-time dependencies of Pods; not in the original list, placed
    // here so that they exist before any workload.
    'ResourceQuota',
    'LimitRange',
    'PriorityClass',
    'RuntimeClass',
  ],
  ['ConfigMap', 'Secret'],
  ['PersistentVolume', 'StorageClass', 'PersistentVolumeClaim'],
  ['Service'],
  ['Deployment', 'StatefulSet', 'DaemonSet', 'ReplicaSet', 'ReplicationController', 'Job', 'Pod'],
  ['Ingress', 'IngressClass', 'CronJob', 'HorizontalPodAutoscaler', 'PodDisruptionBudget', 'NetworkPolicy'],
];

const PHASE_OF_KIND = new Map<string, number>(PHASES.flatMap((kinds, i) => kinds.map((k) => [k, i] as const)));

/** The apply phase of a kind: 0 first; unknown kinds get the last phase. Delete in the reverse order. */
export function phaseIndex(kind: string): number {
  return PHASE_OF_KIND.get(kind) ?? PHASES.length;
}

/**
 * Groups manifests into phases to apply one after the other; empty phases are
 * left out. Within a phase the order is stable: by kind, then name, then
 * namespace, then input order.
 */
export function applyPhases(manifests: Manifest[]): Manifest[][] {
  const phases: Array<Array<{ m: Manifest; i: number }>> = Array.from({ length: PHASES.length + 1 }, () => []);
  manifests.forEach((m, i) => phases[phaseIndex(m.object.kind)]!.push({ m, i }));
  return phases
    .filter((p) => p.length > 0)
    .map((p) =>
      p
        .sort(
          (a, b) =>
            compare(a.m.object.kind, b.m.object.kind) ||
            compare(a.m.object.metadata.name, b.m.object.metadata.name) ||
            compare(a.m.object.metadata.namespace ?? '', b.m.object.metadata.namespace ?? '') ||
            a.i - b.i,
        )
        .map((e) => e.m),
    );
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

export const HOOK_ANNOTATION = 'skiff.io/hook';
export const HOOKS = ['pre-deploy', 'post-deploy'] as const;
export type Hook = (typeof HOOKS)[number];

/** The hook an object runs as, from its `skiff.io/hook` annotation; undefined for ordinary objects. */
export function hookOf(obj: KubeObject): Hook | undefined {
  const value = obj.metadata.annotations?.[HOOK_ANNOTATION];
  if (value === undefined) return undefined;
  if ((HOOKS as readonly string[]).includes(value)) return value as Hook;
  throw new ConfigError(
    `${describeObject(obj)}: annotation ${HOOK_ANNOTATION}: "${value}" is not a hook; use ${HOOKS.map((h) => `"${h}"`).join(' or ')}, or remove the annotation`,
  );
}

/** Splits a release into pre-deploy hooks, the objects applied in phases, and post-deploy hooks (each in input order). */
export function splitHooks(manifests: Manifest[]): { pre: Manifest[]; main: Manifest[]; post: Manifest[] } {
  const out = { pre: [] as Manifest[], main: [] as Manifest[], post: [] as Manifest[] };
  for (const m of manifests) {
    const hook = hookOf(m.object);
    (hook === 'pre-deploy' ? out.pre : hook === 'post-deploy' ? out.post : out.main).push(m);
  }
  return out;
}
