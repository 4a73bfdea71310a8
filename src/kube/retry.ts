import { ConfigError } from '../errors.js';

/**
 * How skiff rides through a flaky API server: which failures are transient,
 * how long to wait before the next attempt, and how many requests may be in
 * flight while the server is rate limiting. Plain logic; adapters/kube.ts
 * does the I/O.
 */

/** Default bound on retrying one request (or one watch's reconnects): a managed control-plane upgrade takes about this long. */
export const DEFAULT_KUBE_RETRY_TIMEOUT_MS = 60_000;
/** The environment variable that sets it, in seconds. */
export const KUBE_RETRY_TIMEOUT_ENV = 'SKIFF_KUBE_RETRY_TIMEOUT';

/** SKIFF_KUBE_RETRY_TIMEOUT in seconds (0 turns retries off); a bad value is bad input (exit 2). */
export function kubeRetryTimeoutMs(env: NodeJS.ProcessEnv): number {
  const raw = env[KUBE_RETRY_TIMEOUT_ENV];
  if (raw === undefined || raw.trim() === '') return DEFAULT_KUBE_RETRY_TIMEOUT_MS;
  const seconds = Number(raw);
  if (!Number.isFinite(seconds) || seconds < 0 || seconds > 24 * 3600) {
    throw new ConfigError(`${KUBE_RETRY_TIMEOUT_ENV}="${raw}" is not a number of seconds between 0 and 86400; unset it for the default of 60`);
  }
  return Math.round(seconds * 1000);
}

/** Statuses an API server (or the load balancer before it) answers while it is restarting, overloaded or rate limiting. */
export function isTransientStatus(status: number): boolean {
  return status === 429 || status === 502 || status === 503 || status === 504;
}

/** The server refused the request before doing anything: safe to repeat even for a create. */
export function isThrottled(status: number): boolean {
  return status === 429;
}

const TRANSIENT_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
  'ECONNABORTED',
  'UND_ERR_SOCKET',
]);

/** A connection-level failure worth another attempt (refused, reset, timed out, hung up). */
export function isTransientError(e: unknown): boolean {
  const err = e as { code?: string; message?: string; name?: string } | undefined;
  if (!err || err.name === 'AbortError') return false;
  if (err.code && TRANSIENT_CODES.has(err.code)) return true;
  return /socket hang up|ECONNRESET|ECONNREFUSED|ETIMEDOUT|request timed out/i.test(err.message ?? '');
}

/** The request never reached the server, so repeating a non-idempotent one cannot do it twice. */
export function neverSent(e: unknown): boolean {
  const err = e as { code?: string } | undefined;
  return err?.code === 'ECONNREFUSED' || err?.code === 'EHOSTUNREACH' || err?.code === 'ENETUNREACH' || err?.code === 'EAI_AGAIN';
}

/** Retry-After in milliseconds: delta-seconds or an HTTP date; undefined when absent or unreadable. Capped at `capMs`. */
export function retryAfterMs(header: string | string[] | undefined, now: number, capMs = 60_000): number | undefined {
  const value = Array.isArray(header) ? header[0] : header;
  if (!value) return undefined;
  const trimmed = value.trim();
  let ms: number;
  if (/^\d+(\.\d+)?$/.test(trimmed)) ms = Number(trimmed) * 1000;
  else {
    const at = Date.parse(trimmed);
    if (Number.isNaN(at)) return undefined;
    ms = at - now;
  }
  return Math.min(Math.max(0, ms), capMs);
}

/** Exponential backoff with full jitter: attempt 0 waits up to `baseMs`, each next attempt up to twice as long, never more than `maxMs`. */
export function backoffMs(attempt: number, random: () => number = Math.random, baseMs = 250, maxMs = 8_000): number {
  const ceiling = Math.min(maxMs, baseMs * 2 ** Math.min(attempt, 20));
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}

/** Waits ms or until the signal aborts, whichever comes first; never leaves a listener behind on the signal. */
export function abortableSleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}

/**
 * Bounded parallelism that adapts to rate limiting (additive increase,
 * multiplicative decrease, as TCP does): a 429 or a priority-and-fairness
 * rejection halves the number of requests allowed in flight, once per window
 * (rejections of requests sent before the last decrease do not count again),
 * and answers without one raise it by one again, at most once per
 * `cooldownMs` and per `limit` answers, up to `max`. Watches are long-lived
 * and do not take a slot.
 */
export class AdaptiveLimiter {
  private active = 0;
  private currentLimit: number;
  private successes = 0;
  private lastChange = -Infinity;
  /** Bumped at each decrease; a request remembers the epoch it was sent in. */
  private epochCount = 0;
  private readonly queue: Array<() => void> = [];
  /** The lowest limit reached so far, for diagnostics and tests. */
  lowest: number;

  constructor(
    readonly max: number,
    private readonly clock: () => number = Date.now,
    private readonly cooldownMs = 1000,
  ) {
    this.currentLimit = max;
    this.lowest = max;
  }

  /** Pass it to throttled() for a request sent now. */
  get epoch(): number {
    return this.epochCount;
  }

  get limit(): number {
    return this.currentLimit;
  }

  get inFlight(): number {
    return this.active;
  }

  /** Waits for a slot; resolves false (without a slot) when the signal aborts first. */
  acquire(signal?: AbortSignal): Promise<boolean> {
    if (this.active < this.currentLimit && this.queue.length === 0) {
      this.active++;
      return Promise.resolve(true);
    }
    if (signal?.aborted) return Promise.resolve(false);
    return new Promise((resolve) => {
      const grant = () => {
        signal?.removeEventListener('abort', abort);
        this.active++;
        resolve(true);
      };
      const abort = () => {
        const i = this.queue.indexOf(grant);
        if (i >= 0) this.queue.splice(i, 1);
        resolve(false);
      };
      this.queue.push(grant);
      signal?.addEventListener('abort', abort, { once: true });
    });
  }

  release(): void {
    this.active--;
    this.pump();
  }

  /** The server said "too many requests" to a request sent in `sentIn`: fewer at once from now on. */
  throttled(sentIn = this.epochCount): void {
    this.successes = 0;
    if (sentIn !== this.epochCount) return;
    this.epochCount++;
    this.lastChange = this.clock();
    this.currentLimit = Math.max(1, Math.floor(this.currentLimit / 2));
    this.lowest = Math.min(this.lowest, this.currentLimit);
  }

  /** An answer without throttling: recover slowly, one more slot per `limit` such answers and at most one per cooldown. */
  succeeded(): void {
    if (this.currentLimit >= this.max) return;
    if (++this.successes >= this.currentLimit && this.clock() - this.lastChange >= this.cooldownMs) {
      this.successes = 0;
      this.lastChange = this.clock();
      this.currentLimit++;
      this.pump();
    }
  }

  private pump(): void {
    while (this.active < this.currentLimit && this.queue.length) this.queue.shift()!();
  }
}
