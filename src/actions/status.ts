import type { RunContext } from '../context.js';
import { currentPods, defaultPolicy, verdict, type RolloutVerdict } from '../kinds/readiness.js';
import { serviceWithoutEndpoints } from '../kinds/service.js';
import { formatUnreadyCause, unreadyCauses } from '../kinds/unready.js';
import { isTracked } from '../kinds/table.js';
import type { ClusterRef } from '../kube/cluster-ref.js';
import { objectRef } from '../kube/object-key.js';
import { secretStrings } from '../secrets/material.js';
import { openRelease } from '../stages/kube-session.js';
import { Redactor, releaseSalt } from '../secrets/redact.js';
import type { TargetOptions } from '../stages/release-inputs.js';

export type StatusOptions = TargetOptions;

export interface ObjectStatus {
  object: string;
  /** `not ready`: a Service whose selector matches no ready pod. */
  state: RolloutVerdict['state'] | 'not ready' | 'missing';
  message: string;
}

export interface StatusResult {
  release: string;
  namespace: string;
  cluster: ClusterRef;
  revision?: number;
  status: string;
  commit?: string;
  description?: string;
  objects: ObjectStatus[];
}

/** skiff status: the current revision and the live readiness of its objects. */
export async function runStatus(ctx: RunContext, opts: StatusOptions): Promise<StatusResult> {
  const { kube, storage, target } = await openRelease(ctx, opts);
  const history = await storage.history(target.release);
  const current = [...history].reverse().find((r) => r.status === 'deployed') ?? history.at(-1);
  const cluster: ClusterRef = { context: kube.context, server: kube.server };
  if (!current) return { release: target.release, namespace: target.namespace, cluster, status: 'not deployed', objects: [] };
  const namespaces = [...new Set(current.manifests.map((m) => m.metadata.namespace).filter((ns): ns is string => Boolean(ns)))];
  const pods = (await Promise.all(namespaces.map((ns) => kube.list('v1', 'Pod', ns)))).flatMap((l) => l.items);
  const replicaSets = (await Promise.all(namespaces.map((ns) => kube.list('apps/v1', 'ReplicaSet', ns)))).flatMap((l) => l.items);
  // The namespaces' recent Warning events: why pods are not ready, why a claim is Pending.
  const events = (
    await Promise.all(namespaces.map((ns) => kube.list('v1', 'Event', ns, { fieldSelector: 'type=Warning' }).catch(() => ({ items: [] }))))
  ).flatMap((l) => l.items);
  const storageClasses = current.manifests.some((m) => m.kind === 'PersistentVolumeClaim')
    ? await kube
        .list('storage.k8s.io/v1', 'StorageClass', undefined)
        .then((l) => l.items)
        .catch(() => undefined)
    : undefined;
  // Probe output and termination messages can quote a secret: masked as deploy masks them, with the live
  // Secrets' values of the release (as rollback knows them) and the release's salt.
  const liveSecrets = (
    await Promise.all(
      current.manifests
        .filter((m) => m.kind === 'Secret' && m.apiVersion === 'v1')
        .map((m) => kube.get('v1', 'Secret', m.metadata.namespace, m.metadata.name).catch(() => undefined)),
    )
  ).filter((o) => o !== undefined);
  const redactor = new Redactor(secretStrings({}, liveSecrets));
  const salt = releaseSalt(history);
  if (salt) redactor.useSalt(salt);
  const objects = await Promise.all(
    current.manifests.map(async (m): Promise<ObjectStatus> => {
      const live = await kube.get(m.apiVersion, m.kind, m.metadata.namespace, m.metadata.name).catch(() => undefined);
      const object = objectRef(m);
      if (!live) return { object, state: 'missing', message: 'not in the cluster' };
      if (m.kind === 'Service' && m.apiVersion === 'v1') {
        const slices = await kube
          .list('discovery.k8s.io/v1', 'EndpointSlice', live.metadata.namespace, { labelSelector: `kubernetes.io/service-name=${live.metadata.name}` })
          .then((l) => l.items)
          .catch(() => undefined);
        const none = slices && serviceWithoutEndpoints(live, slices);
        return none ? { object, state: 'not ready', message: none } : { object, state: 'ready', message: 'exists' };
      }
      if (!isTracked(m.kind)) return { object, state: 'ready', message: 'exists' };
      const ns = live.metadata.namespace;
      const mine = currentPods(
        live,
        pods.filter((p) => p.metadata.namespace === ns),
        replicaSets,
      );
      const own = events.filter((e) => e.metadata.namespace === ns);
      const v = verdict(
        live,
        {
          pods: mine,
          storageClasses,
          events:
            m.kind === 'PersistentVolumeClaim'
              ? own.filter((e) => (e.involvedObject as { name?: string } | undefined)?.name === live.metadata.name)
              : undefined,
        },
        defaultPolicy,
        ctx.now(),
      );
      const why = v.state === 'progressing' ? unreadyCauses(mine, own) : [];
      const message = why.length ? `${v.message}; ${why.map((c) => formatUnreadyCause(c)).join('; ')}` : v.message;
      return { object, state: v.state, message: redactor.text(message) };
    }),
  );
  return {
    release: target.release,
    namespace: target.namespace,
    cluster,
    revision: current.revision,
    status: current.status,
    commit: current.git.commit,
    description: current.description === undefined ? undefined : redactor.text(current.description),
    objects,
  };
}
