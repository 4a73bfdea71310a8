import type { RunContext } from '../context.js';
import { loadProject, pushRegistry, type ProjectOptions } from '../project.js';
import { buildPlanned, type BuildResult, type ImageBuildOptions } from '../build/build-images.js';
import { parsePlatformFlag, planImages } from '../build/image-plan.js';

export interface BuildOptions extends ProjectOptions, ImageBuildOptions {
  /** Images to build (default: all), with what they depend on. */
  images?: string[];
  /** --platform: comma-separated platforms narrowing each image's configured ones. */
  platform?: string;
}

export type { BuildResult };

/** skiff build: the images of skiff.yaml from the commit, tagged by content; with --push, in the registry. */
export async function runBuild(ctx: RunContext, opts: BuildOptions): Promise<BuildResult> {
  // The Engine client (dockerode) is loaded only when an image must be built: loading it
  // blocks the event loop for longer than a no-op push build's git and registry work.
  const narrow = parsePlatformFlag(opts.platform);
  const project = await loadProject(ctx, opts);
  if (opts.push) pushRegistry(project);
  const plans = await planImages(project, opts.images ?? [], narrow);
  return buildPlanned(ctx, project, plans, opts);
}
