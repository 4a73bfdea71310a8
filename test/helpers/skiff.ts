import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const skiffBin = join(repoRoot, 'bin', 'skiff');
export const REGISTRY = '127.0.0.1:5000';
export const AUTH_REGISTRY = '127.0.0.1:5001';
export const AUTH_USER = process.env.SKIFF_TEST_REGISTRY_USER ?? 'skiff';
export const AUTH_PASSWORD = process.env.SKIFF_TEST_REGISTRY_PASSWORD ?? 'skiff-test-secret';

export interface SkiffRun {
  exitCode: number;
  stdout: string;
  stderr: string;
  /** stdout and stderr together, for "never printed" assertions. */
  all: string;
}

const cleanups: string[] = [];

/** Copies a fixture into a fresh temp dir and commits it as the first commit of a new repository. */
export async function fixtureRepo(name: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), `skiff-${name}-`));
  cleanups.push(dir);
  await cp(join(repoRoot, 'fixtures', name), dir, { recursive: true });
  await git(dir, 'init', '-q', '-b', 'main');
  await commitAll(dir, 'initial');
  return dir;
}

/**
 * A fresh temp dir `skiff-<prefix>-…` holding `files` (path → content),
 * committed as the first commit of a new repository. The caller removes it.
 */
export async function committedProject(prefix: string, files: Record<string, string>, message: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), `skiff-${prefix}-`));
  for (const [path, content] of Object.entries(files)) {
    await mkdir(dirname(join(dir, path)), { recursive: true });
    await writeFile(join(dir, path), content);
  }
  await git(dir, 'init', '-q', '-b', 'main');
  await commitAll(dir, message);
  return dir;
}

export async function git(dir: string, ...args: string[]) {
  return execa('git', ['-c', 'user.email=test@skiff.local', '-c', 'user.name=skiff test', ...args], { cwd: dir });
}

export async function commitAll(dir: string, message: string) {
  await git(dir, 'add', '-A');
  await git(dir, 'commit', '-q', '--allow-empty', '-m', message);
}

export async function editFile(dir: string, path: string, edit: (text: string) => string) {
  const file = join(dir, path);
  await writeFile(file, edit(await readFile(file, 'utf8')));
}

/** A registry path no other test uses, so tests never see each other's images. */
export function uniqueRegistry(prefix = REGISTRY): string {
  return `${prefix}/t${Date.now().toString(36)}${Math.random().toString(36).slice(2, 7)}`;
}

export async function skiff(args: string[], opts: { cwd: string; env?: Record<string, string | undefined>; timeoutMs?: number }): Promise<SkiffRun> {
  const env: Record<string, string | undefined> = { ...process.env, CI: undefined, GITLAB_CI: undefined, NO_COLOR: '1', ...opts.env };
  const r = await execa(skiffBin, args, { cwd: opts.cwd, env, extendEnv: false, reject: false, all: true, timeout: opts.timeoutMs ?? 600_000 });
  return { exitCode: r.exitCode ?? -1, stdout: r.stdout, stderr: r.stderr, all: r.all ?? '' };
}

export async function removeTempDirs() {
  for (const d of cleanups.splice(0)) await rm(d, { recursive: true, force: true });
}

/** The manifest digest of repository:tag in a registry on loopback, or undefined. */
export async function registryDigest(repository: string, tag: string, auth?: { user: string; password: string }): Promise<string | undefined> {
  const [host, ...path] = repository.split('/');
  const headers: Record<string, string> = { accept: 'application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json' };
  if (auth) headers.authorization = `Basic ${Buffer.from(`${auth.user}:${auth.password}`).toString('base64')}`;
  const res = await fetch(`http://${host}/v2/${path.join('/')}/manifests/${tag}`, { method: 'HEAD', headers });
  if (res.status === 404) return undefined;
  if (!res.ok) throw new Error(`registry answered ${res.status}`);
  return res.headers.get('docker-content-digest') ?? undefined;
}

export async function registryTags(repository: string): Promise<string[]> {
  const [host, ...path] = repository.split('/');
  const res = await fetch(`http://${host}/v2/${path.join('/')}/tags/list`);
  if (res.status === 404) return [];
  const body = (await res.json()) as { tags?: string[] | null };
  return body.tags ?? [];
}

/** Docker Engine events (image and container) between two times, through the Engine API. */
export async function engineEvents(
  sinceSec: number,
  untilSec: number,
): Promise<Array<{ Type: string; Action: string; Actor?: { Attributes?: Record<string, string> } }>> {
  const r = await execa('curl', ['-s', '--unix-socket', '/var/run/docker.sock', `http://localhost/events?since=${sinceSec}&until=${untilSec}`]);
  return r.stdout
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l));
}

export async function dockerImageId(ref: string): Promise<string | undefined> {
  const r = await execa('docker', ['image', 'inspect', '--format', '{{.Id}}', ref], { reject: false });
  return r.exitCode === 0 ? r.stdout.trim() : undefined;
}

/** One image of `skiff build -o json`. */
export interface BuiltImage {
  image: string;
  reference: string;
  tag: string;
  digest?: string;
  built: boolean;
  pushed: boolean;
  reason: string;
  changes?: string[];
  builder?: string;
  builtBy?: string;
  steps?: number;
  cachedSteps?: number;
}

/** The images of a `skiff build -o json` result, by name. */
export function builtImages(stdout: string): Record<string, BuiltImage> {
  return Object.fromEntries((JSON.parse(stdout) as { images: BuiltImage[] }).images.map((i) => [i.image, i]));
}
