import type { RunContext } from '../../context.js';
import { ConfigError } from '../../errors.js';
import type { Project } from '../../project.js';
import { buildkitdPool } from './buildkitd-pool.js';
import { EngineBuildKitBuilder } from './engine-buildkit.js';
import { EngineClassicBuilder } from './engine-classic.js';
import type { BuilderCandidate, ImageBuilder } from './image-builder.js';

/**
 * The Docker Engine's builders, by SKIFF_BUILDER: unset (or "auto") lets the Engine decide, BuildKit
 * when it has it; "classic" or "buildkit" forces one.
 */
const engineBuilder: BuilderCandidate = async (ctx) => {
  const value = (ctx.env.SKIFF_BUILDER ?? '').trim().toLowerCase();
  if (value === '' || value === 'auto') return new EngineBuildKitBuilder(new EngineClassicBuilder());
  if (value === 'buildkit') return new EngineBuildKitBuilder();
  if (value === 'classic') return new EngineClassicBuilder('SKIFF_BUILDER=classic');
  throw new ConfigError(
    `SKIFF_BUILDER=${ctx.env.SKIFF_BUILDER}: not a builder; set it to buildkit or classic, or unset it to use BuildKit when the Engine has it`,
  );
};

/**
 * Every builder, in order of preference: the first whose settings ask for it builds every image of
 * the run. Each is asked, so a bad setting of any stops the run before anything is built. The
 * Engine's builders come last: they need no setting.
 */
const BUILDER_CANDIDATES: BuilderCandidate[] = [buildkitdPool, engineBuilder];

/** The run's builder, chosen once, its settings checked. */
export async function chooseBuilder(ctx: RunContext, project: Project): Promise<ImageBuilder> {
  let chosen: ImageBuilder | undefined;
  for (const candidate of BUILDER_CANDIDATES) {
    const builder = await candidate(ctx, project);
    chosen ??= builder;
  }
  return chosen!;
}
