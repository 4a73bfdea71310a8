import { BuildStepFailure } from '../build-failure.js';
import { originalLine } from '../buildkit-trace.js';
import { contextTar } from '../context-tar.js';
import { parseDockerfile, withLabels } from '../dockerfile.js';
import type { RunContext } from '../../context.js';
import { ConfigError } from '../../errors.js';
import type { Project } from '../../project.js';
import type { ImagePlan } from '../image-plan.js';
import type { BuildJob, BuiltImage, ImageBuilder } from './image-builder.js';
import { stepFailure } from './step-failure.js';

const GENERATED_DOCKERFILE = '.skiff.Dockerfile';

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
 * The Engine builds its own platform only (both its builders): an image whose `platforms:` name
 * another is a ConfigError before anything is built. The Engine is asked only when an image has
 * platforms.
 */
export async function checkEnginePlatforms(ctx: RunContext, project: Project, plans: ImagePlan[]): Promise<void> {
  const multi = plans.filter((p) => p.platforms);
  if (!multi.length) return;
  const engine = await ctx.docker();
  await engine.ping();
  const own = await engine.platform();
  for (const plan of multi) {
    const other = plan.platforms!.find((p) => p !== own);
    if (!other) continue;
    const pos = project.config.positions.of(`images.${plan.name}.platforms`);
    throw new ConfigError(
      `${project.config.file}:${pos.line}:${pos.col}: image ${plan.name} needs ${other}; the Docker Engine (${engine.endpoint.describe}) builds only ${own}; configure buildkitd builders (builder: in ${project.config.file}: one per architecture, or one with QEMU emulating ${other}), or build ${own} alone with --platform ${own}`,
    );
  }
}

/**
 * The Docker Engine's classic builder (`POST /build`): SKIFF_BUILDER=classic, or where the Engine
 * has no BuildKit (engine-buildkit.ts falls back to it). Builds into the Engine; the stage pushes.
 */
export class EngineClassicBuilder implements ImageBuilder {
  readonly takesSecrets = false;
  readonly pushes = false;

  /** `why`: why this builder and not BuildKit, for the debug log ("SKIFF_BUILDER=classic"). */
  constructor(private readonly why?: string) {}

  prepare(ctx: RunContext, project: Project, plans: ImagePlan[]): Promise<void> {
    return checkEnginePlatforms(ctx, project, plans);
  }

  async build(job: BuildJob, why = this.why): Promise<BuiltImage> {
    const { project, plan, engine, labels, reporter, signal } = job;
    if (!engine) throw new Error('no Docker Engine for an Engine build');
    // The labels go into one LABEL step of a generated Dockerfile (the Engine API's labels parameter
    // costs a step per label); the Engine removes it and the generated .dockerignore from the
    // context (they list themselves), so COPY never sees them.
    const generated = withLabels(plan.dockerfileText, plan.config.target, labels);
    const extraFiles = {
      [GENERATED_DOCKERFILE]: generated,
      '.dockerignore': `.dockerignore\n${GENERATED_DOCKERFILE}\n`,
    };
    const source = { kind: project.mode, repo: project.repo } as const;
    const classic = new ClassicSteps(`LABEL "${Object.keys(labels)[0]}"=`);
    try {
      await engine.buildClassic({
        input: () => ({ context: contextTar(source, plan.entries, extraFiles), dockerfile: GENERATED_DOCKERFILE, labels: {} }),
        tag: plan.ref,
        target: plan.config.target,
        buildArgs: plan.buildArgs,
        registryAuth: await job.registries.all(),
        onLog: (line) => {
          if (classic.show(line)) reporter.log(plan.name, line);
        },
        signal,
      });
    } catch (e) {
      if (!(e instanceof BuildStepFailure)) throw e;
      throw stepFailure(plan, e, parseDockerfile(plan.dockerfileText), (line) => originalLine(plan.dockerfileText, generated, line));
    }
    reporter.debug(`${plan.name}: built with the classic builder${why ? ` (${why})` : ''}`);
    return { builder: 'classic', builtBy: 'classic builder', ...classic.counts };
  }
}
