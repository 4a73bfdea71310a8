import { createHash } from 'node:crypto';
import { mkdir, readFile, readlink, writeFile } from 'node:fs/promises';
import { dirname, join, posix } from 'node:path';
import { BlobReader, listCommitTree, listWorkingTree } from '../adapters/git.js';
import { pathInside } from '../core/paths.js';
import { ConfigError } from '../errors.js';
import type { Project } from '../project.js';

/** The project's own chart, in werf's layout: a folder at the repository's root. */
export const OWN_CHART_DIR = '.helm';

/** A file of a chart folder in the repository: its path below the folder and its bytes. */
export interface ChartFile {
  path: string;
  content: Buffer;
}

/** The most a chart folder may hold: charts are small; a large one is data that belongs elsewhere. */
const CHART_MAX_BYTES = 64 << 20;

/**
 * Every file of a folder of the repository, from the commit (default) or the
 * working tree (--dev), as chart files. A symbolic link is refused before
 * anything is read through it: a hostile chart cannot point skiff at a file
 * outside the repository.
 */
export async function readRepoFolder(project: Project, folder: string): Promise<ChartFile[]> {
  const prefix = `${folder}/`;
  const fromCommit = project.mode === 'commit';
  const entries = fromCommit ? await listCommitTree(project.repo, project.git.commit, folder) : await listWorkingTree(project.repo, folder);
  const inside = entries.filter((e) => e.repoPath.startsWith(prefix));
  for (const e of inside) {
    if (e.mode === '120000') {
      const target = fromCommit ? '' : ` to ${await readlink(join(project.root, e.repoPath))}`;
      throw new ConfigError(`${e.repoPath}: is a symbolic link${target}; skiff reads only regular files of a chart: put the content there instead`);
    }
    if (e.mode === '160000') throw new ConfigError(`${e.repoPath}: is a git submodule; a chart's files must be in this repository`);
  }
  const files: ChartFile[] = [];
  const reader = fromCommit ? new BlobReader(project.repo) : undefined;
  try {
    let total = 0;
    for (const e of inside) {
      const content = reader ? await reader.read(e.oid) : await readFile(join(project.root, e.repoPath));
      total += content.length;
      if (total > CHART_MAX_BYTES)
        throw new ConfigError(`${folder}/: more than ${CHART_MAX_BYTES >> 20} MB of files; a chart holds templates and values, not data`);
      files.push({ path: e.repoPath.slice(prefix.length), content });
    }
  } finally {
    reader?.close();
  }
  return files;
}

/** Whether the folder has the file (a path below it). */
export function hasFile(files: ChartFile[], path: string): boolean {
  return files.some((f) => f.path === path);
}

/** Writes chart files below `dir` (a folder skiff made): every path stays inside it. */
export async function writeChartFiles(dir: string, files: ChartFile[]): Promise<void> {
  for (const f of files) {
    const path = pathInside(dir, f.path, 'chart file');
    await mkdir(dirname(path), { recursive: true, mode: 0o700 });
    await writeFile(path, f.content, { mode: 0o600, flag: 'wx' });
  }
}

/** A digest of a folder's files (paths and contents): what a record names an in-repository chart by. */
export function folderDigest(files: ChartFile[]): string {
  const hash = createHash('sha256');
  for (const f of [...files].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))) {
    hash.update(`${f.path}\0${f.content.length}\0`);
    hash.update(f.content);
  }
  return `sha256:${hash.digest('hex')}`;
}

/** A repository-relative folder named relative to another (a `file://` dependency), or a ConfigError when it leaves the repository. */
export function repoRelative(from: string, relativePath: string, what: string): string {
  const joined = posix.normalize(posix.join(from, relativePath));
  if (posix.isAbsolute(relativePath) || joined === '..' || joined.startsWith('../') || joined === '.') {
    throw new ConfigError(
      `${what}: "${relativePath}" is outside the repository; a chart's dependencies must be folders of this repository or charts in a registry`,
    );
  }
  return joined.replace(/\/$/, '');
}

/** Reads a file of the chart as YAML-free text (Chart.yaml, Chart.lock are parsed by the caller). */
export function fileText(files: ChartFile[], path: string): string | undefined {
  return files.find((f) => f.path === path)?.content.toString('utf8');
}
