import { createHash } from 'node:crypto';
import { formatPlatform, normalizePlatform, type Platform } from '../config/platform.js';

/**
 * OCI image indexes as BuildKit pushes them: one image manifest per platform, and beside each an
 * attestation manifest (platform unknown/unknown, annotated `vnd.docker.reference.type:
 * attestation-manifest` and `vnd.docker.reference.digest: <the platform manifest's digest>`)
 * whose layers are in-toto statements, the SLSA provenance among them. Pure.
 */

export const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
const DOCKER_LIST = 'application/vnd.docker.distribution.manifest.list.v2+json';
const REFERENCE_TYPE = 'vnd.docker.reference.type';
const REFERENCE_DIGEST = 'vnd.docker.reference.digest';

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  platform?: Platform;
  annotations?: Record<string, string>;
}

export interface ImageIndex {
  schemaVersion: 2;
  mediaType?: string;
  manifests: Descriptor[];
  annotations?: Record<string, string>;
}

/** One platform of an image and its provenance: the platform manifest and the attestation manifest that describes it. */
export interface PlatformProvenance {
  platform: string;
  manifest: string;
  /** The attestation manifest's digest; absent when the build attached none for this platform. */
  attestation?: string;
}

/** The index in a manifest body, or undefined when the body is a single image manifest (or not JSON). */
export function parseIndex(body: Buffer | string | undefined, mediaType = ''): ImageIndex | undefined {
  if (!body) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString());
  } catch {
    return undefined;
  }
  const m = parsed as Partial<ImageIndex>;
  if (!m || typeof m !== 'object' || !Array.isArray(m.manifests)) return undefined;
  if (mediaType && mediaType !== OCI_INDEX && mediaType !== DOCKER_LIST && !mediaType.startsWith('application/json')) return undefined;
  return { schemaVersion: 2, mediaType: m.mediaType, manifests: m.manifests.filter(isDescriptor), ...(m.annotations ? { annotations: m.annotations } : {}) };
}

function isDescriptor(d: unknown): d is Descriptor {
  const x = d as Descriptor;
  // A digest goes into the URL of the next request: only sha256:<64 hex> is taken from a registry's answer.
  return Boolean(x) && typeof x.digest === 'string' && /^sha256:[0-9a-f]{64}$/.test(x.digest) && typeof x.mediaType === 'string' && typeof x.size === 'number';
}

const isAttestation = (d: Descriptor) => d.annotations?.[REFERENCE_TYPE] === 'attestation-manifest';

/** The image manifests of an index (attestations and unknown/unknown entries left out). */
export function platformManifests(index: ImageIndex): Descriptor[] {
  return index.manifests.filter((d) => !isAttestation(d) && d.platform?.os && d.platform.os !== 'unknown');
}

/** Each platform of the index with its attestation manifest, sorted by platform. */
export function indexProvenance(index: ImageIndex): PlatformProvenance[] {
  const attestationOf = new Map(index.manifests.filter(isAttestation).map((d) => [d.annotations![REFERENCE_DIGEST], d.digest]));
  return platformManifests(index)
    .map((d) => {
      const attestation = attestationOf.get(d.digest);
      return { platform: formatPlatform(normalizePlatform(d.platform!)), manifest: d.digest, ...(attestation ? { attestation } : {}) };
    })
    .sort((a, b) => (a.platform < b.platform ? -1 : a.platform > b.platform ? 1 : 0));
}

/**
 * One index out of the indexes several builders pushed for their platforms: every platform
 * manifest and every attestation manifest, annotations kept, each digest once; the index's own
 * annotations merged (the first builder's win on a clash). Its bytes are what goes under the
 * content tag; every blob it names is already in the repository.
 */
export function mergeIndexes(indexes: ImageIndex[]): ImageIndex {
  const manifests: Descriptor[] = [];
  const seen = new Set<string>();
  let annotations: Record<string, string> | undefined;
  for (const index of indexes) {
    for (const d of index.manifests) {
      if (seen.has(d.digest)) continue;
      seen.add(d.digest);
      manifests.push(d);
    }
    if (index.annotations) annotations = { ...index.annotations, ...annotations };
  }
  return { schemaVersion: 2, mediaType: OCI_INDEX, manifests, ...(annotations ? { annotations } : {}) };
}

/** An index's canonical bytes and their digest, for a registry PUT. */
export function indexBytes(index: ImageIndex): { body: Buffer; digest: string; mediaType: string } {
  const body = Buffer.from(JSON.stringify(index));
  return { body, digest: `sha256:${createHash('sha256').update(body).digest('hex')}`, mediaType: OCI_INDEX };
}

/** The manifest of an index to read labels and dates from: the given platform's, else the first image manifest. */
export function manifestFor(index: ImageIndex, platform: string): Descriptor | undefined {
  const all = platformManifests(index);
  return all.find((d) => formatPlatform(normalizePlatform(d.platform!)) === platform) ?? all[0];
}
