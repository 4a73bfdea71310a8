import type { LiveObject as Obj } from '../kube/objects.js';
import type { ReadinessInput, ReadinessPolicy, RolloutVerdict, WorkloadCounts } from './readiness.js';

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

export const POD: WatchedKind = { apiVersion: 'v1', kind: 'Pod' };
export const REPLICA_SET: WatchedKind = { apiVersion: 'apps/v1', kind: 'ReplicaSet' };

/** The pods and ReplicaSets whose controller is a given object, by its UID. */
export interface OwnedChildren {
  pods: (ownerUid: string) => Obj[];
  replicaSets: (ownerUid: string) => Obj[];
}

/** How skiff follows a kind after applying it: what it watches and how it judges readiness. */
export interface RolloutRule {
  /** What the tracker watches besides the object itself. */
  watches: readonly WatchedKind[];
  /**
   * Its controller reports status.observedGeneration: until that reaches
   * metadata.generation, the status describes the previous spec. (A Job has a
   * generation but no observedGeneration.)
   */
  observesGeneration?: boolean;
  /** The verdict from the live object (its status describes its current spec) and the pods of its current revision. */
  judge: (obj: Obj, related: ReadinessInput, policy: ReadinessPolicy, now: Date) => RolloutVerdict;
  /** The pods of its current revision, among those it owns; none when omitted. */
  currentPods?: (obj: Obj, uid: string, owned: OwnedChildren) => Obj[];
  /**
   * How many of its pods are of older revisions and still there; undefined
   * while that is not known. Only kinds that replace pods revision by revision.
   */
  oldPods?: (obj: Obj, uid: string, current: Obj[], owned: OwnedChildren) => number | undefined;
  /** The labels that select its pods, for a watch scoped to them; undefined: not selectable by labels alone. */
  podLabels?: (obj: Obj) => Record<string, string> | undefined;
  /** The replica counts a progress line shows. */
  counts?: (obj: Obj) => WorkloadCounts;
  /** Its verdict reads the cluster's StorageClasses and the events about the object itself. */
  readsClaimContext?: boolean;
}

/** Everything skiff knows about a kind: one row of the kinds table. */
export interface KindRow {
  kind: string;
  phase: number;
  clusterScoped?: boolean;
  /** Where its pod template sits ([] for a Pod itself); undefined for kinds that run no pods. */
  podTemplate?: readonly string[];
  /** Readiness is followed after apply; kinds without a rule are ready once applied. */
  rollout?: RolloutRule;
}

export const SPEC_TEMPLATE = ['spec', 'template'] as const;
