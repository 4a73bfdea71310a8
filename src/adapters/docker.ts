import type { Readable } from 'node:stream';
import type Docker from 'dockerode';
import { decodeTraceAux, type StatusResponse } from '../build/buildkit-status.js';
import { InfrastructureError, SkiffError } from '../errors.js';
import type { RegistryCredentials } from '../registry/credentials.js';
import { ANONYMOUS_ENGINE_AUTH, engineAuth, engineRegistryConfig, redactCredentials as redact } from '../registry/docker-auth.js';
import { BuildKitRefused, BuildStepFailure } from '../build/build-failure.js';
import { dockerClient, type DockerEndpoint, readFileIfExists, resolveDockerEndpoint } from './docker-endpoint.js';
import type { ContainerEngine, LocalImage } from './container-engine.js';
import { runContainer, type ContainerOutcome, type ContainerRun } from './container-run.js';

export { BuildStepFailure };

export interface BuildRequest {
  /** The build context and Dockerfile, asked for only when the Engine is about to take them (a context holds a Git reader open). */
  input: () => BuildInput;
  tag: string;
  target?: string;
  buildArgs: Record<string, string>;
  /** Credentials for registries that FROM (and BuildKit's cache import) may pull from. */
  registryAuth: Record<string, RegistryCredentials>;
  /** BuildKit only: images whose inline cache may provide layers. Each should exist: the Engine only notes a missing one. */
  cacheFrom?: string[];
  /** BuildKit only: write the cache metadata into the image (BUILDKIT_INLINE_CACHE=1), so a later build can name it in cacheFrom. */
  inlineCache?: boolean;
  /** A line of output: the classic builder's steps and their output; BuildKit's few plain lines. */
  onLog: (line: string) => void;
  /** BuildKit's progress, one decoded StatusResponse at a time. */
  onTrace?: (status: StatusResponse) => void;
  signal?: AbortSignal;
}

export interface BuildInput {
  /** The build context as a tar stream. */
  context: Readable;
  /** Path of the Dockerfile inside the context tar. */
  dockerfile: string;
  labels: Record<string, string>;
}

interface ProgressEvent {
  stream?: string;
  status?: string;
  id?: string;
  progress?: string;
  error?: string;
  errorDetail?: { message?: string; code?: number };
  /** (A base64 StatusResponse instead, for BuildKit's id "moby.buildkit.trace".) */
  aux?: { ID?: string; Tag?: string; Digest?: string; Size?: number };
}

/** The first API version whose /build takes version=2 (BuildKit), Docker 18.09. */
const BUILDKIT_MIN_API = [1, 39] as const;

/** The Docker Engine, through its HTTP API (dockerode), at the endpoint the docker CLI would use (docker-endpoint.ts). */
export class DockerEngine implements ContainerEngine {
  readonly api: Docker;
  readonly endpoint: DockerEndpoint;
  /** `env` is the run's (RunContext.env): DOCKER_HOST, DOCKER_CONTEXT, DOCKER_TLS_VERIFY, DOCKER_CERT_PATH, DOCKER_CONFIG. */
  constructor(env: NodeJS.ProcessEnv, api?: Docker) {
    this.endpoint = resolveDockerEndpoint(env, readFileIfExists);
    this.api = api ?? dockerClient(this.endpoint);
  }

  private unreachable(e: unknown): InfrastructureError {
    // OpenSSL's messages carry its source position; its reason ("sslv3 alert bad certificate") is the news.
    const err = e as Error & { library?: string; reason?: string };
    const why = err.library === 'SSL routines' && err.reason ? `TLS: ${err.reason}` : cleanEngineMessage(err.message);
    const fix = /^TLS: |certificate|HTTP request to an HTTPS server/i.test(why)
      ? "check its TLS settings (DOCKER_TLS_VERIFY and DOCKER_CERT_PATH, or the context's certificates)"
      : 'start it (scripts/services up) or set DOCKER_HOST';
    return new InfrastructureError(`Docker Engine at ${this.endpoint.describe} is unreachable (${why}); ${fix}`, { cause: e });
  }

  async ping(): Promise<void> {
    try {
      await this.api.ping();
    } catch (e) {
      throw this.unreachable(e);
    }
  }

  /** Labels of a local image, or undefined when the Engine does not have it. */
  async inspectImage(ref: string): Promise<LocalImage | undefined> {
    try {
      const info = await this.api.getImage(ref).inspect();
      return { id: info.Id, labels: info.Config?.Labels ?? {}, repoDigests: info.RepoDigests ?? [] };
    } catch (e) {
      if ((e as { statusCode?: number }).statusCode === 404) return undefined;
      throw this.unreachable(e);
    }
  }

  private buildKitRefusal: string | undefined;
  private engineFacts: Promise<{ apiVersion: string; os: string; arch: string }> | undefined;
  private buildNetwork: Promise<string | undefined> | undefined;

  /**
   * Why this Engine cannot build with BuildKit, or undefined when it can (as far as its version tells:
   * the build tries); after a refusal, the refusal, for every later build of the run.
   */
  async buildKitUnsupported(): Promise<string | undefined> {
    if (this.buildKitRefusal) return this.buildKitRefusal;
    const { apiVersion, os } = await this.facts();
    const [major = 0, minor = 0] = apiVersion.split('.').map(Number);
    if (major < BUILDKIT_MIN_API[0] || (major === BUILDKIT_MIN_API[0] && minor < BUILDKIT_MIN_API[1]))
      return `Engine API ${apiVersion || 'of unknown version'} is older than ${BUILDKIT_MIN_API.join('.')}`;
    if (os && os !== 'linux') return `the Engine runs ${os} containers, which BuildKit through the Engine does not build`;
    return undefined;
  }

  private facts() {
    this.engineFacts ??= this.api.version().then(
      (v) => ({ apiVersion: v.ApiVersion ?? '', os: v.Os ?? '', arch: v.Arch ?? '' }),
      (e: unknown) => {
        throw this.unreachable(e);
      },
    );
    return this.engineFacts;
  }

  /** The platform the Engine builds and runs, as its version tells ("linux/amd64"). */
  async platform(): Promise<string> {
    const { os, arch } = await this.facts();
    return `${os || 'linux'}/${arch === 'arm' ? 'arm/v7' : arch}`;
  }

  /**
   * The network RUN steps get under BuildKit: the Engine's default ("bridge") when it has one;
   * 'none' when dockerd runs with --bridge=none, where BuildKit would fail every RUN with
   * "network bridge not found" (the classic builder gives RUN only loopback there, as 'none' does).
   */
  private networkMode(): Promise<string | undefined> {
    this.buildNetwork ??= this.api
      .getNetwork('bridge')
      .inspect()
      .then(
        () => undefined,
        (e: unknown) => {
          if ((e as { statusCode?: number }).statusCode === 404) return 'none';
          throw this.unreachable(e);
        },
      );
    return this.buildNetwork;
  }

  /**
   * Builds with the Engine's BuildKit (`POST /build?version=2`, no session); returns the image id.
   * Failures inside the 200 stream become BuildStepFailure; an Engine that turns BuildKit down
   * throws BuildKitRefused (and buildKitUnsupported says so from then on).
   */
  async buildWithBuildKit(req: BuildRequest): Promise<string> {
    const networkmode = await this.networkMode();
    const buildargs = req.inlineCache ? { ...req.buildArgs, BUILDKIT_INLINE_CACHE: '1' } : req.buildArgs;
    const input = req.input();
    const query: Record<string, unknown> = { version: '2', t: req.tag, dockerfile: input.dockerfile, buildargs, labels: input.labels };
    if (req.target) query.target = req.target;
    if (networkmode) query.networkmode = networkmode;
    if (req.cacheFrom?.length) query.cachefrom = JSON.stringify(req.cacheFrom);
    let stream: NodeJS.ReadableStream;
    try {
      // Straight to the modem: dockerode's buildImage opens a BuildKit session for version 2, which an uploaded context does not need.
      stream = await new Promise<NodeJS.ReadableStream>((resolve, reject) =>
        this.api.modem.dial(
          {
            path: '/build?',
            method: 'POST',
            file: input.context,
            options: query,
            registryconfig: engineRegistryConfig(req.registryAuth),
            isStream: true,
            abortSignal: req.signal,
            statusCodes: { 200: true, 400: 'bad parameter', 500: 'server error' },
          },
          (err, data) => (err ? reject(err) : resolve(data as NodeJS.ReadableStream)),
        ),
      );
    } catch (e) {
      input.context.destroy(); // a refused request leaves the context half read, and its Git reader open
      const status = (e as { statusCode?: number }).statusCode;
      if (status === undefined) throw this.unreachable(e);
      const message = cleanEngineMessage((e as { json?: { message?: string } }).json?.message ?? (e as Error).message);
      if (
        /buildkit|builder version|version=2|unsupported version/i.test(message) &&
        /not (supported|enabled|available)|unsupported|disabled|unknown|invalid/i.test(message)
      ) {
        this.buildKitRefusal = `the Engine refused BuildKit: ${message}`;
        throw new BuildKitRefused(message);
      }
      if (status >= 400 && status < 500) throw new BuildStepFailure(message);
      throw this.unreachable(e);
    }
    let imageId: string | undefined;
    const events = await this.follow(stream, (ev) => {
      const aux: unknown = ev.aux;
      if (ev.id === 'moby.buildkit.trace' && typeof aux === 'string') {
        let status: StatusResponse | undefined;
        try {
          status = decodeTraceAux(aux);
        } catch (e) {
          req.onLog(`(a BuildKit progress message skiff cannot read: ${(e as Error).message})`);
        }
        if (status) req.onTrace?.(status);
        return;
      }
      if (ev.aux?.ID) imageId = ev.aux.ID;
      if (ev.stream) for (const line of ev.stream.split('\n')) if (line.trim()) req.onLog(line);
    });
    const failure = events.find((ev) => ev.error || ev.errorDetail);
    if (failure) throw new BuildStepFailure(failure.errorDetail?.message ?? failure.error ?? 'build failed');
    return imageId ?? (await this.builtImageId(req.tag));
  }

  /** Builds with the classic builder (`POST /build`); returns the image id. Failures inside the 200 stream become BuildStepFailure. */
  async buildClassic(req: BuildRequest): Promise<string> {
    const input = req.input();
    let stream: NodeJS.ReadableStream;
    try {
      stream = await this.api.buildImage(input.context, {
        t: req.tag,
        dockerfile: input.dockerfile,
        target: req.target,
        buildargs: req.buildArgs,
        labels: input.labels,
        registryconfig: engineRegistryConfig(req.registryAuth),
        rm: true,
        forcerm: true,
        version: '1',
        abortSignal: req.signal,
      });
    } catch (e) {
      const status = (e as { statusCode?: number }).statusCode;
      if (status && status >= 400 && status < 500) {
        throw new BuildStepFailure(cleanEngineMessage((e as { json?: { message?: string } }).json?.message ?? (e as Error).message));
      }
      throw this.unreachable(e);
    }
    let imageId: string | undefined;
    let step: { number: number; text: string } | undefined;
    const events = await this.follow(stream, (ev) => {
      if (ev.stream) {
        for (const line of ev.stream.split('\n')) {
          if (!line.trim()) continue;
          const m = /^Step (\d+)\/\d+ : (.*)$/.exec(line);
          if (m) step = { number: Number(m[1]), text: m[2]! };
          req.onLog(line);
        }
      } else if (ev.status) {
        req.onLog(`${ev.id ? `${ev.id}: ` : ''}${ev.status}${ev.progress ? ` ${ev.progress}` : ''}`);
      }
      if (ev.aux?.ID) imageId = ev.aux.ID;
    });
    const failure = events.find((ev) => ev.error || ev.errorDetail);
    if (failure) throw new BuildStepFailure(cleanEngineMessage(failure.errorDetail?.message ?? failure.error ?? 'build failed'), step);
    return imageId ?? (await this.builtImageId(req.tag));
  }

  private async builtImageId(tag: string): Promise<string> {
    const inspected = await this.inspectImage(tag);
    if (!inspected) throw new BuildStepFailure('the Engine reported no image id and no error');
    return inspected.id;
  }

  async tag(source: string, repository: string, tag: string): Promise<void> {
    await this.api.getImage(source).tag({ repo: repository, tag });
  }

  /** Pulls repository:tag into the Engine (a registry's credentials when it needs them). */
  async pull(
    repository: string,
    tag: string,
    credentials: RegistryCredentials | undefined,
    onLog: (line: string) => void,
    signal?: AbortSignal,
  ): Promise<void> {
    const authconfig = engineAuth(credentials, repository.split('/')[0]);
    let stream: NodeJS.ReadableStream;
    try {
      stream = await this.api.pull(`${repository}:${tag}`, { authconfig, abortSignal: signal });
    } catch (e) {
      const status = (e as { statusCode?: number }).statusCode;
      if (status === 401 || status === 403)
        throw new InfrastructureError(
          `pull of ${repository}:${tag} was denied by the registry${credentials ? ` for user "${credentials.username}" (from ${credentials.origin})` : ' (no credentials found)'}`,
          { kind: 'auth' },
        );
      if (status !== undefined)
        throw new InfrastructureError(`pull of ${repository}:${tag} failed: ${redact(cleanEngineMessage((e as Error).message), credentials)}`);
      throw this.unreachable(e);
    }
    const events = await this.follow(stream, (ev) => {
      if (ev.status && !ev.progress) onLog(`${ev.id ? `${ev.id}: ` : ''}${ev.status}`);
    });
    const failure = events.find((ev) => ev.error || ev.errorDetail);
    if (failure)
      throw new InfrastructureError(
        `pull of ${repository}:${tag} failed: ${redact(cleanEngineMessage(failure.errorDetail?.message ?? failure.error ?? 'pull failed'), credentials)}`,
      );
  }

  /** Pushes repository:tag; returns the manifest digest. Unauthorized pushes (reported inside a 200 stream) become exit 3. */
  async push(
    repository: string,
    tag: string,
    credentials: RegistryCredentials | undefined,
    onLog: (line: string) => void,
    signal?: AbortSignal,
  ): Promise<string> {
    // The Engine wants an X-Registry-Auth header even for anonymous pushes.
    const authconfig = engineAuth(credentials, repository.split('/')[0]) ?? ANONYMOUS_ENGINE_AUTH;
    let stream: NodeJS.ReadableStream;
    try {
      stream = await this.api.getImage(`${repository}:${tag}`).push({ tag, authconfig, abortSignal: signal });
    } catch (e) {
      throw this.unreachable(e);
    }
    let digest = '';
    const events = await this.follow(stream, (ev) => {
      if (ev.aux?.Digest) digest = ev.aux.Digest;
      if (ev.status && !ev.progress) onLog(`${ev.id ? `${ev.id}: ` : ''}${ev.status}`);
    });
    const failure = events.find((ev) => ev.error || ev.errorDetail);
    if (failure) {
      const message = cleanEngineMessage(failure.errorDetail?.message ?? failure.error ?? 'push failed');
      if (/unauthori[sz]ed|authentication required|denied|forbidden|no basic auth/i.test(message)) {
        throw new InfrastructureError(
          `push of ${repository}:${tag} was denied by the registry${credentials ? ` for user "${credentials.username}" (from ${credentials.origin})` : ' (no credentials found)'}: ${redact(message, credentials)}`,
          { kind: 'auth' },
        );
      }
      throw new InfrastructureError(`push of ${repository}:${tag} failed: ${redact(message, credentials)}`);
    }
    // A stream cut short (Engine or registry gone mid-push) ends without an error and without a digest: not pushed.
    if (!digest) throw new InfrastructureError(`push of ${repository}:${tag} ended without the registry confirming it (no digest); run the command again`);
    return digest;
  }

  /** `docker load` of a docker-archive tar; the Engine reports a bad archive inside its 200 response. */
  async loadImage(tar: Readable): Promise<void> {
    const out = await this.api.loadImage(tar);
    let text = '';
    for await (const chunk of out) text += String(chunk);
    for (const line of text.split('\n')) {
      if (!line.trim().startsWith('{')) continue;
      const event = JSON.parse(line) as { error?: string; errorDetail?: { message?: string } };
      const error = event.errorDetail?.message ?? event.error;
      if (error) throw new InfrastructureError(`the Docker Engine could not load the image buildkitd built: ${error}`);
    }
  }

  runContainer(run: ContainerRun): Promise<ContainerOutcome> {
    return runContainer(this.api, run);
  }

  private follow(stream: NodeJS.ReadableStream, onEvent: (ev: ProgressEvent) => void): Promise<ProgressEvent[]> {
    return new Promise((resolve, reject) => {
      this.api.modem.followProgress(
        stream,
        (err: Error | null, output: ProgressEvent[]) => (err ? reject(err instanceof SkiffError ? err : this.unreachable(err)) : resolve(output)),
        onEvent,
      );
    });
  }
}

function cleanEngineMessage(message: string): string {
  return message.replace(/\s+/g, ' ').trim();
}
