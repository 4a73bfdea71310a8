import { childSelectors } from '../kinds/child-selectors.js';
import { bindsOnFirstUse } from '../kinds/pvc.js';
import { kindRow } from '../kinds/table.js';
import type { KubeClient, ListQuery, WatchEvent } from '../kube/kube-client.js';
import { RELEASE_LABEL, type KubeObject, type LiveObject as Obj } from '../kube/objects.js';
import type { Reporter } from '../context.js';
import type { RolloutIndex } from './rollout-index.js';
import type { RolloutLoop } from './rollout-loop.js';

/** The watches that feed a rollout's index, scoped to the release; a watch that fails ends tracking. */
export class RolloutWatches {
  readonly running: Array<Promise<void>> = [];
  readonly errors: unknown[] = [];

  constructor(
    private readonly kube: KubeClient,
    private readonly reporter: Reporter,
    private readonly signal: AbortSignal,
    private readonly index: RolloutIndex,
    private readonly loop: RolloutLoop,
  ) {}

  /** Per namespace: the tracked kinds, the child kinds they are judged by, and the events that explain them. */
  async start(): Promise<void> {
    const byNamespace = new Map<string, KubeObject[]>();
    for (const o of this.index.tracked) {
      const ns = o.metadata.namespace ?? this.kube.defaultNamespace;
      byNamespace.set(ns, [...(byNamespace.get(ns) ?? []), o]);
    }
    for (const [ns, objs] of byNamespace) {
      const kinds = new Map(objs.map((o) => [o.kind, o.apiVersion]));
      for (const [kind, apiVersion] of kinds) this.watchTracked(ns, kind, apiVersion, objs);
      this.watchChildren(ns, [...kinds.keys()], objs);
      const claims = objs.filter((o) => kindRow(o.kind)?.rollout?.readsClaimContext);
      // Only Warning events explain a failure or an unready pod; a claim's ExternalProvisioning is Normal.
      this.watch('v1', 'Event', ns, claims.length ? {} : { fieldSelector: 'type=Warning' }, (ev) => this.index.onEvent(ev));
      if (claims.length && !this.loop.storageClasses) this.loop.storageClasses = await listStorageClasses(this.kube);
      for (const claim of claims) {
        if (bindsOnFirstUse(this.loop.storageClasses, claim)) this.loop.bindLater.add(`${ns}/${claim.metadata.name}`);
      }
    }
  }

  /** One object: by name; several: by the release label skiff puts on all it applies. */
  private watchTracked(ns: string, kind: string, apiVersion: string, objs: KubeObject[]): void {
    const ofKind = objs.filter((o) => o.kind === kind);
    const releases = new Set(ofKind.map((o) => o.metadata.labels?.[RELEASE_LABEL]));
    const release = releases.size === 1 ? [...releases][0] : undefined;
    const query =
      ofKind.length === 1 ? { fieldSelector: `metadata.name=${ofKind[0]!.metadata.name}` } : release ? { labelSelector: `${RELEASE_LABEL}=${release}` } : {};
    this.watch(apiVersion, kind, ns, query, (ev) => this.index.onTracked(kind, ev));
  }

  /** The child kinds the tracked kinds are judged by (pods, ReplicaSets), scoped to the workloads' selectors. */
  private watchChildren(ns: string, kinds: string[], objs: KubeObject[]): void {
    const watched = (kind: string) => kindRow(kind)?.rollout?.watches ?? [];
    const children = new Map(kinds.flatMap(watched).map((w) => [w.kind, w.apiVersion]));
    const workloads = objs.filter((o) => watched(o.kind).length > 0) as Obj[];
    const selectors = childSelectors(workloads) ?? [undefined];
    for (const [kind, apiVersion] of children) {
      const onEvent =
        kind === 'Pod' ? (ev: WatchEvent) => this.index.onPod(ev) : kind === 'ReplicaSet' ? (ev: WatchEvent) => this.index.onReplicaSet(ev) : () => {};
      for (const labelSelector of selectors) this.watch(apiVersion, kind, ns, labelSelector ? { labelSelector } : {}, onEvent);
    }
  }

  private watch(apiVersion: string, kind: string, ns: string, query: ListQuery, onEvent: (ev: WatchEvent) => void): void {
    this.loop.watchStarted();
    const selector = query.labelSelector;
    this.reporter.debug(
      `watching ${kind} in ${ns}${selector ? ` with ${selector.length > 120 ? `${selector.slice(0, 120)}…` : selector}` : ''}${query.fieldSelector ? ` where ${query.fieldSelector}` : ''}`,
    );
    const watcher = {
      onEvent: (ev: WatchEvent) => {
        if (ev.type === 'BOOKMARK') return;
        onEvent(ev);
        this.loop.schedule();
      },
      signal: this.signal,
      onSynced: () => this.loop.watchSynced(),
    };
    this.running.push(
      this.kube.watch(apiVersion, kind, ns, query, watcher).catch((e: unknown) => {
        this.errors.push(e);
        this.loop.end('aborted');
      }),
    );
  }
}

async function listStorageClasses(kube: KubeClient): Promise<Obj[] | undefined> {
  try {
    return (await kube.list('storage.k8s.io/v1', 'StorageClass', undefined)).items;
  } catch {
    return undefined; // not allowed to read them: Pending claims are explained by events only
  }
}
