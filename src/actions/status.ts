import type { RunContext } from '../context.js';
import { currentPods, defaultPolicy, verdict, type RolloutVerdict } from '../core/readiness.js';
import { isTracked } from '../kube/kinds.js';
import { objectRef } from '../kube/object-key.js';
import { openRelease } from '../stages/kube-session.js';
import type { TargetOptions } from '../stages/release-inputs.js';

export type StatusOptions = TargetOptions;

export interface ObjectStatus {
  object: string;
  state: RolloutVerdict['state'] | 'missing';
  message: string;
}

export interface StatusResult {
  release: string;
  namespace: string;
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
  if (!current) return { release: target.release, namespace: target.namespace, status: 'not deployed', objects: [] };
  const namespaces = [...new Set(current.manifests.map((m) => m.metadata.namespace).filter((ns): ns is string => Boolean(ns)))];
  const pods = (await Promise.all(namespaces.map((ns) => kube.list('v1', 'Pod', ns)))).flatMap((l) => l.items);
  const replicaSets = (await Promise.all(namespaces.map((ns) => kube.list('apps/v1', 'ReplicaSet', ns)))).flatMap((l) => l.items);
  const objects = await Promise.all(
    current.manifests.map(async (m): Promise<ObjectStatus> => {
      const live = await kube.get(m.apiVersion, m.kind, m.metadata.namespace, m.metadata.name).catch(() => undefined);
      const object = objectRef(m);
      if (!live) return { object, state: 'missing', message: 'not in the cluster' };
      if (!isTracked(m.kind)) return { object, state: 'ready', message: 'exists' };
      const v = verdict(
        live,
        {
          pods: currentPods(
            live,
            pods.filter((p) => p.metadata.namespace === live.metadata.namespace),
            replicaSets,
          ),
        },
        defaultPolicy,
        ctx.now(),
      );
      return { object, state: v.state, message: v.message };
    }),
  );
  return {
    release: target.release,
    namespace: target.namespace,
    revision: current.revision,
    status: current.status,
    commit: current.git.commit,
    description: current.description,
    objects,
  };
}
