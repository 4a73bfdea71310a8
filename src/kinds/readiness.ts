import type { LiveObject as Obj } from '../kube/objects.js';
import type { OwnedChildren } from './kind-row.js';
import { objectUid, ownedBy } from './object-fields.js';
import { isStale, kindRow } from './table.js';

// A kind's own readiness rule is in its row of the kinds table (table.ts, deployment.ts, statefulset.ts…);
// this file is the one entry to those rules and the vocabulary they share.

export interface PodProblem {
  pod: string;
  container?: string;
  reason: string;
  message?: string;
  exitCode?: number;
  restarts?: number;
}

export interface RolloutVerdict {
  state: 'ready' | 'progressing' | 'failed';
  /** Short human summary: "2/3 replicas available". */
  message: string;
  problem?: PodProblem;
}

export interface ReadinessPolicy {
  /** Container restarts tolerated before CrashLoopBackOff counts as failure. */
  allowedRestarts: number;
  /**
   * How long a pod may stay unschedulable before that counts as failure: long enough for a
   * cluster autoscaler to add a node, or for a node to report Ready again after the control
   * plane comes back from a restart (it is briefly tainted while its heartbeats were lost).
   */
  unschedulableGraceMs: number;
  /** How long a PersistentVolumeClaim may stay Pending for a cause that will not fix itself (no such class). */
  pendingClaimGraceMs: number;
  /**
   * How long a container may stay in a state the kubelet retries on its own
   * (CreateContainerConfigError and friends) before that counts as failure.
   */
  retriedStateGraceMs: number;
}

export const defaultPolicy: ReadinessPolicy = { allowedRestarts: 0, unschedulableGraceMs: 60_000, pendingClaimGraceMs: 10_000, retriedStateGraceMs: 15_000 };

/**
 * When a problem was first seen, keyed by pod, container and reason. The
 * tracker keeps this memory across watch events; a one-off snapshot (skiff
 * status) has none, and then a problem counts from the moment it is seen.
 */
export type FirstSeen = (key: string) => number | undefined;

/** What a verdict reads besides the object itself. */
export interface ReadinessInput {
  pods: Obj[];
  replicaSets?: Obj[];
  bindImmediately?: boolean;
  firstSeen?: FirstSeen;
  /** The cluster's StorageClasses (undefined: not known), to explain a Pending PVC. */
  storageClasses?: Obj[];
  /** Recent events about the object itself (a PVC's ProvisioningFailed…). */
  events?: Obj[];
  /**
   * A Deployment's pods of older ReplicaSets still there (the tracker knows;
   * undefined: not known). With none left and every pod of the current
   * revision Ready, the rollout is done before the controller, busy with
   * thousands of pods, has written it into the Deployment's status.
   */
  oldPods?: number;
}

/**
 * The verdict for one applied object from its live state, the pods of its
 * current revision and, for Deployments, its ReplicaSets. Pure.
 */
export function verdict(obj: Obj, related: ReadinessInput, policy: ReadinessPolicy, now: Date): RolloutVerdict {
  if (isStale(obj)) {
    return { state: 'progressing', message: `the controller has not picked up generation ${String(obj.metadata.generation)} yet` };
  }
  const rule = kindRow(obj.kind)?.rollout;
  return rule ? rule.judge(obj, related, policy, now) : { state: 'ready', message: 'applied' };
}

/**
 * The pods that belong to an object's current revision: for a Deployment the
 * newest ReplicaSet's pods, for a StatefulSet the update revision's, for a
 * DaemonSet those of its current template generation, for a Job its own.
 */
export function currentPods(obj: Obj, pods: Obj[], replicaSets: Obj[] = []): Obj[] {
  const owned: OwnedChildren = {
    pods: (ownerUid) => pods.filter((p) => ownedBy(p, ownerUid)),
    replicaSets: (ownerUid) => replicaSets.filter((rs) => ownedBy(rs, ownerUid)),
  };
  return ownedCurrentPods(obj, owned);
}

/** The pods of an object's current revision among the children its owner references name. */
export function ownedCurrentPods(obj: Obj, owned: OwnedChildren): Obj[] {
  const uid = objectUid(obj);
  const select = kindRow(obj.kind)?.rollout?.currentPods;
  return uid && select ? select(obj, uid, owned) : [];
}

/** How far a workload has rolled out, from its live status: the numbers a progress line shows. */
export interface WorkloadCounts {
  want: number;
  ready: number;
  updated: number;
}

/** The replica counts of a Deployment, StatefulSet or DaemonSet (undefined for other kinds). Pure. */
export function workloadCounts(obj: Obj): WorkloadCounts | undefined {
  return kindRow(obj.kind)?.rollout?.counts?.(obj);
}

/** The release-wide progress line of a large rollout: `37/50 objects ready; pods 1312/1500 ready, 1500/1500 updated`. Pure. */
export function formatRolloutSummary(objects: { ready: number; total: number }, pods: WorkloadCounts): string {
  return `${objects.ready}/${objects.total} objects ready; pods ${pods.ready}/${pods.want} ready, ${pods.updated}/${pods.want} updated`;
}
