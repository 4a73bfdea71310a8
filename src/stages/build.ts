import { posix } from 'node:path';
import { InfrastructureError, WorkFailedError, isSkiffError, type SkiffError } from '../errors.js';
import { contextTar } from '../adapters/context-tar.js';
import { repositoryPath } from '../core/image-ref.js';
import { BuildStepFailure } from '../adapters/build-failure.js';
import type { DockerEngine } from '../adapters/docker.js';
import { changedPaths } from '../adapters/git.js';
import { RegistryAccess } from '../adapters/registry.js';
import { lineOfStep, parseDockerfile, withLabels } from '../core/dockerfile.js';
import { explainChange, labelsToDigests, sanitizeTag } from '../core/image-inputs.js';
import { Semaphore } from '../core/concurrency.js';
import type { RunContext } from '../context.js';
import type { Project } from '../project.js';
import { dependencyArgName, type ImagePlan } from './image-plan.js';

const GENERATED_DOCKERFILE = '.skiff.Dockerfile';

export interface ImageBuildOptions {
  push?: boolean;
  /** Explain for each image why it was (not) rebuilt. */
  why?: boolean;
  parallel?: number;
}

export interface ImageBuildResult {
  image: string;
  reference: string;
  repository: string;
  tag: string;
  tags: string[];
  digest?: string;
  built: boolean;
  pushed: boolean;
  reason: string;
  /** What changed since the previous build (with --why), in words. */
  changes?: string[];
  durationMs: number;
}

export interface BuildResult {
  commit: string;
  source: 'commit' | 'worktree';
  images: ImageBuildResult[];
}

/**
 * The build stage: content-tag every image, skip those the registry (or the
 * local Engine) already has, build the rest from the commit in dependency
 * order with bounded parallelism, then push.
 */
export async function buildPlanned(ctx: RunContext, project: Project, plans: ImagePlan[], opts: ImageBuildOptions): Promise<BuildResult> {
  // The Engine client is loaded and pinged only when an image is not already in the registry.
  let engine: Promise<DockerEngine> | undefined;
  const docker = () =>
    (engine ??= ctx.docker().then(async (d) => {
      await d.ping();
      return d;
    }));
  const registries = new RegistryAccess(ctx.env, ctx.ci);
  const useRegistry = Boolean(opts.push && project.registry);
  const semaphore = new Semaphore(Math.max(1, opts.parallel ?? 2));
  const done = new Map<string, Promise<ImageBuildResult>>();
  const failures: SkiffError[] = [];
  const stop = new AbortController();
  const signal = AbortSignal.any([ctx.signal, stop.signal]);

  const buildOne = async (plan: ImagePlan): Promise<ImageBuildResult> => {
    await Promise.all(plan.config.dependsOn.map((d) => done.get(d) ?? Promise.resolve()));
    return semaphore.run(async () => {
      if (signal.aborted) throw new WorkFailedError('build', `image ${plan.name}: not built because another image failed`);
      const started = Date.now();
      const result = await processImage(ctx, project, plan, docker, registries, { ...opts, push: useRegistry }, signal);
      return { ...result, durationMs: Date.now() - started };
    });
  };
  for (const plan of plans) {
    const p = buildOne(plan).catch((e: unknown) => {
      const err = isSkiffError(e) ? e : new WorkFailedError('build', `image ${plan.name}: ${(e as Error).message}`, { cause: e });
      failures.push(err);
      stop.abort();
      throw err;
    });
    p.catch(() => {});
    done.set(plan.name, p);
  }
  const settled = await Promise.allSettled([...done.values()]);
  if (failures.length) {
    // Report the root failure, not "not built because another image failed".
    throw failures.find((f) => !/because another image failed/.test(f.message)) ?? failures[0]!;
  }
  return {
    commit: project.git.commit,
    source: project.mode,
    images: settled.map((s) => (s as PromiseFulfilledResult<ImageBuildResult>).value),
  };
}

async function processImage(
  ctx: RunContext,
  project: Project,
  plan: ImagePlan,
  engine: () => Promise<DockerEngine>,
  registries: RegistryAccess,
  opts: ImageBuildOptions,
  signal: AbortSignal,
): Promise<Omit<ImageBuildResult, 'durationMs'>> {
  const { reporter } = ctx;
  const base = { image: plan.name, reference: plan.ref, repository: plan.repository, tag: plan.tag, tags: [plan.tag, ...plan.humanTags] };
  const registry = opts.push ? await registries.for(plan.repository) : undefined;
  const repoPath = repositoryPath(plan.repository);

  if (registry) {
    const existing = await registry.client.manifest(repoPath, plan.tag);
    if (existing) {
      for (const t of plan.humanTags) await registry.client.tagManifest(repoPath, plan.tag, t);
      reporter.status(plan.name, 'up to date', `${plan.ref} already in the registry; not built, not pushed`);
      return { ...base, digest: existing.digest, built: false, pushed: false, reason: 'up to date in registry', changes: opts.why ? [] : undefined };
    }
  }

  const docker = await engine();
  const local = await docker.inspectImage(plan.ref);
  let built = false;
  let changes: string[] | undefined;
  let reason: string;
  if (local) {
    reason = 'up to date in local Engine';
    reporter.status(plan.name, 'up to date', `${plan.ref} already built locally`);
    if (opts.why) changes = [];
  } else {
    if (opts.why) {
      changes = await explainRebuild(ctx, project, plan, docker, registries, Boolean(opts.push));
      reporter.info(`${plan.name}: rebuilding because ${changes.join('; ')}`);
    }
    reporter.status(plan.name, 'building', plan.ref);
    await buildImage(ctx, project, plan, docker, registries, signal);
    built = true;
    reason = changes?.length ? changes.join('; ') : 'no image with this content tag';
    reporter.status(plan.name, 'built', plan.ref);
  }
  for (const t of plan.humanTags) await docker.tag(plan.ref, plan.repository, t);

  if (!registry) {
    const id = (await docker.inspectImage(plan.ref))?.id;
    return { ...base, digest: id, built, pushed: false, reason, changes };
  }
  reporter.status(plan.name, 'pushing', plan.ref);
  const digest = await docker.push(plan.repository, plan.tag, registry.credentials, (line) => reporter.debug(`[${plan.name}] ${line}`), signal);
  for (const t of plan.humanTags) await registry.client.tagManifest(repoPath, plan.tag, t);
  reporter.status(plan.name, 'pushed', `${plan.ref}${digest ? `@${digest}` : ''}`);
  return { ...base, digest, built, pushed: true, reason, changes };
}

async function buildImage(ctx: RunContext, project: Project, plan: ImagePlan, docker: DockerEngine, registries: RegistryAccess, signal: AbortSignal) {
  // FROM may name a dependency that only the registry has.
  for (const dep of plan.config.dependsOn) await registries.for(plan.buildArgs[dependencyArgName(dep)] ?? plan.repository);
  // The labels go into one LABEL step of a generated Dockerfile; the Engine removes it and
  // the generated .dockerignore from the context (they list themselves), so COPY never sees them.
  const labels = { ...plan.labels, 'org.opencontainers.image.created': project.mode === 'commit' ? project.git.committedAt : ctx.now().toISOString() };
  const extraFiles = {
    [GENERATED_DOCKERFILE]: withLabels(plan.dockerfileText, plan.config.target, labels),
    '.dockerignore': `.dockerignore\n${GENERATED_DOCKERFILE}\n`,
  };
  try {
    await docker.build({
      context: contextTar({ kind: project.mode, root: project.root }, plan.entries, extraFiles),
      dockerfile: GENERATED_DOCKERFILE,
      tag: plan.ref,
      target: plan.config.target,
      buildArgs: plan.buildArgs,
      labels: {},
      registryAuth: await registries.all(),
      onLog: (line) => ctx.reporter.log(plan.name, line),
      signal,
    });
  } catch (e) {
    if (e instanceof BuildStepFailure) {
      const dockerfile = posix.join(plan.config.context || '.', plan.dockerfile);
      const line = e.step ? lineOfStep(parseDockerfile(plan.dockerfileText), e.step.number, e.step.text) : undefined;
      const at = e.step ? `${dockerfile}${line ? `:${line}` : ''}: step ${e.step.number} "${e.step.text}" failed: ` : `${dockerfile}: `;
      throw new WorkFailedError('build', `image ${plan.name}: ${at}${e.message}`, { detail: { image: plan.name, dockerfile, line, step: e.step } });
    }
    if (signal.aborted && ctx.signal.aborted) throw new WorkFailedError('build', `image ${plan.name}: build interrupted`);
    throw e;
  }
}

/**
 * Why an image needs building: compares the input digests stored as labels
 * on its previous build (the branch tag, locally or in the registry) with
 * this one, and names the changed files from Git.
 */
async function explainRebuild(
  ctx: RunContext,
  project: Project,
  plan: ImagePlan,
  docker: DockerEngine,
  registries: RegistryAccess,
  push: boolean,
): Promise<string[]> {
  const previousTag = project.git.branch ? sanitizeTag(project.git.branch) : undefined;
  let labels: Record<string, string> | undefined;
  if (previousTag) {
    labels = (await docker.inspectImage(`${plan.repository}:${previousTag}`))?.labels;
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
    const changed = await changedPaths(project.root, prevCommit, project.mode === 'commit' ? project.git.commit : undefined, plan.config.context);
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
