import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { basename, dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import ejs from 'ejs';
import { ConfigError } from '../errors.js';
import type { RunContext } from '../context.js';
import { findRepoRoot } from '../adapters/git.js';

const TEMPLATES = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'templates', 'init');

export interface InitOptions {
  project?: string;
  registry?: string;
}

/** Where each template lands in the project. */
function destination(templatePath: string): string {
  if (templatePath.startsWith('.kube/')) return templatePath;
  const name = templatePath.replace(/\.ejs$/, '');
  return name === 'gitlab-ci.yml' || name === 'dockerignore' ? `.${name}` : name;
}

async function walk(dir: string, prefix = ''): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const rel = prefix ? `${prefix}/${e.name}` : e.name;
    if (e.isDirectory()) out.push(...(await walk(join(dir, e.name), rel)));
    else out.push(rel);
  }
  return out;
}

/**
 * skiff init: writes into the repository skiff.yaml, a .kube/ skeleton, a
 * .gitlab-ci.yml and a .dockerignore that keeps deployment files out of the
 * image. Never overwrites: existing files are reported and kept.
 */
export async function runInit(ctx: RunContext, opts: InitOptions): Promise<{ written: string[]; kept: string[] }> {
  const root = await findRepoRoot(ctx.cwd);
  const project =
    opts.project ??
    basename(root)
      .toLowerCase()
      .replace(/[^a-z0-9-]+/g, '-')
      .replace(/^-+|-+$/g, '');
  if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(project))
    throw new ConfigError(`cannot derive a project name from "${basename(root)}"; pass --project NAME (lower-case letters, digits, "-")`);
  const registry = opts.registry ?? `127.0.0.1:5000/${project}`;
  const written: string[] = [];
  const kept: string[] = [];
  for (const template of (await walk(TEMPLATES)).sort()) {
    const dest = destination(template);
    const target = join(root, dest);
    if (existsSync(target)) {
      kept.push(dest);
      continue;
    }
    const source = await readFile(join(TEMPLATES, template), 'utf8');
    // skiff.yaml, .gitlab-ci.yml and .dockerignore are rendered now; .kube/ templates stay templates.
    const content = template.startsWith('.kube/') ? source : ejs.render(source, { project, registry });
    await mkdir(dirname(target), { recursive: true });
    await writeFile(target, content, { flag: 'wx' });
    written.push(relative(root, target));
  }
  return { written, kept };
}
