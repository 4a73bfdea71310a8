import type { RunContext } from '../context.js';
import { ConfigError, SkiffError } from '../errors.js';
import { formatConflict, imagePlacements, nodeFacts, platformConflicts, type NodeFacts } from '../kinds/node-platforms.js';
import type { KubeClient } from '../kube/kube-client.js';
import type { Manifest } from '../kube/objects.js';
import type { Project } from '../project.js';
import { imagePlatforms } from '../registry/image-platforms.js';
import { registryHost } from '../registry/image-ref.js';

/**
 * Deploy's (and plan's) check before the first write: a workload whose pods
 * can be scheduled on a node whose os/arch one of its images has no manifest
 * for would fail there with `exec format error` after the deploy started, so
 * it is exit 2 now, one line per container and nothing applied. What cannot
 * be known (nodes not listable, an image's platforms unreadable) is said and
 * skipped: the check never stops a deploy for lack of an answer.
 */
export async function checkNodePlatforms(
  ctx: RunContext,
  manifests: readonly Manifest[],
  opts: { project: Pick<Project, 'config' | 'registry'>; images: Record<string, string>; kube: KubeClient },
): Promise<void> {
  if (opts.project.config.deploy.checkNodePlatforms === false) {
    ctx.reporter.debug(`images' platforms not checked against the nodes (deploy.checkNodePlatforms: false in ${opts.project.config.file})`);
    return;
  }
  const nodes = await listNodes(ctx, opts.kube);
  if (!nodes) return;
  const placements = imagePlacements(manifests, nodes);
  if (!placements.length) return;
  const platforms = await imagePlatforms(
    placements.map((p) => p.image),
    {
      env: ctx.env,
      ci: ctx.ci,
      registries: opts.project.registry ? [registryHost(opts.project.registry)] : [],
      signal: ctx.signal,
      debug: (m) => ctx.reporter.debug(m),
    },
  );
  const conflicts = platformConflicts(placements, platforms);
  if (!conflicts.length) return;
  const own = new Set(Object.values(opts.images));
  const lines = conflicts.map((c) => formatConflict(c, { projectImage: own.has(c.image) }));
  // The error is one line: the others come before it, one a conflict.
  for (const line of lines.slice(1)) ctx.reporter.warn(line);
  const more = lines.length > 1 ? ` (and ${lines.length - 1} more, above)` : '';
  throw new ConfigError(`${lines[0]}${more}`, { detail: { conflicts } });
}

/** The cluster's nodes; undefined, with a warning, when they cannot be listed (RBAC forbids it to many deployers). */
async function listNodes(ctx: RunContext, kube: KubeClient): Promise<NodeFacts[] | undefined> {
  try {
    return (await kube.list('v1', 'Node', undefined)).items.map(nodeFacts);
  } catch (e) {
    if (ctx.signal.aborted || !(e instanceof SkiffError)) throw e;
    ctx.reporter.warn(`cannot list nodes (${e.message}); images' platforms not checked`);
    return undefined;
  }
}
