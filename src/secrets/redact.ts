/**
 * Owns the Redactor: every way skiff keeps secret material out of what it
 * prints and stores (reporter lines, errors, objects, release records), masked
 * with the release's salt.
 */
import type { Reporter } from '../context.js';
import {
  mapStrings,
  maskDigest,
  maskSecretStrings,
  maskText,
  maskToken,
  MASK_SALT_BYTES,
  MASKED,
  newMaskSalt,
  SECRET_KEY,
  secretStrings,
  type MaskDigest,
  type SecretHit,
  type SecretStrings,
} from './material.js';
import type { KubeObject } from '../kube/objects.js';
import type { ReleaseRecord } from '../release/release-record.js';

/** Annotation on a stored Secret whose values history keeps only as checksums. */
export const MASKED_ANNOTATION = 'skiff.io/masked';
/** kubectl's copy of the object it last applied: in a Secret, its data. */
export const LAST_APPLIED_ANNOTATION = 'kubectl.kubernetes.io/last-applied-configuration';

/**
 * The salt a Redactor's masks are keyed with, shared by the redactors made
 * from one another (with()) so that a run's reporter, errors and record mask
 * alike once the release's salt is known (useSalt). Until then, a salt made
 * for the run.
 */
class MaskKey {
  digest: MaskDigest;
  constructor(public salt: Buffer = newMaskSalt()) {
    this.digest = maskDigest(salt);
  }
}

/** A release record's mask salt (base64 in the record), or undefined for a record written before salts. */
export function recordSalt(record: Pick<ReleaseRecord, 'maskSalt'>): Buffer | undefined {
  if (typeof record.maskSalt !== 'string') return undefined;
  const salt = Buffer.from(record.maskSalt, 'base64');
  return salt.length === MASK_SALT_BYTES ? salt : undefined;
}

/** The salt of a release: the newest revision's that has one (revisions share it), undefined for a new release. */
export function releaseSalt(history: ReadonlyArray<Pick<ReleaseRecord, 'maskSalt'>>): Buffer | undefined {
  for (let i = history.length - 1; i >= 0; i--) {
    const salt = recordSalt(history[i]!);
    if (salt) return salt;
  }
  return undefined;
}

/**
 * Every way skiff keeps secret material out of what it prints and stores, in
 * one place. A Redactor knows a release's secret strings (values under
 * secret-looking keys, the keys of its Secrets, and any others it is given)
 * and replaces each with one placeholder, `(masked sha256:<12 hex>)`: the
 * HMAC-SHA-256 of the secret keyed with the release's salt, so a change still
 * shows and a rollback can find it again, but the value cannot be guessed
 * from it. Secrets' values are masked whole in the same form.
 */
export class Redactor {
  constructor(
    readonly secrets: SecretStrings = new Map(),
    /** Values secret as a whole (decrypted secret values), masked in stored values wherever one equals them, however short. */
    readonly wholeValues: ReadonlySet<string> = new Set(),
    private readonly key: MaskKey = new MaskKey(),
  ) {}

  /** How this redactor's masks are made. */
  get digest(): MaskDigest {
    return this.key.digest;
  }

  /** From now on, masks (of this redactor and those made from it) are keyed with the release's salt. */
  useSalt(salt: Buffer): void {
    this.key.salt = salt;
    this.key.digest = maskDigest(salt);
  }

  /** The salt as a release record keeps it (base64). Never printed. */
  recordSalt(): string {
    return this.key.salt.toString('base64');
  }

  /** The secret strings of rendered values and objects. */
  static of(values: unknown, objects: readonly KubeObject[]): Redactor {
    return new Redactor(secretStrings(values, objects));
  }

  /** The same secrets, masked with a given salt (a stored record's), apart from this redactor's. */
  salted(salt: Buffer): Redactor {
    return new Redactor(this.secrets, this.wholeValues, new MaskKey(salt));
  }

  /** This redactor and more secret strings (secret → where it comes from), and more values secret as a whole. */
  with(more: Iterable<readonly [string, string]>, wholeValues: Iterable<string> = []): Redactor {
    const merged = new Map(this.secrets);
    for (const [s, origin] of more) if (!merged.has(s)) merged.set(s, origin);
    const whole = new Set([...this.wholeValues, ...wholeValues]);
    return merged.size === this.secrets.size && whole.size === this.wholeValues.size ? this : new Redactor(merged, whole, this.key);
  }

  text(text: string): string {
    return this.secrets.size ? maskText(text, this.secrets, this.digest).text : text;
  }

  /** Any data (a result, a diagnosis, an error's detail) with the secret strings masked in every string. */
  deep<T>(value: T): T {
    return this.secrets.size ? (mapStrings(value, (v) => maskText(v, this.secrets, this.digest).text) as T) : value;
  }

  /** The error with secret strings masked in its message and detail; returned for `throw`. */
  error(e: unknown): unknown {
    if (e instanceof Error && this.secrets.size) {
      e.message = this.text(e.message);
      const withDetail = e as Error & { detail?: unknown };
      if (withDetail.detail !== undefined) withDetail.detail = this.deep(withDetail.detail);
    }
    return e;
  }

  /** A reporter that masks everything it is given before passing it on. */
  reporter(reporter: Reporter): Reporter {
    if (this.secrets.size === 0) return reporter;
    const m = (s: string) => this.text(s);
    return {
      info: (message) => reporter.info(m(message)),
      warn: (message) => reporter.warn(m(message)),
      log: (source, line) => reporter.log(source, m(line)),
      status: (subject, state, detail) => reporter.status(subject, state, detail === undefined ? undefined : m(detail)),
      debug: (message) => reporter.debug(m(message)),
      section: (name, header, opts) => reporter.section(name, m(header), opts),
      // As a status line: the object's name as it is, its cause masked.
      rollout: reporter.rollout && ((p) => reporter.rollout?.({ ...p, objects: p.objects.map((o) => (o.cause ? { ...o, cause: m(o.cause) } : o)) })),
    };
  }

  /**
   * A release outcome with secret strings masked in its free text
   * (description, diagnoses with their events and log lines); names,
   * namespaces and image references are left as they are.
   */
  outcome<T extends OutcomeText>(outcome: T): T {
    if (this.secrets.size === 0) return outcome;
    const masked = { ...outcome, description: this.text(outcome.description), failures: this.deep(outcome.failures), notReady: this.deep(outcome.notReady) };
    if (outcome.rolledBack) masked.rolledBack = this.outcome(outcome.rolledBack);
    return masked;
  }

  /** Where an object holds a secret string in clear (a password in a ConfigMap's URL). */
  hits(obj: KubeObject): SecretHit[] {
    return maskSecretStrings(obj, this.secrets, this.digest).hits;
  }

  /**
   * An object fit to print or store: in a Secret every value replaced by the
   * checksum of its decoded bytes (the same for data and stringData) and the
   * Secret annotated skiff.io/masked, without kubectl's last-applied copy
   * (which holds its data) and with secret strings masked in its annotations
   * and labels; elsewhere the secret strings masked inside their fields
   * (names, labels and selectors are never touched), and kubectl's
   * last-applied copy always dropped: it can hold an old password that skiff
   * no longer knows, and so could not mask.
   */
  object(obj: KubeObject): KubeObject {
    if (obj.kind !== 'Secret' || obj.apiVersion !== 'v1') {
      const masked = maskSecretStrings(obj, this.secrets, this.digest).object;
      if (masked.metadata.annotations?.[LAST_APPLIED_ANNOTATION] === undefined) return masked;
      const { [LAST_APPLIED_ANNOTATION]: _dropped, ...annotations } = masked.metadata.annotations;
      return { ...masked, metadata: { ...masked.metadata, annotations } };
    }
    const { [LAST_APPLIED_ANNOTATION]: _dropped, ...annotations } = obj.metadata.annotations ?? {};
    const metadata = { ...obj.metadata, annotations: { ...this.metadataValues(annotations), [MASKED_ANNOTATION]: 'true' } };
    if (obj.metadata.labels !== undefined) metadata.labels = this.metadataValues(obj.metadata.labels);
    const out: KubeObject = { ...obj, metadata };
    if (obj.data !== undefined) out.data = maskSecretData(obj.data, 'base64', this.digest);
    if (obj.stringData !== undefined) out.stringData = maskSecretData(obj.stringData, 'utf8', this.digest);
    return out;
  }

  /** A Secret's annotations or labels with the secret strings in their values masked (the value whole when it is one). */
  private metadataValues(map: Record<string, string>): Record<string, string> {
    return Object.fromEntries(
      Object.entries(map).map(([k, v]) => [
        k,
        typeof v !== 'string' || MASKED.test(v) ? v : this.wholeValues.has(v) ? maskToken(v, this.digest) : maskText(v, this.secrets, this.digest).text,
      ]),
    );
  }

  /**
   * A release record fit to store: objects as object() gives them, the
   * description masked, and in the values every string or number under a key
   * that may hold a secret (password, token, key…, broad on purpose) masked,
   * and elsewhere the secret strings this redactor knows (decrypted secret
   * values whatever their key). Idempotent.
   */
  record(record: ReleaseRecord): ReleaseRecord {
    // A record is masked with its own salt; one written before salts with this redactor's.
    const salt = recordSalt(record);
    const own = salt && !salt.equals(this.key.salt) ? this.salted(salt) : this;
    const all = own.with(secretStrings(record.values, record.manifests));
    return {
      ...record,
      // The description can quote a log line or an API message that holds one.
      description: all.text(record.description ?? ''),
      manifests: record.manifests.map((o) => all.object(o)),
      values: maskValues(record.values, false, all) as Record<string, unknown>,
    };
  }
}

/** The free-text parts of a release outcome (stages/release-run.ts). */
interface OutcomeText {
  description: string;
  failures: unknown[];
  notReady: unknown[];
  rolledBack?: OutcomeText;
}

function maskSecretData(map: unknown, encoding: 'base64' | 'utf8', digest: MaskDigest): unknown {
  if (typeof map !== 'object' || map === null || Array.isArray(map)) return map;
  return Object.fromEntries(
    Object.entries(map).map(([k, v]) => {
      if (typeof v === 'string' && MASKED.test(v)) return [k, v];
      const bytes = typeof v === 'string' ? Buffer.from(v, encoding) : Buffer.from(JSON.stringify(v) ?? '', 'utf8');
      return [k, maskToken(bytes, digest)];
    }),
  );
}

/**
 * Strings and numbers under a secret-looking key, at any depth below it, are
 * masked, and so are those the redactor knows as secrets (whole, or inside a
 * string); booleans and nulls carry no secret.
 */
function maskValues(v: unknown, underSecretKey: boolean, known: Redactor): unknown {
  if (Array.isArray(v)) return v.map((x) => maskValues(x, underSecretKey, known));
  if (typeof v === 'object' && v !== null) {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) {
      const value = maskValues(x, underSecretKey || SECRET_KEY.test(k), known);
      if (k === '__proto__') Object.defineProperty(out, k, { value, enumerable: true, writable: true, configurable: true });
      else out[k] = value;
    }
    return out;
  }
  if (typeof v === 'string' && MASKED.test(v)) return v;
  if (typeof v !== 'string' && typeof v !== 'number') return v;
  const s = String(v);
  if (underSecretKey || known.wholeValues.has(s) || known.secrets.has(s)) return maskToken(s, known.digest);
  return typeof v === 'string' ? known.text(v) : v;
}

/** Masks a record's own secret material before it is stored, whoever writes it (ReleaseStorage's seal). */
export function sealRecord(record: ReleaseRecord): ReleaseRecord {
  return new Redactor().record(record);
}
