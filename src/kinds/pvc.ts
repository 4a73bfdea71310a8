import type { LiveObject as Obj } from '../kube/objects.js';
import { Phase, type KindRow } from './kind-row.js';
import { eventTime } from './object-fields.js';
import type { ReadinessInput, ReadinessPolicy, RolloutVerdict } from './readiness.js';

function judgeClaim(obj: Obj, related: ReadinessInput, policy: ReadinessPolicy, now: Date): RolloutVerdict {
  const phase = obj.status?.phase as string | undefined;
  if (phase === 'Bound') return { state: 'ready', message: 'Bound' };
  if (phase === 'Lost') return { state: 'failed', message: 'claim lost its volume', problem: { pod: '', reason: 'ClaimLost' } };
  if (related.bindImmediately === false) return { state: 'ready', message: 'Pending; binds when a pod uses it' };
  const cause = claimPendingCause(obj, related.storageClasses, related.events ?? []);
  if (!cause) return { state: 'progressing', message: phase ?? 'Pending' };
  const message = `${phase ?? 'Pending'}: ${cause.message}`;
  if (cause.fatal) {
    const key = `${obj.metadata.namespace ?? ''}/${obj.metadata.name}/${cause.reason}`;
    const since = related.firstSeen ? related.firstSeen(key) : undefined;
    if (since === undefined || now.getTime() - since >= policy.pendingClaimGraceMs)
      return { state: 'failed', message, problem: { pod: '', reason: cause.reason, message: cause.message } };
  }
  return { state: 'progressing', message };
}

export const persistentVolumeClaimRow: KindRow = {
  kind: 'PersistentVolumeClaim',
  phase: Phase.storage,
  rollout: { watches: [], judge: judgeClaim, readsClaimContext: true },
};

/** Why a PVC stays Pending, and whether waiting longer cannot help. */
export interface ClaimPendingCause {
  reason: string;
  message: string;
  /** Nothing in the cluster will change on its own: fail after the grace. */
  fatal: boolean;
}

/**
 * Why a Pending PVC is not bound (pure): a storage class that does not exist,
 * no class and no default class, or the provisioner's last word
 * (ProvisioningFailed / ExternalProvisioning events). `classes` undefined: the
 * StorageClasses could not be read, only events explain.
 */
export function claimPendingCause(pvc: Obj, classes: Obj[] | undefined, events: Obj[]): ClaimPendingCause | undefined {
  const className = storageClassName(pvc);
  if (classes && className && !classes.some((c) => c.metadata.name === className))
    return { reason: 'StorageClassNotFound', message: `storage class "${className}" does not exist`, fatal: true };
  const provisioning = events
    .filter(
      (e) =>
        (e.involvedObject?.kind ?? 'PersistentVolumeClaim') === 'PersistentVolumeClaim' &&
        e.involvedObject?.name === pvc.metadata.name &&
        (e.reason === 'ProvisioningFailed' || e.reason === 'ExternalProvisioning'),
    )
    .sort((a, b) => eventTime(a).localeCompare(eventTime(b)))
    .at(-1);
  // The class lookup above is the clearer word; the PV controller says the same as "storageclass … not found".
  if (provisioning) return { reason: String(provisioning.reason), message: String(provisioning.message ?? '').trim(), fatal: false };
  if (classes && className === undefined && !classes.some(isDefaultClass))
    return { reason: 'NoDefaultStorageClass', message: 'no storage class given and the cluster has no default', fatal: false };
  return undefined;
}

export function isDefaultClass(sc: Obj): boolean {
  const a = sc.metadata.annotations ?? {};
  return a['storageclass.kubernetes.io/is-default-class'] === 'true' || a['storageclass.beta.kubernetes.io/is-default-class'] === 'true';
}

function storageClassName(pvc: Obj): string | undefined {
  return pvc.spec?.storageClassName as string | undefined;
}

/** Whether a claim's StorageClass (its own, else the default) binds it only when a pod uses it. */
export function bindsOnFirstUse(classes: Obj[] | undefined, pvc: Obj): boolean {
  const className = storageClassName(pvc);
  const sc = className ? classes?.find((c) => c.metadata.name === className) : classes?.find(isDefaultClass);
  return sc?.volumeBindingMode === 'WaitForFirstConsumer';
}
