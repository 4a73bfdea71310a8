import { InfrastructureError } from '../errors.js';
import type { CiContext } from '../gitlab/ci-variables.js';
import { findCredentials, type RegistryCredentials } from './credentials.js';
import { registryHost } from './image-ref.js';

const MANIFEST_TYPES = [
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
].join(', ');

export interface ManifestInfo {
  digest: string;
  mediaType: string;
  body?: Buffer;
}

/** No registry answer (manifest, tag list, token, image config) is read past this size. */
export const MAX_REGISTRY_RESPONSE_BYTES = 16 * 1024 * 1024;

/** A response body, refused once it passes `max` bytes: a registry's answers are not trusted to be small. */
async function readBounded(res: Response, what: string, max = MAX_REGISTRY_RESPONSE_BYTES): Promise<Buffer> {
  const declared = Number(res.headers.get('content-length') ?? 0);
  const tooLarge = () => new InfrastructureError(`${what} is larger than ${max} bytes; refusing it`);
  if (declared > max) {
    await res.body?.cancel();
    throw tooLarge();
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of (res.body ?? []) as AsyncIterable<Uint8Array>) {
    size += chunk.length;
    if (size > max) {
      await res.body?.cancel().catch(() => {});
      throw tooLarge();
    }
    chunks.push(Buffer.from(chunk));
  }
  return Buffer.concat(chunks);
}

async function readJson(res: Response, what: string): Promise<unknown> {
  const text = (await readBounded(res, what)).toString('utf8');
  try {
    return JSON.parse(text);
  } catch {
    throw new InfrastructureError(`${what} is not JSON (${text.slice(0, 80).replace(/\s+/g, ' ')}…)`);
  }
}

/** Plain HTTP for loopback registries (as the Engine allows), HTTPS for everything else. */
function registryBaseUrl(host: string): string {
  const insecure = /^(localhost|127\.\d+\.\d+\.\d+|\[::1\])(:\d+)?$/.test(host) || (process.env.SKIFF_INSECURE_REGISTRIES ?? '').split(',').includes(host);
  return `${insecure ? 'http' : 'https'}://${host === 'docker.io' ? 'registry-1.docker.io' : host}`;
}

/**
 * A client for one registry's v2 HTTP API: manifest existence checks,
 * manifest copies (for extra tags without a push) and image labels. Answers
 * Basic and Bearer challenges with the given credentials.
 */
export class RegistryClient {
  private authorization: string | undefined;
  constructor(
    readonly host: string,
    private readonly credentials?: RegistryCredentials,
    private readonly fetchImpl: typeof fetch = fetch,
  ) {}

  private async request(method: string, path: string, scope: string, init: { headers?: Record<string, string>; body?: Buffer } = {}): Promise<Response> {
    const url = `${registryBaseUrl(this.host)}${path}`;
    const send = () =>
      this.fetchImpl(url, {
        method,
        headers: { ...init.headers, ...(this.authorization ? { authorization: this.authorization } : {}) },
        body: init.body,
        signal: AbortSignal.timeout(30_000),
      });
    let res: Response;
    try {
      res = await send();
      if (res.status === 401) {
        await res.body?.cancel();
        await this.authenticate(res.headers.get('www-authenticate') ?? '', scope);
        res = await send();
      }
    } catch (e) {
      if (e instanceof InfrastructureError) throw e;
      throw new InfrastructureError(
        `registry ${this.host} is unreachable: ${(e as Error).cause instanceof Error ? ((e as Error).cause as Error).message : (e as Error).message}`,
        { cause: e },
      );
    }
    if (res.status === 401 || res.status === 403) {
      await res.body?.cancel();
      throw this.denied();
    }
    return res;
  }

  private denied(): InfrastructureError {
    const who = this.credentials ? `as "${this.credentials.username}" (credentials from ${this.credentials.origin})` : 'without credentials';
    const fix = this.credentials ? 'check the user and password' : 'set SKIFF_REGISTRY_USER and SKIFF_REGISTRY_PASSWORD, or "docker login"';
    return new InfrastructureError(`registry ${this.host} denied access ${who}; ${fix}`, { kind: 'auth' });
  }

  private async authenticate(challenge: string, scope: string): Promise<void> {
    const scheme = challenge.split(' ')[0]?.toLowerCase();
    if (!this.credentials && scheme !== 'bearer') throw this.denied();
    const basic = this.credentials ? `Basic ${Buffer.from(`${this.credentials.username}:${this.credentials.password}`).toString('base64')}` : undefined;
    if (scheme === 'basic') {
      this.authorization = basic;
      return;
    }
    if (scheme !== 'bearer') throw new InfrastructureError(`registry ${this.host} asks for unsupported authentication "${scheme}"`);
    const params = Object.fromEntries([...challenge.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1]!.toLowerCase(), m[2]!]));
    if (!params.realm) throw new InfrastructureError(`registry ${this.host} sent a Bearer challenge without a realm`);
    let url: URL;
    try {
      url = new URL(params.realm);
    } catch {
      throw new InfrastructureError(`registry ${this.host} sent a Bearer challenge whose realm is not a URL`);
    }
    // The realm comes from the registry's answer: the password goes there only over TLS (or to a loopback/insecure registry's own host).
    if (basic && url.protocol !== 'https:' && !(url.protocol === 'http:' && registryBaseUrl(url.host).startsWith('http:'))) {
      throw new InfrastructureError(
        `registry ${this.host} asks for the password to be sent to ${url.protocol}//${url.host} without TLS; refusing (a token service must use https)`,
      );
    }
    if (params.service) url.searchParams.set('service', params.service);
    url.searchParams.set('scope', params.scope ?? scope);
    const res = await this.fetchImpl(url, { headers: basic ? { authorization: basic } : {}, signal: AbortSignal.timeout(30_000) });
    if (!res.ok) {
      await res.body?.cancel();
      throw this.denied();
    }
    const body = (await readJson(res, `registry ${this.host} token service`)) as { token?: string; access_token?: string };
    const token = body.token ?? body.access_token;
    if (!token) throw this.denied();
    this.authorization = `Bearer ${token}`;
  }

  /** The manifest of repository:reference, or undefined when it does not exist. */
  async manifest(repository: string, reference: string, withBody = false): Promise<ManifestInfo | undefined> {
    const res = await this.request(withBody ? 'GET' : 'HEAD', `/v2/${repository}/manifests/${reference}`, `repository:${repository}:pull`, {
      headers: { accept: MANIFEST_TYPES },
    });
    if (res.status === 404) {
      await res.body?.cancel();
      return undefined;
    }
    if (!res.ok) {
      await res.body?.cancel();
      throw new InfrastructureError(`registry ${this.host} answered ${res.status} for ${repository}:${reference}`);
    }
    const body = withBody ? await readBounded(res, `registry ${this.host} manifest of ${repository}:${reference}`) : undefined;
    return { digest: res.headers.get('docker-content-digest') ?? '', mediaType: res.headers.get('content-type') ?? '', body };
  }

  /** Adds a tag to an existing manifest without pulling or pushing layers. */
  async tagManifest(repository: string, from: string, tag: string): Promise<void> {
    const m = await this.manifest(repository, from, true);
    if (!m?.body) throw new InfrastructureError(`registry ${this.host}: ${repository}:${from} vanished while tagging`);
    const res = await this.request('PUT', `/v2/${repository}/manifests/${tag}`, `repository:${repository}:pull,push`, {
      headers: { 'content-type': m.mediaType },
      body: m.body,
    });
    await res.body?.cancel();
    if (!res.ok) throw new InfrastructureError(`registry ${this.host} refused tag ${repository}:${tag} (${res.status})`);
  }

  /** Every tag of a repository (following the API's pagination); none when it does not exist. */
  async tags(repository: string): Promise<string[]> {
    const out: string[] = [];
    let path: string | undefined = `/v2/${repository}/tags/list?n=1000`;
    while (path) {
      const res = await this.request('GET', path, `repository:${repository}:pull`);
      if (res.status === 404) {
        await res.body?.cancel();
        return out;
      }
      if (!res.ok) {
        await res.body?.cancel();
        throw new InfrastructureError(`registry ${this.host} answered ${res.status} listing the tags of ${repository}`);
      }
      const body = (await readJson(res, `registry ${this.host} tag list of ${repository}`)) as { tags?: string[] | null };
      out.push(...(body.tags ?? []));
      const next = /<([^>]+)>;\s*rel="next"/.exec(res.headers.get('link') ?? '')?.[1];
      path = next ? (next.startsWith('/') ? next : new URL(next).pathname + new URL(next).search) : undefined;
    }
    return out;
  }

  /** When the image behind a digest was built (its config's "created"); undefined when unknown (an index). */
  async created(repository: string, digest: string): Promise<Date | undefined> {
    const created = Date.parse((await this.imageConfig(repository, digest))?.created ?? '');
    return Number.isNaN(created) ? undefined : new Date(created);
  }

  /** Deletes a manifest by digest (and with it every tag on it). */
  async deleteManifest(repository: string, digest: string): Promise<void> {
    const res = await this.request('DELETE', `/v2/${repository}/manifests/${digest}`, `repository:${repository}:delete`);
    await res.body?.cancel();
    if (res.status === 404) return; // gone already
    if (res.status === 405) throw new InfrastructureError(`registry ${this.host} does not allow deleting images (Distribution: storage.delete.enabled: true)`);
    if (!res.ok) throw new InfrastructureError(`registry ${this.host} refused to delete ${repository}@${digest} (${res.status})`);
  }

  /** The image config's labels (single-platform images), for explaining rebuilds. */
  async labels(repository: string, reference: string): Promise<Record<string, string> | undefined> {
    return (await this.imageConfig(repository, reference))?.config?.Labels ?? undefined;
  }

  /** The image config blob of a single-platform image; undefined for an index or a missing image. */
  private async imageConfig(repository: string, reference: string): Promise<{ created?: string; config?: { Labels?: Record<string, string> } } | undefined> {
    const m = await this.manifest(repository, reference, true);
    if (!m?.body) return undefined;
    const manifest = JSON.parse(m.body.toString()) as { config?: { digest: string } };
    if (!manifest.config) return undefined;
    const res = await this.request('GET', `/v2/${repository}/blobs/${manifest.config.digest}`, `repository:${repository}:pull`);
    if (!res.ok) {
      await res.body?.cancel();
      return undefined;
    }
    return (await readJson(res, `registry ${this.host} image config of ${repository}`)) as { created?: string; config?: { Labels?: Record<string, string> } };
  }
}

/** Registry access for one run: a client and credentials per registry host. */
export class RegistryAccess {
  private readonly clients = new Map<string, Promise<{ client: RegistryClient; credentials?: RegistryCredentials }>>();
  constructor(
    private readonly env: NodeJS.ProcessEnv,
    private readonly ci: Pick<CiContext, 'registryLogin'>,
  ) {}

  for(repository: string) {
    const host = registryHost(repository);
    let entry = this.clients.get(host);
    if (!entry) {
      entry = findCredentials(host, this.env, this.ci).then((credentials) => ({ client: new RegistryClient(host, credentials), credentials }));
      this.clients.set(host, entry);
    }
    return entry;
  }

  /** Credentials by host for every registry used so far, for FROM pulls during builds. */
  async all(): Promise<Record<string, RegistryCredentials>> {
    const out: Record<string, RegistryCredentials> = {};
    for (const [host, p] of this.clients) {
      const { credentials } = await p;
      if (credentials) out[host] = credentials;
    }
    return out;
  }
}
