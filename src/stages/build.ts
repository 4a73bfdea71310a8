import { posix } from 'node:path';
import { ConfigError, InfrastructureError, WorkFailedError, isSkiffError, type SkiffError } from '../errors.js';
import { contextTar } from '../adapters/context-tar.js';
import { repositoryPath } from '../core/image-ref.js';
import { BuildStepFailure } from '../adapters/build-failure.js';
import type { Builder, BuildInput, BuildRequest, DockerEngine } from '../adapters/docker.js';
import { changedPaths } from '../adapters/git.js';
import { RegistryAccess } from '../adapters/registry.js';
import { BuildTrace, cleanBuildError, locateStep, originalLine, parseErrorLine, type TracedStep } from '../core/buildkit-trace.js';
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
  /** The builder that built it (built images only). */
  builder?: Builder;
  /** Dockerfile steps the build went through, and how many of them came from the cache (built images only). */
  steps?: number;
  cachedSteps?: number;
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
  const builder = builderChoice(ctx.env);
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
      const result = await processImage(ctx, project, plan, docker, registries, { ...opts, push: useRegistry, builder }, signal);
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

/**
 * SKIFF_BUILDER: unset (or "auto") lets the Engine decide, BuildKit when it has it;
 * "classic" or "buildkit" forces one.
 */
function builderChoice(env: NodeJS.ProcessEnv): BuildRequest['builder'] {
  const value = (env.SKIFF_BUILDER ?? '').trim().toLowerCase();
  if (value === '' || value === 'auto') return 'auto';
  if (value === 'classic' || value === 'buildkit') return value;
  throw new ConfigError(`SKIFF_BUILDER=${env.SKIFF_BUILDER}: not a builder; set it to buildkit or classic, or unset it to use BuildKit when the Engine has it`);
}

const BUILDER_NAMES: Record<Builder, string> = { buildkit: 'BuildKit', classic: 'the classic builder' };

async function processImage(
  ctx: RunContext,
  project: Project,
  plan: ImagePlan,
  engine: () => Promise<DockerEngine>,
  registries: RegistryAccess,
  opts: ImageBuildOptions & { builder: BuildRequest['builder'] },
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
  let outcome: BuiltImage | undefined;
  if (local) {
    reason = 'up to date in local Engine';
    reporter.status(plan.name, 'up to date', `${plan.ref} already built locally`);
    if (opts.why) changes = [];
  } else {
    if (opts.why) {
      changes = await explainRebuild(ctx, project, plan, docker, registries, Boolean(opts.push));
      reporter.info(`${plan.name}: rebuilding because ${changes.join('; ')}`);
    }
    const end = reporter.section(`skiff_build_${plan.name}`, `build ${plan.name} (${plan.ref})`, { collapsed: true, source: plan.name });
    try {
      reporter.status(plan.name, 'building', plan.ref);
      outcome = await buildImage(ctx, project, plan, docker, registries, { builder: opts.builder, push: Boolean(registry) }, signal);
    } catch (e) {
      end();
      reportFailure(ctx, plan, e);
      throw e;
    } finally {
      end();
    }
    built = true;
    reason = changes?.length ? changes.join('; ') : 'no image with this content tag';
    reporter.status(plan.name, 'built', plan.ref);
  }
  for (const t of plan.humanTags) await docker.tag(plan.ref, plan.repository, t);

  const how = outcome ? { builder: outcome.builder, steps: outcome.steps, cachedSteps: outcome.cachedSteps } : {};
  if (!registry) {
    const id = (await docker.inspectImage(plan.ref))?.id;
    return { ...base, digest: id, built, pushed: false, reason, changes, ...how };
  }
  reporter.status(plan.name, 'pushing', plan.ref);
  const digest = await docker.push(plan.repository, plan.tag, registry.credentials, (line) => reporter.debug(`[${plan.name}] ${line}`), signal);
  for (const t of plan.humanTags) await registry.client.tagManifest(repoPath, plan.tag, t);
  reporter.status(plan.name, 'pushed', `${plan.ref}${digest ? `@${digest}` : ''}`);
  return { ...base, digest, built, pushed: true, reason, changes, ...how };
}

interface BuiltImage {
  builder: Builder;
  steps: number;
  cachedSteps: number;
}

/** What a failed build leaves for the log after its (folded) section: the failing step's output. */
interface BuildFailureDetail {
  image: string;
  dockerfile: string;
  line?: number;
  step?: { number: number; text: string };
  output?: string[];
}

/** Right after the build's section ends: the verdict, and the output of the step that failed when the log has not shown it yet. */
function reportFailure(ctx: RunContext, plan: ImagePlan, e: unknown) {
  if (!(e instanceof WorkFailedError) || e.kind !== 'build') return;
  const detail = e.detail as BuildFailureDetail | undefined;
  if (detail?.image !== plan.name) return;
  ctx.reporter.status(plan.name, 'failed', `${detail.dockerfile}${detail.line ? `:${detail.line}` : ''}${detail.step ? ` ${detail.step.text}` : ''}`);
  for (const line of detail.output ?? []) ctx.reporter.log(plan.name, line);
}

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
async function pullCacheSource(ctx: RunContext, plan: ImagePlan, tag: string, registries: RegistryAccess, docker: DockerEngine, signal: AbortSignal) {
  const { credentials } = await registries.for(plan.repository);
  try {
    await docker.pull(plan.repository, tag, credentials, (line) => ctx.reporter.debug(`[${plan.name}] ${line}`), signal);
  } catch (e) {
    if (signal.aborted) throw e;
    ctx.reporter.debug(`${plan.name}: could not pull ${plan.repository}:${tag} for its layer cache (${(e as Error).message})`);
  }
}

/**
 * The default branch's tag is the other place a branch's first build finds layers. skiff's CI context
 * does not carry GitLab's CI_DEFAULT_BRANCH yet: both usual names are asked, and only those the
 * registry has are used.
 */
const DEFAULT_BRANCHES = ['main', 'master'];

async function buildImage(
  ctx: RunContext,
  project: Project,
  plan: ImagePlan,
  docker: DockerEngine,
  registries: RegistryAccess,
  opts: { builder: BuildRequest['builder']; push: boolean },
  signal: AbortSignal,
): Promise<BuiltImage> {
  const { reporter } = ctx;
  // FROM may name a dependency that only the registry has.
  for (const dep of plan.config.dependsOn) await registries.for(plan.buildArgs[dependencyArgName(dep)] ?? plan.repository);
  // Layer cache for an Engine that has never seen this project (a new CI job): the previous builds' inline cache.
  const cacheTags = opts.push && opts.builder !== 'classic' ? await cacheSources(ctx, project, plan, registries) : [];
  if (cacheTags[0]) await pullCacheSource(ctx, plan, cacheTags[0], registries, docker, signal);
  const cacheFrom = cacheTags.map((tag) => `${plan.repository}:${tag}`);
  const labels = { ...plan.labels, 'org.opencontainers.image.created': project.mode === 'commit' ? project.git.committedAt : ctx.now().toISOString() };
  // The classic builder: the labels go into one LABEL step of a generated Dockerfile (the Engine API's
  // labels parameter costs a step per label); the Engine removes it and the generated .dockerignore
  // from the context (they list themselves), so COPY never sees them.
  const generated = withLabels(plan.dockerfileText, plan.config.target, labels);
  const extraFiles = {
    [GENERATED_DOCKERFILE]: generated,
    '.dockerignore': `.dockerignore\n${GENERATED_DOCKERFILE}\n`,
  };
  // BuildKit sets the labels on the image at no cost, but applies no .dockerignore to an uploaded context:
  // it gets the project's Dockerfile and the context as it is (filtered already), without .dockerignore.
  const source = { kind: project.mode, root: project.root } as const;
  let running: Builder | undefined;
  const input = (builder: Builder): BuildInput => {
    running = builder;
    if (builder === 'classic') return { context: contextTar(source, plan.entries, extraFiles), dockerfile: GENERATED_DOCKERFILE, labels: {} };
    const context = contextTar(
      source,
      plan.entries.filter((e) => e.path !== '.dockerignore'),
    );
    return { context, dockerfile: plan.dockerfile, labels };
  };
  const dockerfile = posix.join(plan.config.context || '.', plan.dockerfile);
  const instructions = parseDockerfile(plan.dockerfileText);
  const trace = new BuildTrace((step) => locateStep(instructions, step));
  const classic = new ClassicSteps(`LABEL "${Object.keys(labels)[0]}"=`);
  const stepState = (step: TracedStep) => {
    const first = step.name.text.split('\n')[0]!;
    const text = first.length > 100 || first !== step.name.text ? `${first.slice(0, 99)}…` : first;
    return `${step.name.stage ? `${step.name.stage} ` : ''}step ${step.name.index}/${step.name.total} ${text}`;
  };
  const onTrace: BuildRequest['onTrace'] = (status) => {
    for (const ev of trace.update(status)) {
      if (ev.type === 'step') reporter.status(plan.name, stepState(ev.step), ev.state === 'cached' ? 'cached' : undefined);
      else if (ev.type === 'internal') reporter.debug(`[${plan.name}] ${ev.name}`);
      else reporter.debug(`[${plan.name}] ${ev.line}`);
    }
  };
  if (cacheFrom.length) reporter.debug(`${plan.name}: layer cache from ${cacheFrom.join(', ')}`);
  try {
    const outcome = await docker.build({
      builder: opts.builder,
      input,
      tag: plan.ref,
      target: plan.config.target,
      buildArgs: plan.buildArgs,
      registryAuth: await registries.all(),
      cacheFrom,
      inlineCache: opts.push,
      onLog: (line) => {
        if (classic.show(line)) reporter.log(plan.name, line);
      },
      onTrace,
      signal,
    });
    for (const ev of trace.finish()) if (ev.type === 'output') reporter.debug(`[${plan.name}] ${ev.line}`);
    const why = outcome.builder === 'classic' ? (outcome.fallback ?? (opts.builder === 'classic' ? 'SKIFF_BUILDER=classic' : undefined)) : undefined;
    reporter.debug(`${plan.name}: built with ${BUILDER_NAMES[outcome.builder]}${why ? ` (${why})` : ''}`);
    const counts = outcome.builder === 'buildkit' ? trace.counts : classic.counts;
    return { builder: outcome.builder, ...counts };
  } catch (e) {
    if (signal.aborted && ctx.signal.aborted) throw new WorkFailedError('build', `image ${plan.name}: build interrupted`);
    if (signal.aborted) throw new WorkFailedError('build', `image ${plan.name}: not built because another image failed`);
    if (!(e instanceof BuildStepFailure)) throw e;
    const failed = trace.failure;
    if (failed) {
      // BuildKit: the failing vertex says which step, and kept what it printed.
      const location = failed.step?.location;
      const text = location?.text ?? failed.step?.name.text ?? failed.vertex;
      const step = location ? { number: location.number, text } : undefined;
      const at = location
        ? `${dockerfile}:${location.line}: step ${location.number} "${text}" failed: `
        : `${dockerfile}: ${failed.step ? `step "${text}"` : `"${failed.vertex}"`} failed: `;
      throw new WorkFailedError('build', `image ${plan.name}: ${at}${cleanBuildError(failed.error)}`, {
        detail: { image: plan.name, dockerfile, line: location?.line, step, output: failed.output } satisfies BuildFailureDetail,
      });
    }
    const message = cleanBuildError(e.message);
    const parseLine = parseErrorLine(message);
    const line = e.step
      ? lineOfStep(instructions, e.step.number, e.step.text)
      : parseLine !== undefined
        ? running === 'classic'
          ? originalLine(plan.dockerfileText, generated, parseLine)
          : parseLine
        : undefined;
    const shown = parseLine !== undefined && line !== undefined ? message.replace(/(parse error (?:on )?line )\d+/i, `$1${line}`) : message;
    const at = e.step ? `${dockerfile}${line ? `:${line}` : ''}: step ${e.step.number} "${e.step.text}" failed: ` : `${dockerfile}${line ? `:${line}` : ''}: `;
    throw new WorkFailedError('build', `image ${plan.name}: ${at}${shown}`, {
      detail: { image: plan.name, dockerfile, line, step: e.step } satisfies BuildFailureDetail,
    });
  }
}

/**
 * The classic builder's output, less skiff's own LABEL step (its "Step N/M : LABEL …" line and
 * the lines under it), with the steps counted and the ones served from the cache ("Using cache").
 */
class ClassicSteps {
  private hiding = false;
  private steps = 0;
  private cachedSteps = 0;
  constructor(private readonly labelStep: string) {}

  show(line: string): boolean {
    const step = /^Step \d+\/\d+ : (.*)$/.exec(line);
    if (step) {
      this.hiding = step[1]!.startsWith(this.labelStep);
      if (!this.hiding) this.steps++;
    } else if (/^Successfully (built|tagged) /.test(line)) this.hiding = false;
    else if (!this.hiding && /^\s*---> Using cache$/.test(line)) this.cachedSteps++;
    return !this.hiding;
  }

  get counts(): { steps: number; cachedSteps: number } {
    return { steps: this.steps, cachedSteps: this.cachedSteps };
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
