import type { Readable } from 'node:stream';
import Docker from 'dockerode';
import { InfrastructureError, SkiffError } from '../errors.js';
import type { RegistryCredentials } from './credentials.js';
import { BuildStepFailure } from './build-failure.js';

export { BuildStepFailure };

export interface BuildRequest {
  context: Readable;
  /** Path of the Dockerfile inside the context tar. */
  dockerfile: string;
  tag: string;
  target?: string;
  buildArgs: Record<string, string>;
  labels: Record<string, string>;
  /** Credentials for registries that FROM may pull from. */
  registryAuth: Record<string, RegistryCredentials>;
  onLog: (line: string) => void;
  signal?: AbortSignal;
}

interface ProgressEvent {
  stream?: string;
  status?: string;
  id?: string;
  progress?: string;
  error?: string;
  errorDetail?: { message?: string; code?: number };
  aux?: { ID?: string; Tag?: string; Digest?: string; Size?: number };
}

/** The Docker Engine, through its HTTP API (dockerode). */
export class DockerEngine {
  readonly api: Docker;
  constructor(api?: Docker) {
    this.api = api ?? new Docker();
  }

  private unreachable(e: unknown): InfrastructureError {
    const where = process.env.DOCKER_HOST ?? '/var/run/docker.sock';
    return new InfrastructureError(`Docker Engine at ${where} is unreachable (${(e as Error).message}); start it (scripts/services up) or set DOCKER_HOST`, {
      cause: e,
    });
  }

  async ping(): Promise<void> {
    try {
      await this.api.ping();
    } catch (e) {
      throw this.unreachable(e);
    }
  }

  /** Labels of a local image, or undefined when the Engine does not have it. */
  async inspectImage(ref: string): Promise<{ id: string; labels: Record<string, string>; repoDigests: string[] } | undefined> {
    try {
      const info = await this.api.getImage(ref).inspect();
      return { id: info.Id, labels: info.Config?.Labels ?? {}, repoDigests: info.RepoDigests ?? [] };
    } catch (e) {
      if ((e as { statusCode?: number }).statusCode === 404) return undefined;
      throw this.unreachable(e);
    }
  }

  /** Runs a classic build from a tar stream; returns the image id. Failures inside the 200 stream become BuildStepFailure. */
  async build(req: BuildRequest): Promise<string> {
    const registryconfig: Record<string, { username: string; password: string }> = {};
    for (const [host, c] of Object.entries(req.registryAuth)) registryconfig[host] = { username: c.username, password: c.password };
    let stream: NodeJS.ReadableStream;
    try {
      stream = await this.api.buildImage(req.context, {
        t: req.tag,
        dockerfile: req.dockerfile,
        target: req.target,
        buildargs: req.buildArgs,
        labels: req.labels,
        registryconfig,
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
    if (!imageId) {
      const inspected = await this.inspectImage(req.tag);
      if (!inspected) throw new BuildStepFailure('the Engine reported no image id and no error');
      imageId = inspected.id;
    }
    return imageId;
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
    const authconfig = credentials ? { username: credentials.username, password: credentials.password, serveraddress: repository.split('/')[0]! } : undefined;
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
    const authconfig = credentials
      ? { username: credentials.username, password: credentials.password, serveraddress: repository.split('/')[0]! }
      : { username: '', password: '', serveraddress: '' };
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
    return digest;
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

export function redact(text: string, credentials?: RegistryCredentials): string {
  if (!credentials?.password) return text;
  return text.split(credentials.password).join('***');
}

export interface ContainerRun {
  image: string;
  command: string[];
  env: Record<string, string>;
  workdir?: string;
  network: 'none' | 'host';
  timeoutMs: number;
  labels: Record<string, string>;
  onOutput: (line: string) => void;
  /** Absolute paths inside the container to copy out after the run. */
  copyOut: string[];
  /** Host directory the copied paths land in. */
  copyTo: string;
  signal: AbortSignal;
}

export interface ContainerOutcome {
  exitCode: number;
  timedOut: boolean;
  interrupted: boolean;
  durationMs: number;
  copied: string[];
  missing: string[];
}
