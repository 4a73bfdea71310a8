import type { ContainerEngine } from '../adapters/container-engine.js';
import { changedPaths } from '../adapters/git.js';
import { InfrastructureError } from '../errors.js';
import type { Project } from '../project.js';
import type { RegistryAccess } from '../registry/registry-client.js';
import { repositoryPath } from '../registry/image-ref.js';
import { explainChange, labelsToDigests, sanitizeTag } from './content-inputs.js';
import type { ImagePlan } from './image-plan.js';

/**
 * Why an image needs building: compares the input digests stored as labels
 * on its previous build (the branch tag, locally or in the registry) with
 * this one, and names the changed files from Git.
 */
export async function explainRebuild(
  project: Project,
  plan: ImagePlan,
  docker: ContainerEngine | undefined,
  registries: RegistryAccess,
  push: boolean,
): Promise<string[]> {
  const previousTag = project.git.branch ? sanitizeTag(project.git.branch) : undefined;
  let labels: Record<string, string> | undefined;
  if (previousTag) {
    labels = (await docker?.inspectImage(`${plan.repository}:${previousTag}`))?.labels;
    if (!labels && push) {
      const { client } = await registries.for(plan.repository);
      labels = await client.labels(repositoryPath(plan.repository), previousTag).catch((e: unknown) => {
        if (e instanceof InfrastructureError) throw e;
        return undefined;
      });
    }
  }
  const previous = labelsToDigests(labels);
  if (!previous) return [`no previous build of ${plan.name}${previousTag ? ` on ${previousTag}` : ''} to compare with`];
  const reasons = explainChange(previous, plan.digests);
  const fileIdx = reasons.indexOf('context files changed');
  const prevCommit = labels?.['org.opencontainers.image.revision'];
  if (fileIdx !== -1 && prevCommit) {
    const changed = await changedPaths(project.repo, prevCommit, project.mode === 'commit' ? project.git.commit : undefined, plan.config.context);
    if (changed) {
      const prefix = plan.config.context ? `${plan.config.context}/` : '';
      const relevant = changed.filter((p) => {
        const rel = p.slice(prefix.length);
        return rel === plan.dockerfile || !plan.dockerignore.excludes(rel);
      });
      const shown = relevant.slice(0, 10).join(', ');
      if (relevant.length)
        reasons[fileIdx] = `files changed since ${prevCommit.slice(0, 8)}: ${shown}${relevant.length > 10 ? ` (+${relevant.length - 10} more)` : ''}`;
    }
  }
  return reasons.length ? reasons : ['previous build had identical inputs but the image is gone'];
}
