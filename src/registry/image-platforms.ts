import type { CiContext } from '../gitlab/ci-variables.js';
import { mapLimit } from '../core/concurrency.js';
import { findCredentials, type RegistryCredentials } from './credentials.js';
import { parseImageRef } from './image-ref.js';
import { RegistryClient } from './registry-client.js';

/**
 * The platforms an image reference provides, read from its registry: an
 * index's (manifest list's) platforms, or a single manifest's config
 * os/architecture/variant. For deploy's node check, which is advisory about
 * what it cannot know: an image whose platforms cannot be read is skipped, never an error.
 */

/** `linux/arm64`, `linux/arm/v7`: os, architecture and variant as an index entry or image config names them. */
export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

/** A platform question is answered within this, or the image is skipped: a registry that hangs never holds a deploy. */
export const PLATFORM_LOOKUP_TIMEOUT_MS = 10_000;
/** An image config is small; one past this is not read. */
const MAX_CONFIG_BYTES = 4 << 20;
const PARALLEL_LOOKUPS = 8;
/** The distribution spec's repository name, tag and digest grammar. */
const REPOSITORY = /^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$/;
const TAG = /^\w[\w.-]{0,127}$/;
const DIGEST = /^sha256:[0-9a-f]{64}$/;

interface IndexEntry {
  platform?: { os?: string; architecture?: string; variant?: string };
  annotations?: Record<string, string>;
}

/**
 * A manifest body taken apart: an index's platforms (attestation manifests,
 * `unknown/unknown` or annotated `vnd.docker.reference.type: attestation-manifest`,
 * left out), or the config digest of a single-platform manifest; undefined
 * for anything else (an artifact, a schema 1 manifest).
 */
export function manifestPlatforms(body: unknown): { platforms: Platform[] } | { config: string } | undefined {
  if (!body || typeof body !== 'object') return undefined;
  const m = body as { manifests?: unknown; config?: { digest?: unknown } };
  if (Array.isArray(m.manifests)) {
    const platforms: Platform[] = [];
    for (const e of m.manifests as IndexEntry[]) {
      const p = e?.platform;
      if (!p?.os || !p.architecture || (p.os === 'unknown' && p.architecture === 'unknown')) continue;
      if (e.annotations?.['vnd.docker.reference.type'] === 'attestation-manifest') continue;
      platforms.push({ os: p.os, architecture: p.architecture, ...(p.variant ? { variant: p.variant } : {}) });
    }
    return { platforms };
  }
  if (typeof m.config?.digest === 'string') return { config: m.config.digest };
  return undefined;
}

/** The platform an image config names; undefined when it names none (not an image's config). */
export function configPlatform(body: unknown): Platform | undefined {
  if (!body || typeof body !== 'object') return undefined;
  const c = body as { os?: unknown; architecture?: unknown; variant?: unknown };
  if (typeof c.os !== 'string' || typeof c.architecture !== 'string' || !c.os || !c.architecture) return undefined;
  return { os: c.os, architecture: c.architecture, ...(typeof c.variant === 'string' && c.variant ? { variant: c.variant } : {}) };
}

export interface PlatformLookupOptions {
  env: NodeJS.ProcessEnv;
  ci: Pick<CiContext, 'registryLogin'>;
  /** Hosts asked even without credentials: the project's registry. Any other host is asked only when credentials for it are configured. */
  registries: readonly string[];
  signal: AbortSignal;
  /** Why an image is skipped, for --verbose. */
  debug: (message: string) => void;
  timeoutMs?: number;
  /** For tests: another fetch. */
  fetch?: typeof fetch;
}

/**
 * Each image's platforms, every reference asked once and all of them in
 * parallel; undefined for an image that is not judged (its registry is not
 * one skiff was configured for, is unreachable or slow, or has no such image).
 */
export async function imagePlatforms(images: readonly string[], opts: PlatformLookupOptions): Promise<Map<string, Platform[] | undefined>> {
  const clients = new Map<string, Promise<RegistryClient | undefined>>();
  const clientFor = (host: string) => {
    let c = clients.get(host);
    if (!c) clients.set(host, (c = registryClient(host, opts)));
    return c;
  };
  const unique = [...new Set(images)];
  const answers = await mapLimit(unique, PARALLEL_LOOKUPS, async (image) => {
    const ref = parseImageRef(image);
    const client = await clientFor(ref.host);
    if (!client) {
      opts.debug(`image ${image}: registry ${ref.host} is not configured for skiff (no credentials); its platforms are not checked`);
      return undefined;
    }
    // Docker Hub's official images live under library/.
    const path = ref.host === 'docker.io' && !ref.path.includes('/') ? `library/${ref.path}` : ref.path;
    const reference = ref.digest ?? ref.tag ?? 'latest';
    // A template's image is the repository's text: nothing but a repository and a tag or digest goes into a URL.
    if (!REPOSITORY.test(path) || !(TAG.test(reference) || DIGEST.test(reference))) {
      opts.debug(`image ${image}: not a valid image reference; its platforms are not checked`);
      return undefined;
    }
    try {
      const platforms = await readPlatforms(client, path, reference);
      if (!platforms?.length) opts.debug(`image ${image}: no platforms in its registry's answer; not checked`);
      return platforms?.length ? platforms : undefined;
    } catch (e) {
      if (opts.signal.aborted) throw e;
      opts.debug(`image ${image}: platforms unknown (${(e as Error).message}); not checked`);
      return undefined;
    }
  });
  return new Map(unique.map((image, i) => [image, answers[i]]));
}

async function readPlatforms(client: RegistryClient, repository: string, reference: string): Promise<Platform[] | undefined> {
  const m = await client.manifest(repository, reference, true);
  if (!m?.body) throw new Error(`not in registry ${client.host}`);
  const parsed = manifestPlatforms(JSON.parse(m.body.toString('utf8')) as unknown);
  if (!parsed) return undefined;
  if ('platforms' in parsed) return parsed.platforms;
  const config = configPlatform(JSON.parse((await client.blob(repository, parsed.config, MAX_CONFIG_BYTES)).toString('utf8')) as unknown);
  return config ? [config] : undefined;
}

/**
 * A client for a host skiff may ask: the project's registry, or one it has
 * credentials for; undefined for any other (a third-party registry is never
 * contacted only to learn an image's platforms). Its requests give up after
 * the lookup timeout and when the run is interrupted.
 */
async function registryClient(host: string, opts: PlatformLookupOptions): Promise<RegistryClient | undefined> {
  let credentials: RegistryCredentials | undefined;
  try {
    credentials = await findCredentials(host, opts.env, opts.ci);
  } catch {
    return undefined; // a misconfiguration the image resolution reports where it matters
  }
  if (!credentials && !opts.registries.includes(host)) return undefined;
  const timeoutMs = opts.timeoutMs ?? PLATFORM_LOOKUP_TIMEOUT_MS;
  const base = opts.fetch ?? fetch;
  const bounded: typeof fetch = (input, init) => {
    const signals = [AbortSignal.timeout(timeoutMs), opts.signal, ...(init?.signal ? [init.signal] : [])];
    return base(input, { ...init, signal: AbortSignal.any(signals) });
  };
  return new RegistryClient(host, credentials, { env: opts.env, fetch: bounded });
}
