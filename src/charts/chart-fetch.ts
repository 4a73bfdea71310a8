import { createHash, randomBytes } from 'node:crypto';
import { mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import { homedir } from 'node:os';
import { basename, dirname, isAbsolute, join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import type { ChartSource } from '../config/project-config.js';
import { ConfigError, InfrastructureError } from '../errors.js';
import type { CiContext } from '../gitlab/ci-variables.js';
import { findCredentials, type RegistryCredentials } from '../registry/credentials.js';
import { registryHost, repositoryPath } from '../registry/image-ref.js';
import { RegistryAccess, type RegistryClient } from '../registry/registry-client.js';
import { isInsecureRegistry, readBounded, REGISTRY_TIMEOUT_MS } from '../registry/transport.js';
import type { LockedChart } from './lock-file.js';
import { compareVersions, maxSatisfying, parseVersion } from './semver.js';

/**
 * Third-party charts from an OCI registry (Helm's layout) or a chart
 * repository (index.yaml), downloaded and cached by the sha256 of their
 * archive. Deploys read only what skiff.lock names: a cached archive whose
 * digest matches is used without any request.
 */

export interface ChartFetchContext {
  env: NodeJS.ProcessEnv;
  ci: Pick<CiContext, 'registryLogin'>;
}

type RemoteSource = ChartSource & { kind: 'oci' | 'repo' };

/** Charts are small; an archive or index past this is refused. */
const MAX_CHART_BYTES = 20 * 1024 * 1024;
const HELM_CONFIG_TYPE = 'application/vnd.cncf.helm.config.v1+json';
const HELM_CHART_LAYER_TYPE = 'application/vnd.cncf.helm.chart.content.v1.tar+gzip';
/** How many versions a "no version satisfies" message lists. */
const LISTED_VERSIONS = 10;

/** Where downloaded charts are kept (in its charts/ folder): SKIFF_CACHE_DIR, else $XDG_CACHE_HOME/skiff, else ~/.cache/skiff. */
export function chartCacheDir(env: NodeJS.ProcessEnv): string {
  if (env.SKIFF_CACHE_DIR) return env.SKIFF_CACHE_DIR;
  if (env.XDG_CACHE_HOME && isAbsolute(env.XDG_CACHE_HOME)) return join(env.XDG_CACHE_HOME, 'skiff');
  return join(env.HOME || homedir(), '.cache', 'skiff');
}

/** The highest version of the chart that satisfies the constraint, downloaded into the cache, and its archive's digest. */
export async function resolveChart(
  ctx: ChartFetchContext,
  name: string,
  source: RemoteSource,
  constraint: string,
): Promise<{ version: string; digest: string }> {
  const origin = chartOrigin(ctx, name, source);
  const versions = (await origin.versions()).filter((v) => parseVersion(v) !== undefined);
  const version = maxSatisfying(versions, constraint);
  if (version === undefined) throw noVersion(name, origin.shown, constraint, versions);
  const bytes = await origin.download(version);
  const digest = `sha256:${sha256(bytes)}`;
  await store(name, cachedChartPath(ctx.env, digest), bytes);
  return { version, digest };
}

/** The cached archive of the locked version: no request when the cache has it; else downloaded and checked against the lock's digest. */
export async function fetchLockedChart(ctx: ChartFetchContext, name: string, source: RemoteSource, locked: LockedChart): Promise<string> {
  if (!/^sha256:[0-9a-f]{64}$/.test(locked.digest)) {
    throw new ConfigError(`chart ${name}: skiff.lock's digest "${locked.digest}" is not sha256:<64 hex digits>; run "skiff charts update"`);
  }
  const path = cachedChartPath(ctx.env, locked.digest);
  const cached = await readFile(path).catch(() => undefined);
  if (cached && `sha256:${sha256(cached)}` === locked.digest) return path;
  const origin = chartOrigin(ctx, name, source);
  const bytes = await origin.download(locked.version);
  const digest = `sha256:${sha256(bytes)}`;
  if (digest !== locked.digest) {
    throw new ConfigError(
      `chart ${name}: ${origin.shown} ${locked.version} has digest ${digest} but skiff.lock says ${locked.digest}: the chart changed under the same version; check where it came from, then "skiff charts update"`,
    );
  }
  await store(name, path, bytes);
  return path;
}

/**
 * A private copy (0600, created anew at `dest`) of a cached archive, checked
 * against its digest once more: what helm reads cannot be swapped in a cache
 * folder others may write (a shared SKIFF_CACHE_DIR) after the check.
 */
export async function copyVerified(name: string, path: string, digest: string, dest: string): Promise<void> {
  const bytes = await readFile(path);
  if (`sha256:${sha256(bytes)}` !== digest) {
    throw new ConfigError(
      `chart ${name}: the cached archive ${path} changed while skiff used it (it is not ${digest}); run again, with a SKIFF_CACHE_DIR only you write`,
    );
  }
  const file = await open(dest, 'wx', 0o600);
  try {
    await file.writeFile(bytes);
  } finally {
    await file.close();
  }
}

function cachedChartPath(env: NodeJS.ProcessEnv, digest: string): string {
  return join(chartCacheDir(env), 'charts', `${digest.replace(':', '-')}.tgz`);
}

function sha256(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** Writes the archive to a fresh temporary file beside its place and renames it there: never through a symlink, never half written. */
async function store(name: string, path: string, bytes: Buffer): Promise<void> {
  const folder = dirname(path);
  const temp = join(folder, `.${basename(path)}.${randomBytes(8).toString('hex')}.tmp`);
  let created = false;
  try {
    await mkdir(folder, { recursive: true });
    const file = await open(temp, 'wx', 0o644);
    created = true;
    try {
      await file.writeFile(bytes);
    } finally {
      await file.close();
    }
    await rename(temp, path);
  } catch (e) {
    if (created) await rm(temp, { force: true });
    throw new ConfigError(`chart ${name}: cannot write the chart cache ${folder}: ${(e as Error).message}; set SKIFF_CACHE_DIR to a writable folder`, {
      cause: e,
    });
  }
}

function noVersion(name: string, shown: string, constraint: string, versions: string[]): ConfigError {
  const newest = [...new Set(versions)].sort((a, b) => compareVersions(b, a));
  const more = newest.length > LISTED_VERSIONS ? `, … (${newest.length} in all)` : '';
  const found = newest.length ? `it has ${newest.slice(0, LISTED_VERSIONS).join(', ')}${more}` : 'it has no versions';
  return new ConfigError(`chart ${name}: no version of ${shown} satisfies "${constraint}" (${found}); change its version: in skiff.yaml`);
}

/** One chart at its source: the versions it has, and one version's archive. */
interface ChartOrigin {
  /** The chart as skiff.yaml writes it, for messages. */
  shown: string;
  versions(): Promise<string[]>;
  download(version: string): Promise<Buffer>;
}

function chartOrigin(ctx: ChartFetchContext, name: string, source: RemoteSource): ChartOrigin {
  return source.kind === 'oci' ? ociOrigin(ctx, name, source.repository) : repoOrigin(ctx, name, source.url, source.name);
}

// ---- OCI registries: one tag per version ("+" stored as "_"), a manifest with Helm's config and one chart layer

interface OciManifest {
  config?: { mediaType?: string };
  layers?: { mediaType?: string; digest?: string }[];
}

function ociOrigin(ctx: ChartFetchContext, name: string, repository: string): ChartOrigin {
  const host = registryHost(repository);
  const path = host === repository.split('/')[0] ? repositoryPath(repository) : repository;
  const shown = `oci://${repository}`;
  let access: Promise<{ client: RegistryClient }> | undefined;
  const client = async () => (await (access ??= new RegistryAccess(ctx.env, ctx.ci).for(repository))).client;
  return {
    shown,
    versions: () => naming(name, async () => (await (await client()).tags(path)).map((tag) => tag.replace(/_/g, '+'))),
    download: (version) => naming(name, () => ociArchive(name, shown, path, version, client)),
  };
}

/** A registry's failure (unreachable, denied) names the chart it was for. */
async function naming<T>(name: string, work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (e) {
    if (!(e instanceof InfrastructureError)) throw e;
    throw new InfrastructureError(`chart ${name}: ${e.message}`, { cause: e, kind: e.kind === 'auth' ? 'auth' : 'infrastructure' });
  }
}

async function ociArchive(name: string, shown: string, path: string, version: string, client: () => Promise<RegistryClient>): Promise<Buffer> {
  const registry = await client();
  const host = registry.host;
  const tag = version.replace(/\+/g, '_');
  const found = await registry.manifest(path, tag, true);
  if (!found?.body) throw new ConfigError(`chart ${name}: ${shown} has no version ${version} (no tag ${tag}); run "skiff charts update"`);
  const manifest = parseManifest(found.body, `registry ${host} manifest of ${path}:${tag}`);
  const config = manifest.config?.mediaType;
  if (config !== HELM_CONFIG_TYPE) {
    const what = config ?? `none: ${found.mediaType || 'no manifest type'}`;
    throw new ConfigError(
      `chart ${name}: ${shown} ${version} is not a Helm chart (config ${what}); point chart: in skiff.yaml at a chart pushed with "helm push"`,
    );
  }
  const layer = manifest.layers?.find((l) => l.mediaType === HELM_CHART_LAYER_TYPE);
  if (!layer?.digest) throw new ConfigError(`chart ${name}: ${shown} ${version} has no chart layer (${HELM_CHART_LAYER_TYPE}); push it again with "helm push"`);
  return registry.blob(path, layer.digest, MAX_CHART_BYTES);
}

function parseManifest(body: Buffer, what: string): OciManifest {
  try {
    const parsed = JSON.parse(body.toString('utf8')) as unknown;
    if (parsed && typeof parsed === 'object') return parsed;
  } catch {
    // reported below
  }
  throw new InfrastructureError(`${what} is not a JSON object; refusing it`);
}

// ---- Chart repositories: <url>/index.yaml lists each chart's versions with the archive's URL and digest

interface IndexEntry {
  version: string;
  urls: string[];
  /** Hex sha256 of the archive, when the index gives one. */
  digest?: string;
}

function repoOrigin(ctx: ChartFetchContext, name: string, url: string, chart: string): ChartOrigin {
  const shown = `${url}#${chart}`;
  const base = httpUrl(name, `${url.replace(/\/+$/, '')}/`, shown);
  const http = new ChartRepositoryHttp(ctx, name, base);
  let entries: Promise<IndexEntry[]> | undefined;
  const index = () => (entries ??= http.get(new URL('index.yaml', base), 'index').then((text) => indexEntries(name, text, shown, chart)));
  return {
    shown,
    versions: async () => (await index()).map((e) => e.version),
    download: async (version) => {
      const entry = (await index()).find((e) => e.version === version);
      if (!entry) throw new ConfigError(`chart ${name}: ${shown} has no version ${version} in its index.yaml; run "skiff charts update"`);
      const first = entry.urls[0];
      if (!first) throw new ConfigError(`chart ${name}: ${shown} ${version} has no urls in its index.yaml; the chart repository is broken`);
      let at: URL;
      try {
        at = httpUrl(name, new URL(first, base).href, shown);
      } catch (e) {
        if (e instanceof ConfigError) throw e;
        throw new ConfigError(`chart ${name}: ${shown} ${version} has an unreadable URL in its index.yaml; the chart repository is broken`);
      }
      const bytes = await http.get(at, 'archive');
      const listed = entry.digest?.replace(/^sha256:/, '').toLowerCase();
      if (listed && listed !== sha256(bytes)) {
        throw new ConfigError(
          `chart ${name}: ${shownUrl(at)} has digest sha256:${sha256(bytes)} but the repository's index.yaml says sha256:${listed}; the chart repository is inconsistent: check it, then run again`,
        );
      }
      return bytes;
    },
  };
}

/** An http(s) URL without credentials in it (they come from the same places as the registry's). */
function httpUrl(name: string, text: string, shown: string): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new ConfigError(`chart ${name}: ${shown} is not a URL; write https://<repository>#<chart> in skiff.yaml`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw new ConfigError(
      `chart ${name}: ${shownUrl(url)} is not http(s); skiff fetches charts from https:// (or http://) chart repositories and oci:// registries`,
    );
  }
  if (url.username || url.password) {
    throw new ConfigError(
      `chart ${name}: the URL of ${url.host} carries credentials; remove them and set SKIFF_REGISTRY_HOST/SKIFF_REGISTRY_USER/SKIFF_REGISTRY_PASSWORD or "docker login ${url.host}"`,
    );
  }
  return url;
}

/** A URL for messages: no query (signed URLs carry tokens there). */
function shownUrl(url: URL): string {
  return `${url.origin}${url.pathname}`;
}

function indexEntries(name: string, text: string, shown: string, chart: string): IndexEntry[] {
  let index: unknown;
  try {
    index = parseYaml(text);
  } catch (e) {
    throw new ConfigError(
      `chart ${name}: the index.yaml of ${shown} is not YAML (${(e as Error).message.split('\n')[0]}); check the chart repository's URL in skiff.yaml`,
    );
  }
  const all = (index as { entries?: unknown } | null)?.entries;
  if (!all || typeof all !== 'object') {
    throw new ConfigError(`chart ${name}: the index.yaml of ${shown} has no entries: it is not a chart repository; check the URL in skiff.yaml`);
  }
  const list = (all as Record<string, unknown>)[chart];
  if (!Array.isArray(list)) {
    const names = Object.keys(all).slice(0, LISTED_VERSIONS).join(', ');
    throw new ConfigError(
      `chart ${name}: the chart repository of ${shown} has no chart "${chart}" (it has ${names || 'none'}); check the name after "#" in skiff.yaml`,
    );
  }
  return list.flatMap((raw): IndexEntry[] => {
    const e = raw as { version?: unknown; urls?: unknown; digest?: unknown } | null;
    if (typeof e?.version !== 'string') return [];
    const urls = Array.isArray(e.urls) ? e.urls.filter((u): u is string => typeof u === 'string') : [];
    return [{ version: e.version, urls, digest: typeof e.digest === 'string' ? e.digest : undefined }];
  });
}

/** GETs from one chart repository, with Basic credentials for its own origin (never another host's, never plain HTTP but to loopback or an insecure registry). */
class ChartRepositoryHttp {
  private credentials: Promise<RegistryCredentials | undefined> | undefined;
  constructor(
    private readonly ctx: ChartFetchContext,
    private readonly name: string,
    private readonly base: URL,
  ) {}

  private async authorization(url: URL): Promise<string | undefined> {
    if (url.origin !== this.base.origin) return undefined;
    if (url.protocol === 'http:' && !isInsecureRegistry(url.host, this.ctx.env)) return undefined;
    const found = await (this.credentials ??= findCredentials(url.host, this.ctx.env, this.ctx.ci));
    if (!found || found.identityToken) return undefined;
    return `Basic ${Buffer.from(`${found.username}:${found.password}`).toString('base64')}`;
  }

  async get(url: URL, what: 'index'): Promise<string>;
  async get(url: URL, what: 'archive'): Promise<Buffer>;
  async get(url: URL, what: 'index' | 'archive'): Promise<string | Buffer> {
    const authorization = await this.authorization(url);
    let res: Response;
    try {
      res = await fetch(url, {
        headers: { ...(authorization ? { authorization } : {}), ...(what === 'archive' ? { 'accept-encoding': 'identity' } : {}) },
        signal: AbortSignal.timeout(REGISTRY_TIMEOUT_MS),
      });
    } catch (e) {
      const cause = (e as Error).cause instanceof Error ? ((e as Error).cause as Error).message : (e as Error).message;
      throw new InfrastructureError(`chart ${this.name}: chart repository ${url.host} is unreachable: ${cause}`, { cause: e });
    }
    if (!res.ok) {
      await res.body?.cancel();
      throw await this.refused(url, res.status, what);
    }
    const body = await readBounded(res, `chart ${this.name}: ${shownUrl(url)}`, MAX_CHART_BYTES);
    return what === 'index' ? body.toString('utf8') : body;
  }

  private async refused(url: URL, status: number, what: 'index' | 'archive'): Promise<Error> {
    if ((status === 401 || status === 403) && url.origin !== this.base.origin) {
      return new InfrastructureError(
        `chart ${this.name}: ${url.host} denied access to ${shownUrl(url)}; skiff sends the chart repository's credentials only to ${this.base.origin}`,
        { kind: 'auth' },
      );
    }
    if (status === 401 || status === 403) {
      const found = await this.credentials;
      const who = found
        ? `as "${found.username}" (credentials from ${found.origin}); check the user and password`
        : 'without credentials; set SKIFF_REGISTRY_HOST/USER/PASSWORD or "docker login"';
      return new InfrastructureError(`chart ${this.name}: chart repository ${url.host} denied access to ${shownUrl(url)} ${who}`, { kind: 'auth' });
    }
    if (status === 404 && what === 'index') {
      return new ConfigError(`chart ${this.name}: ${shownUrl(url)} does not exist (404): not a chart repository; check the chart's URL in skiff.yaml`);
    }
    return new InfrastructureError(`chart ${this.name}: chart repository ${url.host} answered ${status} for ${shownUrl(url)}`);
  }
}
