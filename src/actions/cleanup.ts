import { recentCommits } from '../adapters/git.js';
import { mapLimit } from '../core/concurrency.js';
import { CONTENT_TAG, planCleanup } from '../core/cleanup-policy.js';
import { ConfigError, SkiffError } from '../errors.js';
import type { RunContext } from '../context.js';
import { loadProject, type ProjectOptions } from '../project.js';
import { planImages } from '../stages/image-plan.js';
import { connect, type KubeFlags } from '../stages/kube-session.js';
import { resolveTarget } from '../stages/release-inputs.js';
import { RegistryAccess } from './build.js';

export interface CleanupOptions extends ProjectOptions, KubeFlags {
  /** Images of this many newest commits of every branch and tag are kept. */
  keepCommits?: number;
  dryRun?: boolean;
}

export interface CleanupResult {
  dryRun: boolean;
  /** What the release histories reference, per environment. */
  environments: Array<{ env: string; release: string; namespace: string; revisions: number }>;
  deleted: Array<{ image: string; digest: string; tags: string[] }>;
  kept: number;
}

/**
 * skiff cleanup: deletes from the registry the images nothing needs any more
 * (werf's cleanup). Kept: every image a release revision of any environment
 * references (so every rollback still works), the images of the newest
 * commits of every branch and tag, and anything tagged by hand or with a
 * branch or Git tag name. Everything is read first; deletion starts only when
 * every environment's history could be read.
 */
export async function runCleanup(ctx: RunContext, opts: CleanupOptions): Promise<CleanupResult> {
  const project = await loadProject(ctx, { ...opts, readOnly: true });
  if (!project.registry) throw new ConfigError(`no registry configured: set "registry" in ${project.config.file}, SKIFF_REGISTRY or --registry`);
  const keepCommits = opts.keepCommits ?? 10;
  if (!Number.isInteger(keepCommits) || keepCommits < 1) throw new ConfigError(`--keep-commits must be a whole number ≥ 1, got ${opts.keepCommits}`);

  // 1. What the releases use, in every environment (an unreachable one stops the cleanup).
  const keptContentTags = new Set<string>();
  const keptDigests = new Set<string>();
  const environments: CleanupResult['environments'] = [];
  for (const env of Object.keys(project.config.environments)) {
    const target = resolveTarget(project, env);
    let revisions;
    try {
      const { storage } = await connect(target, opts);
      revisions = await storage.history(target.release);
    } catch (e) {
      if (e instanceof SkiffError) e.message = `environment ${env} (namespace ${target.namespace}): ${e.message}; cleanup needs every environment's history to know what is in use`;
      throw e;
    }
    for (const record of revisions) {
      for (const ref of Object.values(record.images ?? {})) {
        const m = /:([^:/@]+)@(sha256:[0-9a-f]{64})$/.exec(ref);
        if (m) {
          keptContentTags.add(m[1]!);
          keptDigests.add(m[2]!);
        }
      }
    }
    environments.push({ env, release: target.release, namespace: target.namespace, revisions: revisions.length });
    ctx.reporter.status(`environment ${env}`, 'read', `${revisions.length} revisions of ${target.release} in ${target.namespace}`);
  }

  // 2. What the newest commits of every branch and tag build.
  const commits = await recentCommits(project.root, keepCommits);
  for (const commit of commits) {
    try {
      for (const plan of await planImages({ ...project, mode: 'commit', git: { ...project.git, commit } })) keptContentTags.add(plan.tag);
    } catch (e) {
      if (!(e instanceof ConfigError)) throw e;
      ctx.reporter.debug(`commit ${commit.slice(0, 8)} does not build with today's ${project.config.file}: ${e.message}`);
    }
  }
  ctx.reporter.info(`keeping the images of ${environments.reduce((n, e) => n + e.revisions, 0)} release revisions and of ${commits.size} recent commits`);

  // 3. Each image repository: read every tag, then delete what nothing keeps.
  const registries = new RegistryAccess(ctx.env);
  const result: CleanupResult = { dryRun: Boolean(opts.dryRun), environments, deleted: [], kept: 0 };
  for (const image of Object.keys(project.config.images)) {
    const repository = `${project.registry}/${image}`;
    const path = repository.split('/').slice(1).join('/');
    const { client } = await registries.for(repository);
    const tags = new Map<string, string>();
    await mapLimit(await client.tags(path), 8, async (tag) => {
      const m = await client.manifest(path, tag);
      if (m?.digest) tags.set(tag, m.digest);
    });
    const plan = planCleanup({ tags, keptContentTags, keptDigests, keptCommits: commits });
    result.kept += plan.kept;
    for (const d of plan.delete) {
      if (!opts.dryRun) await client.deleteManifest(path, d.digest);
      const content = d.tags.filter((t) => CONTENT_TAG.test(t));
      ctx.reporter.status(image, opts.dryRun ? 'would delete' : 'deleted', `${repository}:${content.join(',')} (${d.digest.slice(0, 19)}…${d.tags.length > content.length ? `, with tags ${d.tags.filter((t) => !CONTENT_TAG.test(t)).join(', ')}` : ''})`);
      result.deleted.push({ image, digest: d.digest, tags: d.tags });
    }
  }
  return result;
}
