import { existsSync } from 'node:fs';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { basename, dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import ejs from 'ejs';
import { ConfigError } from '../errors.js';
import type { RunContext } from '../context.js';
import { findRepoRoot } from '../adapters/git.js';
import { folderInside, writeNoFollow } from '../adapters/repo-files.js';
import { REPO_KEY_FILE } from '../secrets/key-lookup.js';
import { CONFIG_FILE, loadConfig } from '../config/load.js';

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
export interface InitResult {
  written: string[];
  kept: string[];
  /** What init chose not to write, and why. */
  notes: string[];
}

export async function runInit(ctx: RunContext, opts: InitOptions): Promise<InitResult> {
  const root = await findRepoRoot(ctx.cwd, ctx.env);
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
  const notes: string[] = [];
  // A project with templates of its own keeps them alone: the skeleton would be applied with them.
  const ownKube = await hasFiles(join(root, '.kube'));
  if (ownKube) notes.push('.kube/ has templates already: the skeleton is not added to it');
  for (const template of (await walk(TEMPLATES)).sort()) {
    const dest = destination(template);
    const target = join(root, dest);
    if (template.startsWith('.kube/') && ownKube) continue;
    if (existsSync(target)) {
      kept.push(dest);
      continue;
    }
    if (dest === '.dockerignore' && !(await buildsFromRoot(root))) {
      notes.push(
        '.dockerignore not written: no image of skiff.yaml builds from the repository root, so .kube/ and skiff.yaml are outside every build context already',
      );
      continue;
    }
    const source = await readFile(join(TEMPLATES, template), 'utf8');
    // skiff.yaml, .gitlab-ci.yml and .dockerignore are rendered now; .kube/ templates stay templates.
    const content = template.startsWith('.kube/') ? source : ejs.render(source, { project, registry });
    // Created exclusively, in folders that are not symlinks: nothing is written through a link the repository holds.
    await folderInside(root, dirname(dest));
    await writeFile(target, content, { flag: 'wx' });
    written.push(relative(root, target));
  }
  // The secret key may sit at the root for a laptop's deploys, but never in a commit; nor skiff's output.
  ((await ignoreInGit(root, [REPO_KEY_FILE, '.skiff/'])) ? written : kept).push('.gitignore');
  return { written, kept, notes };
}

/** Adds the entries missing from .gitignore (created when missing); false when all are there already. */
async function ignoreInGit(root: string, entries: string[]): Promise<boolean> {
  const file = join(root, '.gitignore');
  const text = existsSync(file) ? await readFile(file, 'utf8') : '';
  const lines = new Set(text.split(/\r?\n/).map((l) => l.trim().replace(/^\//, '')));
  const missing = entries.filter((e) => !lines.has(e) && !lines.has(e.replace(/\/$/, '')));
  if (missing.length === 0) return false;
  await writeNoFollow(file, `${text}${text === '' || text.endsWith('\n') ? '' : '\n'}${missing.join('\n')}\n`, '.gitignore');
  return true;
}

async function hasFiles(dir: string): Promise<boolean> {
  try {
    return (await walk(dir)).length > 0;
  } catch {
    return false;
  }
}

/**
 * Whether an image of the project's skiff.yaml (the one there, else the one
 * init writes, which builds from the root) has the repository root as its
 * context: only there does a root .dockerignore take effect.
 */
async function buildsFromRoot(root: string): Promise<boolean> {
  if (!existsSync(join(root, CONFIG_FILE))) return true;
  try {
    const config = await loadConfig(root, { cwd: root });
    return Object.values(config.images).some((i) => i.context === '' || i.context === '.');
  } catch {
    return true; // an unreadable skiff.yaml is reported by the commands that use it
  }
}
