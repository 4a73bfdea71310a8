/**
 * The digest of a release's rendered objects that a plan records and a deploy
 * with the plan compares: the same for two renders of one commit in different
 * CI jobs and pipelines, different when any object would be applied
 * differently. Pure.
 *
 * The canonical form of an object leaves out what changes with every run
 * without changing what is applied (the trace annotations: the commit, the
 * pipeline's and job's URLs) and sorts every key. Secret values enter it only
 * as keyed checksums: a Secret's data and stringData (one map, as the API
 * server merges them) as the checksum of each decoded value, and the
 * release's secret strings elsewhere (a password in a URL) masked. The key is
 * the release's mask salt, kept in its records in the cluster and never in a
 * plan, so that a plan's digest cannot be used to try candidate passwords.
 * A release without a salt yet (before its first deploy) has no such key, and
 * a plain checksum would let anyone who reads the plan (a CI artifact) test
 * guesses against an object's digest: then secret values are left out of the
 * digest (each is the same placeholder). What that leaves unseen is a secret
 * value given by --set or --values that changes between the plan and the
 * first deploy; values in the commit (secret-values files) cannot change
 * without a new commit, which the plan's commit check refuses.
 */
import { createHash } from 'node:crypto';
import { objectKey, objectRef } from '../kube/object-key.js';
import { TRACE_ANNOTATIONS, type KubeObject } from '../kube/objects.js';
import { mapStrings, maskDigest, maskText, maskToken, MASKED, type MaskDigest, type SecretStrings } from '../secrets/material.js';

export interface RenderedDigest {
  /** `sha256:<hex>` over every object's digest. */
  digest: string;
  /** Each object's `sha256:<hex>`, by its objectKey. */
  objects: Record<string, string>;
}

const sha256 = (text: string) => `sha256:${createHash('sha256').update(text).digest('hex')}`;

/** A Secret's values as one map of checksums: data decoded from base64, stringData as UTF-8 (stringData wins, as on the server). */
function secretValues(o: KubeObject, digest: MaskDigest): Record<string, string> | undefined {
  const out: Record<string, string> = {};
  const add = (map: unknown, encoding: 'base64' | 'utf8') => {
    if (typeof map !== 'object' || map === null || Array.isArray(map)) return;
    for (const [k, v] of Object.entries(map)) {
      const bytes = typeof v === 'string' ? (MASKED.test(v) ? Buffer.from(v) : Buffer.from(v, encoding)) : Buffer.from(JSON.stringify(v) ?? '');
      Object.defineProperty(out, k, { value: maskToken(bytes, digest), enumerable: true, writable: true, configurable: true });
    }
  };
  if (o.data === undefined && o.stringData === undefined) return undefined;
  add(o.data, 'base64');
  add(o.stringData, 'utf8');
  return out;
}

/** One object as the digest reads it (see the module's comment). */
export function canonicalObject(o: KubeObject, secrets: SecretStrings, digest: MaskDigest): unknown {
  const copy = structuredClone(o);
  const annotations = copy.metadata.annotations;
  if (annotations) {
    for (const key of Object.values(TRACE_ANNOTATIONS)) delete annotations[key];
    if (Object.keys(annotations).length === 0) delete copy.metadata.annotations;
  }
  if (copy.kind === 'Secret' && copy.apiVersion === 'v1') {
    const values = secretValues(copy, digest);
    delete copy.stringData;
    if (values) copy.data = values;
  }
  const masked = secrets.size ? mapStrings(copy, (v) => maskText(v, secrets, digest).text) : copy;
  return sortKeys(masked);
}

function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (typeof v !== 'object' || v === null) return v;
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(v).sort()) {
    Object.defineProperty(out, k, { value: sortKeys((v as Record<string, unknown>)[k]), enumerable: true, writable: true, configurable: true });
  }
  return out;
}

/** Every secret value's placeholder while the release has no salt (see the module's comment). */
const NO_KEY_YET: MaskDigest = () => 'left-out';

/**
 * The digest of a release's rendered objects, with the secret strings the
 * render knows (its redactor's) and the release's salt (undefined: none yet).
 */
export function renderedDigest(objects: readonly KubeObject[], secrets: SecretStrings, salt: Buffer | undefined): RenderedDigest {
  const digest = salt === undefined ? NO_KEY_YET : maskDigest(salt);
  const byKey: Record<string, string> = {};
  for (const o of [...objects].sort((a, b) => (objectKey(a) < objectKey(b) ? -1 : objectKey(a) > objectKey(b) ? 1 : 0))) {
    byKey[objectKey(o)] = sha256(JSON.stringify(canonicalObject(o, secrets, digest)));
  }
  return {
    digest: sha256(
      Object.entries(byKey)
        .map(([k, d]) => `${k} ${d}\n`)
        .join(''),
    ),
    objects: byKey,
  };
}

/** What differs between two renders' object digests, as `ConfigMap/x changed`, `Secret/y added`, `Service/z gone`; empty when none. */
export function digestChanges(planned: Record<string, string>, now: Record<string, string>): string[] {
  const ref = (key: string) => {
    const [, kind = '', , name = ''] = key.split('/');
    return objectRef({ kind, metadata: { name } });
  };
  const out: string[] = [];
  for (const [k, d] of Object.entries(now)) {
    if (!Object.hasOwn(planned, k)) out.push(`${ref(k)} added`);
    else if (planned[k] !== d) out.push(`${ref(k)} changed`);
  }
  for (const k of Object.keys(planned)) if (!Object.hasOwn(now, k)) out.push(`${ref(k)} gone`);
  return out;
}
