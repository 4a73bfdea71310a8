import type { Reporter } from '../context.js';
import {
  mapStrings,
  maskSecretStrings,
  maskText,
  maskToken,
  MASKED,
  SECRET_KEY,
  secretStrings,
  sha12,
  type SecretHit,
  type SecretStrings,
} from '../core/secret-material.js';
import type { KubeObject } from '../kube/types.js';
import type { ReleaseRecord } from '../release/types.js';

/** Annotation on a stored Secret whose values history keeps only as checksums. */
export const MASKED_ANNOTATION = 'skiff.io/masked';

/**
 * Every way skiff keeps secret material out of what it prints and stores, in
 * one place. A Redactor knows a release's secret strings (values under
 * secret-looking keys, the keys of its Secrets, and any others it is given)
 * and replaces each with one placeholder, `(masked sha256:<12 hex>)`: the
 * checksum of the secret, so a change still shows and a rollback can find it
 * again. Secrets' values are masked whole in the same form.
 */
export class Redactor {
  constructor(
    readonly secrets: SecretStrings = new Map(),
    /** Values secret as a whole (decrypted secret values), masked in stored values wherever one equals them, however short. */
    readonly wholeValues: ReadonlySet<string> = new Set(),
  ) {}

  /** The secret strings of rendered values and objects. */
  static of(values: unknown, objects: readonly KubeObject[]): Redactor {
    return new Redactor(secretStrings(values, objects));
  }

  /** This redactor and more secret strings (secret → where it comes from), and more values secret as a whole. */
  with(more: Iterable<readonly [string, string]>, wholeValues: Iterable<string> = []): Redactor {
    const merged = new Map(this.secrets);
    for (const [s, origin] of more) if (!merged.has(s)) merged.set(s, origin);
    const whole = new Set([...this.wholeValues, ...wholeValues]);
    return merged.size === this.secrets.size && whole.size === this.wholeValues.size ? this : new Redactor(merged, whole);
  }

  text(text: string): string {
    return this.secrets.size ? maskText(text, this.secrets).text : text;
  }

  /** Any data (a result, a diagnosis, an error's detail) with the secret strings masked in every string. */
  deep<T>(value: T): T {
    return this.secrets.size ? (mapStrings(value, (v) => maskText(v, this.secrets).text) as T) : value;
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
    return maskSecretStrings(obj, this.secrets).hits;
  }

  /**
   * An object fit to print or store: in a Secret every value replaced by the
   * checksum of its decoded bytes (the same for data and stringData) and the
   * Secret annotated skiff.io/masked; elsewhere the secret strings masked
   * inside their fields (names, labels and selectors are never touched).
   */
  object(obj: KubeObject): KubeObject {
    if (obj.kind !== 'Secret' || obj.apiVersion !== 'v1') return maskSecretStrings(obj, this.secrets).object;
    const out: KubeObject = { ...obj, metadata: { ...obj.metadata, annotations: { ...obj.metadata.annotations, [MASKED_ANNOTATION]: 'true' } } };
    if (obj.data !== undefined) out.data = maskSecretData(obj.data, 'base64');
    if (obj.stringData !== undefined) out.stringData = maskSecretData(obj.stringData, 'utf8');
    return out;
  }

  /**
   * A release record fit to store: objects as object() gives them, the
   * description masked, and in the values every string or number under a key
   * that may hold a secret (password, token, key…, broad on purpose) masked,
   * and elsewhere the secret strings this redactor knows (decrypted secret
   * values whatever their key). Idempotent.
   */
  record(record: ReleaseRecord): ReleaseRecord {
    const all = this.with(secretStrings(record.values, record.manifests));
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

function maskSecretData(map: unknown, encoding: 'base64' | 'utf8'): unknown {
  if (typeof map !== 'object' || map === null || Array.isArray(map)) return map;
  return Object.fromEntries(
    Object.entries(map).map(([k, v]) => {
      if (typeof v === 'string' && MASKED.test(v)) return [k, v];
      const bytes = typeof v === 'string' ? Buffer.from(v, encoding) : Buffer.from(JSON.stringify(v) ?? '', 'utf8');
      return [k, `(masked sha256:${sha12(bytes)})`];
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
  if (underSecretKey || known.wholeValues.has(s) || known.secrets.has(s)) return maskToken(s);
  return typeof v === 'string' ? known.text(v) : v;
}

/** Masks a record's own secret material before it is stored, whoever writes it (ReleaseStorage's seal). */
export function sealRecord(record: ReleaseRecord): ReleaseRecord {
  return new Redactor().record(record);
}
