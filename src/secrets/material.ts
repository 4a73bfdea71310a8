/**
 * Owns what counts as a release's secret material and where it shows up
 * outside Secrets: the secret-looking keys, the keyed masks, and masking and
 * restoring secret strings in text and objects. Pure.
 *
 * A secret string is a value under a secret-looking key (password, token,
 * key, secret, credential) of the values or of a Secret in the rendered set.
 * Where a template writes one in clear into another object (an env value, a
 * ConfigMap, a URL with a password), skiff masks it in what it prints and in
 * the release history, and a rollback takes it back from the live cluster.
 */
import { createHash, createHmac, randomBytes } from 'node:crypto';
import type { KubeObject } from '../kube/objects.js';

/** Any key that might hold secret material: what the stored values mask (broad on purpose). */
export const SECRET_KEY = /pass(word)?|secret|token|key|credential/i;
/** Words of a key that mark its value as a secret string to look for in other objects. */
const SECRET_WORDS = new Set(['password', 'passwd', 'pwd', 'pass', 'passphrase', 'secret', 'token', 'credential', 'credentials', 'apikey', 'privatekey']);
/** Last words of keys that hold the name or place of a secret, not the secret: secretName, tokenFile, keyRef. */
const NAMES_A_SECRET = new Set(['name', 'names', 'ref', 'refs', 'file', 'path', 'secrets', 'id', 'key']);
/** Shorter values are not looked for elsewhere: "1", "true" or a port would mask half a manifest. */
export const MIN_SECRET_LENGTH = 6;
const TOKEN = /\(masked sha256:([0-9a-f]{12})\)/g;
const HAS_TOKEN = /\(masked sha256:[0-9a-f]{12}\)/;
/** A value skiff masked already (older records also hold the bare and the render forms). */
export const MASKED = /^\(masked( sha256:[0-9a-f]{12})?(; --show-secrets to print)?\)$/;
/**
 * Fields never rewritten: what identifies an object or selects others (a name,
 * a namespace, labels and selectors anywhere), or it could not be found again.
 */
function isIdentity(path: readonly string[]): boolean {
  const last = path.at(-1);
  if (path.length === 1 && (last === 'apiVersion' || last === 'kind')) return true;
  if (last === 'name' || last === 'namespace' || last === 'generateName') return true;
  return path.some((seg) => seg === 'labels' || seg === 'matchLabels' || seg === 'selector' || seg === 'ownerReferences');
}

/**
 * Whether a key's value is a secret to look for elsewhere: by its words
 * (camelCase, snake_case, kebab-case, dots), so apiKey, db.password and
 * AWS_SECRET_ACCESS_KEY count, and keycloak, secretName, tokenFile or a bare
 * `key` (secretKeyRef.key, a toleration's key) do not.
 */
export function isSecretKey(key: string): boolean {
  const words = key
    .split(/[-_.\s/]+|(?<=[a-z0-9])(?=[A-Z])/)
    .filter(Boolean)
    .map((w) => w.toLowerCase());
  const last = words.at(-1);
  if (last === undefined || (NAMES_A_SECRET.has(last) && !(last === 'key' && words.length > 1))) return false;
  if (words.some((w) => SECRET_WORDS.has(w))) return true;
  return last === 'key'; // apiKey, sshKey, accessKey, tls.key (a bare key returned above)
}

/**
 * The 12 hex characters a mask shows for a secret. A release's masks are
 * HMAC-SHA-256 keyed with its salt (kept in its records, never printed): a
 * change still shows across its revisions, but a short value (a PIN) cannot
 * be found by trying candidates, and equal values look different in another
 * release. Plain SHA-256 only reads records written before salts.
 */
export type MaskDigest = (text: string | Buffer) => string;

/** A mask salt: 32 random bytes. */
export const MASK_SALT_BYTES = 32;

export function newMaskSalt(): Buffer {
  return randomBytes(MASK_SALT_BYTES);
}

/** The digest of masks made with `salt`; without one, the unkeyed SHA-256 of records written before salts (reading only). */
export function maskDigest(salt: Buffer | undefined): MaskDigest {
  if (salt === undefined) return (text) => createHash('sha256').update(text).digest('hex').slice(0, 12);
  return (text) => createHmac('sha256', salt).update(text).digest('hex').slice(0, 12);
}

/** What a secret string is replaced by: its keyed checksum, so a change still shows. */
export function maskToken(secret: string | Buffer, digest: MaskDigest): string {
  return `(masked sha256:${digest(secret)})`;
}

/**
 * The forms a template is likely to write a secret in, each MIN_SECRET_LENGTH
 * characters or more: as is, without its final newline (a Secret file's is not
 * part of what templates write), inside a URL, in JSON, base64-encoded.
 */
export function secretForms(value: string): string[] {
  const forms = new Set([value, value.trimEnd(), encodeURIComponent(value), JSON.stringify(value).slice(1, -1), Buffer.from(value).toString('base64')]);
  return [...forms].filter((f) => f.length >= MIN_SECRET_LENGTH);
}

/** secret string → where it comes from ("values db.password", "Secret/db password"). */
export type SecretStrings = Map<string, string>;

export function secretStrings(values: unknown, objects: readonly KubeObject[]): SecretStrings {
  const found: SecretStrings = new Map();
  const add = (value: unknown, origin: string) => {
    if (typeof value === 'number') value = String(value);
    if (typeof value !== 'string' || value.length < MIN_SECRET_LENGTH || MASKED.test(value)) return;
    for (const form of secretForms(value)) if (!found.has(form)) found.set(form, origin);
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
export function maskText(text: string, secrets: SecretStrings, digest: MaskDigest): { text: string; origins: string[] } {
  const spans: Array<[number, number, string]> = [];
  for (const [secret, origin] of secrets) {
    for (let at = text.indexOf(secret); at !== -1; at = text.indexOf(secret, at + 1)) spans.push([at, at + secret.length, origin]);
  }
  if (spans.length === 0) return { text, origins: [] };
  spans.sort((a, b) => a[0] - b[0] || b[1] - a[1]);
  let out = '';
  let pos = 0;
  const origins: string[] = [];
  for (let i = 0; i < spans.length;) {
    const start = spans[i]![0];
    let end = spans[i]![1];
    const merged = new Set([spans[i]![2]]);
    for (i++; i < spans.length && spans[i]![0] < end; i++) {
      end = Math.max(end, spans[i]![1]);
      merged.add(spans[i]![2]);
    }
    out += text.slice(pos, start) + maskToken(text.slice(start, end), digest);
    pos = end;
    for (const o of merged) if (!origins.includes(o)) origins.push(o);
  }
  return { text: out + text.slice(pos), origins };
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
export function maskSecretStrings(obj: KubeObject, secrets: SecretStrings, digest: MaskDigest): { object: KubeObject; hits: SecretHit[] } {
  if (obj.kind === 'Secret' || secrets.size === 0) return { object: obj, hits: [] };
  const hits: SecretHit[] = [];
  const object = mapStrings(obj, (v, path, segs) => {
    if (isIdentity(segs)) return v;
    const masked = maskText(v, secrets, digest);
    for (const origin of masked.origins) hits.push({ path, origin });
    return masked.text;
  }) as KubeObject;
  return hits.length ? { object, hits } : { object: obj, hits };
}

/** Every string field masked at the given paths (a live field whose secret is not known any more). */
export function maskPaths(obj: KubeObject, paths: ReadonlySet<string>, digest: MaskDigest): KubeObject {
  if (paths.size === 0) return obj;
  return mapStrings(obj, (v, path) => (paths.has(path) && !HAS_TOKEN.test(v) ? maskToken(v, digest) : v)) as KubeObject;
}

/** The field paths of a stored object (a release record's) where skiff masked a secret string: in the live object those fields hold one. */
export function maskedPaths(stored: KubeObject): Set<string> {
  const out = new Set<string>();
  if (stored.kind === 'Secret') return out; // masked whole wherever shown
  mapStrings(stored, (v, path) => {
    if (HAS_TOKEN.test(v)) out.add(path);
    return v;
  });
  return out;
}

/** Whether a stored object has masked secret strings to take back from the cluster. */
export function hasMaskedStrings(obj: KubeObject): boolean {
  return obj.kind !== 'Secret' && HAS_TOKEN.test(JSON.stringify(obj));
}

/** Known secret strings by their checksum (as `digest` masks them), for restoring masked fields. */
export function bySha(secrets: Iterable<string>, digest: MaskDigest): Map<string, string> {
  return new Map([...secrets].map((s) => [digest(s), s]));
}

/** Live texts longer than this are not searched substring by substring. */
const MAX_SEARCHED = 256;

/**
 * When the live text has the stored text's literal parts around the masks
 * (the usual case: nothing but the secret could differ), what stands in each
 * mask's place, by its checksum when the checksum matches. Linear: the
 * literal parts are found with indexOf, left to right.
 */
function secretsAround(masked: string, live: string, digest: MaskDigest): Map<string, string> {
  const parts = masked.split(TOKEN); // [text, hash, text, hash, …, text]
  const out = new Map<string, string>();
  if (!live.startsWith(parts[0]!) || !live.endsWith(parts.at(-1)!)) return out;
  let pos = parts[0]!.length;
  for (let i = 1; i < parts.length; i += 2) {
    const next = parts[i + 1]!;
    const end = i + 2 >= parts.length ? live.length - next.length : live.indexOf(next, pos + 1);
    if (end < pos) return out;
    const candidate = live.slice(pos, end);
    if (digest(candidate) === parts[i]) out.set(parts[i]!, candidate);
    pos = end + next.length;
  }
  return out;
}

/** The substring of `live` whose checksum is `hash`, if any (at least MIN_SECRET_LENGTH long). */
function findByHash(live: string, hash: string, digest: MaskDigest): string | undefined {
  if (live.length > MAX_SEARCHED) return undefined;
  for (let start = 0; start + MIN_SECRET_LENGTH <= live.length; start++) {
    for (let end = start + MIN_SECRET_LENGTH; end <= live.length; end++) {
      const candidate = live.slice(start, end);
      if (digest(candidate) === hash) return candidate;
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
 * `digest` is how the stored record's masks were made (its salt).
 */
export function restoreSecretStrings(
  stored: KubeObject,
  live: KubeObject | undefined,
  digest: MaskDigest,
  known: Map<string, string> = new Map(),
  budget: { searches: number } = { searches: 20 },
): { object: KubeObject; kept: string[]; unrestored: string[]; found: string[] } {
  const kept: string[] = [];
  const unrestored: string[] = [];
  const liveAt = (segs: readonly string[]): unknown => {
    let cur: unknown = live;
    for (const part of segs) {
      if (cur === null || typeof cur !== 'object') return undefined;
      cur = Object.hasOwn(cur, part) ? (cur as Record<string, unknown>)[part] : undefined;
    }
    return cur;
  };
  const found: string[] = [];
  const object = mapStrings(stored, (v, path, segs) => {
    if (!HAS_TOKEN.test(v)) return v;
    const l = liveAt(segs);
    let missing = false;
    const fromLive = typeof l === 'string' ? secretsAround(v, l, digest) : new Map<string, string>();
    const restored = v.replace(TOKEN, (token, hash: string) => {
      const secret = known.get(hash) ?? fromLive.get(hash) ?? (typeof l === 'string' && budget.searches-- > 0 ? findByHash(l, hash, digest) : undefined);
      if (secret === undefined) missing = true;
      else found.push(secret);
      return secret ?? token;
    });
    if (!missing) return restored;
    if (typeof l === 'string') {
      kept.push(path);
      found.push(l); // the live text holds a secret skiff does not know: keep all of it out of output
      return l;
    }
    unrestored.push(path);
    return v;
  }) as KubeObject;
  return { object, kept, unrestored, found };
}

/** The display form of a field path: spec.containers[0].env[1].value */
function showPath(segs: readonly string[]): string {
  return segs.map((seg, i) => (/^\d+$/.test(seg) ? `[${seg}]` : i === 0 ? seg : `.${seg}`)).join('');
}

/**
 * A copy with every string field passed through fn(value, path, segments);
 * '__proto__' keys stay plain data. Segments are the keys and indexes, so a
 * key with dots in it (an annotation, app.properties) stays one segment.
 */
export function mapStrings(value: unknown, fn: (v: string, path: string, segs: readonly string[]) => string, segs: string[] = []): unknown {
  if (typeof value === 'string') return fn(value, showPath(segs), segs);
  if (Array.isArray(value)) return value.map((x, i) => mapStrings(x, fn, [...segs, String(i)]));
  if (typeof value === 'object' && value !== null) {
    const copy: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(value)) {
      const v = mapStrings(x, fn, [...segs, k]);
      if (k === '__proto__') Object.defineProperty(copy, k, { value: v, enumerable: true, writable: true, configurable: true });
      else copy[k] = v;
    }
    return copy;
  }
  return value;
}
