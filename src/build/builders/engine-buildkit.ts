import type { ContainerEngine } from '../../adapters/container-engine.js';
import type { RunContext } from '../../context.js';
import { ConfigError } from '../../errors.js';
import type { Project } from '../../project.js';
import type { RegistryAccess } from '../../registry/registry-client.js';
import { repositoryPath } from '../../registry/image-ref.js';
import { BuildKitRefused } from '../build-failure.js';
import { DEFAULT_BRANCHES } from '../builder-pool.js';
import { sanitizeTag } from '../content-inputs.js';
import { contextTar } from '../context-tar.js';
import type { ImagePlan } from '../image-plan.js';
import { BuildKitProgress } from './buildkit-progress.js';
import { checkEnginePlatforms, type EngineClassicBuilder } from './engine-classic.js';
import type { BuildJob, BuiltImage, ImageBuilder } from './image-builder.js';

/** Previous builds whose layers may serve this one: the image's branch tag, then the default branch's, where the registry has them. */
async function cacheSources(ctx: RunContext, project: Project, plan: ImagePlan, registries: RegistryAccess): Promise<string[]> {
  const tags = [project.git.branch, ...DEFAULT_BRANCHES].filter((t): t is string => Boolean(t)).map(sanitizeTag);
  const { client } = await registries.for(plan.repository);
  const found = await Promise.all(
    [...new Set(tags)].map((tag) =>
      client.manifest(repositoryPath(plan.repository), tag).then(
        (m) => (m ? tag : undefined),
        (e: unknown) => {
          ctx.reporter.debug(`${plan.name}: no layer cache from ${plan.repository}:${tag} (${(e as Error).message})`);
          return undefined;
        },
      ),
    ),
  );
  return found.filter((t): t is string => Boolean(t));
}

/**
 * Pulls the newest previous build into the Engine before BuildKit takes its cache. Docker 20.10's
 * BuildKit writes the inline cache of an image without the layers it took from a cache imported from
 * a registry (moby/buildkit#2274, fixed in BuildKit 0.14): the next build on an empty Engine would
 * miss them, every second pipeline. Taken from the Engine's own images, the cache is written whole.
 * The layers come down either way (the new image needs them); failing to pull only costs the cache.
 */
async function pullCacheSource(ctx: RunContext, plan: ImagePlan, tag: string, registries: RegistryAccess, engine: ContainerEngine, signal: AbortSignal) {
  const { credentials } = await registries.for(plan.repository);
  try {
    await engine.pull(plan.repository, tag, credentials, (line) => ctx.reporter.debug(`[${plan.name}] ${line}`), signal);
  } catch (e) {
    if (signal.aborted) throw e;
    ctx.reporter.debug(`${plan.name}: could not pull ${plan.repository}:${tag} for its layer cache (${(e as Error).message})`);
  }
}

/**
 * The Docker Engine's BuildKit (`POST /build?version=2`, no session): the labels set on the image at
 * no cost, the previous builds' inline cache for an Engine that has never seen the project (a new CI
 * job). BuildKit applies no .dockerignore to an uploaded context: it gets the project's Dockerfile
 * and the context as it is (filtered already), without .dockerignore. Builds into the Engine; the
 * stage pushes.
 */
export class EngineBuildKitBuilder implements ImageBuilder {
  readonly takesSecrets = false;
  readonly pushes = false;

  /** `fallback`: the classic builder, for an Engine without BuildKit; none when SKIFF_BUILDER=buildkit forces BuildKit. */
  constructor(private readonly fallback?: EngineClassicBuilder) {}

  prepare(ctx: RunContext, project: Project, plans: ImagePlan[]): Promise<void> {
    return checkEnginePlatforms(ctx, project, plans);
  }

  async build(job: BuildJob): Promise<BuiltImage> {
    const { ctx, project, plan, engine, registries, reporter, signal } = job;
    if (!engine) throw new Error('no Docker Engine for an Engine build');
    const cacheTags = job.push ? await cacheSources(ctx, project, plan, registries) : [];
    if (cacheTags[0]) await pullCacheSource(ctx, plan, cacheTags[0], registries, engine, signal);
    const cacheFrom = cacheTags.map((tag) => `${plan.repository}:${tag}`);
    if (cacheFrom.length) reporter.debug(`${plan.name}: layer cache from ${cacheFrom.join(', ')}`);
    const unsupported = this.fallback ? await engine.buildKitUnsupported() : undefined;
    if (unsupported) return this.fallback!.build(job, unsupported);
    const progress = new BuildKitProgress(plan, reporter);
    const source = { kind: project.mode, repo: project.repo } as const;
    const entries = plan.entries.filter((e) => e.path !== '.dockerignore');
    try {
      await engine.buildWithBuildKit({
        input: () => ({ context: contextTar(source, entries), dockerfile: plan.dockerfile, labels: job.labels }),
        tag: plan.ref,
        target: plan.config.target,
        buildArgs: plan.buildArgs,
        registryAuth: await registries.all(),
        cacheFrom,
        inlineCache: job.push,
        onLog: (line) => reporter.log(plan.name, line),
        onTrace: progress.onTrace,
        signal,
      });
    } catch (e) {
      if (!(e instanceof BuildKitRefused)) throw progress.failure(e);
      if (!this.fallback)
        throw new ConfigError(
          `SKIFF_BUILDER=buildkit, but the Docker Engine at ${engine.endpoint.describe} refuses BuildKit (${e.message}); unset SKIFF_BUILDER or set it to classic`,
        );
      return this.fallback.build(job, `the Engine refused BuildKit: ${e.message}`);
    }
    const counts = progress.finish();
    reporter.debug(`${plan.name}: built with BuildKit`);
    return { builder: 'buildkit', builtBy: 'engine BuildKit', ...counts };
  }
}
