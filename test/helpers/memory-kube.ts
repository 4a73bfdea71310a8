// An in-memory KubeClient for unit tests of the release orchestration: objects
// in a map, server-side apply simplified to "create or replace everything but
// status", watches fed from the same map, and hooks to script the cluster
// (refuse an apply, set a status after an apply, record every call).
//
// What it does not simulate: controllers (nothing becomes ready unless a test
// sets a status: onApply + readyStatus), field managers and apply conflicts
// between managers (`force` is accepted and ignored; apply replaces the whole
// object but status instead of merging fields), managedFields, finalizers and
// graceful deletion (deletes are immediate; owned objects and a namespace's
// contents are removed at once), admission webhooks, defaulting (besides
// Secret type and stringData), discovery (every kind exists: a custom
// resource without its CRD is accepted), watch expiry (410) and bookmarks,
// Pods of workloads, Events, and API validation beyond names, labels,
// annotation and Secret/ConfigMap sizes and a few immutable fields.
import { KubeApiError, type KubeClient, type ListQuery, type ListResult, type WatchEvent, type Watcher } from '../../src/kube/kube-client.js';
import { isClusterScoped } from '../../src/kinds/table.js';
import type { KubeObject, LiveObject } from '../../src/kube/objects.js';

/** One call of the KubeClient interface, in the order they were made. */
export interface MemoryKubeCall {
  verb: 'apply' | 'get' | 'list' | 'namespacesWith' | 'create' | 'replace' | 'delete' | 'logs' | 'watch';
  kind: string;
  /** The namespace the call addressed (the default one filled in); absent for cluster-scoped kinds and all-namespace lists. */
  namespace?: string;
  name?: string;
  /** Present (true) only on dry-run applies. */
  dryRun?: boolean;
}

export interface MemoryKubeOptions {
  /** Default 'default'. */
  defaultNamespace?: string;
  /**
   * Refuse writes into a namespace that has no Namespace object (404, as a
   * real API server does). Off by default; 'default', 'kube-system' and
   * 'kube-public' always exist.
   */
  requireNamespaces?: boolean;
  /** Clock for creationTimestamp. */
  now?: () => Date;
}

type ApplyRejection = { predicate: (obj: LiveObject, opts: { dryRun: boolean }) => boolean; error: Error };
type RequestRejection = { predicate: (call: MemoryKubeCall, obj: KubeObject | undefined) => boolean; error: Error };

interface Entry {
  obj: LiveObject;
  /** The object as last announced to watchers (for change detection after test hooks). */
  announced: LiveObject;
}

interface OpenWatch {
  group: string;
  kind: string;
  namespace: string | undefined;
  matches: (o: LiveObject) => boolean;
  deliver: (ev: WatchEvent) => void;
}

const BUILTIN_NAMESPACES = ['default', 'kube-system', 'kube-public'];
const SECRET_DATA_LIMIT = 1024 * 1024;
const ANNOTATIONS_LIMIT = 256 * 1024;

export class MemoryKube implements KubeClient {
  readonly context = 'memory';
  readonly defaultNamespace: string;

  /** Every call, in order. Clear with `kube.calls.length = 0`. */
  readonly calls: MemoryKubeCall[] = [];

  private readonly store = new Map<string, Entry>();
  private readonly watchers = new Set<OpenWatch>();
  private readonly applyRejections: ApplyRejection[] = [];
  private readonly requestRejections: RequestRejection[] = [];
  private readonly applyHooks: Array<(obj: LiveObject) => void> = [];
  private readonly logTexts = new Map<string, string>();
  private readonly requireNamespaces: boolean;
  private readonly now: () => Date;
  private revision = 0;
  private uids = 0;
  private generatedNames = 0;

  constructor(opts: MemoryKubeOptions = {}) {
    this.defaultNamespace = opts.defaultNamespace ?? 'default';
    this.requireNamespaces = opts.requireNamespaces ?? false;
    this.now = opts.now ?? (() => new Date());
  }

  // ---- KubeClient ---------------------------------------------------------

  async apply(obj: KubeObject, opts: { dryRun?: boolean; force?: boolean } = {}): Promise<LiveObject> {
    const dryRun = opts.dryRun === true;
    const input = this.normalizeInput(obj);
    this.record({ verb: 'apply', kind: input.kind, namespace: input.metadata.namespace, name: input.metadata.name, ...(dryRun ? { dryRun: true } : {}) }, obj);
    for (const r of this.applyRejections) if (r.predicate(clone(input), { dryRun })) throw r.error;
    const key = this.keyOf(input);
    const existing = this.store.get(key);
    this.checkWritable(input, existing, 'apply');
    if (existing && input.metadata.resourceVersion !== undefined && input.metadata.resourceVersion !== existing.obj.metadata.resourceVersion) {
      throw conflict(input);
    }
    const next = this.build(input, existing, dryRun);
    if (dryRun) return clone(next);
    const stored = this.commit(key, next, existing);
    const result = clone(stored);
    for (const hook of this.applyHooks) {
      const live = this.store.get(key);
      if (!live) break;
      hook(live.obj);
      this.touch(key);
    }
    return result;
  }

  async get(apiVersion: string, kind: string, namespace: string | undefined, name: string): Promise<LiveObject | undefined> {
    const ns = this.namespaceFor(kind, namespace);
    this.record({ verb: 'get', kind, namespace: ns, name });
    const e = this.store.get(key(groupOf(apiVersion), kind, ns, name));
    return e ? clone(e.obj) : undefined;
  }

  async list(apiVersion: string, kind: string, namespace: string | undefined, query: ListQuery = {}): Promise<ListResult> {
    const ns = isClusterScoped(kind) ? undefined : namespace;
    this.record({ verb: 'list', kind, namespace: ns });
    const matches = matcher(kind, query);
    return { items: this.select(groupOf(apiVersion), kind, ns, matches).map(clone), resourceVersion: String(this.revision) };
  }

  async namespacesWith(apiVersion: string, kind: string, labelSelector: string): Promise<Map<string, LiveObject[]>> {
    this.record({ verb: 'namespacesWith', kind });
    const out = new Map<string, LiveObject[]>();
    for (const o of this.select(groupOf(apiVersion), kind, undefined, matcher(kind, { labelSelector }))) {
      const ns = o.metadata.namespace ?? '';
      out.set(ns, [...(out.get(ns) ?? []), clone(o)]);
    }
    return out;
  }

  async create(obj: KubeObject): Promise<LiveObject> {
    const input = this.normalizeInput(obj);
    this.record({ verb: 'create', kind: input.kind, namespace: input.metadata.namespace, name: input.metadata.name || undefined }, obj);
    if (!input.metadata.name && typeof input.metadata.generateName === 'string' && input.metadata.generateName) {
      input.metadata.name = `${input.metadata.generateName}${(++this.generatedNames).toString(36).padStart(5, '0')}`;
    }
    const key = this.keyOf(input);
    this.checkWritable(input, undefined, 'create');
    if (this.store.has(key)) throw new KubeApiError(409, 'AlreadyExists', `${resourceName(input)} "${input.metadata.name}" already exists`);
    return clone(this.commit(key, this.build(input, undefined, false), undefined));
  }

  async replace(obj: KubeObject): Promise<LiveObject> {
    const input = this.normalizeInput(obj);
    this.record({ verb: 'replace', kind: input.kind, namespace: input.metadata.namespace, name: input.metadata.name }, obj);
    const key = this.keyOf(input);
    const existing = this.store.get(key);
    if (!existing) throw notFound(input.apiVersion, input.kind, input.metadata.name);
    if (input.metadata.resourceVersion !== undefined && input.metadata.resourceVersion !== existing.obj.metadata.resourceVersion) throw conflict(input);
    this.checkWritable(input, existing, 'replace');
    return clone(this.commit(key, this.build(input, existing, false), existing));
  }

  async delete(
    apiVersion: string,
    kind: string,
    namespace: string | undefined,
    name: string,
    _propagation: 'Background' | 'Foreground' = 'Background',
    preconditions: { resourceVersion?: string; uid?: string } = {},
  ): Promise<boolean> {
    const ns = this.namespaceFor(kind, namespace);
    this.record({ verb: 'delete', kind, namespace: ns, name });
    const k = key(groupOf(apiVersion), kind, ns, name);
    const existing = this.store.get(k);
    if (!existing) return false;
    if (preconditions.resourceVersion !== undefined && preconditions.resourceVersion !== existing.obj.metadata.resourceVersion) {
      throw new KubeApiError(
        409,
        'Conflict',
        `Operation cannot be fulfilled on ${resourceName(existing.obj)} "${name}": Precondition failed: ResourceVersion in precondition: ${preconditions.resourceVersion}, ResourceVersion in object meta: ${String(existing.obj.metadata.resourceVersion)}`,
      );
    }
    if (preconditions.uid !== undefined && preconditions.uid !== existing.obj.metadata.uid) {
      throw new KubeApiError(
        409,
        'Conflict',
        `Operation cannot be fulfilled on ${resourceName(existing.obj)} "${name}": Precondition failed: UID in precondition: ${preconditions.uid}, UID in object meta: ${String(existing.obj.metadata.uid)}`,
      );
    }
    this.remove(k);
    return true;
  }

  async logs(namespace: string, pod: string, container: string, opts: { tailLines?: number; previous?: boolean } = {}): Promise<string> {
    this.record({ verb: 'logs', kind: 'Pod', namespace, name: pod });
    const text = this.logTexts.get(logKey(namespace, pod, container, opts.previous === true)) ?? '';
    if (!text) return '';
    const tail = opts.tailLines ?? 20;
    const lines = text.split('\n');
    const trailing = lines[lines.length - 1] === '' ? lines.pop() : undefined;
    return lines.slice(-tail).join('\n') + (trailing !== undefined ? '\n' : '');
  }

  async watch(apiVersion: string, kind: string, namespace: string | undefined, query: ListQuery, { onEvent, signal, onSynced }: Watcher): Promise<void> {
    const ns = isClusterScoped(kind) ? undefined : namespace;
    this.record({ verb: 'watch', kind, namespace: ns });
    if (signal.aborted) return;
    const group = groupOf(apiVersion);
    const matches = matcher(kind, query);
    // The list and the subscription happen at the same instant: no change is lost or seen twice.
    const initial = this.select(group, kind, ns, matches).map(clone);
    return new Promise<void>((resolve, reject) => {
      let done = false;
      const finish = (error?: unknown) => {
        if (done) return;
        done = true;
        this.watchers.delete(watcher);
        signal.removeEventListener('abort', onAbort);
        if (error === undefined) resolve();
        else reject(error instanceof Error ? error : new Error('watch failed', { cause: error }));
      };
      const run = (fn: () => void) => {
        queueMicrotask(() => {
          if (done || signal.aborted) return;
          try {
            fn();
          } catch (e) {
            finish(e);
          }
        });
      };
      const watcher: OpenWatch = { group, kind, namespace: ns, matches, deliver: (ev) => run(() => onEvent(ev)) };
      const onAbort = () => finish();
      signal.addEventListener('abort', onAbort, { once: true });
      this.watchers.add(watcher);
      run(() => {
        for (const object of initial) onEvent({ type: 'ADDED', object });
        onSynced?.();
      });
    });
  }

  // ---- test hooks -----------------------------------------------------------

  /**
   * Makes apply (dry run or real, as the predicate decides) of a matching
   * object throw `error`. Returns a function that lifts the rejection.
   */
  reject(predicate: (obj: LiveObject, opts: { dryRun: boolean }) => boolean, error: Error): () => void {
    const r: ApplyRejection = { predicate, error };
    this.applyRejections.push(r);
    return () => remove(this.applyRejections, r);
  }

  /**
   * Makes any call (get, list, watch, create, replace, delete, …) matching the
   * predicate throw `error`, after it is recorded in `calls`. `obj` is the
   * object written, for apply, create and replace. Returns a function that
   * lifts the rejection.
   */
  rejectRequest(predicate: (call: MemoryKubeCall, obj: KubeObject | undefined) => boolean, error: Error): () => void {
    const r: RequestRejection = { predicate, error };
    this.requestRejections.push(r);
    return () => remove(this.requestRejections, r);
  }

  /**
   * Calls fn after every real apply with the stored object itself: changes fn
   * makes (e.g. `o.status = readyStatus(o)`) are stored and reach watchers as a
   * MODIFIED event after the apply's own ADDED/MODIFIED. Returns a function
   * that removes the hook.
   */
  onApply(fn: (obj: LiveObject) => void): () => void {
    this.applyHooks.push(fn);
    return () => remove(this.applyHooks, fn);
  }

  /** Replaces an object's status and tells watchers (MODIFIED). Not recorded in `calls`. */
  setStatus(apiVersion: string, kind: string, namespace: string | undefined, name: string, status: Record<string, unknown>): LiveObject {
    const k = key(groupOf(apiVersion), kind, this.namespaceFor(kind, namespace), name);
    const e = this.store.get(k);
    if (!e) throw notFound(apiVersion, kind, name);
    e.obj.status = clone(status);
    this.touch(k);
    return clone(e.obj);
  }

  /**
   * Stores an object as it is, status included (existing cluster state, pods
   * and ReplicaSets with ownerReferences): given uid, generation and
   * creationTimestamp are kept, missing ones filled in. Watchers see it; not
   * recorded in `calls`, not validated.
   */
  seed(obj: KubeObject): LiveObject {
    const input = this.normalizeInput(obj);
    const k = this.keyOf(input);
    const existing = this.store.get(k);
    const next = clone(input);
    next.metadata.uid ??= existing?.obj.metadata.uid ?? this.newUid();
    next.metadata.creationTimestamp ??= existing?.obj.metadata.creationTimestamp ?? timestamp(this.now());
    next.metadata.generation ??= existing ? generationOf(existing.obj) + (canon(specOf(next)) === canon(specOf(existing.obj)) ? 0 : 1) : 1;
    delete next.metadata.resourceVersion;
    return clone(this.commit(k, next, existing));
  }

  /** Log text of a container, for `logs()`; `previous` for the last terminated instance. */
  setLogs(namespace: string, pod: string, container: string, text: string, opts: { previous?: boolean } = {}): void {
    this.logTexts.set(logKey(namespace, pod, container, opts.previous === true), text);
  }

  /** All stored objects (deep copies), of one kind if given, in order of creation. */
  objects(kind?: string): LiveObject[] {
    return [...this.store.values()].filter((e) => kind === undefined || e.obj.kind === kind).map((e) => clone(e.obj));
  }

  /** One stored object (deep copy) by kind, namespace and name, or undefined. */
  object(kind: string, namespace: string | undefined, name: string): LiveObject | undefined {
    const ns = this.namespaceFor(kind, namespace);
    const e = [...this.store.values()].find((x) => x.obj.kind === kind && x.obj.metadata.namespace === ns && x.obj.metadata.name === name);
    return e ? clone(e.obj) : undefined;
  }

  /** The calls that changed the cluster: real applies, creates, replaces, deletes. */
  writes(): MemoryKubeCall[] {
    return this.calls.filter((c) => ['apply', 'create', 'replace', 'delete'].includes(c.verb) && !c.dryRun);
  }

  /** Watches currently open (a test can check that every watch was stopped). */
  get activeWatches(): number {
    return this.watchers.size;
  }

  // ---- internals ------------------------------------------------------------

  private record(call: MemoryKubeCall, obj?: KubeObject): void {
    const c: MemoryKubeCall = { verb: call.verb, kind: call.kind };
    if (call.namespace !== undefined) c.namespace = call.namespace;
    if (call.name !== undefined) c.name = call.name;
    if (call.dryRun) c.dryRun = true;
    this.calls.push(c);
    for (const r of this.requestRejections) if (r.predicate(clone(c), obj === undefined ? undefined : clone(obj))) throw r.error;
  }

  private namespaceFor(kind: string, namespace: string | undefined): string | undefined {
    return isClusterScoped(kind) ? undefined : (namespace ?? this.defaultNamespace);
  }

  /** A deep copy with the namespace resolved (removed for cluster-scoped kinds) and Secret stringData folded into data. */
  private normalizeInput(obj: KubeObject): LiveObject {
    const o = clone(obj) as LiveObject;
    o.metadata ??= { name: '' };
    const ns = this.namespaceFor(o.kind, o.metadata.namespace);
    if (ns === undefined) delete o.metadata.namespace;
    else o.metadata.namespace = ns;
    if (o.kind === 'Secret' && groupOf(o.apiVersion) === '') {
      o.type ??= 'Opaque';
      if (o.stringData && typeof o.stringData === 'object') {
        o.data = { ...(o.data ?? {}) };
        for (const [k, v] of Object.entries(o.stringData as Record<string, string>)) o.data[k] = Buffer.from(String(v), 'utf8').toString('base64');
        delete o.stringData;
      }
    }
    return o;
  }

  private keyOf(o: KubeObject): string {
    return key(groupOf(o.apiVersion), o.kind, o.metadata.namespace, o.metadata.name);
  }

  /** Validation and the namespace's existence; throws 404/422 like an API server. */
  private checkWritable(input: LiveObject, existing: Entry | undefined, verb: 'apply' | 'create' | 'replace'): void {
    const ns = input.metadata.namespace;
    if (this.requireNamespaces && ns !== undefined && !BUILTIN_NAMESPACES.includes(ns) && !this.store.has(key('', 'Namespace', undefined, ns))) {
      throw new KubeApiError(404, 'NotFound', `namespaces "${ns}" not found`);
    }
    const causes = validate(input, existing?.obj, verb);
    if (causes.length > 0) throw invalid(input, causes);
  }

  /** The object a write would store: server-set metadata kept or filled in, status kept. */
  private build(input: LiveObject, existing: Entry | undefined, dryRun: boolean): LiveObject {
    const next = clone(input);
    for (const f of ['uid', 'resourceVersion', 'generation', 'creationTimestamp', 'managedFields', 'deletionTimestamp', 'selfLink']) delete next.metadata[f];
    delete next.status;
    const prev = existing?.obj;
    next.metadata.uid = prev ? prev.metadata.uid : dryRun ? `${this.nextUidPreview()}` : this.newUid();
    next.metadata.creationTimestamp = prev ? prev.metadata.creationTimestamp : timestamp(this.now());
    if (prev?.metadata.resourceVersion !== undefined) next.metadata.resourceVersion = prev.metadata.resourceVersion;
    next.metadata.generation = prev ? generationOf(prev) + (canon(specOf(next)) === canon(specOf(prev)) ? 0 : 1) : 1;
    if (prev?.status !== undefined) next.status = clone(prev.status);
    else if (!prev && input.kind === 'Namespace') next.status = { phase: 'Active' };
    return next;
  }

  /** Stores `next` and tells watchers, unless it equals what is stored (a no-op write changes nothing, as on a real server). */
  private commit(k: string, next: LiveObject, existing: Entry | undefined): LiveObject {
    if (existing && canon(withoutVersion(next)) === canon(withoutVersion(existing.obj))) return existing.obj;
    next.metadata.resourceVersion = String(++this.revision);
    const entry: Entry = { obj: next, announced: clone(next) };
    this.store.set(k, entry);
    this.emit(existing ? 'MODIFIED' : 'ADDED', next, existing?.announced);
    return next;
  }

  /** After a test hook changed a stored object in place: bump generation/resourceVersion and tell watchers. */
  private touch(k: string): void {
    const e = this.store.get(k);
    if (!e) return;
    if (canon(withoutVersion(e.obj)) === canon(withoutVersion(e.announced))) return;
    if (canon(specOf(e.obj)) !== canon(specOf(e.announced)) && e.obj.metadata.generation === e.announced.metadata.generation) {
      e.obj.metadata.generation = generationOf(e.announced) + 1;
    }
    e.obj.metadata.resourceVersion = String(++this.revision);
    const before = e.announced;
    e.announced = clone(e.obj);
    this.emit('MODIFIED', e.obj, before);
  }

  /** Deletes an object, what it owns and, for a Namespace, everything in it. */
  private remove(k: string): void {
    const e = this.store.get(k);
    if (!e) return;
    this.store.delete(k);
    const gone = e.obj;
    gone.metadata.resourceVersion = String(++this.revision);
    this.emit('DELETED', gone, undefined);
    const uid = gone.metadata.uid as string | undefined;
    for (const [dk, d] of [...this.store.entries()]) {
      const owned = ((d.obj.metadata.ownerReferences ?? []) as Array<{ uid?: string }>).some((r) => r.uid !== undefined && r.uid === uid);
      const inNamespace = gone.kind === 'Namespace' && d.obj.metadata.namespace === gone.metadata.name;
      if (owned || inNamespace) this.remove(dk);
    }
  }

  private emit(type: 'ADDED' | 'MODIFIED' | 'DELETED', obj: LiveObject, before: LiveObject | undefined): void {
    const group = groupOf(obj.apiVersion);
    for (const w of this.watchers) {
      if (w.group !== group || w.kind !== obj.kind) continue;
      if (w.namespace !== undefined && w.namespace !== obj.metadata.namespace) continue;
      const now = w.matches(obj);
      if (type !== 'MODIFIED') {
        if (now) w.deliver({ type, object: clone(obj) });
        continue;
      }
      // A watch with a selector sees an object enter (ADDED) or leave (DELETED) the selection.
      const was = before !== undefined && w.matches(before);
      if (now && was) w.deliver({ type: 'MODIFIED', object: clone(obj) });
      else if (now) w.deliver({ type: 'ADDED', object: clone(obj) });
      else if (was) w.deliver({ type: 'DELETED', object: clone(obj) });
    }
  }

  private select(group: string, kind: string, namespace: string | undefined, matches: (o: LiveObject) => boolean): LiveObject[] {
    return [...this.store.values()]
      .map((e) => e.obj)
      .filter((o) => groupOf(o.apiVersion) === group && o.kind === kind && (namespace === undefined || o.metadata.namespace === namespace) && matches(o))
      .sort((a, b) => (a.metadata.namespace ?? '').localeCompare(b.metadata.namespace ?? '') || a.metadata.name.localeCompare(b.metadata.name));
  }

  private newUid(): string {
    return uidOf(++this.uids);
  }

  private nextUidPreview(): string {
    return uidOf(this.uids + 1);
  }
}

// ---- statuses a test sets ---------------------------------------------------

/**
 * A status under which src/kinds/readiness.ts judges a Deployment, StatefulSet,
 * DaemonSet, Job, Pod or PVC ready (its current status for any other kind).
 * Use from onApply: `kube.onApply((o) => { o.status = readyStatus(o); })`.
 */
export function readyStatus(obj: LiveObject): Record<string, any> {
  const generation = typeof obj.metadata.generation === 'number' ? obj.metadata.generation : 1;
  const replicas = obj.spec?.replicas ?? 1;
  const at = timestamp(new Date());
  switch (obj.kind) {
    case 'Deployment':
      return {
        observedGeneration: generation,
        replicas,
        updatedReplicas: replicas,
        readyReplicas: replicas,
        availableReplicas: replicas,
        conditions: [
          { type: 'Available', status: 'True', reason: 'MinimumReplicasAvailable', message: 'Deployment has minimum availability.', lastTransitionTime: at },
          {
            type: 'Progressing',
            status: 'True',
            reason: 'NewReplicaSetAvailable',
            message: `ReplicaSet "${obj.metadata.name}" has successfully progressed.`,
            lastTransitionTime: at,
          },
        ],
      };
    case 'StatefulSet': {
      const revision = `${obj.metadata.name}-${generation}`;
      return {
        observedGeneration: generation,
        replicas,
        readyReplicas: replicas,
        currentReplicas: replicas,
        updatedReplicas: replicas,
        availableReplicas: replicas,
        currentRevision: revision,
        updateRevision: revision,
      };
    }
    case 'DaemonSet':
      return {
        observedGeneration: generation,
        desiredNumberScheduled: 1,
        currentNumberScheduled: 1,
        updatedNumberScheduled: 1,
        numberReady: 1,
        numberAvailable: 1,
        numberMisscheduled: 0,
      };
    case 'Job': {
      const succeeded = obj.spec?.completions ?? 1;
      return {
        startTime: at,
        completionTime: at,
        succeeded,
        active: 0,
        ready: 0,
        conditions: [
          {
            type: 'SuccessCriteriaMet',
            status: 'True',
            reason: 'CompletionsReached',
            message: 'Reached expected number of succeeded pods',
            lastTransitionTime: at,
          },
          { type: 'Complete', status: 'True', reason: 'CompletionsReached', message: 'Reached expected number of succeeded pods', lastTransitionTime: at },
        ],
      };
    }
    case 'Pod': {
      const containers = (obj.spec?.containers ?? []) as Array<{ name: string; image?: string }>;
      return {
        phase: 'Running',
        startTime: at,
        conditions: ['PodScheduled', 'Initialized', 'ContainersReady', 'Ready'].map((type) => ({ type, status: 'True', lastTransitionTime: at })),
        containerStatuses: containers.map((c) => ({
          name: c.name,
          image: c.image,
          ready: true,
          started: true,
          restartCount: 0,
          state: { running: { startedAt: at } },
        })),
      };
    }
    case 'PersistentVolumeClaim':
      return {
        phase: 'Bound',
        accessModes: obj.spec?.accessModes ?? ['ReadWriteOnce'],
        capacity: { storage: obj.spec?.resources?.requests?.storage ?? '1Gi' },
      };
    default:
      return clone(obj.status ?? {});
  }
}

/** A Job status judged failed by src/kinds/readiness.ts (condition Failed=True). */
export function failedJobStatus(reason = 'BackoffLimitExceeded', message = 'Job has reached the specified backoff limit'): Record<string, any> {
  const at = timestamp(new Date());
  return {
    startTime: at,
    failed: 1,
    active: 0,
    conditions: [
      { type: 'FailureTarget', status: 'True', reason, message, lastTransitionTime: at },
      { type: 'Failed', status: 'True', reason, message, lastTransitionTime: at },
    ],
  };
}

// ---- selectors ------------------------------------------------------------

type Requirement = { key: string; op: 'eq' | 'neq' | 'exists' | 'notexists' | 'in' | 'notin'; values: string[] };

function badRequest(message: string): KubeApiError {
  return new KubeApiError(400, 'BadRequest', message);
}

/** Splits at commas outside parentheses. */
function splitTerms(s: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let cur = '';
  for (const ch of s) {
    if (ch === '(') depth++;
    if (ch === ')') depth--;
    if (ch === ',' && depth === 0) {
      out.push(cur);
      cur = '';
    } else cur += ch;
  }
  out.push(cur);
  return out.map((t) => t.trim());
}

export function parseLabelSelector(selector: string): Requirement[] {
  if (!selector.trim()) return [];
  return splitTerms(selector).map((term) => {
    let m: RegExpMatchArray | null;
    if ((m = term.match(/^!\s*([^\s=!(),]+)$/))) return { key: m[1]!, op: 'notexists', values: [] };
    if ((m = term.match(/^([^\s=!(),]+)\s+(in|notin)\s+\(([^()]*)\)$/))) {
      return { key: m[1]!, op: m[2] as 'in' | 'notin', values: m[3]!.split(',').map((v) => v.trim()) };
    }
    if ((m = term.match(/^([^\s=!(),]+)\s*(==|=|!=)\s*([^\s=!(),]*)$/))) return { key: m[1]!, op: m[2] === '!=' ? 'neq' : 'eq', values: [m[3]!] };
    if ((m = term.match(/^([^\s=!(),]+)$/))) return { key: m[1]!, op: 'exists', values: [] };
    throw badRequest(`unable to parse requirement: found '${term}', expected: a label selector requirement`);
  });
}

function labelsMatch(reqs: Requirement[], labels: Record<string, string>): boolean {
  return reqs.every((r) => {
    const has = Object.prototype.hasOwnProperty.call(labels, r.key);
    const v = labels[r.key];
    switch (r.op) {
      case 'eq':
        return has && v === r.values[0];
      case 'neq':
        return !has || v !== r.values[0];
      case 'exists':
        return has;
      case 'notexists':
        return !has;
      case 'in':
        return has && r.values.includes(v!);
      case 'notin':
        return !has || !r.values.includes(v!);
    }
  });
}

const FIELD_SELECTABLE: Record<string, string[]> = {
  Pod: ['spec.nodeName', 'spec.restartPolicy', 'spec.schedulerName', 'spec.serviceAccountName', 'status.phase', 'status.podIP'],
  Secret: ['type'],
  Event: ['involvedObject.kind', 'involvedObject.name', 'involvedObject.namespace', 'involvedObject.uid', 'reason', 'type'],
};

function fieldMatcher(kind: string, selector: string | undefined): (o: LiveObject) => boolean {
  if (!selector?.trim()) return () => true;
  const allowed = ['metadata.name', 'metadata.namespace', ...(FIELD_SELECTABLE[kind] ?? [])];
  const reqs = selector.split(',').map((term) => {
    const m = term.trim().match(/^([\w.]+)\s*(==|=|!=)\s*(.*)$/);
    if (!m) throw badRequest(`invalid selector: '${selector}'; can't understand '${term}'`);
    if (!allowed.includes(m[1]!)) throw badRequest(`field label not supported: ${m[1]}`);
    return { path: m[1]!.split('.'), negate: m[2] === '!=', value: m[3]!.trim() };
  });
  return (o) =>
    reqs.every((r) => {
      let v: any = o;
      for (const p of r.path) v = v?.[p];
      const s = v === undefined || v === null ? '' : String(v);
      return r.negate ? s !== r.value : s === r.value;
    });
}

function matcher(kind: string, query: ListQuery): (o: LiveObject) => boolean {
  const labels = parseLabelSelector(query.labelSelector ?? '');
  const fields = fieldMatcher(kind, query.fieldSelector);
  return (o) => labelsMatch(labels, o.metadata.labels ?? {}) && fields(o);
}

// ---- validation -----------------------------------------------------------

type Cause = { field: string; message: string; reason: string };

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const DNS1035_LABEL = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;
const QUALIFIED_NAME = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;
const RBAC_KINDS = ['Role', 'ClusterRole', 'RoleBinding', 'ClusterRoleBinding'];

/** Fields an update may not change, by kind. */
const IMMUTABLE: Record<string, string[]> = {
  Deployment: ['spec.selector'],
  ReplicaSet: ['spec.selector'],
  DaemonSet: ['spec.selector'],
  StatefulSet: ['spec.selector', 'spec.serviceName', 'spec.volumeClaimTemplates', 'spec.podManagementPolicy'],
  Job: ['spec.selector', 'spec.template', 'spec.completions', 'spec.completionMode'],
  PersistentVolumeClaim: ['spec.storageClassName', 'spec.accessModes', 'spec.volumeName', 'spec.selector'],
  Secret: ['type'],
};

function nameCauses(kind: string, name: string): Cause[] {
  const bad = (why: string): Cause[] => [{ field: 'metadata.name', reason: 'FieldValueInvalid', message: `Invalid value: "${name}": ${why}` }];
  if (RBAC_KINDS.includes(kind)) {
    if (name === '.' || name === '..' || /[/%]/.test(name)) return bad(`may not be '.' or '..' and may not contain '/' or '%'`);
    return [];
  }
  if (kind === 'Namespace') {
    if (name.length > 63 || !DNS1123_LABEL.test(name))
      return bad(`a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character`);
    return [];
  }
  if (kind === 'Service') {
    if (name.length > 63 || !DNS1035_LABEL.test(name))
      return bad(
        `a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character`,
      );
    return [];
  }
  if (name.length > 253 || !DNS1123_SUBDOMAIN.test(name)) {
    return bad(
      `a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character`,
    );
  }
  return [];
}

function labelCauses(labels: Record<string, unknown>): Cause[] {
  const causes: Cause[] = [];
  for (const [k, v] of Object.entries(labels)) {
    const slash = k.lastIndexOf('/');
    const prefix = slash >= 0 ? k.slice(0, slash) : undefined;
    const name = slash >= 0 ? k.slice(slash + 1) : k;
    if ((prefix !== undefined && (prefix.length > 253 || !DNS1123_SUBDOMAIN.test(prefix))) || name.length > 63 || !QUALIFIED_NAME.test(name)) {
      causes.push({
        field: 'metadata.labels',
        reason: 'FieldValueInvalid',
        message: `Invalid value: "${k}": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character`,
      });
    }
    if (typeof v !== 'string') {
      causes.push({ field: `metadata.labels.${k}`, reason: 'FieldValueTypeInvalid', message: 'Invalid value: label values must be strings' });
    } else if (v.length > 63) {
      causes.push({ field: 'metadata.labels', reason: 'FieldValueInvalid', message: `Invalid value: "${v}": must be no more than 63 characters` });
    } else if (!LABEL_VALUE.test(v)) {
      causes.push({
        field: 'metadata.labels',
        reason: 'FieldValueInvalid',
        message: `Invalid value: "${v}": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character`,
      });
    }
  }
  return causes;
}

function dataBytes(o: LiveObject): number {
  let n = 0;
  for (const v of Object.values((o.data ?? {}) as Record<string, string>))
    n += o.kind === 'Secret' ? Buffer.from(String(v), 'base64').length : Buffer.byteLength(String(v));
  for (const v of Object.values((o.binaryData ?? {}) as Record<string, string>)) n += Buffer.from(String(v), 'base64').length;
  return n;
}

function validate(o: LiveObject, prev: LiveObject | undefined, verb: 'apply' | 'create' | 'replace'): Cause[] {
  const causes: Cause[] = [];
  const name = o.metadata.name;
  if (!name) {
    causes.push({
      field: 'metadata.name',
      reason: 'FieldValueRequired',
      message: verb === 'create' ? 'Required value: name or generateName is required' : 'Required value: name is required',
    });
  } else {
    causes.push(...nameCauses(o.kind, name));
  }
  if (o.metadata.labels) causes.push(...labelCauses(o.metadata.labels));
  if (o.metadata.annotations) {
    const size = Object.entries(o.metadata.annotations).reduce((n, [k, v]) => n + k.length + String(v).length, 0);
    if (size > ANNOTATIONS_LIMIT)
      causes.push({ field: 'metadata.annotations', reason: 'FieldValueTooLong', message: `Too long: must have at most ${ANNOTATIONS_LIMIT} bytes` });
  }
  if ((o.kind === 'Secret' || o.kind === 'ConfigMap') && groupOf(o.apiVersion) === '' && dataBytes(o) > SECRET_DATA_LIMIT) {
    causes.push({ field: 'data', reason: 'FieldValueTooLong', message: `Too long: must have at most ${SECRET_DATA_LIMIT} bytes` });
  }
  if (prev) {
    for (const path of IMMUTABLE[o.kind] ?? []) {
      const before = at(prev, path);
      const after = at(o, path);
      // Fields the server defaults (a Job's selector) may be left out of a later write.
      if (after === undefined || canon(before) === canon(after)) continue;
      causes.push({ field: path, reason: 'FieldValueInvalid', message: `Invalid value: ${truncate(JSON.stringify(after))}: field is immutable` });
    }
    if (
      (o.kind === 'Secret' || o.kind === 'ConfigMap') &&
      prev.immutable === true &&
      (canon(o.data) !== canon(prev.data) || canon(o.binaryData) !== canon(prev.binaryData) || o.immutable !== true)
    ) {
      causes.push({ field: 'data', reason: 'FieldValueForbidden', message: 'Forbidden: field is immutable when `immutable` is set' });
    }
  }
  return causes;
}

// ---- small things -----------------------------------------------------------

function groupOf(apiVersion: string): string {
  const slash = apiVersion.indexOf('/');
  return slash < 0 ? '' : apiVersion.slice(0, slash);
}

function key(group: string, kind: string, namespace: string | undefined, name: string): string {
  return `${group}\u0000${kind}\u0000${namespace ?? ''}\u0000${name}`;
}

function logKey(namespace: string, pod: string, container: string, previous: boolean): string {
  return `${namespace}\u0000${pod}\u0000${container}\u0000${previous ? 'previous' : 'current'}`;
}

function uidOf(n: number): string {
  return `00000000-0000-4000-8000-${n.toString(16).padStart(12, '0')}`;
}

function timestamp(d: Date): string {
  return d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** "deployments.apps", as the API server names a resource in messages. */
function resourceName(o: { apiVersion: string; kind: string }): string {
  const lower = o.kind.toLowerCase();
  const plural = lower === 'endpoints' ? lower : lower.endsWith('y') ? `${lower.slice(0, -1)}ies` : /(s|x|ch|sh)$/.test(lower) ? `${lower}es` : `${lower}s`;
  const group = groupOf(o.apiVersion);
  return group ? `${plural}.${group}` : plural;
}

function notFound(apiVersion: string, kind: string, name: string): KubeApiError {
  return new KubeApiError(404, 'NotFound', `${resourceName({ apiVersion, kind })} "${name}" not found`);
}

function conflict(o: KubeObject): KubeApiError {
  return new KubeApiError(
    409,
    'Conflict',
    `Operation cannot be fulfilled on ${resourceName(o)} "${o.metadata.name}": the object has been modified; please apply your changes to the latest version and try again`,
  );
}

function invalid(o: KubeObject, causes: Cause[]): KubeApiError {
  const group = groupOf(o.apiVersion);
  const message = `${o.kind}${group ? `.${group}` : ''} "${o.metadata.name}" is invalid: ${causes.map((c) => `${c.field}: ${c.message}`).join(', ')}`;
  return new KubeApiError(422, 'Invalid', message, causes);
}

function at(o: unknown, path: string): unknown {
  let v: any = o;
  for (const p of path.split('.')) v = v?.[p];
  return v;
}

function truncate(s: string): string {
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

function generationOf(o: LiveObject): number {
  return typeof o.metadata.generation === 'number' ? o.metadata.generation : 1;
}

function clone<T>(v: T): T {
  return structuredClone(v);
}

function remove<T>(list: T[], item: T): void {
  const i = list.indexOf(item);
  if (i >= 0) list.splice(i, 1);
}

/** JSON with sorted keys, for comparing objects. */
function canon(v: unknown): string {
  return (
    JSON.stringify(v, (_k, x: unknown) =>
      x && typeof x === 'object' && !Array.isArray(x)
        ? Object.fromEntries(Object.entries(x as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
        : x,
    ) ?? 'undefined'
  );
}

/** Everything but metadata and status: what a change of bumps the generation. */
function specOf(o: LiveObject): Record<string, unknown> {
  const { metadata: _m, status: _s, ...rest } = o;
  return rest;
}

function withoutVersion(o: LiveObject): LiveObject {
  const { resourceVersion: _rv, ...metadata } = o.metadata;
  return { ...o, metadata: metadata };
}
