import { existsSync } from 'node:fs';
import { request as httpsRequest, Agent as HttpsAgent, type RequestOptions } from 'node:https';
import { request as httpRequest, Agent as HttpAgent } from 'node:http';
import { ConfigError, InfrastructureError, SkiffError } from '../errors.js';
import { KubeApiError, PARALLEL_REQUESTS, type KubeClient, type ListQuery, type ListResult, type WatchEvent, type Watcher } from '../kube/client.js';
import { objectRef } from '../kube/object-key.js';
import type { KubeObject, LiveObject } from '../kube/types.js';
import { loadConnection } from './kubeconfig.js';

export const FIELD_MANAGER = 'skiff';

interface ResourceInfo {
  /** "/api/v1" or "/apis/apps/v1" */
  base: string;
  plural: string;
  namespaced: boolean;
}

interface KubeResponse {
  status: number;
  body: unknown;
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
  private constructor(
    readonly server: string,
    readonly context: string,
    private readonly options: RequestOptions,
    readonly defaultNamespace: string,
  ) {}

  static async connect(opts: { context?: string; kubeconfig?: string } = {}): Promise<HttpKubeClient> {
    const simple = loadConnection(opts, process.env);
    if (simple) return new HttpKubeClient(simple.server, simple.context, simple.options, simple.namespace);
    return HttpKubeClient.connectWithClientNode(opts);
  }

  /** Exec plugins, auth providers, proxies and in-cluster config, through @kubernetes/client-node. */
  private static async connectWithClientNode(opts: { context?: string; kubeconfig?: string }): Promise<HttpKubeClient> {
    const { KubeConfig } = await import('@kubernetes/client-node');
    const kc = new KubeConfig();
    try {
      if (opts.kubeconfig) kc.loadFromFile(opts.kubeconfig);
      else {
        const home = process.env.HOME ?? '';
        const candidates = (process.env.KUBECONFIG ?? '').split(':').filter(Boolean);
        const found = candidates.length ? candidates.some((f) => existsSync(f)) : existsSync(`${home}/.kube/config`);
        if (!found && !process.env.KUBERNETES_SERVICE_HOST) {
          throw new ConfigError(
            `no kubeconfig found (${candidates.length ? `KUBECONFIG=${process.env.KUBECONFIG}` : '~/.kube/config'} does not exist) and not running in a cluster; set KUBECONFIG or --kubeconfig`,
          );
        }
        kc.loadFromDefault();
      }
    } catch (e) {
      if (e instanceof ConfigError) throw e;
      throw new ConfigError(`cannot read kubeconfig${opts.kubeconfig ? ` ${opts.kubeconfig}` : ''}: ${(e as Error).message}; set KUBECONFIG or --kubeconfig`);
    }
    if (opts.context) {
      if (!kc.getContexts().some((c) => c.name === opts.context)) {
        throw new ConfigError(
          `kube context "${opts.context}" is not in the kubeconfig (contexts: ${
            kc
              .getContexts()
              .map((c) => c.name)
              .join(', ') || 'none'
          }); fix environments.<env>.kubeContext or --kube-context`,
        );
      }
      kc.setCurrentContext(opts.context);
    }
    const cluster = kc.getCurrentCluster();
    if (!cluster) throw new ConfigError('no Kubernetes cluster configured: set KUBECONFIG (or --kubeconfig) to a kubeconfig with a current context');
    const options: RequestOptions = {};
    try {
      await kc.applyToHTTPSOptions(options);
    } catch (e) {
      throw new ConfigError(`kube context "${kc.getCurrentContext()}" (server ${cluster.server}) cannot be used: ${(e as Error).message}`);
    }
    const ctx = kc.getContextObject(kc.getCurrentContext());
    return new HttpKubeClient(cluster.server.replace(/\/+$/, ''), kc.getCurrentContext(), options, ctx?.namespace ?? 'default');
  }

  private agent: HttpsAgent | HttpAgent | undefined;

  /** One HTTP request; resolves with status and parsed JSON (or text). */
  request(
    method: string,
    path: string,
    init: { body?: unknown; contentType?: string; query?: Record<string, string | undefined>; signal?: AbortSignal; raw?: boolean } = {},
  ): Promise<KubeResponse> {
    const url = new URL(this.server + path);
    for (const [k, v] of Object.entries(init.query ?? {})) if (v !== undefined) url.searchParams.set(k, v);
    const isHttps = url.protocol === 'https:';
    this.agent ??= isHttps
      ? new HttpsAgent({ keepAlive: true, maxSockets: PARALLEL_REQUESTS })
      : new HttpAgent({ keepAlive: true, maxSockets: PARALLEL_REQUESTS });
    const body = init.body === undefined ? undefined : typeof init.body === 'string' ? init.body : JSON.stringify(init.body);
    return new Promise((resolve, reject) => {
      const req = (isHttps ? httpsRequest : httpRequest)(
        url,
        {
          ...this.options,
          agent: this.agent,
          method,
          headers: {
            ...(this.options.headers as Record<string, string> | undefined),
            accept: 'application/json',
            ...(body !== undefined ? { 'content-type': init.contentType ?? 'application/json', 'content-length': Buffer.byteLength(body) } : {}),
          },
          signal: init.signal,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString();
            let parsed: unknown = text;
            if (!init.raw && text) {
              try {
                parsed = JSON.parse(text);
              } catch {
                /* non-JSON bodies are returned as text */
              }
            }
            resolve({ status: res.statusCode ?? 0, body: parsed });
          });
          res.on('error', reject);
        },
      );
      req.on('error', (e) => reject(this.unreachable(e)));
      if (body !== undefined) req.write(body);
      req.end();
    });
  }

  private unreachable(e: Error): Error {
    if (e.name === 'AbortError') return e;
    return new InfrastructureError(`Kubernetes API ${this.server} (context ${this.context}) is unreachable: ${e.message}; check the cluster and KUBECONFIG`, {
      cause: e,
    });
  }

  /** Throws a typed error for a non-2xx answer. */
  private check(res: KubeResponse, what: string): unknown {
    if (res.status >= 200 && res.status < 300) return res.body;
    const status = (typeof res.body === 'object' && res.body ? res.body : {}) as {
      message?: string;
      reason?: string;
      details?: { causes?: Array<{ field?: string; message?: string; reason?: string }> };
    };
    const message = status.message ?? String(res.body).slice(0, 300);
    if (res.status === 401)
      throw new InfrastructureError(`Kubernetes API ${this.server} rejected the credentials of context ${this.context} (${what})`, { kind: 'auth' });
    if (res.status === 403) throw new InfrastructureError(`Kubernetes API ${this.server} forbids ${what}: ${message}`, { kind: 'auth' });
    throw new KubeApiError(res.status, status.reason ?? '', message, status.details?.causes ?? []);
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
        const list = this.check(res, `discovery of ${apiVersion}`) as { resources: Array<{ name: string; kind: string; namespaced: boolean }> };
        for (const r of list.resources) if (!r.name.includes('/')) map.set(r.kind, { base, plural: r.name, namespaced: r.namespaced });
        return map;
      })();
      entry.catch(() => this.discovery.delete(base));
      this.discovery.set(base, entry);
    }
    const info = (await entry).get(kind);
    if (!info) throw new KubeApiError(404, 'NotFound', `the cluster does not know ${kind} in ${apiVersion} (is the CRD installed?)`);
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

  /** Server-side apply with skiff's field manager. */
  async apply(obj: KubeObject, opts: { dryRun?: boolean; force?: boolean } = {}): Promise<LiveObject> {
    const path = await this.path(obj.apiVersion, obj.kind, obj.metadata.namespace, obj.metadata.name);
    const res = await this.request('PATCH', path, {
      body: obj,
      contentType: 'application/apply-patch+yaml',
      query: { fieldManager: FIELD_MANAGER, force: opts.force ? 'true' : undefined, dryRun: opts.dryRun ? 'All' : undefined },
    });
    return this.check(res, `apply of ${objectRef(obj)}`) as LiveObject;
  }

  async get(apiVersion: string, kind: string, namespace: string | undefined, name: string): Promise<LiveObject | undefined> {
    const res = await this.request('GET', await this.path(apiVersion, kind, namespace, name));
    if (res.status === 404) return undefined;
    return this.check(res, `read of ${kind} ${name}`) as LiveObject;
  }

  /** Namespaces (of a namespaced kind) that hold objects matching a label selector, across the cluster. */
  async namespacesWith(apiVersion: string, kind: string, labelSelector: string): Promise<Map<string, Array<LiveObject>>> {
    const r = await this.resource(apiVersion, kind);
    const res = await this.request('GET', `${r.base}/${r.plural}`, { query: { labelSelector } });
    const body = this.check(res, `list of ${kind} in all namespaces`) as { items: Array<LiveObject> };
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
    const body = this.check(res, `list of ${kind}`) as { items: Array<LiveObject>; metadata: { resourceVersion: string } };
    for (const item of body.items) {
      item.apiVersion ??= apiVersion;
      item.kind ??= kind;
    }
    return { items: body.items, resourceVersion: body.metadata.resourceVersion };
  }

  async create(obj: KubeObject): Promise<LiveObject> {
    const res = await this.request('POST', await this.path(obj.apiVersion, obj.kind, obj.metadata.namespace), {
      body: obj,
      query: { fieldManager: FIELD_MANAGER },
    });
    return this.check(res, `create of ${objectRef(obj)}`) as LiveObject;
  }

  async replace(obj: KubeObject): Promise<LiveObject> {
    const res = await this.request('PUT', await this.path(obj.apiVersion, obj.kind, obj.metadata.namespace, obj.metadata.name), {
      body: obj,
      query: { fieldManager: FIELD_MANAGER },
    });
    return this.check(res, `update of ${objectRef(obj)}`) as LiveObject;
  }

  /** Deletes an object; true when it existed. */
  async delete(
    apiVersion: string,
    kind: string,
    namespace: string | undefined,
    name: string,
    propagation: 'Background' | 'Foreground' = 'Background',
  ): Promise<boolean> {
    const res = await this.request('DELETE', await this.path(apiVersion, kind, namespace, name), {
      body: { kind: 'DeleteOptions', apiVersion: 'v1', propagationPolicy: propagation },
    });
    if (res.status === 404) return false;
    this.check(res, `delete of ${kind} ${name}`);
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
   * expired one (410) re-lists and replays the list as ADDED events.
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
    while (!signal.aborted) {
      const outcome = await this.watchOnce(
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
      ).catch((e: unknown) => (signal.aborted ? 'aborted' : e instanceof SkiffError ? Promise.reject(e) : 'dropped'));
      if (outcome === 'gone') await relist();
      else if (outcome === 'dropped' && !signal.aborted) await new Promise((r) => setTimeout(r, 200));
    }
  }

  private watchOnce(
    path: string,
    query: Record<string, string>,
    onEvent: (ev: WatchEvent) => void,
    signal: AbortSignal,
  ): Promise<'ended' | 'gone' | 'dropped' | 'aborted'> {
    const url = new URL(this.server + path);
    url.searchParams.set('watch', '1');
    for (const [k, v] of Object.entries(query)) if (v) url.searchParams.set(k, v);
    const isHttps = url.protocol === 'https:';
    return new Promise((resolve, reject) => {
      if (signal.aborted) return resolve('aborted');
      const req = (isHttps ? httpsRequest : httpRequest)(
        url,
        { ...this.options, headers: { ...(this.options.headers as Record<string, string> | undefined), accept: 'application/json' }, signal },
        (res) => {
          if (res.statusCode === 410) {
            res.resume();
            return resolve('gone');
          }
          if (res.statusCode !== 200) {
            res.resume();
            return resolve('dropped');
          }
          let rest = '';
          let gone = false;
          res.on('data', (chunk: Buffer) => {
            const lines = (rest + chunk.toString()).split('\n');
            rest = lines.pop() ?? '';
            for (const line of lines) {
              if (!line.trim()) continue;
              const ev = JSON.parse(line) as WatchEvent & { type: string; object: { code?: number } };
              if ((ev.type as string) === 'ERROR') {
                if ((ev.object as { code?: number }).code === 410) gone = true;
                continue;
              }
              onEvent(ev);
            }
          });
          res.on('end', () => resolve(gone ? 'gone' : 'ended'));
          res.on('error', () => resolve(signal.aborted ? 'aborted' : 'dropped'));
        },
      );
      req.on('error', (e) => (signal.aborted ? resolve('aborted') : e.message.includes('ECONNREFUSED') ? reject(this.unreachable(e)) : resolve('dropped')));
      req.end();
    });
  }
}
