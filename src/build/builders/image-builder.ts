import type { ContainerEngine } from '../../adapters/container-engine.js';
import type { Reporter, RunContext } from '../../context.js';
import type { Project } from '../../project.js';
import type { RegistryAccess } from '../../registry/registry-client.js';
import type { ImagePlan } from '../image-plan.js';

/** Which builder built an image: the Engine's BuildKit or classic builder, or a buildkitd. */
export type BuiltWith = 'buildkit' | 'classic' | 'buildkitd';

/** One image to build, as the build stage hands it to the builder. */
export interface BuildJob {
  ctx: RunContext;
  project: Project;
  plan: ImagePlan;
  /** The local Engine: undefined when the builder pushes itself and the image goes to a registry. */
  engine?: ContainerEngine;
  registries: RegistryAccess;
  /** The image's labels (inputs, revision, created). */
  labels: Record<string, string>;
  /** The image goes to a registry (--push with one configured). */
  push: boolean;
  /** The run's reporter with the build secrets' values masked. */
  reporter: Reporter;
  signal: AbortSignal;
}

export interface BuiltImage {
  builder: BuiltWith;
  /** In words: "engine BuildKit", "classic builder" or "buildkitd tcp://…". */
  builtBy: string;
  /** Dockerfile steps the build went through, and how many of them came from the cache. */
  steps: number;
  cachedSteps: number;
}

/**
 * A way of building images (Skaffold's Builder): the Engine's BuildKit (engine-buildkit.ts), its
 * classic builder (engine-classic.ts) or a pool of buildkitd (buildkitd-pool.ts). The build stage
 * (build-images.ts) decides what to build, asks the builder, and pushes through the Engine unless
 * the builder pushed itself; it never asks which builder it has.
 *
 * A builder's file exports a `BuilderCandidate`: it reads its own settings, checks them before
 * anything is built (a bad one is a ConfigError, exit 2) and returns the builder, or undefined when
 * the settings do not ask for it. Adding a builder (say a Kubernetes-pod buildkitd, `kube-pod://`)
 * is one new file here plus one line in BUILDER_CANDIDATES (choose-builder.ts).
 */
export interface ImageBuilder {
  /** Build secrets reach the build: only a buildkitd's session carries them. */
  readonly takesSecrets: boolean;
  /** With a registry, the builder pushes the image itself: the stage needs no Engine for it. */
  readonly pushes: boolean;
  /**
   * Builds one image; with `job.push` and `pushes`, into the registry, else into `job.engine`.
   * A failed step is a WorkFailedError of kind 'build' whose detail is a BuildFailureDetail.
   */
  build(job: BuildJob): Promise<BuiltImage>;
  /**
   * Before anything is built: whether it can build every platform of the images (`platforms:`),
   * a ConfigError (exit 2) naming the image and platform when not.
   */
  prepare(ctx: RunContext, project: Project, plans: ImagePlan[], push: boolean): Promise<void>;
}

/** A builder's entry in the list of builders: the builder the run's settings ask for, or undefined. */
export type BuilderCandidate = (ctx: RunContext, project: Project) => Promise<ImageBuilder | undefined>;
