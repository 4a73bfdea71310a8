/**
 * A test that passed, recorded in the registry beside the image it ran in,
 * so the next pipeline of an unchanged commit skips it (werf keeps its stage
 * metadata in the registry the same way). Pure: the key, the record's format
 * and the decision.
 *
 * The record is an OCI artifact: an image manifest of artifactType
 * TEST_PASS_ARTIFACT with the empty config and one empty layer (OCI 1.1's
 * guidance for an artifact without content), what it says held in its
 * annotations. Its tag follows cosign's `sha256-<digest>.sig` convention:
 * `sha256-<image digest>.test-<definition hash>`, so cleanup knows from the
 * tag alone which image a record describes. A failed test is never recorded.
 */
import { createHash } from 'node:crypto';

export const TEST_PASS_ARTIFACT = 'application/vnd.skiff.test-pass.v1';
export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
/** OCI's empty descriptor: the two bytes `{}`. */
export const EMPTY_BLOB = Buffer.from('{}');
export const EMPTY_DESCRIPTOR = {
  mediaType: 'application/vnd.oci.empty.v1+json',
  digest: 'sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a',
  size: 2,
} as const;

/** A record's tag: `sha256-<64 hex of the image digest>.test-<32 hex of the definition>`. */
export const TEST_RECORD_TAG = /^sha256-([0-9a-f]{64})\.test-([0-9a-f]{32})$/;

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

/** A test as skiff.yaml defines it (config's TestConfig). */
export interface TestDefinition {
  name: string;
  image: string;
  command: string[];
  env: Record<string, string>;
  workdir?: string;
  network: string;
  timeoutMs: number;
  reports: string[];
}

/**
 * What decides what a test runs, hashed: its name, image, command, env,
 * working directory, network, timeout (a shorter one may fail it) and the
 * reports it copies out. The hash leaves the env's values unreadable in the tag.
 */
export function testDefinitionHash(test: TestDefinition): string {
  const definition = {
    version: 1,
    name: test.name,
    image: test.image,
    command: test.command,
    env: Object.entries(test.env).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)),
    workdir: test.workdir ?? null,
    network: test.network,
    timeoutMs: test.timeoutMs,
    reports: test.reports,
  };
  return sha256(JSON.stringify(definition)).slice(0, 32);
}

/** The tag of the record of a test definition passed in an image; undefined for a digest that is not sha256. */
export function testRecordTag(imageDigest: string, definition: string): string | undefined {
  const hex = /^sha256:([0-9a-f]{64})$/.exec(imageDigest)?.[1];
  return hex && /^[0-9a-f]{32}$/.test(definition) ? `sha256-${hex}.test-${definition}` : undefined;
}

/** The image digest a record's tag names; undefined when the tag is no test record's. */
export function recordedImageDigest(tag: string): string | undefined {
  const hex = TEST_RECORD_TAG.exec(tag)?.[1];
  return hex ? `sha256:${hex}` : undefined;
}

/** What a record says: the test, where and when it passed. Nothing of the test's definition in clear. */
export interface TestPass {
  test: string;
  /** The image's name in skiff.yaml, and the digest of the manifest it ran in. */
  image: string;
  imageDigest: string;
  definition: string;
  /** When it passed, ISO 8601. */
  passedAt: string;
  durationMs: number;
  commit: string;
  /** CI_PIPELINE_ID of the pipeline it passed in, when a CI job ran it. */
  pipelineId?: number;
  pipelineUrl?: string;
}

const ANNOTATION = {
  test: 'io.skiff.test.name',
  image: 'io.skiff.test.image',
  imageDigest: 'io.skiff.test.image-digest',
  definition: 'io.skiff.test.definition',
  durationMs: 'io.skiff.test.duration-ms',
  commit: 'io.skiff.test.commit',
  pipelineId: 'io.skiff.test.pipeline-id',
  pipelineUrl: 'io.skiff.test.pipeline-url',
  passedAt: 'org.opencontainers.image.created',
} as const;

/** The record's manifest, as the registry stores it. */
export function testRecordManifest(pass: TestPass): Buffer {
  const annotations: Record<string, string> = {
    [ANNOTATION.test]: pass.test,
    [ANNOTATION.image]: pass.image,
    [ANNOTATION.imageDigest]: pass.imageDigest,
    [ANNOTATION.definition]: pass.definition,
    [ANNOTATION.durationMs]: String(Math.round(pass.durationMs)),
    [ANNOTATION.commit]: pass.commit,
    [ANNOTATION.passedAt]: pass.passedAt,
  };
  if (pass.pipelineId !== undefined) annotations[ANNOTATION.pipelineId] = String(pass.pipelineId);
  if (pass.pipelineUrl !== undefined) annotations[ANNOTATION.pipelineUrl] = pass.pipelineUrl;
  const manifest = {
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    artifactType: TEST_PASS_ARTIFACT,
    config: EMPTY_DESCRIPTOR,
    layers: [EMPTY_DESCRIPTOR],
    annotations,
  };
  return Buffer.from(JSON.stringify(manifest));
}

/** A record read back; undefined when the manifest is no skiff test record (or a malformed one). */
export function parseTestRecord(body: Buffer): TestPass | undefined {
  let manifest: { artifactType?: unknown; annotations?: unknown };
  try {
    manifest = JSON.parse(body.toString('utf8')) as typeof manifest;
  } catch {
    return undefined;
  }
  if (manifest?.artifactType !== TEST_PASS_ARTIFACT || !manifest.annotations || typeof manifest.annotations !== 'object') return undefined;
  const a = manifest.annotations as Record<string, unknown>;
  const text = (key: string) => (typeof a[key] === 'string' ? a[key] : undefined);
  const [test, image, imageDigest, definition, commit, passedAt] = [
    ANNOTATION.test,
    ANNOTATION.image,
    ANNOTATION.imageDigest,
    ANNOTATION.definition,
    ANNOTATION.commit,
    ANNOTATION.passedAt,
  ].map(text);
  const durationMs = Number(text(ANNOTATION.durationMs));
  const pipelineId = Number(text(ANNOTATION.pipelineId));
  if (!test || !image || !imageDigest || !definition || !commit || !passedAt || Number.isNaN(Date.parse(passedAt)) || !Number.isFinite(durationMs))
    return undefined;
  return {
    test,
    image,
    imageDigest,
    definition,
    passedAt,
    durationMs,
    commit,
    pipelineId: Number.isSafeInteger(pipelineId) && pipelineId > 0 ? pipelineId : undefined,
    pipelineUrl: text(ANNOTATION.pipelineUrl),
  };
}

export interface TestCacheInput {
  test: string;
  /** --rerun: run it whatever is recorded. */
  rerun: boolean;
  /** The digest of the image in the registry; none when the registry does not have it (images only local). */
  imageDigest?: string;
  definition: string;
  /** The record found under the test's tag, if any. */
  record?: TestPass;
}

export type TestCacheDecision = { run: true; why: string } | { run: false; pass: TestPass; reason: string };

/** Whether a test runs, or is skipped as passed before on the very image and definition. */
export function testCacheDecision(input: TestCacheInput): TestCacheDecision {
  if (input.rerun) return { run: true, why: '--rerun' };
  if (!input.imageDigest) return { run: true, why: 'its image is not in the registry: no record to read' };
  const r = input.record;
  if (!r) return { run: true, why: 'no record of a pass on this image and definition' };
  // The tag names both; a record saying otherwise was not written by skiff for this test.
  if (r.imageDigest !== input.imageDigest || r.definition !== input.definition || r.test !== input.test)
    return { run: true, why: 'the record under its tag is for another image or definition' };
  return { run: false, pass: r, reason: cachedReason(r) };
}

/** `test unit: passed before on app@sha256:1a2b3c4d5e6f (pipeline 809, 2026-12-01 10:02 UTC); skipped (--rerun runs it)` */
export function cachedReason(pass: TestPass): string {
  const when = `${new Date(pass.passedAt).toISOString().slice(0, 16).replace('T', ' ')} UTC`;
  const where = pass.pipelineId === undefined ? when : `pipeline ${pass.pipelineId}, ${when}`;
  return `test ${pass.test}: passed before on ${pass.image}@${pass.imageDigest.slice(0, 'sha256:'.length + 12)} (${where}); skipped (--rerun runs it)`;
}
