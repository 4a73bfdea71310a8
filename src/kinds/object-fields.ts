// Typed reads of the untyped Kubernetes JSON (LiveObject) that several kinds and the tracker share.
import type { ApiFields, LiveObject as Obj } from '../kube/objects.js';
import type { WorkloadCounts } from './readiness.js';

export type Condition = Record<string, string>;

/** A status condition of the given type (Ready, Progressing, Complete…). */
export function condition(obj: Obj, type: string): Condition | undefined {
  return ((obj.status?.conditions ?? []) as Condition[]).find((c) => c.type === type);
}

export function podReady(pod: Obj): boolean {
  return condition(pod, 'Ready')?.status === 'True';
}

export function objectUid(obj: Obj): string | undefined {
  const uid: unknown = obj.metadata.uid;
  return typeof uid === 'string' ? uid : undefined;
}

interface OwnerRef {
  kind: string;
  name: string;
  uid: string;
  controller?: boolean;
}

function ownerRefs(obj: Obj): OwnerRef[] {
  return (obj.metadata.ownerReferences ?? []) as OwnerRef[];
}

/** Whether any of an object's owner references names the given UID. */
export function ownedBy(obj: Obj, ownerUid: string | undefined): boolean {
  return ownerRefs(obj).some((r) => r.uid === ownerUid);
}

/** The UID of an object's controller (its first owner when none is marked controller). */
export function controllerUid(obj: Obj): string | undefined {
  const refs = ownerRefs(obj);
  return (refs.find((r) => r.controller) ?? refs[0])?.uid;
}

/** Owner references with only what finding an owner needs. */
export function slimOwnerRefs(obj: Obj): OwnerRef[] {
  return ownerRefs(obj).map((r) => ({ kind: r.kind, name: r.name, uid: r.uid, controller: r.controller }));
}

/** A workload's spec.selector.matchLabels; undefined when it has none or also matchExpressions (labels alone cannot select its pods). */
export function selectorLabels(obj: Obj): Record<string, string> | undefined {
  const sel = obj.spec?.selector as ApiFields | undefined;
  const labels = sel?.matchLabels as Record<string, string> | undefined;
  if (!labels || Object.keys(labels).length === 0 || (sel?.matchExpressions as unknown[] | undefined)?.length) return undefined;
  return labels;
}

/** A Deployment's revision, or its ReplicaSet's (the annotation the Deployment controller writes). */
export function deploymentRevision(obj: Obj): string | undefined {
  return obj.metadata.annotations?.['deployment.kubernetes.io/revision'];
}

/** `spec.replicas`, 1 when unset. */
export function specReplicas(obj: Obj): number {
  return (obj.spec?.replicas as number | undefined) ?? 1;
}

/** A Deployment's or StatefulSet's replicas: wanted, ready and of the current revision. */
export function replicaCounts(obj: Obj): WorkloadCounts {
  return { want: specReplicas(obj), ready: obj.status?.readyReplicas ?? 0, updated: obj.status?.updatedReplicas ?? 0 };
}

/** When an event last happened, as an ISO string that sorts: whichever of its timestamps it has. */
export function eventTime(e: Obj): string {
  return String(e.lastTimestamp ?? e.series?.lastObservedTime ?? e.eventTime ?? e.metadata.creationTimestamp ?? '');
}
