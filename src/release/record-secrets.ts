import { createHash } from 'node:crypto';
import { gunzipSync, gzipSync } from 'node:zlib';
import { ConfigError, WorkFailedError } from '../errors.js';
import type { KubeObject } from '../kube/objects.js';
import type { ReleaseRecord } from './release-record.js';

export const RECORD_SECRET_TYPE = 'skiff.io/release.v1';
export const PART_LABEL = 'skiff.io/part';
/** The environment's slug, so a stop job can find its release with no skiff.yaml. */
export const ENVIRONMENT_LABEL = 'skiff.io/environment';
/** On every chunk: how many chunks the record has, and the digest of the whole, so a half-written update is recognised. */
export const PARTS_ANNOTATION = 'skiff.io/parts';
export const DIGEST_ANNOTATION = 'skiff.io/digest';

/** Raw bytes per Secret: Kubernetes refuses Secrets whose data exceeds 1 MiB. */
export const MAX_CHUNK_BYTES = 900 * 1024;
/** Beyond this a release is refused rather than spread over ever more Secrets. */
export const MAX_CHUNKS = 8;

// ---------------------------------------------------------------------------
// Encoding

export function encodeRecord(record: ReleaseRecord): Buffer {
  return gzipSync(Buffer.from(JSON.stringify(record), 'utf8'), { level: 9 });
}

function corrupt(what: string, how = ''): WorkFailedError {
  return new WorkFailedError('deploy', `${what}${how}`);
}

export function decodeRecord(buf: Buffer): ReleaseRecord {
  let value: unknown;
  try {
    value = JSON.parse(gunzipSync(buf, { maxOutputLength: 512 * 1024 * 1024 }).toString('utf8'));
  } catch (e) {
    throw new WorkFailedError('deploy', `release record is unreadable: ${(e as Error).message}`, { cause: e });
  }
  const r = value as Partial<ReleaseRecord> | null;
  if (
    typeof r !== 'object' ||
    r === null ||
    typeof r.name !== 'string' ||
    typeof r.revision !== 'number' ||
    typeof r.status !== 'string' ||
    !Array.isArray(r.manifests)
  ) {
    throw corrupt('release record is not a skiff release record (name, revision, status or manifests missing)');
  }
  return r as ReleaseRecord;
}

export function splitRecord(encoded: Buffer, maxChunk = MAX_CHUNK_BYTES): Buffer[] {
  if (!(maxChunk > 0)) throw new RangeError('maxChunk must be positive');
  const chunks: Buffer[] = [];
  for (let at = 0; at < encoded.length; at += maxChunk) chunks.push(encoded.subarray(at, at + maxChunk));
  return chunks.length ? chunks : [encoded];
}

export function joinChunks(chunks: Buffer[]): Buffer {
  return Buffer.concat(chunks);
}

// ---------------------------------------------------------------------------
// Records as Secrets

/** `skiff.release.v1.<release>.v<revision>`, and `.part<N>` for chunk N ≥ 1. */
export function recordSecretName(release: string, revision: number, part = 0): string {
  return `skiff.release.v1.${release}.v${revision}${part ? `.part${part}` : ''}`;
}

/** The Secrets that store one revision: chunk 0, then its parts. */
export function recordToSecrets(record: ReleaseRecord, namespace: string): KubeObject[] {
  const encoded = encodeRecord(record);
  const chunks = splitRecord(encoded);
  if (chunks.length > MAX_CHUNKS) {
    const limit = MAX_CHUNKS * MAX_CHUNK_BYTES;
    throw new ConfigError(
      `release ${record.name} revision ${record.revision} is too large to store: ${encoded.length} bytes compressed, ` +
        `the limit is ${limit} bytes (${MAX_CHUNKS} Secrets of ${MAX_CHUNK_BYTES} bytes); ` +
        `keep large files out of .kube/ (ship them in an image, or create their ConfigMaps outside the release)`,
    );
  }
  const digest = createHash('sha256').update(encoded).digest('hex');
  return chunks.map((chunk, part) => ({
    apiVersion: 'v1',
    kind: 'Secret',
    type: RECORD_SECRET_TYPE,
    metadata: {
      name: recordSecretName(record.name, record.revision, part),
      namespace,
      labels: {
        owner: 'skiff',
        name: record.name,
        status: record.status,
        version: String(record.revision),
        ...(record.environmentSlug ? { [ENVIRONMENT_LABEL]: record.environmentSlug } : {}),
        ...(part ? { [PART_LABEL]: String(part) } : {}),
      },
      annotations: { [PARTS_ANNOTATION]: String(chunks.length), [DIGEST_ANNOTATION]: digest },
    },
    data: { release: chunk.toString('base64') },
  }));
}

function partOf(s: KubeObject): number {
  const label = s.metadata.labels?.[PART_LABEL];
  return label === undefined ? 0 : Number(label);
}

/** Reassembles one revision from its Secrets (in any order; parts of a longer earlier write are ignored). */
export function secretsToRecord(secrets: KubeObject[]): ReleaseRecord {
  const head = secrets.find((s) => partOf(s) === 0);
  if (!head) throw corrupt(`release record is incomplete: no chunk 0 among ${secrets.map((s) => s.metadata.name).join(', ') || 'no Secrets'}`);
  const name = head.metadata.name;
  const fix = (ns = head.metadata.namespace) =>
    `; delete this revision with: kubectl delete secret -n ${ns ?? '<namespace>'} -l owner=skiff,name=${head.metadata.labels?.name ?? '<release>'},version=${head.metadata.labels?.version ?? '<revision>'}`;
  if (head.type !== RECORD_SECRET_TYPE) throw corrupt(`Secret ${name} is not a skiff release record (type ${String(head.type)})`, fix());
  const count = Number(head.metadata.annotations?.[PARTS_ANNOTATION] ?? '1');
  if (!Number.isInteger(count) || count < 1) throw corrupt(`release record ${name} has an invalid ${PARTS_ANNOTATION} annotation`, fix());
  const digest = head.metadata.annotations?.[DIGEST_ANNOTATION];
  const chunks: Buffer[] = [];
  for (let part = 0; part < count; part++) {
    const s = part === 0 ? head : secrets.find((x) => partOf(x) === part);
    if (!s)
      throw corrupt(
        `release record ${name} is incomplete: part ${part} of ${count} (Secret ${recordSecretName(head.metadata.labels?.name ?? '?', Number(head.metadata.labels?.version), part)}) is missing`,
        fix(),
      );
    if (digest !== undefined && s.metadata.annotations?.[DIGEST_ANNOTATION] !== digest) {
      throw corrupt(`release record ${name} is inconsistent: Secret ${s.metadata.name} belongs to another write (an interrupted update?)`, fix());
    }
    const data = (s.data as Record<string, unknown> | undefined)?.release;
    if (typeof data !== 'string') throw corrupt(`Secret ${s.metadata.name} has no data.release`, fix());
    chunks.push(Buffer.from(data, 'base64'));
  }
  let record: ReleaseRecord;
  try {
    record = decodeRecord(joinChunks(chunks));
  } catch (e) {
    throw new WorkFailedError('deploy', `release record ${name}: ${(e as Error).message}${fix()}`, { cause: e });
  }
  const labels = head.metadata.labels;
  if (labels && (labels.name !== record.name || Number(labels.version) !== record.revision)) {
    throw corrupt(`Secret ${name} is labelled ${labels.name} revision ${labels.version} but holds ${record.name} revision ${record.revision}`, fix());
  }
  return record;
}
