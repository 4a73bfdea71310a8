import type { RunContext } from '../context.js';
import type { ImagePlan } from '../build/image-plan.js';
import type { TestConfig } from '../config/project-config.js';
import { repositoryPath } from '../registry/image-ref.js';
import type { RegistryAccess } from '../registry/registry-client.js';
import {
  EMPTY_BLOB,
  EMPTY_DESCRIPTOR,
  OCI_MANIFEST,
  parseTestRecord,
  testCacheDecision,
  testDefinitionHash,
  testRecordManifest,
  testRecordTag,
  type TestCacheDecision,
  type TestPass,
} from '../registry/test-record.js';

/** What the registry says of one test before it runs. */
export interface TestLookup {
  test: TestConfig;
  plan: ImagePlan;
  definition: string;
  /** The digest of the test's image in the registry; none when it has no such image (or could not be asked). */
  imageDigest?: string;
  decision: TestCacheDecision;
}

/**
 * Looks up, in two rounds of requests, each test image's digest in the
 * registry and the record of a pass on it (registry/test-record.ts). Without
 * a registry, or when it cannot be asked, every test runs: a lookup never
 * fails the run.
 */
export async function lookUpPasses(
  ctx: RunContext,
  registries: RegistryAccess | undefined,
  tests: Array<{ test: TestConfig; plan: ImagePlan }>,
  opts: { rerun?: boolean },
): Promise<TestLookup[]> {
  const digests = new Map<string, Promise<string | undefined>>();
  const digestOf = (plan: ImagePlan) => {
    let d = digests.get(plan.ref);
    if (!d) digests.set(plan.ref, (d = registries ? imageDigest(ctx, registries, plan) : Promise.resolve(undefined)));
    return d;
  };
  return Promise.all(
    tests.map(async ({ test, plan }) => {
      const definition = testDefinitionHash(test);
      const digest = await digestOf(plan);
      const record = digest && !opts.rerun && registries ? await readRecord(ctx, registries, plan, testRecordTag(digest, definition)) : undefined;
      const decision = testCacheDecision({ test: test.name, rerun: Boolean(opts.rerun), imageDigest: digest, definition, record });
      if (decision.run) ctx.reporter.debug(`test ${test.name}: runs (${decision.why})`);
      return { test, plan, definition, imageDigest: digest, decision };
    }),
  );
}

async function imageDigest(ctx: RunContext, registries: RegistryAccess, plan: ImagePlan): Promise<string | undefined> {
  try {
    const { client } = await registries.for(plan.repository);
    return (await client.manifest(repositoryPath(plan.repository), plan.tag))?.digest || undefined;
  } catch (e) {
    ctx.reporter.warn(`${plan.name}: cannot ask the registry for ${plan.ref} (${(e as Error).message}); its tests run without looking for an earlier pass`);
    return undefined;
  }
}

async function readRecord(ctx: RunContext, registries: RegistryAccess, plan: ImagePlan, tag: string | undefined): Promise<TestPass | undefined> {
  if (!tag) return undefined;
  try {
    const { client } = await registries.for(plan.repository);
    const m = await client.manifest(repositoryPath(plan.repository), tag, true);
    return m?.body ? parseTestRecord(m.body) : undefined;
  } catch (e) {
    ctx.reporter.warn(`cannot read the test record ${plan.repository}:${tag} (${(e as Error).message}); running the test`);
    return undefined;
  }
}

/**
 * Records a passed test beside its image, so the next pipeline skips it. A
 * registry that refuses (a token that may not push) costs a warning, never
 * the run: the test passed.
 */
export async function recordPass(ctx: RunContext, registries: RegistryAccess, lookup: TestLookup, pass: { durationMs: number; commit: string }): Promise<void> {
  const { plan, test, definition, imageDigest } = lookup;
  const tag = imageDigest && testRecordTag(imageDigest, definition);
  if (!imageDigest || !tag) return;
  const record: TestPass = {
    test: test.name,
    image: plan.name,
    imageDigest,
    definition,
    passedAt: ctx.now().toISOString(),
    durationMs: pass.durationMs,
    commit: pass.commit,
    pipelineId: ctx.ci.pipelineId,
    pipelineUrl: ctx.ci.pipelineUrl,
  };
  const path = repositoryPath(plan.repository);
  try {
    const { client } = await registries.for(plan.repository);
    await client.pushBlob(path, EMPTY_DESCRIPTOR.digest, EMPTY_BLOB);
    const body = testRecordManifest(record);
    await client.putManifest(path, tag, { digest: '', mediaType: OCI_MANIFEST, body });
    ctx.reporter.debug(`test ${test.name}: pass recorded as ${plan.repository}:${tag}`);
  } catch (e) {
    ctx.reporter.warn(
      `test ${test.name}: passed, but its record could not be written to ${plan.repository} (${(e as Error).message}); the next run runs it again`,
    );
  }
}
