import { InfrastructureError } from '../../errors.js';
import { repositoryPath } from '../../registry/image-ref.js';
import { indexBytes, mergeIndexes, parseIndex, type ImageIndex } from '../../registry/image-index.js';
import { CacheExportRefused, type BuildkitdBuildRequest, type BuildkitdClient } from '../buildkitd-client.js';
import { groupRoutes, type PlatformRoute } from '../platform-routing.js';
import { BuildKitProgress } from './buildkit-progress.js';
import type { BuildJob, BuiltImage } from './image-builder.js';

type Counts = { steps: number; cachedSteps: number };

/**
 * One `buildctl build` on one builder, its progress followed; a cache export the registry refuses
 * is warned about and the build done again without it. Returns the step counts and what it pushed.
 */
export async function buildOnce(job: BuildJob, client: BuildkitdClient, request: BuildkitdBuildRequest): Promise<Counts & { digest?: string }> {
  const { plan, reporter } = job;
  const progress = new BuildKitProgress(plan, reporter);
  const req = { ...request, onTrace: progress.onTrace };
  let pushed: { digest?: string };
  try {
    try {
      pushed = await client.build(req);
    } catch (e) {
      if (!(e instanceof CacheExportRefused)) throw e;
      reporter.warn(
        `${plan.name}: buildkitd ${client.target.address} could not write the build cache to ${req.cacheExport} (${e.message}); building again without writing it`,
      );
      pushed = await client.build({ ...req, cacheExport: undefined });
    }
  } catch (e) {
    throw progress.failure(e);
  }
  return { ...progress.finish(), digest: pushed.digest };
}

/**
 * An image with `platforms:`, pushed: its platforms grouped by the builder each was routed to
 * (platform-routing.ts), one build per group at the same time, each pushed by digest with its
 * provenance; then the image index under the content tag: a single group's as buildkitd pushed it,
 * several groups' merged into one (every platform manifest and attestation manifest, annotations
 * kept; the blobs are in the repository already).
 *
 * The registry cache is written by a single group only: it is one tag per branch, and two builders
 * writing it would each replace the other's (a builder's own cache still serves its platforms,
 * since rendezvous routing sends them to it every run).
 */
export async function buildPlatforms(
  job: BuildJob,
  request: BuildkitdBuildRequest,
  routes: PlatformRoute[],
  clientAt: (address: string) => BuildkitdClient,
): Promise<BuiltImage> {
  const { plan, reporter, registries } = job;
  const groups = groupRoutes(routes);
  for (const r of routes) reporter.info(`${plan.name} ${r.platform} on buildkitd ${r.address} (${r.native ? 'native' : 'emulated'})`);
  reporter.status(plan.name, 'building', `${plan.ref} for ${routes.map((r) => r.platform).join(', ')}`);
  if (groups.length > 1 && request.cacheExport) reporter.debug(`${plan.name}: ${groups.length} builders share the image: no registry cache written`);
  const built = await Promise.all(
    groups.map((g) =>
      buildOnce(job, clientAt(g.address), {
        ...request,
        ref: plan.repository,
        pushByDigest: true,
        platforms: g.platforms,
        provenance: true,
        cacheExport: groups.length === 1 ? request.cacheExport : undefined,
      }),
    ),
  );
  const { client } = await registries.for(plan.repository);
  const repo = repositoryPath(plan.repository);
  const indexes: Array<{ digest: string; mediaType: string; body: Buffer; index: ImageIndex }> = [];
  for (const [i, b] of built.entries()) {
    const where = `buildkitd ${groups[i]!.address}`;
    if (!b.digest)
      throw new InfrastructureError(`image ${plan.name}: ${where} pushed ${groups[i]!.platforms.join(', ')} but named no digest (buildctl --metadata-file)`);
    const m = await client.manifest(repo, b.digest, true);
    const index = parseIndex(m?.body, m?.mediaType);
    if (!m?.body || !index) throw new InfrastructureError(`registry ${client.host}: ${plan.repository}@${b.digest} that ${where} pushed is not an image index`);
    indexes.push({ digest: b.digest, mediaType: m.mediaType, body: m.body, index });
  }
  const put = indexes.length === 1 ? indexes[0]! : indexBytes(mergeIndexes(indexes.map((x) => x.index)));
  await client.putManifest(repo, plan.tag, put);
  const addresses = groups.map((g) => g.address).join(' and ');
  return {
    builder: 'buildkitd',
    builtBy: `buildkitd ${addresses}`,
    steps: built.reduce((n, b) => n + b.steps, 0),
    cachedSteps: built.reduce((n, b) => n + b.cachedSteps, 0),
  };
}
