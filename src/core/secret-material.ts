import { createHash } from 'node:crypto';
import type { KubeObject } from '../release/types.js';

/**
 * Secret material of a release and where it shows up outside Secrets. Pure.
 *
 * A secret string is a value under a secret-looking key (password, token,
 * key, secret, credential) of the values or of a Secret in the rendered set. Where
 * a template writes one in clear into another object (an env value, a
 * ConfigMap, a URL with a password), skiff masks it in what it prints and in
 * the release history, and a rollback takes it back from the live object.
 */

export const SECRET_KEY = /pass(word)?|secret|token|key|credential/i;
/** Shorter values are not looked for elsewhere: "1", "true" or a port would mask half a manifest. */
export const MIN_SECRET_LENGTH = 6;
const TOKEN = /\(masked sha256:([0-9a-f]{12})\)/g;
const MASKED = /^\(masked( sha256:[0-9a-f]{12})?(; --show-secrets to print)?\)$/;

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
    if (typeof value !== 'string' || value.length < MIN_SECRET_LENGTH || MASKED.test(value) || found.has(value)) return;
    found.set(value, origin);
  };
  const walk = (v: unknown, path: string, secret: boolean) => {
    if (Array.isArray(v)) v.forEach((x, i) => walk(x, `${path}[${i}]`, secret));
    else if (typeof v === 'object' && v !== null) for (const [k, x] of Object.entries(v)) walk(x, path ? `${path}.${k}` : k, secret || SECRET_KEY.test(k));
    else if (secret) add(v, `values ${path}`);
  };
  walk(values, '', false);
  // In Secrets too only secret-looking keys count: a "username" or "host" of a
  // Secret also names containers and images, and masking those helps no one.
  for (const o of objects) {
    if (o.kind !== 'Secret') continue;
    for (const [k, v] of Object.entries((o.data ?? {}) as Record<string, unknown>)) {
      if (SECRET_KEY.test(k) && typeof v === 'string' && !MASKED.test(v)) add(Buffer.from(v, 'base64').toString('utf8'), `Secret/${o.metadata.name} ${k}`);
    }
    for (const [k, v] of Object.entries((o.stringData ?? {}) as Record<string, unknown>)) if (SECRET_KEY.test(k)) add(v, `Secret/${o.metadata.name} ${k}`);
  }
  return found;
}

export interface SecretHit {
  /** Field path in the object, e.g. spec.template.spec.containers[0].env[1].value */
  path: string;
  origin: string;
}

/**
 * A copy of a non-Secret object with every secret string in its string
 * fields replaced by maskToken, and where they were. Secrets are returned as
 * they are (their values are masked as a whole elsewhere).
 */
export function maskSecretStrings(obj: KubeObject, secrets: SecretStrings): { object: KubeObject; hits: SecretHit[] } {
  if (obj.kind === 'Secret' || secrets.size === 0) return { object: obj, hits: [] };
  // Longest first, so a secret that contains another is masked whole.
  const ordered = [...secrets].sort((a, b) => b[0].length - a[0].length);
  const hits: SecretHit[] = [];
  const walk = (v: unknown, path: string): unknown => {
    if (typeof v === 'string') {
      let out = v;
      for (const [secret, origin] of ordered) {
        if (!out.includes(secret)) continue;
        out = out.split(secret).join(maskToken(secret));
        hits.push({ path, origin });
      }
      return out;
    }
    if (Array.isArray(v)) return v.map((x, i) => walk(x, `${path}[${i}]`));
    if (typeof v === 'object' && v !== null) {
      const copy: Record<string, unknown> = {};
      for (const [k, x] of Object.entries(v)) {
        const value = walk(x, path ? `${path}.${k}` : k);
        if (k === '__proto__') Object.defineProperty(copy, k, { value, enumerable: true, writable: true, configurable: true });
        else copy[k] = value;
      }
      return copy;
    }
    return v;
  };
  const object = walk(obj, '') as KubeObject;
  return hits.length ? { object, hits } : { object: obj, hits };
}

/** Whether a stored object has masked secret strings to take back from the live object. */
export function hasMaskedStrings(obj: KubeObject): boolean {
  return obj.kind !== 'Secret' && /\(masked sha256:[0-9a-f]{12}\)/.test(JSON.stringify(obj));
}

/** Known secret strings by their checksum, for restoring masked fields. */
export function bySha(secrets: Iterable<string>): Map<string, string> {
  return new Map([...secrets].map((s) => [sha12(s), s]));
}

/**
 * Puts the secret strings back into a stored object: each mask is replaced by
 * a known secret with the same checksum (the values of the live Secrets, say);
 * failing that, a masked field is restored from the live object when its field
 * at the same path has the same text around the masks and checksums that
 * match. When the secret has changed since (rotated), the live field is kept
 * as it is, like a live Secret (`kept`); with no live field to keep, the path
 * is `unrestored` and the object cannot be applied.
 */
export function restoreSecretStrings(stored: KubeObject, live: KubeObject | undefined, known: Map<string, string> = new Map()): { object: KubeObject; kept: string[]; unrestored: string[] } {
  const kept: string[] = [];
  const unrestored: string[] = [];
  const walk = (v: unknown, l: unknown, path: string): unknown => {
    if (typeof v === 'string') {
      if (!TOKEN.test(v)) return v;
      TOKEN.lastIndex = 0;
      const fromKnown = v.replace(TOKEN, (token, hash: string) => known.get(hash) ?? token);
      if (!TOKEN.test(fromKnown)) return fromKnown;
      TOKEN.lastIndex = 0;
      if (typeof l !== 'string') {
        unrestored.push(path);
        return v;
      }
      if (unmask(v, l) === undefined) kept.push(path);
      return l;
    }
    if (Array.isArray(v)) return v.map((x, i) => walk(x, Array.isArray(l) ? l[i] : undefined, `${path}[${i}]`));
    if (typeof v === 'object' && v !== null) {
      const copy: Record<string, unknown> = {};
      const liveMap = typeof l === 'object' && l !== null && !Array.isArray(l) ? (l as Record<string, unknown>) : {};
      for (const [k, x] of Object.entries(v)) {
        const value = walk(x, Object.hasOwn(liveMap, k) ? liveMap[k] : undefined, path ? `${path}.${k}` : k);
        if (k === '__proto__') Object.defineProperty(copy, k, { value, enumerable: true, writable: true, configurable: true });
        else copy[k] = value;
      }
      return copy;
    }
    return v;
  };
  return { object: walk(stored, live, '') as KubeObject, kept, unrestored };
}

/** The live text for a masked text, when it has the same text around the masks and matching checksums. */
function unmask(masked: string, live: string): string | undefined {
  const parts = masked.split(TOKEN); // [text, hash, text, hash, …, text]
  TOKEN.lastIndex = 0;
  const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  let pattern = '^';
  for (let i = 0; i < parts.length; i++) pattern += i % 2 ? '([\\s\\S]+?)' : escape(parts[i]!);
  const m = new RegExp(`${pattern}$`).exec(live);
  if (!m) return undefined;
  for (let i = 1; i < parts.length; i += 2) if (sha12(m[(i + 1) / 2]!) !== parts[i]) return undefined;
  return live;
}
