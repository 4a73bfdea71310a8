import type { RequestOptions } from 'node:https';
import { InfrastructureError, SkiffError } from '../errors.js';
import {
  UnknownKindError,
  PARALLEL_REQUESTS,
  type ClusterCapabilities,
  type KubeClient,
  type ListQuery,
  type ListResult,
  type Watcher,
  type WriteOptions,
} from '../kube/kube-client.js';
import { objectRef } from '../kube/object-key.js';
import {
  AdaptiveLimiter,
  DEFAULT_KUBE_RETRY_TIMEOUT_MS,
  KUBE_RETRY_TIMEOUT_ENV,
  abortableSleep,
  backoffMs,
  isThrottled,
  isTransientError,
  isTransientStatus,
  kubeRetryTimeoutMs,
  neverSent,
  retryAfterMs,
} from '../kube/retry.js';
import { SHARED_FIELD_MANAGER, type KubeObject, type LiveObject } from '../kube/objects.js';
import { KubeEndpoint, type KubeResponse, type RequestInit, type WatchOutcome } from './kube-http.js';
import { loadConnection } from './kubeconfig.js';

/** For what belongs to no one release: the namespace skiff creates, release records, the lock. */
export const FIELD_MANAGER = SHARED_FIELD_MANAGER;

interface ResourceInfo {
  /** "/api/v1" or "/apis/apps/v1" */
  base: string;
  plural: string;
  namespaced: boolean;
}

/** What HttpKubeClient's retries and parallelism are tuned by. */
export interface KubeTuning {
  /** Bound on retrying one request, and on a watch's reconnects (SKIFF_KUBE_RETRY_TIMEOUT). */
  retryTimeoutMs: number;
  /** Idle time after which one attempt is abandoned (and retried). */
  requestTimeoutMs: number;
  /** Requests in flight at once before any rate limiting. */
  maxParallel: number;
  random?: () => number;
}

function messageOf(body: unknown): string {
  const m = typeof body === 'object' && body ? (body as { message?: unknown }).message : typeof body === 'string' ? body : undefined;
  return typeof m === 'string' ? m.slice(0, 200).replace(/\s+/g, ' ').trim() : '';
}

/** JSON with object keys sorted, so that two renderings of one value compare equal. */
function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v && typeof v === 'object')
    return `{${Object.keys(v)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical((v as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  return JSON.stringify(v) ?? 'null';
}

/** Whether a live object holds what a write sent (everything but metadata the server keeps). */
function sameContent(live: KubeObject, sent: KubeObject): boolean {
  const strip = (o: KubeObject) => {
    const { metadata, ...rest } = o as KubeObject & { status?: unknown };
    delete (rest as { status?: unknown }).status;
    return canonical([rest, metadata.labels ?? {}, metadata.annotations ?? {}]);
  };
  return strip({ ...live, apiVersion: sent.apiVersion, kind: sent.kind }) === strip(sent);
}

function abortError(signal: AbortSignal | undefined): Error {
  const e = new Error(`aborted${signal?.reason instanceof Error ? `: ${signal.reason.message}` : ''}`);
  e.name = 'AbortError';
  return e;
}

/**
 * A small Kubernetes REST client: kubeconfig handling is ./kubeconfig.ts for
 * certificates and tokens, @kubernetes/client-node for exec plugins, auth
 * providers and in-cluster config; the
 * requests (server-side apply, dry-run, watch with resume, logs) are plain
 * HTTPS with keep-alive.
 */
export class HttpKubeClient implements KubeClient {
  private readonly discovery = new Map<string, Promise<Map<string, ResourceInfo>>>();
  private readonly limiter: AdaptiveLimiter;
  private readonly tuning: KubeTuning;
  private readonly endpoint: KubeEndpoint;
  private constructor(
    readonly server: string,
    readonly context: string,
    options: RequestOptions,
    readonly defaultNamespace: string,
    tuning: Partial<KubeTuning> = {},
  ) {
    this.tuning = { retryTimeoutMs: DEFAULT_KUBE_RETRY_TIMEOUT_MS, requestTimeoutMs: 60_000, maxParallel: PARALLEL_REQUESTS, ...tuning };
    this.limiter = new AdaptiveLimiter(this.tuning.maxParallel);
    this.endpoint = new KubeEndpoint(server, context, options, this.tuning.requestTimeoutMs);
  }

  /**
   * The cluster of a kubeconfig context; KUBECONFIG, HOME and the retry bound
   * (SKIFF_KUBE_RETRY_TIMEOUT, unless `tuning` sets it) are read from `env`.
   */
  static async connect(opts: { context?: string; kubeconfig?: string; env: NodeJS.ProcessEnv; tuning?: Partial<KubeTuning> }): Promise<HttpKubeClient> {
    const tuning = { retryTimeoutMs: kubeRetryTimeoutMs(opts.env), ...opts.tuning };
    const c = loadConnection(opts, opts.env) ?? (await (await import('./kubeconfig-full.js')).loadFullConnection(opts, opts.env));
    return new HttpKubeClient(c.server, c.context, c.options, c.namespace, tuning);
  }

  /**
   * One request, retried through a flaky or rate-limiting API server:
   * connection refused/reset/timed out and 429/502/503/504 are tried again
   * with exponential backoff and jitter (Retry-After honoured) until the
   * retry bound runs out, then an InfrastructureError (exit 3) names the
   * server and context. When an attempt may have reached the server before
   * its connection broke, the answer carries `ambiguous`, so that create and
   * replace can read the 409 of the repeat as their own earlier success when
   * the object holds what they sent.
   */
  async request(method: string, path: string, init: RequestInit = {}): Promise<KubeResponse> {
    const deadline = Date.now() + this.tuning.retryTimeoutMs;
    let ambiguous = false;
    for (let attempt = 0; ; attempt++) {
      if (!(await this.limiter.acquire(init.signal))) throw abortError(init.signal);
      let res: (KubeResponse & { retryAfter?: string }) | undefined;
      let failure: unknown;
      const epoch = this.limiter.epoch;
      try {
        res = await this.endpoint.send(method, path, init);
      } catch (e) {
        failure = e;
      } finally {
        this.limiter.release();
      }
      let wait: number | undefined;
      let why: string;
      if (res) {
        if (isThrottled(res.status)) this.limiter.throttled(epoch);
        else this.limiter.succeeded();
        if (!isTransientStatus(res.status)) return { status: res.status, body: res.body, ambiguous };
        // A gateway that timed out may have passed the create on; 429 and 503 were refused before any work.
        if (res.status === 502 || res.status === 504) ambiguous = true;
        wait = retryAfterMs(res.retryAfter, Date.now());
        why = `answered ${res.status}${messageOf(res.body) ? ` (${messageOf(res.body)})` : ''}`;
      } else {
        if (init.signal?.aborted || !isTransientError(failure)) throw this.endpoint.unreachable(failure as Error);
        // The write may have landed: repeat it, and let create/replace read the 409 that follows.
        if (!neverSent(failure)) ambiguous = true;
        why = `is unreachable: ${(failure as Error).message}`;
      }
      const delay = Math.max(wait ?? 0, backoffMs(attempt, this.tuning.random));
      if (Date.now() + delay > deadline) {
        const waited = Math.round((Date.now() - deadline + this.tuning.retryTimeoutMs) / 1000);
        throw new InfrastructureError(
          `Kubernetes API ${this.server} (context ${this.context}) ${why}${attempt ? `; gave up after ${attempt + 1} attempts in ${waited}s` : ''}; check the cluster, or raise ${KUBE_RETRY_TIMEOUT_ENV} (seconds, now ${Math.round(this.tuning.retryTimeoutMs / 1000)}) to wait longer`,
          { cause: failure },
        );
      }
      this.retries++;
      await abortableSleep(delay, init.signal);
      if (init.signal?.aborted) throw abortError(init.signal);
    }
  }

  /** Requests repeated so far (for diagnostics and tests). */
  retries = 0;

  /** The limiter shared by every request of this client; watches do not take a slot. */
  get parallelism(): AdaptiveLimiter {
    return this.limiter;
  }

  /** Resource path info for apiVersion/kind, from the server's discovery (cached per group version). */
  async resource(apiVersion: string, kind: string): Promise<ResourceInfo> {
    const base = apiVersion.includes('/') ? `/apis/${apiVersion}` : `/api/${apiVersion}`;
    let entry = this.discovery.get(base);
    if (!entry) {
      entry = (async () => {
        const res = await this.request('GET', base);
        const map = new Map<string, ResourceInfo>();
        if (res.status === 404) return map;
        const list = this.endpoint.check(res, `discovery of ${apiVersion}`) as { resources: Array<{ name: string; kind: string; namespaced: boolean }> };
        for (const r of list.resources) if (!r.name.includes('/')) map.set(r.kind, { base, plural: r.name, namespaced: r.namespaced });
        return map;
      })();
      entry.catch(() => this.discovery.delete(base));
      this.discovery.set(base, entry);
    }
    const info = (await entry).get(kind);
    if (!info) {
      // Not known yet is not known never: a CRD applied by this very run defines it a moment later.
      this.discovery.delete(base);
      throw new UnknownKindError(apiVersion, kind);
    }
    return info;
  }

  async path(apiVersion: string, kind: string, namespace?: string, name?: string): Promise<string> {
    const r = await this.resource(apiVersion, kind);
    let p = r.base;
    if (r.namespaced) p += `/namespaces/${namespace ?? this.defaultNamespace}`;
    p += `/${r.plural}`;
    if (name) p += `/${encodeURIComponent(name)}`;
    return p;
  }

  /** Server-side apply with the given field manager (a release's), else skiff's shared one. */
  async apply(obj: KubeObject, opts: { dryRun?: boolean; force?: boolean; fieldManager?: string } & WriteOptions = {}): Promise<LiveObject> {
    const path = await this.path(obj.apiVersion, obj.kind, obj.metadata.namespace, obj.metadata.name);
    const res = await this.request('PATCH', path, {
      body: obj,
      signal: opts.signal,
      contentType: 'application/apply-patch+yaml',
      query: { fieldManager: opts.fieldManager ?? FIELD_MANAGER, force: opts.force ? 'true' : undefined, dryRun: opts.dryRun ? 'All' : undefined },
    });
    return this.endpoint.check(res, `apply of ${objectRef(obj)}`) as LiveObject;
  }

  async get(apiVersion: string, kind: string, namespace: string | undefined, name: string): Promise<LiveObject | undefined> {
    const res = await this.request('GET', await this.path(apiVersion, kind, namespace, name));
    if (res.status === 404) return undefined;
    return this.endpoint.check(res, `read of ${kind} ${name}`) as LiveObject;
  }

  async capabilities(): Promise<ClusterCapabilities> {
    const version = this.endpoint.check(await this.request('GET', '/version'), 'read of the server version') as { gitVersion?: string };
    const groups = this.endpoint.check(await this.request('GET', '/apis'), 'discovery of API groups') as {
      groups?: Array<{ versions?: Array<{ groupVersion?: string }> }>;
    };
    const apiVersions = ['v1', ...(groups.groups ?? []).flatMap((g) => (g.versions ?? []).map((v) => v.groupVersion ?? ''))].filter(Boolean);
    // "v1.34.4+k3s1" and the like: Helm takes the semantic version only.
    return { kubeVersion: (version.gitVersion ?? '').replace(/[+-].*$/, ''), apiVersions };
  }

  /** Namespaces (of a namespaced kind) that hold objects matching a label selector, across the cluster. */
  async namespacesWith(apiVersion: string, kind: string, labelSelector: string): Promise<Map<string, Array<LiveObject>>> {
    const r = await this.resource(apiVersion, kind);
    const res = await this.request('GET', `${r.base}/${r.plural}`, { query: { labelSelector } });
    const body = this.endpoint.check(res, `list of ${kind} in all namespaces`) as { items: Array<LiveObject> };
    const out = new Map<string, Array<LiveObject>>();
    for (const item of body.items) {
      const ns = item.metadata.namespace ?? '';
      out.set(ns, [...(out.get(ns) ?? []), item]);
    }
    return out;
  }

  async list(apiVersion: string, kind: string, namespace: string | undefined, query: ListQuery = {}): Promise<ListResult> {
    const res = await this.request('GET', await this.path(apiVersion, kind, namespace), { query: { ...query } });
    if (res.status === 404) return { items: [], resourceVersion: '' };
    const body = this.endpoint.check(res, `list of ${kind}`) as { items: Array<LiveObject>; metadata: { resourceVersion: string } };
    for (const item of body.items) {
      item.apiVersion ??= apiVersion;
      item.kind ??= kind;
    }
    return { items: body.items, resourceVersion: body.metadata.resourceVersion };
  }

  async create(obj: KubeObject, opts: WriteOptions = {}): Promise<LiveObject> {
    const res = await this.request('POST', await this.path(obj.apiVersion, obj.kind, obj.metadata.namespace), {
      body: obj,
      signal: opts.signal,
      query: { fieldManager: FIELD_MANAGER },
    });
    // The connection broke after an earlier attempt was sent and the repeat finds the object: that attempt
    // landed only if the object holds what we sent. Anything else is somebody else's create (another deploy
    // writing the same release record), and stays the conflict it is.
    if (res.ambiguous && res.status === 409 && obj.metadata.name) {
      const live = await this.get(obj.apiVersion, obj.kind, obj.metadata.namespace, obj.metadata.name);
      if (live && sameContent(live, obj)) return live;
    }
    return this.endpoint.check(res, `create of ${objectRef(obj)}`) as LiveObject;
  }

  async replace(obj: KubeObject, opts: WriteOptions = {}): Promise<LiveObject> {
    const res = await this.request('PUT', await this.path(obj.apiVersion, obj.kind, obj.metadata.namespace, obj.metadata.name), {
      body: obj,
      signal: opts.signal,
      query: { fieldManager: FIELD_MANAGER },
    });
    // A conditional update repeated after a lost answer conflicts with itself: the object already says what was sent.
    if (res.ambiguous && res.status === 409) {
      const live = await this.get(obj.apiVersion, obj.kind, obj.metadata.namespace, obj.metadata.name);
      if (live && sameContent(live, obj)) return live;
    }
    return this.endpoint.check(res, `update of ${objectRef(obj)}`) as LiveObject;
  }

  /** Deletes an object; true when it existed. */
  async delete(
    apiVersion: string,
    kind: string,
    namespace: string | undefined,
    name: string,
    propagation: 'Background' | 'Foreground' = 'Background',
    preconditions?: { resourceVersion?: string; uid?: string },
    opts: WriteOptions = {},
  ): Promise<boolean> {
    const res = await this.request('DELETE', await this.path(apiVersion, kind, namespace, name), {
      signal: opts.signal,
      body: { kind: 'DeleteOptions', apiVersion: 'v1', propagationPolicy: propagation, ...(preconditions ? { preconditions } : {}) },
    });
    if (res.status === 404) return false;
    this.endpoint.check(res, `delete of ${kind} ${name}`);
    return true;
  }

  /** The last lines of a container's log ('' when there is none yet). */
  async logs(namespace: string, pod: string, container: string, opts: { tailLines?: number; previous?: boolean } = {}): Promise<string> {
    const res = await this.request('GET', `/api/v1/namespaces/${namespace}/pods/${pod}/log`, {
      query: { container, tailLines: String(opts.tailLines ?? 20), previous: opts.previous ? 'true' : undefined },
      raw: true,
    });
    return res.status === 200 ? String(res.body) : '';
  }

  /**
   * Watches a collection until the signal aborts, calling onEvent for each
   * change. A dropped connection resumes from the last resourceVersion; an
   * expired one (410) re-lists and replays the list as ADDED events. Through
   * an API server outage it keeps reconnecting with backoff; only when no
   * connection succeeds for the retry bound does it fail (exit 3).
   */
  async watch(apiVersion: string, kind: string, namespace: string | undefined, query: ListQuery, { onEvent, signal, onSynced }: Watcher): Promise<void> {
    const path = await this.path(apiVersion, kind, namespace);
    let resourceVersion = '';
    const relist = async () => {
      const l = await this.list(apiVersion, kind, namespace, query);
      resourceVersion = l.resourceVersion;
      for (const item of l.items) onEvent({ type: 'ADDED', object: item });
    };
    await relist();
    onSynced?.();
    let failures = 0;
    let failingSince = 0;
    while (!signal.aborted) {
      let connected = false;
      const outcome = await this.endpoint
        .watch(
          path,
          { ...query, resourceVersion, allowWatchBookmarks: 'true', timeoutSeconds: '300' },
          (ev) => {
            const rv = (ev.object.metadata as { resourceVersion?: string }).resourceVersion;
            if (rv) resourceVersion = rv;
            if (ev.type !== 'BOOKMARK') {
              ev.object.apiVersion ??= apiVersion;
              ev.object.kind ??= kind;
              onEvent(ev);
            }
          },
          signal,
          () => (connected = true),
        )
        .catch((e: unknown): WatchOutcome | Error =>
          signal.aborted ? 'aborted' : e instanceof SkiffError ? e : e instanceof Error ? e : new Error(String(e)),
        );
      if (signal.aborted || outcome === 'aborted') return;
      if (connected || outcome === 'gone') {
        failures = 0;
        failingSince = 0;
      }
      if (outcome === 'gone') {
        await relist();
        continue;
      }
      if (outcome === 'ended') continue;
      // Dropped, refused or answered with an error: back off, and give up only past the retry bound.
      failingSince ||= Date.now();
      if (outcome instanceof SkiffError && !(outcome instanceof InfrastructureError && outcome.kind === 'infrastructure')) throw outcome;
      if (Date.now() - failingSince >= this.tuning.retryTimeoutMs) {
        const why = outcome instanceof Error ? (outcome.cause instanceof Error ? outcome.cause : outcome).message : 'the connection kept dropping';
        throw new InfrastructureError(
          `Kubernetes API ${this.server} (context ${this.context}): the watch of ${kind} could not be resumed for ${Math.round(this.tuning.retryTimeoutMs / 1000)}s (${why}); check the cluster, or raise ${KUBE_RETRY_TIMEOUT_ENV} to wait longer`,
        );
      }
      this.retries++;
      await abortableSleep(backoffMs(failures++, this.tuning.random, 200, 5_000), signal);
    }
  }
}
