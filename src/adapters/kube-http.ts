import { request as httpsRequest, Agent as HttpsAgent, type RequestOptions } from 'node:https';
import { request as httpRequest, Agent as HttpAgent } from 'node:http';
import { InfrastructureError, SkiffError } from '../errors.js';
import { KubeApiError, PARALLEL_REQUESTS, type WatchEvent } from '../kube/kube-client.js';

/** No answer from an API server is read past this size (a list of 2,000 large objects is a few tens of MiB). */
export const MAX_RESPONSE_BYTES = 256 * 1024 * 1024;

export interface KubeResponse {
  status: number;
  body: unknown;
  /** A POST was repeated after an attempt that may have reached the server. */
  ambiguous?: boolean;
}

export interface RequestInit {
  body?: unknown;
  contentType?: string;
  query?: Record<string, string | undefined>;
  signal?: AbortSignal;
  /** Return the body as text, not parsed JSON (logs). */
  raw?: boolean;
}

/** How one watch connection ended: the server closed it, its resourceVersion expired (410), it broke, or skiff stopped it. */
export type WatchOutcome = 'ended' | 'gone' | 'dropped' | 'aborted';

/**
 * One API server as kubeconfig describes it, and single HTTP exchanges with
 * it: a request and its answer, or one watch connection. Retrying and resuming
 * are HttpKubeClient's (kube.ts).
 */
export class KubeEndpoint {
  private agent: HttpsAgent | HttpAgent | undefined;

  constructor(
    readonly server: string,
    readonly context: string,
    private readonly options: RequestOptions,
    private readonly requestTimeoutMs: number,
  ) {}

  private headers(): Record<string, string> {
    return { ...(this.options.headers as Record<string, string> | undefined), accept: 'application/json' };
  }

  /** One attempt: status, parsed JSON (or text) and Retry-After. Bodies larger than MAX_RESPONSE_BYTES are refused. */
  send(method: string, path: string, init: RequestInit): Promise<KubeResponse & { retryAfter?: string }> {
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
            ...this.headers(),
            ...(body !== undefined ? { 'content-type': init.contentType ?? 'application/json', 'content-length': Buffer.byteLength(body) } : {}),
          },
          signal: init.signal,
          timeout: this.requestTimeoutMs,
        },
        (res) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (c: Buffer) => {
            size += c.length;
            if (size > MAX_RESPONSE_BYTES) {
              res.destroy();
              reject(
                new InfrastructureError(
                  `Kubernetes API ${this.server} (context ${this.context}) sent more than ${MAX_RESPONSE_BYTES} bytes for ${method} ${path}; refusing it`,
                ),
              );
              return;
            }
            chunks.push(c);
          });
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString();
            resolve({
              status: res.statusCode ?? 0,
              body: init.raw ? text : parsedOrText(text),
              retryAfter: firstValue(res.headers['retry-after']),
            });
          });
          res.on('error', reject);
        },
      );
      req.on('timeout', () => req.destroy(Object.assign(new Error(`request timed out after ${this.requestTimeoutMs / 1000}s`), { code: 'ETIMEDOUT' })));
      req.on('error', reject);
      if (body !== undefined) req.write(body);
      req.end();
    });
  }

  /** One watch connection: its events go to onEvent until it ends; 401 and 403 are errors, other failures an outcome. */
  watch(path: string, query: Record<string, string>, onEvent: (ev: WatchEvent) => void, signal: AbortSignal, onConnected: () => void): Promise<WatchOutcome> {
    const url = new URL(this.server + path);
    url.searchParams.set('watch', '1');
    for (const [k, v] of Object.entries(query)) if (v) url.searchParams.set(k, v);
    const isHttps = url.protocol === 'https:';
    return new Promise((resolve, reject) => {
      if (signal.aborted) return resolve('aborted');
      const req = (isHttps ? httpsRequest : httpRequest)(url, { ...this.options, headers: this.headers(), signal }, (res) => {
        if (res.statusCode === 410) {
          res.resume();
          return resolve('gone');
        }
        if (res.statusCode === 401 || res.statusCode === 403) {
          res.resume();
          try {
            this.check({ status: res.statusCode, body: undefined }, `watch of ${path}`);
          } catch (e) {
            reject(e instanceof Error ? e : new Error(String(e)));
          }
          return;
        }
        if (res.statusCode !== 200) {
          res.resume();
          return resolve('dropped');
        }
        onConnected();
        let rest = '';
        let gone = false;
        res.on('data', (chunk: Buffer) => {
          const lines = (rest + chunk.toString()).split('\n');
          rest = lines.pop() ?? '';
          // One event is one object: a line longer than an answer may be is not an event.
          if (rest.length > MAX_RESPONSE_BYTES) {
            res.destroy();
            return;
          }
          for (const line of lines) {
            if (!line.trim()) continue;
            const ev = parseWatchLine(line);
            if (!ev) {
              res.destroy();
              return;
            }
            if (ev.type === 'ERROR') {
              if (ev.object.code === 410) gone = true;
              continue;
            }
            onEvent(ev);
          }
        });
        res.on('end', () => resolve(gone ? 'gone' : 'ended'));
        res.on('error', () => resolve(signal.aborted ? 'aborted' : 'dropped'));
        res.on('close', () => resolve(signal.aborted ? 'aborted' : gone ? 'gone' : 'dropped'));
      });
      req.on('error', (e) => (signal.aborted ? resolve('aborted') : reject(this.unreachable(e))));
      req.end();
    });
  }

  /** A connection failure as the error skiff reports (exit 3), naming the server and context. */
  unreachable(e: Error): Error {
    if (e.name === 'AbortError' || e instanceof SkiffError) return e;
    return new InfrastructureError(`Kubernetes API ${this.server} (context ${this.context}) is unreachable: ${e.message}; check the cluster and KUBECONFIG`, {
      cause: e,
    });
  }

  /** The body of a 2xx answer; a typed error for any other. */
  check(res: KubeResponse, what: string): unknown {
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
}

/** A header's value; repeated, its first. */
function firstValue(header: string | string[] | undefined): string | undefined {
  return Array.isArray(header) ? header[0] : header;
}

/** An answer's JSON, or its text when it is not JSON (some errors are plain text). */
function parsedOrText(text: string): unknown {
  if (!text) return text;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

/** A watch stream's line: an event, a server-side ERROR event (its object a Status), or undefined when it is not JSON. */
function parseWatchLine(line: string): WatchEvent | { type: 'ERROR'; object: { code?: number } } | undefined {
  try {
    return JSON.parse(line) as WatchEvent | { type: 'ERROR'; object: { code?: number } };
  } catch {
    return undefined;
  }
}
