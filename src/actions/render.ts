import { mkdir, realpath } from 'node:fs/promises';
import { isAbsolute, join, relative, resolve } from 'node:path';
import { stringify } from 'yaml';
import { folderInside, writeNoFollow } from '../adapters/repo-files.js';
import type { RunContext } from '../context.js';
import { mapLimit } from '../core/concurrency.js';
import { pathInside } from '../core/paths.js';
import type { Manifest } from '../kube/objects.js';
import type { ProjectOptions } from '../project.js';
import { renderEnvironment, type RenderFlags } from '../stages/release-inputs.js';

export interface RenderOptions extends ProjectOptions, RenderFlags {
  env: string;
  namespace?: string;
  /** Write one file per object into this folder instead of returning them for printing. */
  outputDir?: string;
  /** Leave Secret values and secret strings in clear. */
  showSecrets?: boolean;
}

export interface RenderResult {
  release: string;
  namespace: string;
  images: Record<string, string>;
  manifests: Manifest[];
  /** Whether any value was masked (without --show-secrets). */
  masked: boolean;
}

/** skiff render: the objects a deploy would apply, without touching a cluster. */
export async function runRender(ctx: RunContext, opts: RenderOptions): Promise<RenderResult> {
  const { project, target, images, rendered } = await renderEnvironment(ctx, { ...opts, offline: true });
  let manifests = rendered.manifests;
  if (!opts.showSecrets) manifests = manifests.map((m) => ({ ...m, object: rendered.redactor.object(m.object) }));
  const masked = manifests.some((m, i) => m.object !== rendered.manifests[i]!.object);
  if (opts.outputDir) {
    // A folder inside the repository is made as every output there is: no symlink on the way followed (the
    // repository may commit one), .skiff ignoring itself. Paths are compared as the file system has them, so a
    // symlinked spelling of the repository is no way around that. A folder outside is the user's to name.
    const root = await realpath(project.root);
    const dir = resolve(await realpath(ctx.cwd), opts.outputDir);
    const inRepo = relative(root, dir);
    const inside = inRepo === '' || (!isAbsolute(inRepo) && inRepo.split(/[\\/]/)[0] !== '..');
    if (inside) await folderInside(root, inRepo);
    else await mkdir(dir, { recursive: true });
    // Written a few at a time: a thousand sequential writes would be most of the run.
    await mapLimit(manifests, 16, (m) => {
      const name = `${m.object.kind.toLowerCase()}-${m.object.metadata.name}.yaml`;
      const file = pathInside(dir, name, `${m.object.kind} "${m.object.metadata.name}": the file name`);
      return writeNoFollow(file, stringify(m.object), join(opts.outputDir!, name));
    });
  }
  return { release: target.release, namespace: target.namespace, images, manifests, masked };
}
