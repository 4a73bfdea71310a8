import { createHash } from 'node:crypto';
import type { KubeObject } from '../release/types.js';
import type { Reporter } from '../context.js';

/**
 * Secret material of a release and where it shows up outside Secrets. Pure.
 *
 * A secret string is a value under a secret-looking key (password, token,
 * key, secret, credential) of the values or of a Secret in the rendered set.
 * Where a template writes one in clear into another object (an env value, a
 * ConfigMap, a URL with a password), skiff masks it in what it prints and in
 * the release history, and a rollback takes it back from the live cluster.
 */

export const SECRET_KEY = /pass(word)?|secret|token|key|credential/i;
/** Keys that look secret but hold the name or place of one: secretName, tokenFile, imagePullSecrets, keyRef. */
const NAMES_A_SECRET = /(name|names|ref|refs|file|path|secrets)$/i;
/** Shorter values are not looked for elsewhere: "1", "true" or a port would mask half a manifest. */
export const MIN_SECRET_LENGTH = 6;
const TOKEN = /\(masked sha256:([0-9a-f]{12})\)/g;
const HAS_TOKEN = /\(masked sha256:[0-9a-f]{12}\)/;
const MASKED = /^\(masked( sha256:[0-9a-f]{12})?(; --show-secrets to print)?\)$/;
/** Fields that identify an object: never rewritten, or it could not be found again. */
const IDENTITY = /^(apiVersion|kind|metadata\.(name|namespace|generateName|labels(\..*)?|ownerReferences.*))$/;

export function isSecretKey(key: string): boolean {
  return SECRET_KEY.test(key) && !NAMES_A_SECRET.test(key);
}

export function sha12(text: string | Buffer): string {
  return createHash('sha256').update(text).digest('hex').slice(0, 12);
}

/** What a secret string is replaced by: its checksum, so a change still shows. */
export function maskToken(secret: string): string {
  return `(masked sha256:${sha12(secret)})`;
}

/** secret string → where it comes from ("values db.password", "Secret/db password"). */
export type SecretStrings = Map<string, string>;

export function secretStrings(values: unknown, objects: readonly KubeObject[]): SecretStrings {
  const found: SecretStrings = new Map();
  const add = (value: unknown, origin: string) => {
    if (typeof value === 'number') value = String(value);
    if (typeof value !== 'string' || value.length < MIN_SECRET_LENGTH || MASKED.test(value)) return;
    // The forms a template is likely to write it in: as is, inside a URL, base64-encoded.
    for (const form of [value, encodeURIComponent(value), Buffer.from(value).toString('base64')]) if (!found.has(form)) found.set(form, origin);
  };
  const walk = (v: unknown, path: string, secret: boolean) => {
    if (Array.isArray(v)) v.forEach((x, i) => walk(x, `${path}[${i}]`, secret));
    else if (typeof v === 'object' && v !== null) for (const [k, x] of Object.entries(v)) walk(x, path ? `${path}.${k}` : k, secret || isSecretKey(k));
    else if (secret) add(v, `values ${path}`);
  };
  walk(values, '', false);
  // In Secrets too only secret-looking keys count: a "username" or "host" of a
  // Secret also names containers and images, and masking those helps no one.
  for (const o of objects) {
    if (o.kind !== 'Secret') continue;
    for (const [k, v] of Object.entries((o.data ?? {}) as Record<string, unknown>)) {
      if (isSecretKey(k) && typeof v === 'string' && !MASKED.test(v)) add(Buffer.from(v, 'base64').toString('utf8'), `Secret/${o.metadata.name} ${k}`);
    }
    for (const [k, v] of Object.entries((o.stringData ?? {}) as Record<string, unknown>)) if (isSecretKey(k)) add(v, `Secret/${o.metadata.name} ${k}`);
  }
  return found;
}

/**
 * A text with every occurrence of a secret masked, and the origins found.
 * Overlapping occurrences are masked as one stretch, so no tail of a secret
 * is left in clear.
 */
export function maskText(text: string, secrets: SecretStrings): { text: string; origins: string[] } {
  const spans: Array<[number, number, string]> = [];
  for (const [secret, origin] of secrets) {
    for (let at = text.indexOf(secret); at !== -1; at = text.indexOf(secret, at + 1)) spans.push([at, at + secret.length, origin]);
  }
  if (spans.length === 0) return { text, origins: [] };
  spans.sort((a, b) => a[0] - b[0] || b[1] - a[1]);
  let out = '';
  let pos = 0;
  const origins: string[] = [];
  for (let i = 0; i < spans.length; ) {
    let [start, end] = spans[i]!;
    const merged = new Set([spans[i]![2]]);
    for (i++; i < spans.length && spans[i]![0] < end; i++) {
      end = Math.max(end, spans[i]![1]);
      merged.add(spans[i]![2]);
    }
    out += text.slice(pos, start) + maskToken(text.slice(start, end));
    pos = end;
    for (const o of merged) if (!origins.includes(o)) origins.push(o);
  }
  return { text: out + text.slice(pos), origins };
}

/** Any data (a result, an error's detail) with secret strings masked in every string in it. */
export function maskDeep<T>(value: T, secrets: SecretStrings): T {
  return secrets.size ? (mapStrings(value, (v) => maskText(v, secrets).text) as T) : value;
}

/** The error with secret strings masked in its message and detail. */
export function redactError(e: unknown, secrets: SecretStrings): unknown {
  if (e instanceof Error && secrets.size) {
    e.message = maskText(e.message, secrets).text;
    const withDetail = e as Error & { detail?: unknown };
    if (withDetail.detail !== undefined) withDetail.detail = maskDeep(withDetail.detail, secrets);
  }
  return e;
}

/** A reporter that masks secret strings in everything it is given. */
export function redactingReporter(reporter: Reporter, secrets: SecretStrings): Reporter {
  if (secrets.size === 0) return reporter;
  const m = (s: string) => maskText(s, secrets).text;
  return {
    info: (message) => reporter.info(m(message)),
    warn: (message) => reporter.warn(m(message)),
    log: (source, line) => reporter.log(source, m(line)),
    status: (subject, state, detail) => reporter.status(subject, state, detail === undefined ? undefined : m(detail)),
    debug: (message) => reporter.debug(m(message)),
  };
}

export interface SecretHit {
  /** Field path in the object, e.g. spec.template.spec.containers[0].env[1].value */
  path: string;
  origin: string;
}

/**
 * A copy of a non-Secret object with every secret string in its string
 * fields (not the ones that identify it) replaced by maskToken, and where
 * they were. Secrets are returned as they are (their values are masked as a
 * whole elsewhere).
 */
export function maskSecretStrings(obj: KubeObject, secrets: SecretStrings): { object: KubeObject; hits: SecretHit[] } {
  if (obj.kind === 'Secret' || secrets.size === 0) return { object: obj, hits: [] };
  const hits: SecretHit[] = [];
  const object = mapStrings(obj, (v, path) => {
    if (IDENTITY.test(path)) return v;
    const masked = maskText(v, secrets);
    for (const origin of masked.origins) hits.push({ path, origin });
    return masked.text;
  }) as KubeObject;
  return hits.length ? { object, hits } : { object: obj, hits };
}

/** Every string field masked at the given paths (a live field whose secret is not known any more). */
export function maskPaths(obj: KubeObject, paths: ReadonlySet<string>): KubeObject {
  if (paths.size === 0) return obj;
  return mapStrings(obj, (v, path) => (paths.has(path) && !HAS_TOKEN.test(v) ? maskToken(v) : v)) as KubeObject;
}

/** Whether a stored object has masked secret strings to take back from the cluster. */
export function hasMaskedStrings(obj: KubeObject): boolean {
  return obj.kind !== 'Secret' && HAS_TOKEN.test(JSON.stringify(obj));
}

/** Known secret strings by their checksum, for restoring masked fields. */
export function bySha(secrets: Iterable<string>): Map<string, string> {
  return new Map([...secrets].map((s) => [sha12(s), s]));
}

/** Live texts longer than this are not searched substring by substring. */
const MAX_SEARCHED = 400;

/** The substring of `live` whose checksum is `hash`, if any (at least MIN_SECRET_LENGTH long). */
function findByHash(live: string, hash: string): string | undefined {
  if (live.length > MAX_SEARCHED) return undefined;
  for (let start = 0; start + MIN_SECRET_LENGTH <= live.length; start++) {
    for (let end = start + MIN_SECRET_LENGTH; end <= live.length; end++) {
      const candidate = live.slice(start, end);
      if (sha12(candidate) === hash) return candidate;
    }
  }
  return undefined;
}

/**
 * Puts the secret strings back into a stored object: each mask is replaced by
 * the secret with its checksum, from `known` (the live Secrets, the current
 * render) or found in the live object's field at the same path, so the stored
 * text around it comes back exactly. When a secret cannot be found (it was
 * rotated), the live field is kept as it is, like a live Secret (`kept`);
 * with no live field, the path is `unrestored` and the object cannot be applied.
 */
export function restoreSecretStrings(stored: KubeObject, live: KubeObject | undefined, known: Map<string, string> = new Map()): { object: KubeObject; kept: string[]; unrestored: string[] } {
  const kept: string[] = [];
  const unrestored: string[] = [];
  const liveAt = (path: string): unknown => {
    let cur: unknown = live;
    for (const part of path.match(/[^.[\]]+/g) ?? []) {
      if (cur === null || typeof cur !== 'object') return undefined;
      cur = Object.hasOwn(cur, part) ? (cur as Record<string, unknown>)[part] : undefined;
    }
    return cur;
  };
  const object = mapStrings(stored, (v, path) => {
    if (!HAS_TOKEN.test(v)) return v;
    const l = liveAt(path);
    let missing = false;
    const restored = v.replace(TOKEN, (token, hash: string) => {
      const secret = known.get(hash) ?? (typeof l === 'string' ? findByHash(l, hash) : undefined);
      if (secret === undefined) missing = true;
      return secret ?? token;
    });
    if (!missing) return restored;
    if (typeof l === 'string') {
      kept.push(path);
      return l;
    }
    unrestored.push(path);
    return v;
  }) as KubeObject;
  return { object, kept, unrestored };
}

/** A copy with every string field passed through fn(value, path); '__proto__' keys stay plain data. */
function mapStrings(value: unknown, fn: (v: string, path: string) => string, path = ''): unknown {
  if (typeof value === 'string') return fn(value, path);
  if (Array.isArray(value)) return value.map((x, i) => mapStrings(x, fn, `${path}[${i}]`));
  if (typeof value === 'object' && value !== null) {
    const copy: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(value)) {
      const v = mapStrings(x, fn, path ? `${path}.${k}` : k);
      if (k === '__proto__') Object.defineProperty(copy, k, { value: v, enumerable: true, writable: true, configurable: true });
      else copy[k] = v;
    }
    return copy;
  }
  return value;
}
