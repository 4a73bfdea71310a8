import { parseImageRef, repositoryPath } from '../registry/image-ref.js';
import { branchNames, isShallow, recentCommits } from '../adapters/git.js';
import { mapLimit } from '../core/concurrency.js';
import { CONTENT_TAG, planCacheCleanup, planCleanup, splitTestRecords, type Deletion, type TestRecordTag } from '../registry/cleanup-policy.js';
import { cacheImportTags, cacheRepository } from '../build/builder-pool.js';
import { formatDuration } from '../core/duration.js';
import { ConfigError, InfrastructureError, SkiffError } from '../errors.js';
import type { RunContext } from '../context.js';
import { loadProject, type Project, type ProjectOptions } from '../project.js';
import { MemoryDriver, ReleaseStorage } from '../release/storage.js';
import { planImages } from '../build/image-plan.js';
import type { KubeFlags } from '../stages/kube-session.js';
import { clusterLabel, environmentCluster, type EnvironmentCluster } from '../stages/release-inputs.js';
import { sealRecord } from '../secrets/redact.js';
import { RegistryAccess, type RegistryClient } from '../registry/registry-client.js';

export interface CleanupOptions extends ProjectOptions, KubeFlags {
  /** Images of this many newest commits of every branch and tag are kept. */
  keepCommits?: number;
  /** Images built more recently than this are kept (a build or deploy may be using them right now). */
  minAgeMs?: number;
  dryRun?: boolean;
}

export interface CleanupResult {
  dryRun: boolean;
  /** The release histories read: every skiff release in the clusters of the environments. */
  releases: Array<{ context: string; namespace: string; release: string; revisions: number }>;
  deleted: Array<{ image: string; digest: string; tags: string[] }>;
  kept: number;
  /** Registry build cache entries (`<image repository>/cache:<branch>`) of branches that are gone. */
  deletedCache: Array<{ image: string; repository: string; digest: string; tags: string[] }>;
  /** Cache entries kept: those of existing branches and the default branches. */
  keptCache: number;
  /** Records of passed tests (skiff test) that went with the image they describe, or whose image was gone. */
  deletedTestRecords: Array<{ image: string; tag: string; digest: string }>;
}

interface InUse {
  contentTags: Set<string>;
  digests: Set<string>;
  releases: CleanupResult['releases'];
}

/**
 * Every image any skiff release record references, in every namespace of
 * every cluster the environments name: releases deployed with --namespace,
 * or of an environment since removed from skiff.yaml, count too. A cluster
 * where that cannot be listed stops the cleanup.
 */
async function imagesInUse(ctx: RunContext, project: Project, opts: CleanupOptions): Promise<InUse> {
  // Every environment's cluster (environments may live on different clusters), each read once.
  const clusters = new Map<string, EnvironmentCluster>();
  for (const environment of Object.values(project.config.environments)) {
    const cluster = environmentCluster(project, environment, { kubeconfig: opts.kubeconfig }, ctx.ci);
    clusters.set(clusterLabel(cluster), cluster);
  }
  const used: InUse = { contentTags: new Set(), digests: new Set(), releases: [] };
  const servers = new Set<string>();
  for (const [label, cluster] of clusters) {
    try {
      const kube = await ctx.kube({ context: cluster.kubeContext, kubeconfig: cluster.kubeconfig });
      // Two environments may reach one cluster through different kubeconfigs: read it once.
      if (kube.server && servers.has(kube.server)) continue;
      if (kube.server) servers.add(kube.server);
      const byNamespace = await kube.namespacesWith('v1', 'Secret', 'owner=skiff');
      for (const [namespace, secrets] of byNamespace) {
        // The records were just listed: read them from memory, not once more per release.
        const listed = new MemoryDriver();
        await listed.create(secrets);
        const storage = new ReleaseStorage(listed, namespace, sealRecord);
        for (const release of new Set(secrets.map((s) => s.metadata.labels?.name).filter((n): n is string => Boolean(n)))) {
          const revisions = await storage.history(release);
          for (const record of revisions) {
            for (const ref of Object.values(record.images ?? {})) {
              const { tag, digest } = parseImageRef(ref);
              if (tag && digest) {
                used.contentTags.add(tag);
                used.digests.add(digest);
              }
            }
          }
          used.releases.push({ context: cluster.kubeContext ?? kube.context, namespace, release, revisions: revisions.length });
        }
      }
    } catch (e) {
      if (e instanceof SkiffError) {
        e.message = `${label}: ${e.message}; cleanup reads the release histories of every namespace (it needs to list Secrets cluster-wide) to know which images are in use, and deletes nothing without them: the releases on this cluster may use any image, so all are kept`;
      }
      throw e;
    }
  }
  return used;
}

/**
 * skiff cleanup: deletes from the registry the images nothing needs any more
 * (werf's cleanup). Kept: every image a skiff release record in the clusters
 * references (so every rollback still works), the images of the newest
 * commits of every branch and tag, images younger than minAge, and anything
 * tagged by hand or with a branch or Git tag name. What the releases use is
 * read again just before deleting.
 */
export async function runCleanup(ctx: RunContext, opts: CleanupOptions): Promise<CleanupResult> {
  const project = await loadProject(ctx, { ...opts, readOnly: true });
  const { registry } = project;
  if (!registry) throw new ConfigError(`no registry configured: set "registry" in ${project.config.file}, SKIFF_REGISTRY or --registry`);
  const keepCommits = opts.keepCommits ?? 10;
  if (!Number.isInteger(keepCommits) || keepCommits < 1) throw new ConfigError(`--keep-commits must be a whole number ≥ 1, got ${opts.keepCommits}`);
  const minAgeMs = opts.minAgeMs ?? 60 * 60_000;
  if (await isShallow(project.repo)) {
    throw new ConfigError(
      `${project.root} is a shallow clone: cleanup must see the newest commits of every branch and tag; fetch them all (in GitLab CI: GIT_DEPTH: "0", then git fetch origin '+refs/heads/*:refs/remotes/origin/*' --tags)`,
    );
  }

  // 1. What the releases use, and what the newest commits of every branch and tag build.
  const used = await imagesInUse(ctx, project, opts);
  for (const r of used.releases) ctx.reporter.status(`release ${r.release}`, 'read', `${r.revisions} revisions in ${r.namespace}, context ${r.context}`);
  const commits = await recentCommits(project.repo, keepCommits);
  const kept: KeptImages = { contentTags: await contentTagsOfCommits(ctx, project, commits, used), used, commits, minAgeMs };
  ctx.reporter.info(
    `keeping the images of ${used.releases.reduce((n, r) => n + r.revisions, 0)} release revisions, of ${commits.size} recent commits, and those built in the last ${formatDuration(minAgeMs)}`,
  );

  // 2. Each image repository: every tag read, then what nothing keeps.
  const registries = new RegistryAccess(ctx.env, ctx.ci);
  const result: CleanupResult = {
    dryRun: Boolean(opts.dryRun),
    releases: used.releases,
    deleted: [],
    kept: 0,
    deletedCache: [],
    keptCache: 0,
    deletedTestRecords: [],
  };
  const candidates = await deletionCandidates(ctx, project, registry, registries, kept, result);

  // 3. Read the releases again: a deploy may have started using one of them meanwhile.
  const now = candidates.length && !opts.dryRun ? await imagesInUse(ctx, project, opts) : used;
  await deleteUnused(ctx, registries, candidates, now, result);

  // 4. The registry build cache: one entry per branch; those of deleted branches go (their
  //    images are kept or not by the rules above: a cache entry only speeds up a branch's builds).
  await cleanBuildCache(ctx, project, registry, registries, result);
  return result;
}

/** What keeps an image: a release's use, a recent commit's build, or its age. */
interface KeptImages {
  contentTags: Set<string>;
  used: InUse;
  commits: Set<string>;
  minAgeMs: number;
}

interface Candidate {
  image: string;
  repository: string;
  path: string;
  deletion: Deletion;
  /** The test records of the image: they go with it. */
  records: TestRecordTag[];
}

/** The content tags the releases use and the recent commits build (a commit today's skiff.yaml cannot plan keeps nothing). */
async function contentTagsOfCommits(ctx: RunContext, project: Project, commits: Set<string>, used: InUse): Promise<Set<string>> {
  const keptContentTags = new Set(used.contentTags);
  for (const commit of commits) {
    try {
      for (const plan of await planImages({ ...project, mode: 'commit', git: { ...project.git, commit } })) keptContentTags.add(plan.tag);
    } catch (e) {
      if (!(e instanceof ConfigError)) throw e;
      ctx.reporter.debug(`commit ${commit.slice(0, 8)} does not build with today's ${project.config.file}: ${e.message}`);
    }
  }
  return keptContentTags;
}

/** Every tag of a repository and its digest. */
async function tagDigests(client: RegistryClient, repository: string, path: string, unknownDigest: string): Promise<Map<string, string>> {
  const tags = new Map<string, string>();
  await mapLimit(await client.tags(path), 8, async (tag) => {
    const m = await client.manifest(path, tag);
    // A tag whose digest is unknown could be the one keeping an image: stop rather than guess.
    if (!m?.digest) throw new InfrastructureError(`registry ${client.host} gave no digest for ${repository}:${tag}; ${unknownDigest}`);
    tags.set(tag, m.digest);
  });
  return tags;
}

/** The images of each repository that nothing keeps and that are older than minAge. */
async function deletionCandidates(
  ctx: RunContext,
  project: Project,
  registry: string,
  registries: RegistryAccess,
  kept: KeptImages,
  result: CleanupResult,
): Promise<Candidate[]> {
  const candidates: Candidate[] = [];
  for (const image of Object.keys(project.config.images)) {
    const repository = `${registry}/${image}`;
    const path = repositoryPath(repository);
    const { client } = await registries.for(repository);
    // Test records are no images: each goes with the image it describes, an orphan at once.
    const { images: tags, records, orphans } = splitTestRecords(await tagDigests(client, repository, path, `not cleaning up ${image}`));
    await dropTestRecords(ctx, client, { image, repository, path }, orphans, result, 'its image is gone');
    const plan = planCleanup({ tags, keptContentTags: kept.contentTags, keptDigests: kept.used.digests, keptCommits: kept.commits });
    result.kept += plan.kept;
    for (const deletion of plan.delete) {
      const created = await client.created(path, deletion.digest);
      if (!created || ctx.now().getTime() - created.getTime() < kept.minAgeMs) {
        result.kept++;
        continue;
      }
      candidates.push({ image, repository, path, deletion, records: records.filter((r) => r.imageDigest === deletion.digest) });
    }
  }
  return candidates;
}

/** Deletes (or, in a dry run, names) each candidate the releases still do not use. */
async function deleteUnused(ctx: RunContext, registries: RegistryAccess, candidates: Candidate[], now: InUse, result: CleanupResult): Promise<void> {
  for (const { image, repository, path, deletion, records } of candidates) {
    const content = deletion.tags.filter((t) => CONTENT_TAG.test(t));
    if (deletion.tags.some((t) => now.contentTags.has(t)) || now.digests.has(deletion.digest)) {
      result.kept++;
      continue;
    }
    if (!result.dryRun) await (await registries.for(repository)).client.deleteManifest(path, deletion.digest);
    const others = deletion.tags.filter((t) => !CONTENT_TAG.test(t));
    ctx.reporter.status(
      image,
      result.dryRun ? 'would delete' : 'deleted',
      `${repository}:${content.join(',')}, ${deletion.digest.slice(0, 19)}…${others.length ? `, with tags ${others.join(', ')}` : ''}`,
    );
    result.deleted.push({ image, digest: deletion.digest, tags: deletion.tags });
    const { client } = await registries.for(repository);
    await dropTestRecords(ctx, client, { image, repository, path }, records, result, 'with its image');
  }
}

/** Deletes (or, in a dry run, names) test records: those of an image deleted, or of one gone. */
async function dropTestRecords(
  ctx: RunContext,
  client: RegistryClient,
  where: { image: string; repository: string; path: string },
  records: TestRecordTag[],
  result: CleanupResult,
  why: string,
): Promise<void> {
  for (const r of records) {
    if (!result.dryRun) await client.deleteManifest(where.path, r.digest);
    ctx.reporter.status(`${where.image} test record`, result.dryRun ? 'would delete' : 'deleted', `${where.repository}:${r.tag} (${why})`);
    result.deletedTestRecords.push({ image: where.image, tag: r.tag, digest: r.digest });
  }
}

/** Deletes the build cache entries of branches that are gone (the default branches' and the current one's stay). */
async function cleanBuildCache(ctx: RunContext, project: Project, registry: string, registries: RegistryAccess, result: CleanupResult): Promise<void> {
  const keptTags = new Set(
    cacheImportTags(undefined, [...(await branchNames(project.repo)), ...(project.git.branch ? [project.git.branch] : []), 'main', 'master']),
  );
  for (const image of Object.keys(project.config.images)) {
    const repository = cacheRepository(`${registry}/${image}`);
    const path = repositoryPath(repository);
    const { client } = await registries.for(repository);
    const tags = await tagDigests(client, repository, path, 'not cleaning up its cache');
    const plan = planCacheCleanup({ tags, keptTags });
    result.keptCache += plan.kept.length;
    for (const deletion of plan.delete) {
      if (!result.dryRun) await client.deleteManifest(path, deletion.digest);
      ctx.reporter.status(
        `${image} cache`,
        result.dryRun ? 'would delete' : 'deleted',
        `${repository}:${deletion.tags.join(',')} (no such branch any more), ${deletion.digest.slice(0, 19)}…`,
      );
      result.deletedCache.push({ image, repository, digest: deletion.digest, tags: deletion.tags });
    }
  }
}
