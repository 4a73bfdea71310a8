import type { RunContext } from '../context.js';
import { ConfigError } from '../errors.js';
import { loadProject, pushRegistry, type ProjectOptions } from '../project.js';
import { buildPlanned, type BuildResult, type ImageBuildOptions } from '../build/build-images.js';
import { parsePlatformFlag, planImages } from '../build/image-plan.js';
import { openSigning, signBuildResult, withSigning } from '../signing/signing-run.js';

export interface BuildOptions extends ProjectOptions, ImageBuildOptions {
  /** Images to build (default: all), with what they depend on. */
  images?: string[];
  /** --platform: comma-separated platforms narrowing each image's configured ones. */
  platform?: string;
  /** Sign each pushed digest with cosign (SKIFF_COSIGN_KEY, COSIGN_PASSWORD). */
  sign?: boolean;
}

export type { BuildResult };

/** skiff build: the images of skiff.yaml from the commit, tagged by content; with --push, in the registry. */
export async function runBuild(ctx: RunContext, opts: BuildOptions): Promise<BuildResult> {
  // The Engine client (dockerode) is loaded only when an image must be built: loading it
  // blocks the event loop for longer than a no-op push build's git and registry work.
  const narrow = parsePlatformFlag(opts.platform);
  const project = await loadProject(ctx, opts);
  if (opts.sign && !opts.push) throw new ConfigError('--sign signs the images in the registry: add --push');
  if (opts.push) pushRegistry(project);
  const plans = await planImages(project, opts.images ?? [], narrow);
  if (!opts.sign) return buildPlanned(ctx, project, plans, opts);
  // The key is opened (and its password checked) before anything is built or pushed.
  const signing = await openSigning(ctx, ctx.cwd);
  return withSigning(ctx, signing, async (quiet) => signBuildResult(quiet, signing, await buildPlanned(quiet, project, plans, opts)));
}
