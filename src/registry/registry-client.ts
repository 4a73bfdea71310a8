import { createHash } from 'node:crypto';
import { InfrastructureError } from '../errors.js';
import type { CiContext } from '../gitlab/ci-variables.js';
import { answerChallenge } from './auth.js';
import { findCredentials, type RegistryCredentials } from './credentials.js';
import { registryHost } from './image-ref.js';
import { manifestFor, parseIndex } from './image-index.js';
import { hostPlatform } from '../config/platform.js';
import { readBounded, readJson, registryBaseUrl, REGISTRY_TIMEOUT_MS } from './transport.js';

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

/**
 * A client for one registry's v2 HTTP API: manifest existence checks,
 * manifest copies (for extra tags without a push) and image labels. Answers
 * Basic and Bearer challenges with the given credentials.
 */
export class RegistryClient {
  private authorization: string | undefined;
  private readonly env: NodeJS.ProcessEnv;
  private readonly fetchImpl: typeof fetch;
  constructor(
    readonly host: string,
    private readonly credentials?: RegistryCredentials,
    /** The run's environment (SKIFF_INSECURE_REGISTRIES) and, for tests, another fetch. */
    options: { env?: NodeJS.ProcessEnv; fetch?: typeof fetch } = {},
  ) {
    this.env = options.env ?? {};
    this.fetchImpl = options.fetch ?? fetch;
  }

  private async request(method: string, path: string, scope: string, init: { headers?: Record<string, string>; body?: Buffer } = {}): Promise<Response> {
    const url = `${registryBaseUrl(this.host, this.env)}${path}`;
    const send = () =>
      this.fetchImpl(url, {
        method,
        headers: { ...init.headers, ...(this.authorization ? { authorization: this.authorization } : {}) },
        body: init.body,
        signal: AbortSignal.timeout(REGISTRY_TIMEOUT_MS),
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
    if (this.credentials?.identityToken)
      return new InfrastructureError(
        `registry ${this.host} denied access with the identity token from ${this.credentials.origin}; log in again ("docker login ${this.host}"): the token may have expired or been revoked`,
        { kind: 'auth' },
      );
    const who = this.credentials ? `as "${this.credentials.username}" (credentials from ${this.credentials.origin})` : 'without credentials';
    const fix = this.credentials ? 'check the user and password' : 'set SKIFF_REGISTRY_USER and SKIFF_REGISTRY_PASSWORD, or "docker login"';
    return new InfrastructureError(`registry ${this.host} denied access ${who}; ${fix}`, { kind: 'auth' });
  }

  private async authenticate(challenge: string, scope: string): Promise<void> {
    this.authorization = await answerChallenge(challenge, {
      host: this.host,
      credentials: this.credentials,
      scope,
      env: this.env,
      fetch: this.fetchImpl,
      denied: () => this.denied(),
    });
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
    const digest = res.headers.get('docker-content-digest') ?? '';
    // As with blobs: bytes are the content their digest names (the one asked for, the one the registry says), or refused.
    if (body) {
      const got = `sha256:${createHash('sha256').update(body).digest('hex')}`;
      for (const want of [reference, digest])
        if (want.startsWith('sha256:') && want !== got)
          throw new InfrastructureError(`registry ${this.host} sent manifest ${repository}@${want} with content ${got}; refusing it`);
    }
    return { digest, mediaType: res.headers.get('content-type') ?? '', body };
  }

  /** Adds a tag to an existing manifest without pulling or pushing layers. */
  async tagManifest(repository: string, from: string, tag: string): Promise<void> {
    const m = await this.manifest(repository, from, true);
    if (!m?.body) throw new InfrastructureError(`registry ${this.host}: ${repository}:${from} vanished while tagging`);
    await this.putManifest(repository, tag, { ...m, body: m.body });
  }

  /** Puts a manifest already fetched with its body (manifest(…, true)) under another tag: one request. */
  async putManifest(repository: string, tag: string, m: ManifestInfo & { body: Buffer }): Promise<void> {
    const res = await this.request('PUT', `/v2/${repository}/manifests/${tag}`, `repository:${repository}:pull,push`, {
      headers: { 'content-type': m.mediaType },
      body: m.body,
    });
    await res.body?.cancel();
    if (!res.ok) throw new InfrastructureError(`registry ${this.host} refused tag ${repository}:${tag} (${res.status})`);
  }

  /**
   * Uploads a small blob unless the repository has it: a HEAD, then (when
   * missing) an upload session's POST and one PUT with the bytes.
   */
  async pushBlob(repository: string, digest: string, body: Buffer): Promise<void> {
    const scope = `repository:${repository}:pull,push`;
    const head = await this.request('HEAD', `/v2/${repository}/blobs/${digest}`, scope);
    await head.body?.cancel();
    if (head.ok) return;
    const started = await this.request('POST', `/v2/${repository}/blobs/uploads/`, scope);
    await started.body?.cancel();
    const location = started.headers.get('location');
    if (started.status !== 202 || !location) throw new InfrastructureError(`registry ${this.host} refused an upload to ${repository} (${started.status})`);
    const url = new URL(location, `${registryBaseUrl(this.host, this.env)}/`);
    url.searchParams.set('digest', digest);
    const put = await this.request('PUT', url.pathname + url.search, scope, { headers: { 'content-type': 'application/octet-stream' }, body });
    await put.body?.cancel();
    if (!put.ok) throw new InfrastructureError(`registry ${this.host} refused blob ${repository}@${digest} (${put.status})`);
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

  /**
   * The bytes of a blob (a chart's archive, a layer), refused past maxBytes and
   * unless their sha256 is the digest. A registry may redirect a blob to its
   * storage: followed (fetch drops the authorization on another origin).
   */
  async blob(repository: string, digest: string, maxBytes: number): Promise<Buffer> {
    const hex = /^sha256:([0-9a-f]{64})$/.exec(digest)?.[1];
    if (!hex) throw new InfrastructureError(`registry ${this.host}: blob digest "${digest}" of ${repository} is not sha256:<64 hex digits>; refusing it`);
    const res = await this.request('GET', `/v2/${repository}/blobs/${digest}`, `repository:${repository}:pull`);
    if (!res.ok) {
      await res.body?.cancel();
      throw new InfrastructureError(`registry ${this.host} answered ${res.status} for blob ${repository}@${digest}`);
    }
    const body = await readBounded(res, `registry ${this.host} blob ${repository}@${digest}`, maxBytes);
    const got = createHash('sha256').update(body).digest('hex');
    if (got !== hex) throw new InfrastructureError(`registry ${this.host} sent blob ${repository}@${digest} with content sha256:${got}; refusing it`);
    return body;
  }

  /** When the image behind a digest was built (its config's "created"; of an index, its image's for this machine's platform); undefined when unknown. */
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

  /**
   * The image config blob of an image; of an index (a multi-platform image, or one with
   * attestations), the config of this machine's platform, else of its first image. Undefined for
   * a missing image.
   */
  private async imageConfig(repository: string, reference: string): Promise<{ created?: string; config?: { Labels?: Record<string, string> } } | undefined> {
    let m = await this.manifest(repository, reference, true);
    const index = parseIndex(m?.body, m?.mediaType);
    if (index) {
      const chosen = manifestFor(index, hostPlatform());
      m = chosen ? await this.manifest(repository, chosen.digest, true) : undefined;
    }
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
      entry = findCredentials(host, this.env, this.ci).then((credentials) => ({
        client: new RegistryClient(host, credentials, { env: this.env }),
        credentials,
      }));
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
